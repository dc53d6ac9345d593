"""Scan mapping of :class:`~ptyscan.scans.hdf5_loader.Hdf5Loader`: which frame is which point.

Pure functions on shapes and small arrays, no I/O. A scan has *points*, numbered in
acquisition order (row-major over the scan grid); point ``p`` is frame
``np.unravel_index(p, layout.lead)`` of the intensities dataset and has position
``(slow[g], fast[g])`` with ``g = np.unravel_index(p, layout.grid)`` (for meshed axes
``(slow[g0], fast[g1])``). The five supported layouts, for frames ``(..., m, n)``:

===================  ====================  =====================  =============
layout               slow / fast axes      frames                 frame of (i, j)
===================  ====================  =====================  =============
mapped raster        (A, B)                (A, B, m, n)           [i, j]
arbitrary            (k,)                  (k, m, n)              [i]
unmapped raster      (C, D)                (C·D, m, n)            [i·D + j]
meshed               (C,) and (D,)         (C, D, m, n)           [i, j]
meshed unmapped      (C,) and (D,)         (C·D, m, n)            [i·D + j]
===================  ====================  =====================  =============

A size of -1 means "not known yet" (the growing first axis of a live dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ScanError

__all__ = ["Plan", "ScanLayout", "detect_layout", "per_point", "plan_points", "point_positions"]

LAYOUTS = (
    "mapped raster: axes (A, B), frames (A, B, m, n); arbitrary: axes (k,), frames "
    "(k, m, n); unmapped raster: axes (C, D), frames (C*D, m, n); meshed: axes (C,) and "
    "(D,), frames (C, D, m, n); meshed unmapped: axes (C,) and (D,), frames (C*D, m, n)"
)


@dataclass(frozen=True)
class ScanLayout:
    """How frames and positions are laid out.

    Attributes
    ----------
    kind : str
        'mapped raster', 'arbitrary', 'unmapped raster', 'meshed' or 'meshed unmapped'.
    lead : tuple of int
        Leading shape of the frames dataset (without the frame axes), -1 if unknown.
    grid : tuple of int
        Shape of the scan grid, ``(A, B)``, ``(k,)`` or ``(C, D)``, -1 if unknown.
    """

    kind: str
    lead: tuple[int, ...]
    grid: tuple[int, ...]

    @property
    def meshed(self) -> bool:
        """True when the axes are 1-D and meshed into the grid."""
        return self.kind.startswith("meshed")

    @property
    def size(self) -> int:
        """Number of scan points (-1 if unknown)."""
        return -1 if -1 in self.grid else int(np.prod(self.grid))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def _merge(*shapes):
    return tuple(max(dims) for dims in zip(*shapes, strict=True))


def _product(a, b):
    return -1 if -1 in (a, b) else a * b


def detect_layout(lead, slow_shape, fast_shape) -> ScanLayout:
    """Recognise one of the five layouts from the shapes, or raise ScanError naming them.

    Parameters
    ----------
    lead : tuple of int
        Frames dataset shape without the last two (frame) axes.
    slow_shape, fast_shape : tuple of int
        Shapes of the slow- and fast-axis position arrays.
    """
    lead, slow, fast = tuple(lead), tuple(slow_shape), tuple(fast_shape)
    if len(lead) in (1, 2) and _same(lead, slow) and _same(slow, fast):
        grid = _merge(lead, slow, fast)
        return ScanLayout("mapped raster" if len(lead) == 2 else "arbitrary", grid, grid)
    if len(slow) == len(fast) == 2 and _same(slow, fast) and len(lead) == 1:
        grid = _merge(slow, fast)
        n = _product(*grid)
        if -1 in (n, lead[0]) or n == lead[0]:
            if grid[0] == -1 and lead[0] != -1 and lead[0] % grid[1] == 0:
                grid = (lead[0] // grid[1], grid[1])
            return ScanLayout("unmapped raster", (max(n, lead[0]),), grid)
    if len(slow) == len(fast) == 1:
        grid = (slow[0], fast[0])
        if len(lead) == 2 and _same(lead, grid):
            grid = _merge(lead, grid)
            return ScanLayout("meshed", grid, grid)
        n = _product(*grid)
        if len(lead) == 1 and (-1 in (n, lead[0]) or n == lead[0]):
            return ScanLayout("meshed unmapped", (max(n, lead[0]),), grid)
    raise ScanError(
        f"Hdf5Loader: cannot map frames laid out as {_fmt(lead)} (intensities shape without "
        f"the frame axes) to slow-axis positions of shape {_fmt(slow)} and fast-axis "
        f"positions of shape {_fmt(fast)}; supported layouts: {LAYOUTS}. Check "
        "intensities.key, positions.slow_key/fast_key, slow_index/fast_index and outer_index"
    )


def _fmt(shape):
    return (
        "("
        + ", ".join("?" if s == -1 else str(s) for s in shape)
        + (",)" if len(shape) == 1 else ")")
    )


def _axis_range(bounds, n, axis):
    """range of kept indices along an axis of length ``n`` (-1: unknown)."""
    if bounds is None:
        lo, hi = 0, n
    elif isinstance(bounds, int):
        lo, hi = bounds, n
    else:
        lo, hi = bounds
    if n != -1 and (lo >= n or hi > n):
        raise ScanError(
            f"Hdf5Loader: positions.bounding_box.{axis}_axis_bounds {bounds!r} lies outside "
            f"the {n} scan points along the {axis} axis; expected 0 <= min < max <= {n}"
        )
    return lo, hi


@dataclass(frozen=True)
class Plan:
    """Scan points of the frames, in delivery order.

    ``points`` is the point of each frame; None for a live scan of unknown length,
    where frame ``i`` is point ``start + i·step``.
    """

    points: np.ndarray | None
    start: int = 0
    step: int = 1

    @property
    def finite(self) -> bool:
        return self.points is not None

    def __len__(self):
        if self.points is None:
            raise ScanError("Hdf5Loader: the number of frames of this live scan is not known")
        return len(self.points)

    def point(self, frames) -> np.ndarray:
        """Scan point of each frame index in ``frames``."""
        frames = np.asarray(frames, dtype=np.int64)
        if self.points is None:
            return self.start + frames * self.step
        return self.points[frames]

    def available(self, first, completed) -> int:
        """How many frames from ``first`` on have all their points < ``completed``."""
        if self.points is None:
            n = -(-(completed - self.start) // self.step)  # ceil
            return max(0, n - first)
        rest = self.points[first:]
        late = np.flatnonzero(rest >= completed)
        return int(late[0]) if len(late) else len(rest)


def plan_points(layout, *, bounds, skip, keep=None, order=None, count=None) -> Plan:
    """Select and order scan points.

    Parameters
    ----------
    layout : ScanLayout
    bounds : (slow_bounds, fast_bounds)
        Each None, an int lower bound or (min, max).
    skip : int
        Keep every skip-th point along each grid axis.
    keep : (N,) bool array, optional
        Frame filter per point (acquisition order).
    order : sequence of int, optional
        Frame order: frame k is the order[k]-th selected point.
    count : int, optional
        At most this many frames (``num_frames``).
    """
    slow_bounds, fast_bounds = bounds
    if len(layout.grid) == 1:
        if slow_bounds is not None:
            raise ScanError(
                "Hdf5Loader: positions.bounding_box.slow_axis_bounds does not apply to an "
                f"arbitrary trajectory (1-D positions, {layout.grid[0]} points); select frames "
                "with fast_axis_bounds"
            )
        lo, hi = _axis_range(fast_bounds, layout.grid[0], "fast")
        if hi == -1:
            if keep is not None or order is not None:
                raise ScanError(
                    "Hdf5Loader: framefilter and frameorder need the number of frames of a live "
                    "scan: set num_frames, or create the datasets with a finite maxshape"
                )
            if count is None:
                return Plan(None, start=lo, step=skip)
            hi = lo + count * skip
        points = np.arange(lo, hi, skip, dtype=np.int64)
    else:
        if -1 in layout.grid:
            raise ScanError(
                f"Hdf5Loader: live {layout.kind} scan of unknown size (grid {_fmt(layout.grid)}): "
                "create the datasets with a finite maxshape or preallocate them and use live_key"
            )
        rows = np.arange(*_axis_range(slow_bounds, layout.grid[0], "slow"))[::skip]
        cols = np.arange(*_axis_range(fast_bounds, layout.grid[1], "fast"))[::skip]
        points = (rows[:, None] * layout.grid[1] + cols[None, :]).ravel().astype(np.int64)
    if keep is not None:
        points = points[np.asarray(keep, bool)[points]]
    if order is not None:
        order = np.asarray(order, dtype=np.int64)
        bad = order[order >= len(points)]
        if len(bad):
            raise ScanError(
                f"Hdf5Loader: frameorder.indices {bad[:5].tolist()} out of range: the scan has "
                f"{len(points)} frames after bounding box, skip and frame filter (valid "
                f"0..{len(points) - 1})"
            )
        points = points[order]
    if count is not None:
        points = points[:count]
    return Plan(points)


def per_point(values, layout, *, what) -> np.ndarray:
    """Flatten a per-point dataset (monitor, filter) to (N,) in acquisition order.

    ``values`` may be laid out like the frames (``layout.lead``), like the grid, or flat;
    trailing singleton axes are ignored.
    """
    arr = np.asarray(values)
    while arr.ndim > 1 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    n = layout.size
    if arr.shape in (tuple(layout.lead), tuple(layout.grid), (n,)):
        return arr.reshape(-1)
    raise ScanError(
        f"Hdf5Loader: {what} has shape {arr.shape}; expected one value per scan point, "
        f"shaped like the frames {tuple(layout.lead)}, the scan grid {tuple(layout.grid)} or "
        f"({n},)"
    )


def point_positions(layout, points, slow, fast) -> np.ndarray:
    """(n, 2) float64 (slow, fast) motor values of ``points`` (not yet scaled to metres)."""
    points = np.asarray(points, dtype=np.int64)
    out = np.empty((len(points), 2), np.float64)
    if layout.meshed:
        i, j = np.unravel_index(points, layout.grid)
        out[:, 0] = np.asarray(slow)[i]
        out[:, 1] = np.asarray(fast)[j]
    else:
        out[:, 0] = np.asarray(slow).reshape(-1)[points]
        out[:, 1] = np.asarray(fast).reshape(-1)[points]
    return out
