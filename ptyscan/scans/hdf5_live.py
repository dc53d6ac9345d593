"""Live mode of :class:`Hdf5Loader`: frames delivered while HDF5 SWMR files are written.

The writer opens its files with ``libver='latest'``, sets ``swmr_mode = True``, and for
each scan point appends the frame, then its positions, and flushes. The loader opens the
files with ``swmr=True`` and, at every check, refreshes the datasets and counts the
complete scan points:

- with ``live_key``, from a counter in ``intensities.file``: a single number (complete
  points) or one value per point, non-zero once the point is complete (Diamond's "live
  keys"; the datasets are then preallocated at their full size);
- otherwise from the dataset lengths: a point is complete when its frame and positions
  (and per-frame darks, flats, masks) exist.

The scan ends when every expected frame has arrived (the datasets' ``maxshape``, their
preallocated shape, or ``num_frames``), or, with a warning, after ``live_timeout``
seconds without a new point.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from .hdf5_io import axis_shape, axis_values
from .hdf5_mapping import point_positions

__all__ = ["LiveTracker", "read_positions", "wait_for_file"]

log = logging.getLogger(__name__)


def wait_for_file(path, *, timeout_s, poll_s=0.1) -> bool:
    """Wait up to ``timeout_s`` for a live scan's file to appear (the run may start
    before the detector writes); True once it exists. When it does not appear, the
    scan's own check reports the missing file."""
    if path is None or os.path.exists(path):
        return True
    log.info("waiting up to %.0f s (live_timeout) for %s to appear", timeout_s, path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(poll_s)
        if os.path.exists(path):
            return True
    return False


def _refreshed(files, path, key):
    dset = files.dataset(path, key)
    dset.refresh()
    return dset


def read_positions(files, setup, points) -> np.ndarray:
    """(n, 2) positions in metres of ``points``, read now (axes may still be growing)."""
    values = []
    for axis, where in ((setup.slow, "slow"), (setup.fast, "fast")):
        dset = (
            _refreshed(files, axis.file, axis.key)
            if setup.spec.swmr
            else files.dataset(axis.file, axis.key)
        )
        values.append(
            axis_values(dset[()], index=axis.index, outer=None, n_outer=None, where=where)
        )
    raw = point_positions(setup.layout, points, *values)
    return raw * [setup.slow.multiplier, setup.fast.multiplier]


class LiveTracker:
    """Counts the complete scan points of a live scan and decides WAIT, chunk or end.

    Parameters
    ----------
    setup : Hdf5Setup
    live_key : str or None
        Counter dataset in the intensities file.
    timeout : float
        Seconds without a new point after which the scan ends.
    clock : callable
        Returns seconds (``time.monotonic``; replaceable in tests).
    """

    def __init__(self, setup, *, live_key, timeout, clock=time.monotonic):
        self.setup = setup
        self.live_key = live_key
        self.timeout = float(timeout)
        self.clock = clock
        self.final = None
        self._count = -1
        self._since = clock()
        self._error = None

    def completed(self, files) -> int:
        """Number of scan points (in acquisition order) whose data are complete."""
        spec, layout = self.setup.spec, self.setup.layout
        if self.live_key is not None:
            values = np.asarray(_refreshed(files, spec.data.file, self.live_key)[()]).ravel()
            if values.size == 1:
                return int(values[0])
            zeros = np.flatnonzero(values == 0)
            return int(zeros[0]) if len(zeros) else int(values.size)
        counts = []
        for source in (spec.data, spec.dark, spec.flat, spec.mask):
            if source is not None:
                shape = _refreshed(files, source.file, source.key).shape
                counts.append(int(np.prod(shape[len(source.prefix) : -2])))
        for axis, where in ((self.setup.slow, "slow"), (self.setup.fast, "fast")):
            shape = _refreshed(files, axis.file, axis.key).shape
            shape = axis_shape(shape, index=axis.index, outer=None, n_outer=None, where=where)
            if not layout.meshed:
                counts.append(int(np.prod(shape)))
            elif where == "slow":
                counts.append(shape[0] * layout.grid[1])
            else:
                counts.append(layout.size if shape[0] >= layout.grid[1] else 0)
        return min(counts)

    def check(self, files, first):
        """``(frames available from first, end of scan, total frames or None)``."""
        plan = self.setup.plan
        if self.final is not None:
            return max(0, self.final - first), True, self.final
        try:
            count = self.completed(files)
            self._error = None
        except RuntimeError as exc:  # HDF5 refresh during a writer's update: try again later
            count, self._error = max(self._count, 0), exc
        now = self.clock()
        if count > self._count:
            self._count, self._since = count, now
        available = plan.available(first, count)
        total = len(plan) if plan.finite else None
        if total is not None and first + available >= total:
            return available, True, total
        if now - self._since > self.timeout:
            self.final = first + available
            log.warning(
                "Hdf5Loader live: no new frame for %.1f s (live_timeout): ending the scan "
                "after %d of %s expected frames%s",
                now - self._since,
                self.final,
                "an unknown number of" if total is None else total,
                "" if self._error is None else f" (last error reading the files: {self._error})",
            )
            return available, True, self.final
        return available, False, total
