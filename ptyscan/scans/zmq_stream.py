"""ZmqScan: frames and positions streamed by a detector over ZeroMQ (PUSH → PULL).

For detectors that stream rather than write files (an Eiger's or NanoMAX's stream
interface relayed with the scan positions). Each frame is a two-part message: a JSON
header and the frame's bytes::

    {"index": 12, "position_m": [y, x], "written_at": 1.7e9, "shape": [ny, nx], "dtype": "float32"}
    <ny * nx values, C order>

a scan may start with ``{"start": true, "frames": N}`` (the frames to expect; else
``num_frames``, else unknown until the end), and ends with ``{"end": true, "frames": N}``
(one part each). ``written_at``
(optional; ``time.time()`` when the frame was sent) lets a run measure latency.
``ptyscan simulate --live RATE RECIPE --zmq tcp://*:5555`` is a matching simulator.
The scan connects a PULL socket to ``address``; frames may arrive in any order and are
delivered in index order. It runs on one process (MPI: one rank); pyzmq is an optional
dependency (``pip install 'ptyscan[zmq]'``).
"""

from __future__ import annotations

import json
import logging
import time
import weakref

import numpy as np
from pydantic import Field

from ..errors import ScanError
from ..params import PositiveFloat
from ..scan import PtyScan
from ..scan_params import PtyScanParams

__all__ = ["ZmqParams", "ZmqScan", "import_zmq"]

log = logging.getLogger(__name__)


def import_zmq():
    """The ``zmq`` module, or a ScanError saying how to install it."""
    try:
        import zmq
    except ImportError as exc:
        raise ScanError(
            "ZeroMQ streaming needs pyzmq: pip install 'ptyscan[zmq]' (or pip install pyzmq)"
        ) from exc
    return zmq


class ZmqParams(PtyScanParams):
    """Parameters of :class:`ZmqScan`."""

    name: str = "ZmqScan"
    address: str = "tcp://localhost:5555"
    """ZeroMQ address the PULL socket connects to (the detector or relay binds a PUSH)."""
    live_timeout: PositiveFloat = 60.0
    """Seconds without a new frame after which the scan ends (with a warning)."""
    wait_s: float = Field(0.05, ge=0, le=60)
    """Seconds a check waits for a message when none is waiting (then WAIT)."""


class ZmqScan(PtyScan):
    """Frames and positions received over ZeroMQ while the scan runs."""

    Params = ZmqParams

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        self._socket = None
        self._frames, self._positions, self._times = {}, {}, {}
        self._total = None
        self._since = time.monotonic()

    def load_common(self):
        """Connect and wait (up to ``live_timeout``) for the start of the stream: the
        start message (the frame count) or a first frame."""
        end = time.monotonic() + self.info.live_timeout
        while self._total is None and not self._frames and time.monotonic() < end:
            self._receive()
        return {}

    def post_initialize(self):
        if self.comm.size > 1:
            raise ScanError("ZmqScan: receives on one process; run it without mpiexec")

    def _receive(self):
        """Take every message waiting on the socket (waiting up to ``wait_s`` for one)."""
        if self._socket is None:
            zmq = import_zmq()
            self._zmq = zmq
            self._socket = zmq.Context.instance().socket(zmq.PULL)
            self._socket.connect(self.info.address)
            weakref.finalize(self, self._socket.close, 0)  # also when never driven to EOS
        if not self._socket.poll(timeout=int(self.info.wait_s * 1000)):
            return
        while True:
            try:
                parts = self._socket.recv_multipart(self._zmq.NOBLOCK)
            except self._zmq.Again:
                return
            header = json.loads(parts[0])
            if header.get("start"):
                self.num_frames = self._total = int(header["frames"])
                continue
            if header.get("end"):
                self._total = int(header["frames"])
                continue
            i = int(header["index"])
            frame = np.frombuffer(parts[1], dtype=header.get("dtype", "float32"))
            self._frames[i] = frame.reshape(header["shape"])
            self._positions[i] = np.asarray(header["position_m"], np.float64)
            self._times[i] = float(header.get("written_at", np.nan))
            self._since = time.monotonic()

    def check(self, frames=None, start=None):
        start = self.framestart if start is None else start
        if self._total is not None and start >= self._total:
            return 0, True  # ended: the socket stays closed
        self._receive()
        n = 0
        while start + n in self._frames:
            n += 1
        if self._total is None and time.monotonic() - self._since > self.info.live_timeout:
            self._total = start + n
            log.warning(
                "ZmqScan: no new frame for %.1f s (live_timeout): ending the scan after %d frames",
                self.info.live_timeout,
                self._total,
            )
        end = self._total is not None and start + n >= self._total
        if self._total is not None:
            self.num_frames = self._total
        return n, end

    def load(self, indices):
        raw = {int(i): self._frames.pop(int(i)) for i in indices}
        positions = {int(i): self._positions[int(i)] for i in indices}
        return raw, positions, {}

    def frame_times(self, indices) -> np.ndarray:
        """(n,) float64 send time of each frame (``written_at``), for the latency."""
        return np.array([self._times.get(int(i), np.nan) for i in indices], np.float64)

    def close(self):
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
