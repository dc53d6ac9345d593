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

import json
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


class H5Sink:
    """Frames into an HDF5 SWMR file (the module's layout)."""

    def __init__(self, path):
        self.path = str(path)
        check_writable(os.path.dirname(os.path.abspath(self.path)), key="--to")
        self.file = self.dsets = None

    def open(self, n, shape):
        partial = f"{self.path}.partial"
        self.file = h5py.File(partial, "w", libver="latest")
        self.dsets = _create(self.file, n, shape)
        self.file.swmr_mode = True
        os.replace(partial, self.path)  # readers find the file only once it is in SWMR mode

    def write(self, first, frames, positions):
        _append_frames(self.dsets, first, frames, positions)

    def close(self, frames):
        if self.file is not None:
            self.file.close()


class ZmqSink:
    """Frames PUSHed over ZeroMQ (``ZmqScan``'s protocol): per frame a two-part message,
    a JSON header ``{"index", "position_m": [y, x], "written_at", "shape", "dtype"}`` and
    the frame's bytes; first ``{"start": true, "frames": N}``, at the end
    ``{"end": true, "frames": N}``. The socket binds
    ``address`` and a send waits while no reader is connected."""

    def __init__(self, address):
        from ..scans.zmq_stream import import_zmq

        self.zmq = import_zmq()
        self.path = address
        self.socket = self.zmq.Context.instance().socket(self.zmq.PUSH)
        self.socket.bind(address)

    def open(self, n, shape):
        self.socket.send_multipart([json.dumps({"start": True, "frames": n}).encode()])

    def write(self, first, frames, positions):
        for k, frame in enumerate(np.ascontiguousarray(frames, np.float32)):
            header = {
                "index": first + k,
                "position_m": [float(v) for v in positions[k]],
                "written_at": time.time(),
                "shape": list(frame.shape),
                "dtype": "float32",
            }
            self.socket.send_multipart([json.dumps(header).encode(), frame.tobytes()])

    def close(self, frames):
        self.socket.send_multipart([json.dumps({"end": True, "frames": frames}).encode()])
        self.socket.close(linger=10_000)  # deliver what is queued (at most 10 s)


def simulate_live(
    recipe, *, rate_hz, path=None, zmq=None, stall_after=None, clock=time.monotonic
) -> dict:
    """Write the recipe's simulated scan into ``path`` (SWMR) at ``rate_hz`` frames/s,
    or push it over ZeroMQ to ``zmq`` (an address to bind, e.g. ``tcp://*:5555``).

    Parameters
    ----------
    recipe : Recipe
        A simulated scan (MoonFlowerScan, SimScan, QuickScan).
    rate_hz : float
        Frames per second; frames follow a fixed schedule (frame i at i / rate_hz s),
        so a slow write is caught up, not accumulated.
    path : str, optional
        The HDF5 file (replaced).
    zmq : str, optional
        Instead of a file: the ZeroMQ address the PUSH socket binds.
    stall_after : int, optional
        Stop writing after this many frames and keep the file open (a stalled
        detector), until killed: for tests of ``live_timeout``.

    Returns
    -------
    dict
        ``path`` (or address), ``frames``, ``seconds``, ``rate_hz`` (achieved).
    """
    if not rate_hz > 0:
        raise ScanError(f"simulate --live: rate {rate_hz!r} Hz; expected a positive number")
    scan = recipe.scan_class(recipe.scan)
    if not all(hasattr(type(scan), name) for name in ("true_object", "true_probe")):
        raise ScanError(
            f"simulate --live: {type(scan).__name__} is not a simulation (no true_object); "
            "use SimScan, MoonFlowerScan or QuickScan"
        )
    sink = ZmqSink(zmq) if zmq else H5Sink(path)
    chunks = iterate_chunks(
        scan, frames_per_chunk=recipe.run.frames_per_chunk, poll_interval=0.001
    )
    frames, start = 0, None
    try:
        for chunk in chunks:
            if start is None:
                sink.open(int(scan.num_frames), chunk.data.shape[1:])
                start = clock()
                log.info("writing %d frames at %g Hz -> %s", scan.num_frames, rate_hz, sink.path)
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
                sink.write(frames, chunk.data[k:stop], chunk.positions[k:stop])
                frames += stop - k
                k = stop
    finally:
        sink.close(frames)
    seconds = clock() - start if start is not None else 0.0
    return {
        "path": str(sink.path),
        "frames": frames,
        "seconds": seconds,
        "rate_hz": frames / seconds if seconds > 0 else float("inf"),
    }
