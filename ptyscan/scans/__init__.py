"""The scan classes shipped with ptyscan, one module per instrument or source.

They are found by name through :data:`ptyscan.registry.SCANS` (entry-point
group ``ptyscan.scans``) and imported only when asked for, so a missing
optional dependency (fabio, hdf5plugin) breaks only the class that needs it.
A plugin package registers its class in its own ``pyproject.toml``::

    [project.entry-points."ptyscan.scans"]
    MyBeamlineScan = "mybeamline.scan:MyBeamlineScan"
"""

from __future__ import annotations

from ..registry import BUILTIN_SCANS, SCANS

__all__ = ["BUILTIN_SCANS", "available_scans", "get_scan", "scan_summary"]


def available_scans() -> list[str]:
    """Sorted names of every registered scan class (nothing is imported)."""
    return SCANS.names()


def get_scan(name: str):
    """Return the scan class registered as ``name`` (see :meth:`Registry.get`)."""
    return SCANS.get(name)


def scan_summary(name: str) -> str:
    """First line of the class docstring, or why the class cannot be loaded."""
    return SCANS.summary(name)
