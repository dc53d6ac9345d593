"""The ``Defaults:`` block of a ptypy loader's docstring, read into a pydantic model.

A ptypy scan class documents its parameters in ConfigParser sections after a
line ``Defaults:``::

    [scanNumber]
    default = None
    type = int, list, tuple
    help = Scan number or list of scan numbers
    lowlim = 0

    [positions]
    default =
    type = Param

    [positions.file]
    default = None
    type = str

Each section becomes a field of a :class:`~ptyscan.params.ParamsModel`
subclass of the parent class's model (so unknown keys and wrong types get
ptyscan's one-line errors), dotted sections become nested models, and a class
inherits the blocks of its bases. A key the parent model already validates
(``shape``, ``energy``, ...) keeps its parent's validation and takes the new
default. Values are kept as given (no conversion), as ptypy does.
"""

from __future__ import annotations

import ast
import configparser
import textwrap
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field, create_model

from ..errors import ScanError
from ..params import ParamsModel, short_repr

__all__ = [
    "DefaultsEntry",
    "as_tuples",
    "class_entries",
    "defaults_text",
    "model_from_defaults",
    "parse_defaults",
    "tuple_keys",
]

TYPE_NAMES = {
    "array": "ndarray",
    "file": "str",
    "dir": "str",
    "": "NoneType",
    "None": "NoneType",
    "dict": "Param",
}
EVALUATED = {"int", "float", "tuple", "list", "complex"}


class DefaultsEntry:
    """One ``[key]`` section: name (dotted), default, types, limits, help text."""

    def __init__(self, name, options):
        self.name = name
        raw_types = options.get("type", "").strip()  # none: any type (or a parent key's)
        self.types = [TYPE_NAMES.get(t.strip(), t.strip()) for t in raw_types.split(",")]
        self.types = self.types if raw_types else []
        self.is_group = "Param" in self.types
        self.default = self._default(options.get("default", ""))
        self.lowlim = self._limit(options.get("lowlim"))
        self.uplim = self._limit(options.get("uplim"))
        self.help = " ".join(
            s for s in (options.get("help", "").strip(), options.get("doc", "").strip()) if s
        )

    def _default(self, text):
        text = text.strip()
        if self.is_group or not text or text.lower() == "none":
            return None
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        value = text
        if not self.types or EVALUATED & set(self.types):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
        return value.strip("'\"") if isinstance(value, str) else value

    def _limit(self, text):
        if text in (None, ""):
            return None
        return int(text) if "int" in self.types else float(text)


def defaults_text(cls, stop) -> str:
    """The ``Defaults:`` sections of ``cls`` and of its bases up to ``stop`` (bases first)."""
    if cls is stop or cls is object or not issubclass(cls, stop):
        return ""
    text = "".join(defaults_text(base, stop) for base in cls.__bases__)
    lines = (cls.__dict__.get("__doc__") or "").splitlines()
    for k, line in enumerate(lines):
        if line.strip().startswith("Defaults:"):
            return text + "\n" + textwrap.dedent("\n".join(lines[k + 1 :])) + "\n"
    return text


def parse_defaults(text, *, where="") -> list[DefaultsEntry]:
    """The sections of a ``Defaults:`` text, later ones overriding earlier options."""
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ScanError(
            f"{where}: the docstring's Defaults: block is not ConfigParser text, {first}"
        ) from None
    return [DefaultsEntry(name, dict(parser[name])) for name in parser.sections()]


def _is_type(value, name) -> bool:
    number = (int, float, np.integer, np.floating)
    checks = {
        "int": lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, number) and not isinstance(v, bool | np.bool_),
        "complex": lambda v: isinstance(v, number | complex | np.complexfloating),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool | np.bool_),
        "tuple": lambda v: isinstance(v, tuple | list),
        "list": lambda v: isinstance(v, tuple | list),
        "ndarray": lambda v: isinstance(v, np.ndarray | list | tuple),
        "Param": lambda v: hasattr(v, "keys"),
        "NoneType": lambda v: v is None,
    }
    check = checks.get(name)
    return True if check is None else check(value)


