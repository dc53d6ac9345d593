"""Parameters of :class:`~ptyscan.scans.hdf5_loader.Hdf5Loader` (ptypy's names and defaults).

Every dataset is named by a ``file`` and a ``key`` (the HDF5 path inside the file). A
group whose ``key`` is None is not used; a ``file`` left None means ``intensities.file``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from ..params import (
    InputPath,
    OptionalPair,
    OptionalPositiveFloat,
    OptionalShape2,
    ParamsModel,
    PositiveFloat,
    is_int,
    short_repr,
)
from ..scan_params import PtyScanParams

__all__ = [
    "BoundingBox",
    "DatasetRef",
    "FrameOrder",
    "Hdf5LoaderFastParams",
    "Hdf5LoaderParams",
    "MaskRef",
    "NormalisationRef",
    "PositionsRef",
    "RecordedRef",
]


def _bounds(value):
    """None, an int lower bound, or a pair [min, max) of ints → None, int or (int, int)."""
    expected = "must be None, an int lower bound or a pair [min, max) of ints with min < max"
    if value is None:
        return None
    if is_int(value) and value >= 0:
        return int(value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(is_int(v) for v in value):
        lo, hi = int(value[0]), int(value[1])
        if 0 <= lo < hi:
            return (lo, hi)
    raise ValueError(f"{expected} (0 <= min), got {short_repr(value)}")


def _padding(value):
    """None, an int for all sides, or (top, bottom, left, right) ints ≥ 0."""
    expected = "must be None, an int >= 0 or 4 ints >= 0 (top, bottom, left, right)"
    if value is None:
        return None
    if is_int(value) and value >= 0:
        return (int(value),) * 4
    if isinstance(value, list | tuple) and len(value) == 4:
        if all(is_int(v) and v >= 0 for v in value):
            return tuple(int(v) for v in value)
    raise ValueError(f"{expected}, got {short_repr(value)}")


def _indices(value):
    expected = "must be None or a list of frame indices (ints >= 0; repeats allowed)"
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 1:  # ptypy's loaders pass arrays
        value = list(value)
    if isinstance(value, list | tuple) and len(value) > 0:
        if all(is_int(v) and v >= 0 for v in value):
            return tuple(int(v) for v in value)
    raise ValueError(f"{expected}, got {short_repr(value)}")


Bounds = Annotated[int | tuple[int, int] | None, BeforeValidator(_bounds)]
Padding = Annotated[tuple[int, int, int, int] | None, BeforeValidator(_padding)]
Indices = Annotated[tuple[int, ...] | None, BeforeValidator(_indices)]


class DatasetRef(ParamsModel):
    """A dataset: ``key`` inside ``file`` (None: ``intensities.file``)."""

    file: InputPath = None
    """HDF5 file; None: ``intensities.file``."""
    key: str | None = None
    """Path of the dataset inside the file; None: not used."""


class IntensitiesRef(ParamsModel):
    """The diffraction frames."""

    file: InputPath = None
    """HDF5 (NeXus, CXI) file holding the frames."""
    key: str | None = None
    """Path of the frames, ``(..., ny, nx)``; None for a CXI file: found in ``entry_1``."""


class MaskRef(DatasetRef):
    """A detector mask, 2-D ``(ny, nx)`` or one per frame (laid out like the frames)."""

    invert: bool = False
    """False: pixels > 0 are valid; True: pixels == 0 are valid (Eiger/CXI pixel masks)."""


class NormalisationRef(DatasetRef):
    """A monitor (ion chamber) value per scan point, laid out like the scan."""

    sigma: PositiveFloat = 3.0
    """Frames whose monitor n has |n - mean| < sigma·std are scaled by mean/n; others are
    left as they are (outliers)."""


class RecordedRef(DatasetRef):
    """A value recorded by the instrument that overrides a parameter: value·multiplier + offset."""

    multiplier: float = 1.0
    """Factor to the parameter's unit (keV for energy, m for distance and psize)."""
    offset: float = 0.0
    """Added after the multiplier, in the parameter's unit."""


class BoundingBox(ParamsModel):
    """Restrict the scan to a block of scan points (array indices, not metres)."""

    fast_axis_bounds: Bounds = None
    """None, an int (lower bound) or [min, max): scan points kept along the fast axis
    (the frame index of an arbitrary trajectory)."""
    slow_axis_bounds: Bounds = None
    """None, an int (lower bound) or [min, max): scan points kept along the slow axis
    (raster scans only)."""


