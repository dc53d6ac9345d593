"""Registry of scan classes.

Built-in and third-party scan classes are found through the entry-point group
``ptyscan.scans`` and imported only when asked for, so a missing optional
dependency (fabio, hdf5plugin) breaks only the class that needs it. A plugin
package registers its class in its own ``pyproject.toml``::

    [project.entry-points."ptyscan.scans"]
    MyBeamlineScan = "mybeamline.scan:MyBeamlineScan"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import RecipeError, ScanError
from ..params import closest_name

__all__ = ["BUILTIN_SCANS", "available_scans", "get_scan", "scan_summary"]

GROUP = "ptyscan.scans"

BUILTIN_SCANS = {
    "MoonFlowerScan": "ptyscan.scans.moonflower:MoonFlowerScan",
    "QuickScan": "ptyscan.scans.moonflower:QuickScan",
    "PtydScan": "ptyscan.scans.ptydscan:PtydScan",
    "ID16AScan": "ptyscan.scans.id16a:ID16AScan",
    "FliSpecScanMultexp": "ptyscan.scans.optiklabor:FliSpecScanMultexp",
    "plugin": "ptyscan.scans.plugin:PluginScan",
    "SimScan": "ptyscan.scans.simscan:SimScan",
    "Hdf5Loader": "ptyscan.scans.hdf5_loader:Hdf5Loader",
    "Hdf5LoaderFast": "ptyscan.scans.hdf5_loader_fast:Hdf5LoaderFast",
}
"""Name → "module:attribute" of the classes shipped with ptyscan (also registered as
entry points; listed here so a source checkout works without installation)."""


def _targets() -> dict[str, str]:
    found = dict(BUILTIN_SCANS)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def available_scans() -> list[str]:
    """Sorted names of every registered scan class (nothing is imported)."""
    return sorted(_targets())


def _load(target: str):
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get_scan(name: str):
    """Return the scan class registered as ``name``.

    Raises
    ------
    RecipeError
        Unknown name (the message lists what exists and the closest match).
    ScanError
        The class exists but cannot be imported (e.g. an optional dependency is
        missing); the message says what to install.
    """
    targets = _targets()
    if name not in targets:
        near = closest_name(name, targets)
        hint = f" (did you mean '{near}'?)" if near else ""
        raise RecipeError(
            [
                f"scan.name: unknown scan class {name!r}{hint}; available: {', '.join(sorted(targets))}"
            ]
        )
    try:
        return _load(targets[name])
    except ImportError as exc:
        raise ScanError(
            f"scan class {name!r} ({targets[name]}) cannot be imported: {exc}; "
            "install its optional dependencies, e.g. pip install 'ptyscan[all]'"
        ) from exc


def scan_summary(name: str) -> str:
    """First line of the class docstring, or why the class cannot be loaded."""
    try:
        cls = get_scan(name)
    except ScanError as exc:
        return f"(unavailable: {exc.__cause__})"
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
