"""What a scan hands out: ``Chunk``, ``ScanMeta`` and the ``WAIT`` / ``EOS`` messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EOS", "WAIT", "Chunk", "Message", "ScanMeta"]


class Message(enum.Enum):
    """Answers of :meth:`PtyScan.auto` that are not data."""

    WAIT = "WAIT"
    """The scan is still running and not enough new frames are available yet."""
    EOS = "EOS"
    """End of scan: every frame has been delivered."""

    def __repr__(self):
        return self.value


WAIT = Message.WAIT
EOS = Message.EOS


def _readonly(arr, dtype=None):
    out = np.asarray(arr, dtype=dtype)
    if out.flags.writeable and out.base is None:
        out.setflags(write=False)
    return out


@dataclass(frozen=True)
class ScanMeta:
    """Facts about a prepared scan, derived once and never written back to parameters.

    Attributes
    ----------
    shape : (ny, nx) int
        Frame shape after crop/pad, orientation and rebin.
    psize : (py, px) float
        Detector pixel size in metres after orientation and rebin.
    energy : float
        Photon energy in keV.
    distance : float
        Sample–detector distance in metres.
    center : (cy, cx) float or None
        Position of the optical axis in the final frame, pixels (None until known).
    num_frames : int or None
        Frames the scan will deliver (None while unknown, live scans).
    propagation : str
        'farfield' or 'nearfield'.
    label : str or None
    version : float
        Layout version written to ``.ptyd`` files (ptypy's is 0.1).
    """

    shape: tuple[int, int]
    psize: tuple[float, float]
    energy: float
    distance: float
    center: tuple[float, float] | None = None
    num_frames: int | None = None
    propagation: str = "farfield"
    label: str | None = None
    version: float = 0.1

    @property
    def wavelength_m(self) -> float:
        """X-ray wavelength in metres from :attr:`energy`."""
        from .geometry import xray_wavelength_m

        return float(xray_wavelength_m(self.energy))

    def to_ptyd(self) -> dict:
        """The ``meta`` group of a ``.ptyd`` file: exactly ptypy's keys and types.

        ``propagation`` is not a ptypy meta key; it is kept in ``info``.
        """
        return {
            "version": float(self.version),
            "num_frames": None if self.num_frames is None else int(self.num_frames),
            "label": self.label,
            "shape": np.asarray(self.shape, dtype=np.int64),
            "psize": np.asarray(self.psize, dtype=np.float64),
            "energy": float(self.energy),
            "center": None if self.center is None else np.asarray(self.center, np.float64),
            "distance": float(self.distance),
        }


@dataclass(frozen=True)
class Chunk:
    """Frames of one chunk held by this rank, plus the chunk's full index list.

    Attributes
    ----------
    indices : (n,) int64
        Frame indices of the frames on this rank (contiguous, ascending).
    data : (n, ny, nx) float32
        Photon counts.
    weights : (n, ny, nx) float32
        Per-pixel weights, ``> 0`` valid. Frames sharing one mask hold a
        broadcast (zero-copy, read-only) view of it.
    positions : (n, 2) float64
        Scan positions in metres, column 0 slow/vertical, column 1 fast/horizontal.
    meta : ScanMeta
    number : int
        Chunk number, 0 for the first chunk delivered.
    all_indices : (m,) int64
        Indices of every frame of this chunk on all ranks.
    all_positions : (m, 2) float64
        Positions of every frame of this chunk on all ranks.
    probe : (K, ny, nx) complex or None
        The scan's model of the illumination (:meth:`PtyScan.initial_probe`, e.g. the
        electron probe of a StemScan); engines start from it when given no probe.
    """

    indices: np.ndarray
    data: np.ndarray
    weights: np.ndarray
    positions: np.ndarray
    meta: ScanMeta
    number: int = 0
    all_indices: np.ndarray = field(default=None)
    all_positions: np.ndarray = field(default=None)
    probe: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        n = len(self.indices)
        if self.data.shape[0] != n or self.positions.shape != (n, 2):
            raise ValueError(
                f"Chunk: inconsistent sizes: {n} indices, data {self.data.shape}, "
                f"positions {self.positions.shape}"
            )
        if self.all_indices is None:
            object.__setattr__(self, "all_indices", self.indices)
        if self.all_positions is None:
            object.__setattr__(self, "all_positions", self.positions)
        for name in ("indices", "data", "weights", "positions", "all_indices", "all_positions"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))

    def __len__(self):
        return len(self.indices)

    def __repr__(self):
        return (
            f"Chunk(number={self.number}, frames={len(self)} of {len(self.all_indices)}, "
            f"indices={self.indices[:1].tolist()}..{self.indices[-1:].tolist()}, "
            f"shape={tuple(self.data.shape[1:])})"
        )
