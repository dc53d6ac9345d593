"""Plugin registries: scans, engines and file formats, found by name, imported lazily.

One :class:`Registry` serves every kind of plugin. It knows the built-in
classes of its kind by ``"module:attribute"`` target (so a source checkout
works without installation) and adds what other packages declare in the
registry's entry-point group::

    [project.entry-points."ptyscan.scans"]
    MyBeamlineScan = "mybeamline.scan:MyBeamlineScan"

Nothing is imported until a name is asked for, so a missing optional
dependency (fabio, cupy) breaks only the class that needs it. The built-in
names below are the single list; ``tests/test_registry.py`` checks that
``pyproject.toml`` declares the same entry points.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .errors import RecipeError, ScanError, closest_name

__all__ = [
    "BUILTIN_ENGINES",
    "BUILTIN_PREPARED_FORMATS",
    "BUILTIN_RESULT_FORMATS",
    "BUILTIN_SCANS",
    "ENGINES",
    "PREPARED_FORMATS",
    "RESULT_FORMATS",
    "SCANS",
    "Registry",
]

BUILTIN_SCANS = {
    "MoonFlowerScan": "ptyscan.scans.moonflower:MoonFlowerScan",
    "QuickScan": "ptyscan.scans.moonflower:QuickScan",
    "PtydScan": "ptyscan.scans.ptydscan:PtydScan",
    "ID16AScan": "ptyscan.scans.id16a:ID16AScan",
    "FliSpecScanMultexp": "ptyscan.scans.optiklabor:FliSpecScanMultexp",
    "plugin": "ptyscan.scans.plugin:PluginScan",
    "ptypy": "ptyscan.compat.scan:PtypyScan",
    "SimScan": "ptyscan.scans.simscan:SimScan",
    "Hdf5Loader": "ptyscan.scans.hdf5_loader:Hdf5Loader",
    "Hdf5LoaderFast": "ptyscan.scans.hdf5_loader_fast:Hdf5LoaderFast",
    "StemScan": "ptyscan.scans.stem:StemScan",
    "ZmqScan": "ptyscan.scans.zmq_stream:ZmqScan",
}
"""Name → target of the scan classes shipped with ptyscan."""

BUILTIN_ENGINES = {
    "DM": "ptyscan.engines.dm:DM",
    "ML": "ptyscan.engines.ml:ML",
    "RAAR": "ptyscan.engines.raar:RAAR",
    "EPIE": "ptyscan.engines.epie:EPIE",
    "ePIE": "ptyscan.engines.epie:EPIE",  # ptypy before 0.9
}
"""Name → target of the reconstruction engines shipped with ptyscan."""

BUILTIN_PREPARED_FORMATS = {
    "ptyd": "ptyscan.io.ptyd_write:PtydWriter",
}
"""Name → target of the prepared-data writers (:class:`ptyscan.io.sinks.PreparedSink`)."""

BUILTIN_RESULT_FORMATS = {
    "ptyr": "ptyscan.io.results:PtyrSink",
    "cxi": "ptyscan.io.exports:CxiSink",
    "ptypy": "ptyscan.io.exports:PtypySink",
    "npz": "ptyscan.io.exports:NpzSink",
    "tiff": "ptyscan.io.exports:TiffSink",
}
"""Name → target of the result writers (:class:`ptyscan.io.sinks.ResultSink`)."""


class Registry:
    """Named plugins of one kind: built-ins plus an entry-point group.

    Parameters
    ----------
    group : str
        The entry-point group, e.g. ``'ptyscan.scans'``.
    builtins : dict of str to str
        Name → ``"module:attribute"`` of the plugins shipped with ptyscan;
        they win over an entry point of the same name.
    kind : str
        What one plugin is, for messages ('scan class', 'engine').
    key : str
        The recipe key that names a plugin, for messages ('scan.name').
    """

    def __init__(self, group: str, builtins: dict, *, kind: str, key: str):
        self.group = group
        self.builtins = builtins  # the module-level dict itself: one list of built-ins
        self.kind = kind
        self.key = key

    def __repr__(self):
        return f"Registry({self.group!r}, {len(self.builtins)} built-in)"

    def targets(self) -> dict[str, str]:
        """Name → ``"module:attribute"`` of every registered plugin (nothing imported)."""
        found = dict(self.builtins)
        for ep in entry_points(group=self.group):
            found.setdefault(ep.name, ep.value)
        return found

    def names(self) -> list[str]:
        """Sorted names of every registered plugin (nothing is imported)."""
        return sorted(self.targets())

    def get(self, name: str, *, key: str | None = None):
        """The plugin registered as ``name``, imported now.

        Parameters
        ----------
        name : str
        key : str, optional
            The recipe path to name in messages (default: the registry's ``key``).

        Raises
        ------
        RecipeError
            Unknown name: the message lists what exists and the closest match.
        ScanError
            The plugin exists but cannot be imported (an optional dependency is
            missing); the message says what to install.
        """
        targets = self.targets()
        if name not in targets:
            near = closest_name(name, targets)
            hint = f" (did you mean '{near}'?)" if near else ""
            have = ", ".join(sorted(targets)) or f"no {self.kind} is installed in this environment"
            raise RecipeError(
                [f"{key or self.key}: unknown {self.kind} {name!r}{hint}; available: {have}"]
            )
        try:
            return load_target(targets[name])
        except ImportError as exc:
            raise ScanError(
                f"{self.kind} {name!r} ({targets[name]}) cannot be imported: {exc}; "
                "install its optional dependencies, e.g. pip install 'ptyscan[all]'"
            ) from exc

    def summary(self, name: str) -> str:
        """First line of the plugin's docstring, or why it cannot be loaded."""
        try:
            obj = self.get(name)
        except ScanError as exc:
            return f"(unavailable: {exc.__cause__})"
        doc = (obj.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""


def load_target(target: str):
    """Import ``"module:attr.sub"`` and return the object it names."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


SCANS = Registry("ptyscan.scans", BUILTIN_SCANS, kind="scan class", key="scan.name")
"""The scan classes (recipe ``scan.name``)."""
ENGINES = Registry("ptyscan.engines", BUILTIN_ENGINES, kind="engine", key="engines.name")
"""The reconstruction engines (recipe ``engines[k].name``)."""
PREPARED_FORMATS = Registry(
    "ptyscan.prepared_formats", BUILTIN_PREPARED_FORMATS, kind="prepared-data format", key="format"
)
"""Writers of prepared data, chosen by the suffix of ``scan.dfile``."""
RESULT_FORMATS = Registry(
    "ptyscan.result_formats",
    BUILTIN_RESULT_FORMATS,
    kind="result format",
    key="run.result_formats",
)
"""Writers of reconstruction results (recipe ``run.result_formats``)."""