class PositionsRef(ParamsModel):
    """The scan positions: one dataset per axis (possibly the same one, columns picked by index)."""

    file: InputPath = None
    """HDF5 file; None: ``intensities.file``."""
    slow_key: str | None = None
    """Path of the slow-axis (vertical, y) positions."""
    slow_multiplier: float = 1.0
    """Factor converting slow-axis motor values to metres."""
    slow_index: int | None = Field(None, ge=0)
    """Column of the slow_key dataset's last axis holding the slow axis (e.g. 1 for y in an
    (N, 3) translation dataset); None: the dataset is the slow axis."""
    fast_key: str | None = None
    """Path of the fast-axis (horizontal, x) positions."""
    fast_multiplier: float = 1.0
    """Factor converting fast-axis motor values to metres."""
    fast_index: int | None = Field(None, ge=0)
    """Column of the fast_key dataset's last axis holding the fast axis; None: all of it."""
    skip: int = Field(1, ge=1)
    """Keep every skip-th scan point along each axis."""
    bounding_box: BoundingBox = BoundingBox()
    """Restrict the scan to a block of scan points."""


class FrameOrder(ParamsModel):
    """Reorder the frames (after bounding box, skip and frame filter)."""

    indices: Indices = None
    """Frame k of the scan is the indices[k]-th selected frame; repeats allowed; an index
    out of range is an error."""


class Hdf5LoaderParams(PtyScanParams):
    """Parameters of :class:`~ptyscan.scans.hdf5_loader.Hdf5Loader`."""

    name: str = "Hdf5Loader"
    energy: OptionalPositiveFloat = None
    """Photon energy in keV (electron energy with ``electron_data``); None: from
    ``recorded_energy``. One of the two is required."""
    distance: OptionalPositiveFloat = None
    """Sample-detector distance in metres; None: from ``recorded_distance`` (required)."""
    psize: OptionalPair = None
    """Detector pixel size in metres; None: from ``recorded_psize`` (required)."""
    shape: OptionalShape2 = None
    """Frame shape (ny, nx) cropped/padded around the centre; None: the whole (padded)
    frame. With an explicit centre, only this region is read from disk."""
    intensities: IntensitiesRef = IntensitiesRef()
    """The diffraction frames."""
    positions: PositionsRef = PositionsRef()
    """The scan positions (keys default to the CXI translation in a CXI file)."""
    mask: MaskRef = MaskRef()
    """Detector mask (weights); None: all pixels valid."""
    flatfield: DatasetRef = DatasetRef()
    """Flat field, 2-D or one per frame: frames are divided by it (pixels <= 0 masked)."""
    darkfield: DatasetRef = DatasetRef()
    """Dark frame, 2-D, (1, ny, nx) or one per frame: subtracted, negatives clipped to 0."""
    normalisation: NormalisationRef = NormalisationRef()
    """Monitor per scan point for intensity normalisation."""
    framefilter: DatasetRef = DatasetRef()
    """Per scan point, > 0 keeps the frame (laid out like the scan)."""
    frameorder: FrameOrder = FrameOrder()
    """Reorder the selected frames."""
    recorded_energy: RecordedRef = RecordedRef()
    """Photon energy from the file (keV after multiplier and offset) instead of ``energy``."""
    recorded_distance: RecordedRef = RecordedRef()
    """Distance from the file (m after multiplier and offset) instead of ``distance``."""
    recorded_psize: RecordedRef = RecordedRef()
    """Pixel size from the file (m after multiplier and offset) instead of ``psize``."""
    outer_index: int | None = Field(None, ge=0)
    """Index along an outer axis of the frames (a stack of scans, a spectro scan's energy);
    None: the frames have no outer axis."""
    padding: Padding = None
    """Zero padding of every raw frame (top, bottom, left, right) in pixels, weight 0."""
    electron_data: bool = False
    """The energy (parameter or recorded) is an electron energy in keV; meta gets the photon
    energy of the same (relativistic) wavelength."""
    count_mismatch: Literal["truncate", "error"] = "truncate"
    """Frames and 1-D positions of different lengths (a scan stopped early): 'truncate'
    uses the first min(frames, positions) with a warning (as ptypy); 'error' refuses."""
    live: bool = False
    """Read files still being written (HDF5 SWMR): frames are delivered as they arrive."""
    live_key: str | None = None
    """Live mode: path in intensities.file of a counter (number of complete scan points, or
    one value per point, non-zero once complete); None: dataset lengths tell."""
    live_timeout: PositiveFloat = 60.0
    """Live mode: seconds without a new frame after which the scan ends (with a warning)."""
    live_timestamps: str | None = None
    """Path in intensities.file of a (N,) float64 dataset: when each frame was written
    (seconds since the epoch, as ``time.time()``; ``ptyscan simulate --live`` writes
    ``entry/data/written_at``). A run then measures each frame's latency (write to first
    use by an engine) and stores p50/p95/max in the .ptyr."""


class Hdf5LoaderFastParams(Hdf5LoaderParams):
    """Parameters of :class:`~ptyscan.scans.hdf5_loader_fast.Hdf5LoaderFast`."""

    name: str = "Hdf5LoaderFast"
    workers: int | None = Field(None, ge=0)
    """Worker processes reading frames in parallel; None: the CPUs of this MPI rank;
    0 or 1: read in this process."""
