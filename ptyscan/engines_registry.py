"""Registry of reconstruction engines (entry-point group ``ptyscan.engines``).

Engines register like scans do; a recipe's ``engines:`` list is validated
against each named engine's ``Params`` model before any work starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points

from .errors import RecipeError
from .params import closest_name, validate_params

__all__ = ["BUILTIN_ENGINES", "available_engines", "get_engine", "validate_engine"]

GROUP = "ptyscan.engines"

BUILTIN_ENGINES = {
    "DM": "ptyscan.engines.dm:DM",
    "ML": "ptyscan.engines.ml:ML",
}
"""Name → "module:attribute" of the engines shipped with ptyscan (also entry points)."""


def _targets() -> dict[str, str]:
    found = dict(BUILTIN_ENGINES)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def available_engines() -> list[str]:
    """Sorted names of the registered engines."""
    return sorted(_targets())


def get_engine(name: str, *, prefix: str = "engines"):
    """Return the engine class registered as ``name`` (RecipeError if unknown)."""
    targets = _targets()
    if name not in targets:
        near = closest_name(name, targets)
        hint = f" (did you mean '{near}'?)" if near else ""
        have = ", ".join(sorted(targets)) or "no engine is installed in this environment"
        raise RecipeError([f"{prefix}.name: unknown engine {name!r}{hint}; available: {have}"])
    module, _, attr = targets[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def validate_engine(section, *, prefix: str):
    """Validate one ``engines:`` item (a mapping with ``name``) against its engine's Params."""
    if not isinstance(section, Mapping) or "name" not in section:
        raise RecipeError([f"{prefix}: must be a mapping with a 'name' key, got {section!r:.60}"])
    cls = get_engine(str(section["name"]), prefix=prefix)
    return validate_params(cls.Params, section, prefix=prefix)
