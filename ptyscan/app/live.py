"""What a live run adds to the loop: per-frame latency and a preview kept up to date on disk."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..scan_support import collective

__all__ = ["LatencyClock", "PreviewTimer", "latency_line"]

log = logging.getLogger(__name__)


class LatencyClock:
    """When each frame was first used: the end of the first engine iteration after its
    chunk was added (wall clock, ``time.time()``, as the writer's timestamps).

    Frames are tracked by their global index; the latency of a frame is that time
    minus the time the scan says it was written (``scan.frame_times(indices)``,
    e.g. :meth:`Hdf5Loader.frame_times <ptyscan.scans.hdf5_loader.Hdf5Loader.frame_times>`
    with ``live_timestamps``). Scans without ``frame_times`` give no latency.
    """

    def __init__(self, clock=time.time):
        self.clock = clock
        self._pending: list[np.ndarray] = []
        self._indices: list[np.ndarray] = []
        self._used: list[np.ndarray] = []

    def added(self, indices) -> None:
        """Frames ``indices`` (all ranks') were given to the engine."""
        self._pending.append(np.asarray(indices, np.int64))

    def iteration_done(self) -> None:
        """An engine iteration ended: every pending frame is now used."""
        if not self._pending:
            return
        now = self.clock()
        for idx in self._pending:
            self._indices.append(idx)
            self._used.append(np.full(len(idx), now))
        self._pending.clear()

    def result(self, scan, comm) -> dict | None:
        """``{'indices', 'seconds', 'p50', 'p95', 'max'}`` on rank 0 (None elsewhere, or
        when the scan does not know when its frames were written, or nothing was used)."""
        frame_times = getattr(scan, "frame_times", None)
        if frame_times is None or not self._indices:
            return None
        indices, used = np.concatenate(self._indices), np.concatenate(self._used)
        written = collective(comm, lambda: frame_times(indices), root_only=True)
        if written is None:
            return None
        seconds = used - np.asarray(written, np.float64)
        p50, p95 = np.percentile(seconds, [50, 95])
        return {
            "indices": indices,
            "seconds": seconds,
            "p50": float(p50),
            "p95": float(p95),
            "max": float(seconds.max()),
        }


def latency_line(latency) -> str:
    """``latency p50 0.21 s, p95 0.48 s, max 0.61 s (300 frames)``."""
    return (
        f"latency p50 {latency['p50']:.3g} s, p95 {latency['p95']:.3g} s, "
        f"max {latency['max']:.3g} s ({len(latency['seconds'])} frames)"
    )


class PreviewTimer:
    """Says when a preview is due: every ``every_s`` seconds (None or 0: never).

    The decision is rank 0's clock, broadcast, so all ranks write together.
    """

    def __init__(self, every_s, comm, clock=time.monotonic):
        self.every_s = float(every_s or 0)
        self.comm, self.clock = comm, clock
        self._last = clock()

    def due(self) -> bool:
        if self.every_s <= 0:
            return False
        now = self.clock()
        due = now - self._last >= self.every_s
        if self.comm.size > 1:
            due = bool(self.comm.bcast(due))
        if due:
            self._last = now
        return due
