"""Parameter models, reusable field types and validation-error formatting.

Every scan and engine class declares its parameters as a pydantic v2 model
derived from :class:`ParamsModel` (unknown keys rejected, frozen after
validation).  :func:`validate_params` turns pydantic's errors into a
:class:`~ptyscan.errors.RecipeError` with one line per problem::

    scan.engery: unknown key (did you mean 'energy'?)
    scan.shape: must be a positive int or a pair (ny, nx) of positive ints, got -3

Recipes (YAML files) are read by :mod:`ptyscan.recipe`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Annotated, Any, get_args

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo

from .errors import ParameterError, RecipeError, closest_name, short_repr

__all__ = [
    "InputPath",
    "OptionalPair",
    "OptionalPositiveFloat",
    "OptionalShape2",
    "Pair",
    "ParamsModel",
    "PositionsArray",
    "PositiveFloat",
    "Shape2",
    "check_finite_nonzero",
    "checked_by",
    "closest_name",
    "describe_fields",
    "existing_input",
    "format_validation_error",
    "is_int",
    "plain",
    "recipe_dir",
    "resolve_input_path",
    "searched_paths",
    "short_repr",
    "validate_params",
]


class ParamsModel(BaseModel):
    """Base of all parameter models: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        arbitrary_types_allowed=True,
        use_attribute_docstrings=True,
    )

    def to_dict(self) -> dict:
        """Plain, YAML-safe dict of the values (tuples become lists, arrays lists)."""
        return plain(self.model_dump())

    def __eq__(self, other):
        # Compare plain values: pydantic's field-by-field == fails on array fields.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()


def plain(value):
    """``value`` as plain YAML-safe data: mappings to dicts, tuples to lists, NumPy to Python."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The nested model reached by following ``loc`` (all but the last key)."""
    current = model
    for key in loc[:-1]:
        field = current.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            return None
        members = get_args(field.annotation) or (field.annotation,)  # X | None
        models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) != 1:
            return None
        current = models[0]
    return current


def format_validation_error(exc: ValidationError, *, model, prefix: str = "") -> list[str]:
    """Turn a pydantic ``ValidationError`` into one readable line per problem.

    Parameters
    ----------
    exc : pydantic.ValidationError
    model : type
        The model that was validated (used to find 'did you mean' candidates).
    prefix : str
        Path prefix such as ``"scan"`` or ``"engines[0]"``.
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = ".".join([prefix, *(str(p) for p in loc)]) if prefix else ".".join(map(str, loc))
        path = path or prefix or "<root>"
        kind = err["type"]
        if kind == "extra_forbidden":
            owner = _model_at(model, loc)
            hint = closest_name(loc[-1], owner.model_fields) if owner else None
            tail = f" (did you mean '{hint}'?)" if hint else ""
            valid = ", ".join(sorted(owner.model_fields)) if owner and not hint else ""
            if valid:
                tail = f"; valid keys: {valid}"
            told = getattr(owner, "KEY_HINTS", {}).get(loc[-1])
            if told:  # a key other models of the kind have: say which
                tail = f"; {told}"
            lines.append(f"{path}: unknown key{tail}")
            continue
        msg = err["msg"]
        for lead in ("Value error, ", "Assertion failed, "):
            if msg.startswith(lead):
                msg = msg[len(lead) :]
        if kind == "missing":
            lines.append(f"{path}: required key is missing")
        elif kind.startswith("value_error") and ", got " in msg:
            lines.append(f"{path}: {msg}")
        else:
            msg = msg[0].lower() + msg[1:] if msg else msg
            lines.append(f"{path}: {msg}, got {short_repr(err.get('input'))}")
    return lines


def validate_params(
    model: type[ParamsModel], values: Mapping | None, *, prefix: str = "", base_dir=None
):
    """Validate ``values`` against ``model``; raise RecipeError listing every problem.

    ``base_dir``: the recipe's folder, against which relative :data:`InputPath`
    values are resolved (see :func:`resolve_input_path`).
    """
    if values is not None and not isinstance(values, Mapping):
        where = prefix or "parameters"
        raise RecipeError(
            [f"{where}: must be a mapping of keys to values, got {short_repr(values)}"]
        )
    try:
        context = None if base_dir is None else {"base_dir": os.fspath(base_dir)}
        return model.model_validate(dict(values or {}), context=context)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, model=model, prefix=prefix)) from None


# --- reusable field types ------------------------------------------------------------------


def checked_by(check):
    """A pydantic validator running ``check(value)`` (a function that raises
    :class:`~ptyscan.errors.ParameterError` on bad input): the error becomes the
    field's one-line message with the value received; the value is returned as given."""

    def validate(value):
        try:
            check(value)
        except ParameterError as exc:
            raise ValueError(f"{exc}, got {short_repr(value)}") from None
        return value

    return validate


def resolve_input_path(value, base_dir):
    """Where a relative input file of a recipe is: next to the recipe (``base_dir``)
    when it is there, or in the working directory when only there; else next to
    the recipe, so that a 'no such file' error names the place users expect.
    ``~`` is expanded; absolute paths and None are returned as they are."""
    if value is None:
        return None
    path = os.path.expanduser(os.fspath(value))
    if base_dir is None or os.path.isabs(path):
        return path
    beside = os.path.normpath(os.path.join(base_dir, path))
    if os.path.exists(beside) or not os.path.exists(path):
        return beside
    return path


