"""Which datasets an :class:`Hdf5Loader` scan reads, CXI defaults, and checking them all.

Every dataset is a :class:`Ref`: the parameter it comes from (for messages), a file and a
key. A group whose key is None is not used; a file left None is ``intensities.file``.

CXI files (an ``entry_1`` group) need no keys: when ``intensities.key`` is None, the
frames, the ``translation`` positions (x, y, z: slow = y, fast = x), the source energy (J),
the detector distance, pixel sizes and pixel mask (0 = good pixel) come from their
standard places; keys given explicitly still win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..errors import ScanError
from ..geometry import ELEMENTARY_CHARGE_C
from .hdf5_io import check_datasets

__all__ = ["AxisRef", "Ref", "find_sources"]

_DET = "entry_1/instrument_1/detector_1/"
CXI_FRAMES = ("entry_1/data_1/data", _DET + "data")
CXI_TRANSLATION = ("entry_1/data_1/translation", "entry_1/sample_1/geometry_1/translation")
CXI_ENERGY = "entry_1/instrument_1/source_1/energy"
CXI_DISTANCE = _DET + "distance"
CXI_PSIZE = (_DET + "y_pixel_size", _DET + "x_pixel_size")
CXI_MASK = _DET + "mask"
JOULES_PER_KEV = 1e3 * ELEMENTARY_CHARGE_C

OPTIONAL = ("mask", "flatfield", "darkfield", "normalisation", "framefilter")
RECORDED = ("recorded_energy", "recorded_distance", "recorded_psize")


class Ref(NamedTuple):
    """A dataset: ``file[key]``, named in messages by ``where``.

    ``unit`` converts stored values to the parameter's unit (CXI energies are in joules);
    ``cxi`` marks defaults taken from a CXI file.
    """

    where: str
    file: str | None
    key: str | None
    unit: float = 1.0
    cxi: bool = False


@dataclass(frozen=True)
class AxisRef:
    """One position axis: ``file[key]``, column ``index`` of its last axis, × multiplier."""

    file: str | None
    key: str | None
    index: int | None
    multiplier: float


def _cxi_keys(p, files):
    """Dataset paths of a CXI file when intensities.key is None, else {} (no CXI)."""
    path = p.intensities.file
    if p.intensities.key is not None or path is None:
        return {}
    try:
        handle = files.file(path)
    except OSError:
        return {}  # reported by the checks
    if "entry_1" not in handle:
        return {}
    first = lambda keys: next((k for k in keys if k in handle), None)  # noqa: E731
    return {
        "frames": first(CXI_FRAMES),
        "translation": first(CXI_TRANSLATION),
        "recorded_energy": first([CXI_ENERGY]),
        "recorded_distance": first([CXI_DISTANCE]),
        "psize": CXI_PSIZE if all(k in handle for k in CXI_PSIZE) else None,
        "mask": first([CXI_MASK]),
    }


def _axes(p, cxi):
    pos = p.positions
    path = pos.file or p.intensities.file
    if cxi.get("translation") and pos.slow_key is None and pos.fast_key is None:
        key = cxi["translation"]
        slow_i = 1 if pos.slow_index is None else pos.slow_index
        fast_i = 0 if pos.fast_index is None else pos.fast_index
        return (
            AxisRef(path, key, slow_i, pos.slow_multiplier),
            AxisRef(path, key, fast_i, pos.fast_multiplier),
        )
    return (
        AxisRef(path, pos.slow_key, pos.slow_index, pos.slow_multiplier),
        AxisRef(path, pos.fast_key, pos.fast_index, pos.fast_multiplier),
    )


def _refs(p, cxi, slow, fast):
    """Every dataset to read, {name: Ref}; optional groups only when used."""
    data = p.intensities.file
    refs = {"intensities": Ref("scan.intensities.key", data, p.intensities.key)}
    if cxi:
        refs["intensities"] = Ref("scan.intensities.key", data, cxi["frames"], cxi=True)
    refs["slow"] = Ref("scan.positions.slow_key", slow.file, slow.key)
    refs["fast"] = Ref("scan.positions.fast_key", fast.file, fast.key)
    for name in OPTIONAL + RECORDED:
        group = getattr(p, name)
        if group.key is not None or group.file is not None:
            refs[name] = Ref(f"scan.{name}.key", group.file or data, group.key)
        elif cxi.get(name):
            unit = 1 / JOULES_PER_KEV if name == "recorded_energy" else 1.0
            refs[name] = Ref(f"scan.{name}.key", data, cxi[name], unit, cxi=True)
    if "recorded_psize" not in refs and cxi.get("psize"):
        for axis, key in zip("yx", cxi["psize"], strict=True):
            refs[f"psize_{axis}"] = Ref("scan.recorded_psize.key", data, key, cxi=True)
    if p.live and p.live_key is not None:
        refs["live_key"] = Ref("scan.live_key", data, p.live_key)
    return refs


def _unset(refs) -> list[str]:
    problems = []
    for name, ref in refs.items():
        if ref.key is not None:
            continue
        if name == "intensities":
            hint = "the path of the frames in the file, or give a CXI file and no keys"
            problems.append(f"{ref.where}: not set; {hint}")
        elif name in ("slow", "fast"):
            problems.append(f"{ref.where}: not set; the path of the {name}-axis positions")
        else:
            problems.append(f"{ref.where}: not set although its file is; give the dataset path")
    return problems


def find_sources(p, files):
    """Resolve and check every dataset of the scan described by parameters ``p``.

    Returns
    -------
    refs : dict of str to Ref
    axes : (AxisRef, AxisRef)
        Slow and fast position axes.

    Raises
    ------
    ScanError
        Listing every missing file, key, dataset or compression filter, one per line.
    """
    cxi = _cxi_keys(p, files)
    slow, fast = _axes(p, cxi)
    refs = _refs(p, cxi, slow, fast)
    problems = (
        []
        if p.intensities.file
        else ["scan.intensities.file: not set; the HDF5 file of the frames"]
    )
    problems += _unset(refs)
    usable = [(r.where, r.file, r.key) for r in refs.values() if r.file and r.key]
    problems += check_datasets(files, usable)
    if problems:
        raise ScanError("Hdf5Loader: cannot read the scan's datasets:\n  " + "\n  ".join(problems))
    return refs, (slow, fast)
