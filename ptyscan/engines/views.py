"""A view set: the frames of one chunk on one rank, as the engines hold them (the
views' object pixels come from :func:`ptyscan.geometry.view_pixels`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ViewSet"]


@dataclass
class ViewSet:
    """The frames of one :meth:`ReconstructionState.add_views` call on this rank.

    Attributes
    ----------
    indices : (n,) int64 host
        Frame indices.
    pos_px : (n, 2) int64 host
        Global top-left pixel of each view.
    frac : (n, 2) float64 host or None
        Fractional parts in [0, 1) of the exact top-left corners (``subpixel``), else None.
    data : (n, sy, sx) real array
        Photon counts in FFT order.
    mask : (n, sy, sx) or (1, sy, sx) real array
        1 where valid, 0 elsewhere, FFT order.
    power : (n,) float64 host
        Masked photon count of each frame.
    exit : (n, M, K, sy, sx) complex array or None
        Exit waves (allocated by engines that need them).
    host_arrays : frozenset of str
        Names of the arrays above kept in (pinned) host memory and streamed
        ('data', 'exit' and a per-frame 'mask' for a 'host' view set); the
        others are device arrays.
    full_mask : bool
        Every pixel of every frame is valid.
    positions_m : (n, 2) float64 host or None
        Current positions in metres (y, x): the scan's, or refined
        (:mod:`.posref`); ``pos_px``/``frac`` are their pixels.
    initial_m : (n, 2) float64 host or None
        The scan's positions (a copy of ``positions_m`` at creation).
    cache : dict
        Engine-private values derived from this view set (not copied by ``copy``);
        per-view device arrays only for a view set that is not streamed.
    """

    indices: np.ndarray
    pos_px: np.ndarray
    data: Any
    mask: Any
    power: np.ndarray
    exit: Any = None
    frac: Any = None
    host_arrays: frozenset = frozenset()
    full_mask: bool = True
    cache: dict = field(default_factory=dict)
    positions_m: Any = None
    initial_m: Any = None

    def __post_init__(self):
        if self.positions_m is not None and self.initial_m is None:
            self.initial_m = np.array(self.positions_m, np.float64).reshape(-1, 2)

    def __len__(self):
        return len(self.indices)

    @property
    def streamed(self) -> bool:
        """True when this view set lives in host memory ('host' residency)."""
        return bool(self.host_arrays)

    def derived(self, name, sl, rows, compute):
        """Rows ``sl`` of a per-view array derived from the data (``sqrt(I)``, weights).

        ``compute(data, mask)`` makes it. A view set on the device keeps it in
        ``cache[name]`` (computed once, from all its rows); a streamed one keeps
        nothing and computes it from ``rows['data']``, ``rows['mask']`` (the block's
        device rows), so engines need not know where the view set lives.
        """
        if self.streamed:
            return compute(rows["data"], rows["mask"])
        if name not in self.cache:
            self.cache[name] = compute(self.data, self.mask)
        return self.cache[name][sl]

    def mask_rows(self, sl):
        """The mask of rows ``sl`` (broadcastable against ``data[sl]``)."""
        return self.mask if self.mask.shape[0] == 1 else self.mask[sl]
