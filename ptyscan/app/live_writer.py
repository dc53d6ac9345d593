"""``ptyscan simulate --live RATE_HZ RECIPE``: a simulated acquisition written frame by frame
into an HDF5 SWMR file at a set rate, as a detector would, so a live run can follow it.

Layout (read by ``Hdf5Loader`` with ``live: true``, see ``recipes/live_moonflower.yaml``)::

    entry/data/data        (N, ny, nx) float32   frames (photon counts), grown one by one
    entry/data/written_at  (N,) float64          time each frame was flushed (time.time())
    entry/sample/y         (N,) float64          slow position, metres
    entry/sample/x         (N,) float64          fast position, metres

Each frame is appended and flushed first, then its write time, then its positions: a
reader counts a frame once its positions exist, so it never reads a frame half-written.
Frames follow a fixed schedule (frame i at i / rate); when several are due at once (a
high rate) they are written together, as a detector writes bursts.
The datasets' ``maxshape`` is N, so the reader knows when the scan is complete. The file
appears under its name only once it is in SWMR mode (written beside it, then renamed).
"""

from __future__ import annotations

import logging
import os
import time

import h5py
import numpy as np

from ..errors import ScanError
from ..io.atomic import check_writable
from .streaming import iterate_chunks

__all__ = ["LIVE_KEYS", "simulate_live"]

log = logging.getLogger(__name__)

LIVE_KEYS = {
    "data": "entry/data/data",
    "written_at": "entry/data/written_at",
    "y": "entry/sample/y",
    "x": "entry/sample/x",
}


def _create(f, n, shape):
    data = f.create_dataset(
        LIVE_KEYS["data"], (0, *shape), np.float32, maxshape=(n, *shape), chunks=(1, *shape)
    )
    others = [
        f.create_dataset(LIVE_KEYS[k], (0,), np.float64, maxshape=(n,), chunks=(min(n, 1024),))
        for k in ("written_at", "y", "x")
    ]
    return data, *others


def _append(dset, first, values):
    dset.resize(first + len(values), axis=0)
    dset[first:] = values
    dset.flush()


def _append_frames(dsets, first, frames, positions):
    """Frames, then their write time, then their positions, each flushed."""
    data, written, ys, xs = dsets
    _append(data, first, frames)
    _append(written, first, np.full(len(frames), time.time()))
    _append(ys, first, positions[:, 0])
    _append(xs, first, positions[:, 1])


def simulate_live(recipe, *, rate_hz, path, stall_after=None, clock=time.monotonic) -> dict:
    """Write the recipe's simulated scan into ``path`` (SWMR) at ``rate_hz`` frames/s.

    Parameters
    ----------
    recipe : Recipe
        A simulated scan (MoonFlowerScan, SimScan, QuickScan).
    rate_hz : float
        Frames per second; frames follow a fixed schedule (frame i at i / rate_hz s),
        so a slow write is caught up, not accumulated.
    path : str
        The HDF5 file (replaced).
    stall_after : int, optional
        Stop writing after this many frames and keep the file open (a stalled
        detector), until killed: for tests of ``live_timeout``.

    Returns
    -------
    dict
        ``path``, ``frames``, ``seconds``, ``rate_hz`` (achieved).
    """
    if not rate_hz > 0:
        raise ScanError(f"simulate --live: rate {rate_hz!r} Hz; expected a positive number")
    scan = recipe.scan_class(recipe.scan)
    if not all(hasattr(type(scan), name) for name in ("true_object", "true_probe")):
        raise ScanError(
            f"simulate --live: {type(scan).__name__} is not a simulation (no true_object); "
            "use SimScan, MoonFlowerScan or QuickScan"
        )
    check_writable(os.path.dirname(os.path.abspath(path)), key="--to")
    chunks = iterate_chunks(
        scan, frames_per_chunk=recipe.run.frames_per_chunk, poll_interval=0.001
    )
    frames, start, f, dsets = 0, None, None, None
    try:
        for chunk in chunks:
            if f is None:
                partial = f"{path}.partial"
                f = h5py.File(partial, "w", libver="latest")
                dsets = _create(f, int(scan.num_frames), chunk.data.shape[1:])
                f.swmr_mode = True
                os.replace(partial, path)  # readers find the file only once it is in SWMR mode
                start = clock()
                log.info("writing %d frames at %g Hz -> %s", scan.num_frames, rate_hz, path)
            k, n = 0, len(chunk.indices)
            while k < n:
                if stall_after is not None and frames >= stall_after:
                    log.warning("stalled after %d frames (until killed)", frames)
                    while True:
                        time.sleep(3600)
                delay = start + frames / rate_hz - clock()
                if delay > 0:
                    time.sleep(delay)
                # every frame already due goes in one write (a detector's burst), one at least
                due = int((clock() - start) * rate_hz) + 1 - frames
                stop = min(n, k + max(1, due))
                if stall_after is not None:
                    stop = min(stop, k + stall_after - frames)
                _append_frames(dsets, frames, chunk.data[k:stop], chunk.positions[k:stop])
                frames += stop - k
                k = stop
    finally:
        if f is not None:
            f.close()
    seconds = clock() - start if start is not None else 0.0
    return {
        "path": str(path),
        "frames": frames,
        "seconds": seconds,
        "rate_hz": frames / seconds if seconds > 0 else float("inf"),
    }