def _checker(entry):
    """A BeforeValidator body checking a value against the entry's types and limits."""
    types = [t for t in entry.types if t]
    allow_none = entry.default is None or "NoneType" in types

    def check(value):
        if value is None and allow_none:
            return value
        if types and not any(_is_type(value, t) for t in types):
            shown = ", ".join(t for t in types if t != "NoneType")
            extra = " or None" if allow_none else ""
            raise ValueError(f"must be of type {shown}{extra}, got {short_repr(value)}")
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool
        ):
            if entry.lowlim is not None and value < entry.lowlim:
                raise ValueError(f"must be >= {entry.lowlim}, got {short_repr(value)}")
            if entry.uplim is not None and value > entry.uplim:
                raise ValueError(f"must be <= {entry.uplim}, got {short_repr(value)}")
        return value

    return check


def _tree(entries):
    """Nested dict name → entry or (entry, subtree) of dotted section names."""
    tree: dict = {}
    for entry in entries:
        node = tree
        *heads, last = entry.name.split(".")
        for head in heads:
            slot = node.setdefault(head, [None, {}])
            node = slot[1]
        slot = node.setdefault(last, [None, {}])
        slot[0] = entry
    return tree


def _fields(tree, base, model_name):
    fields = {}
    for key, (entry, children) in tree.items():
        inherited = base.model_fields.get(key) if base is not None else None
        if children or (entry is not None and entry.is_group):
            parent = inherited.annotation if inherited is not None else None
            parent = (
                parent if isinstance(parent, type) and issubclass(parent, ParamsModel) else None
            )
            sub = model_from_tree(children, parent, f"{model_name}_{key}")
            fields[key] = (sub, Field(default_factory=sub, description=_help(entry)))
        elif inherited is not None:
            annotation = inherited.annotation
            if inherited.metadata:  # the parent's validators (Annotated[..., BeforeValidator])
                annotation = Annotated[(annotation, *inherited.metadata)]
            if entry.default is None:
                annotation = annotation | None
            fields[key] = (annotation, Field(entry.default, description=_help(entry)))
        else:
            annotation = Annotated[Any, BeforeValidator(_checker(entry))]
            fields[key] = (annotation, Field(entry.default, description=_help(entry)))
    return fields


def _help(entry):
    return entry.help if entry is not None and entry.help else None


def model_from_tree(tree, base, model_name, **extra_fields):
    """A ParamsModel subclass of ``base`` (or ParamsModel) with the fields of ``tree``."""
    base = base or ParamsModel
    fields = {**extra_fields, **_fields(tree, base, model_name)}
    return create_model(model_name, __base__=base, **fields)


def model_from_defaults(cls, stop, base, name=None):
    """The parameter model of ptypy-style class ``cls``: ``base`` plus its Defaults blocks.

    Parameters
    ----------
    cls : type
        The class whose docstring (and bases' docstrings, up to ``stop``) hold
        ``Defaults:`` blocks.
    stop : type
        The first base whose docstring is not read (the compat PtyScan).
    base : type of ParamsModel
        The model the new one derives from (the parent class's ``Params``).
    name : str, optional
        Default of ``name`` when no block has a ``[name]`` section.
    """
    entries = class_entries(cls, stop)
    extra = {"name": (str, name)} if name is not None else {}
    return model_from_tree(_tree(entries), base, f"{cls.__name__}Params", **extra)


def class_entries(cls, stop) -> list[DefaultsEntry]:
    """The entries of the ``Defaults:`` blocks of ``cls`` and its bases up to ``stop``."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    return parse_defaults(defaults_text(cls, stop), where=where)


def tuple_keys(cls, stop) -> frozenset[str]:
    """Dotted keys whose ptypy type allows a tuple but no list (``shape: int, tuple``)."""
    return frozenset(
        e.name
        for e in class_entries(cls, stop)
        if "tuple" in e.types and not {"list", "ndarray"} & set(e.types)
    )


def as_tuples(values, keys, prefix=""):
    """``values`` with the lists at dotted ``keys`` made tuples, as a ptypy script would
    give them (a YAML recipe has no tuples; loaders write ``(n,) + self.p.shape``)."""
    out = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if hasattr(value, "keys"):
            value = as_tuples(value, keys, prefix=path + ".")
        elif path in keys and isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out
