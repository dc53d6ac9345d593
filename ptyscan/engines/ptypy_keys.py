"""ptypy 0.9's engine parameters that ptyscan's engines do not implement.

Every parameter name of ptypy 0.9's DM and ML engines is accepted in an
``engines:`` item, so an engine block from ptypy's templates runs unchanged.
Those ptyscan does not implement are accepted at ptypy's default and refused,
by name, at any other value::

    engines[0].subpix: ptypy parameter not supported by ptyscan's DM (only its
    default 'linear' is accepted), got 'fourier'

They are left out of dumped recipes (always at their default).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, create_model

from ..params import ParamsModel, short_repr

__all__ = ["PTYPY_ONLY", "ptypy_only_keys"]

_SHARED = {
    "probe_fourier_support": None,
    "record_local_error": False,
}
PTYPY_ONLY = {
    "DM": {
        **_SHARED,
        "subpix_start": 0,
        "subpix": "linear",
        "fourier_power_bound": None,
        "probe_center_tol": None,
    },
    "ML": {
        **_SHARED,
        "wavefield_precond": False,
        "wavefield_delta_object": 0.1,
        "wavefield_delta_probe": 0.1,
    },
}
"""Engine → ptypy 0.9 parameter → its ptypy default, for the parameters not implemented."""


def _same(value, default) -> bool:
    if isinstance(default, bool) or default is None or isinstance(default, str):
        return value is default or (isinstance(value, str) and value == default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.isclose(value, default)
    return False


def _only_default(engine, name, default):
    def check(value):
        if not _same(value, default):
            raise ValueError(
                f"ptypy parameter not supported by ptyscan's {engine} (only its default "
                f"{default!r} is accepted), got {short_repr(value)}"
            )
        return value

    return check


def ptypy_only_keys(engine: str) -> type[ParamsModel]:
    """A model with ``engine``'s ptypy-only parameters, each accepted at its default only.

    Parameters
    ----------
    engine : {'DM', 'ML'}

    Returns
    -------
    type of ParamsModel
        To be listed among an engine model's bases.
    """
    fields = {
        name: (
            Annotated[Any, BeforeValidator(_only_default(engine, name, default))],
            Field(
                default,
                exclude=True,
                description=f"ptypy 0.9 parameter; ptyscan's {engine} accepts only "
                f"ptypy's default {default!r}.",
            ),
        )
        for name, default in PTYPY_ONLY[engine].items()
    }
    return create_model(f"{engine}PtypyOnlyKeys", __base__=ParamsModel, **fields)