def searched_paths(value, base_dir) -> list[str]:
    """The absolute paths where input ``value`` is looked for, in order: next to the
    recipe (``base_dir``), then in the working directory; an absolute path alone."""
    path = os.path.expanduser(os.fspath(value))
    if base_dir is None or os.path.isabs(path):
        return [os.path.abspath(path)]
    return [os.path.normpath(os.path.join(base_dir, path)), os.path.abspath(path)]


def recipe_dir(info: ValidationInfo | None):
    """The recipe's folder a validator was given (``validate_params(base_dir=)``), or None."""
    return ((info.context if info is not None else None) or {}).get("base_dir")


def existing_input(value, info: ValidationInfo | None) -> str:
    """:func:`resolve_input_path` in a validator (the recipe's folder from its context);
    a ValueError naming every path searched when the file or folder is in none of them."""
    base_dir = recipe_dir(info)
    found = resolve_input_path(value, base_dir)
    if not os.path.exists(found):
        raise ValueError(
            f"no such file or folder (searched {', '.join(searched_paths(value, base_dir))})"
        )
    return found


def _input_path(value, info: ValidationInfo):
    if value is not None and not isinstance(value, str | os.PathLike):
        raise ValueError(f"must be a file path (text), got {short_repr(value)}")
    return resolve_input_path(value, recipe_dir(info))


def is_int(value) -> bool:
    """True for a Python or NumPy integer that is not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _shape2(value):
    """int n or a pair (ny, nx) of positive ints → (ny, nx)."""
    expected = "must be a positive int or a pair (ny, nx) of positive ints"
    pair = (value, value) if is_int(value) else value
    if (
        isinstance(pair, list | tuple | np.ndarray)
        and len(pair) == 2
        and all(is_int(v) and v > 0 for v in pair)
    ):
        return (int(pair[0]), int(pair[1]))
    raise ValueError(f"{expected}, got {short_repr(value)}")


def _pair(value):
    """A positive number or a pair of positive numbers → (y, x) floats."""
    expected = "must be a positive number or a pair (y, x) of positive numbers"
    pair = (value, value) if _is_real(value) else value
    if isinstance(pair, list | tuple | np.ndarray) and len(pair) == 2:
        if all(_is_real(v) and math.isfinite(v) and v > 0 for v in pair):
            return (float(pair[0]), float(pair[1]))
    raise ValueError(f"{expected}, got {short_repr(value)}")


def _positive(value):
    if _is_real(value) and math.isfinite(value) and value > 0:
        return float(value)
    raise ValueError(f"must be a positive finite number, got {short_repr(value)}")


def _optional_positive(value):
    return None if value is None else _positive(value)


def _positions(value):
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        shape = getattr(arr, "shape", "not numeric")
        raise ValueError(
            f"must be an (N, 2) array of positions in metres (slow, fast), got shape {shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("must contain only finite positions, got NaN or inf")
    arr.setflags(write=False)
    return arr


Shape2 = Annotated[tuple[int, int], BeforeValidator(_shape2)]
"""(ny, nx) pixels; accepts an int n for (n, n)."""
OptionalShape2 = Annotated[
    tuple[int, int] | None, BeforeValidator(lambda v: None if v is None else _shape2(v))
]
"""Like :data:`Shape2`, or None."""
Pair = Annotated[tuple[float, float], BeforeValidator(_pair)]
"""(y, x) positive floats; accepts one number for both."""
OptionalPair = Annotated[
    tuple[float, float] | None, BeforeValidator(lambda v: None if v is None else _pair(v))
]
"""Like :data:`Pair`, or None."""
PositiveFloat = Annotated[float, BeforeValidator(_positive)]
OptionalPositiveFloat = Annotated[float | None, BeforeValidator(_optional_positive)]
PositionsArray = Annotated[Any, BeforeValidator(_positions)]
InputPath = Annotated[str | None, BeforeValidator(_input_path)]
"""A file or folder the scan reads: relative paths resolve against the recipe's folder."""
"""(N, 2) float64 metres or None."""


def check_finite_nonzero(value):
    """Check a number that scales or divides (a field validator's body).

    Parameters
    ----------
    value : float
        The field's value, already a float (units are the field's own).

    Returns
    -------
    float
        ``value`` unchanged.

    Raises
    ------
    ValueError
        ``value`` is NaN, infinite or 0 (pydantic turns it into a validation error).
    """
    if not np.isfinite(value) or value == 0:
        raise ValueError(f"must be a finite, non-zero number, got {value}")
    return value


def describe_fields(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """(name, default, help) for each field of ``model``, nested models flattened."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += [(f"{name}.{n}", d, h) for n, d, h in describe_fields(ann)]
            continue
        default = plain(field.get_default(call_default_factory=True))
        rows.append((name, repr(default), _inherited_description(model, name)))
    return rows


def _inherited_description(model, name) -> str:
    """Help of field ``name``; a subclass that only changes the default keeps its parent's."""
    for cls in model.__mro__:
        field = getattr(cls, "model_fields", {}).get(name) if isinstance(cls, type) else None
        if field is not None and field.description:
            return field.description.strip()
    return ""
