"""Where the per-view arrays of a reconstruction live, and how blocks of them reach the device.

Residency (``EngineParams.data_residency``)
-------------------------------------------
'device'
    A view set's measured data, mask and exit waves are device arrays, moved
    there once per chunk; engines also keep derived per-view arrays (amplitudes,
    weights, far fields) there.
'host'
    They stay in host memory, page-locked ("pinned") on CuPy, and an engine pass
    copies each block of ``block_size`` views to the device when it reaches it
    and writes back what it changes (DM's exit waves). Derived per-view arrays are
    recomputed per block on the device instead of being kept, so the device holds
    the object, the probe and a few blocks: a scan larger than the GPU memory runs.
'auto'
    'device' for a chunk while the arrays the engine keeps on the device for all
    views so far, this chunk's included, fit in :data:`AUTO_FRACTION` of the
    device memory available to it; otherwise 'host' for that chunk (earlier
    chunks stay where they are). Always 'device' on NumPy.

Streaming
---------
:meth:`Streamer.iterate` walks a list of ``(view set, rows)`` blocks. For a host
view set it double-buffers: two device staging buffers per streamed array;
while the engine computes on block ``i`` (in one buffer), block ``i + 1`` is
copied into the other on a separate, non-blocking CUDA stream. Writes
(``block[name] = value``) are copied back asynchronously on that stream. CUDA
events order the two streams:

- a copy into a staging buffer waits for an event recorded on the compute
  stream after the last block that used the buffer was enqueued;
- the compute stream waits for the copy of its block before using it;
- a device array being written back is kept alive until its copy is done (the
  compute stream waits for the copy before the memory can be reused), and each
  pass ends by synchronising the copy stream, so host arrays are current between
  passes.

The copy stream is FIFO, so a write-back of rows and a later read of the same
rows (or of the same staging buffer) cannot cross. On NumPy the same control
flow runs with synchronous copies into the same staging buffers (the "device"
is host memory and the events are no-ops), so the NumPy tests exercise what
CuPy runs; a test replaces the copier by one that defers every copy as long as
the events allow, the worst case of asynchrony.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

__all__ = ["AUTO_FRACTION", "Block", "Streamer", "choose_residency"]

AUTO_FRACTION = 0.5
"""'auto' keeps a chunk on the device while the resident arrays fit in this fraction of
the device memory free to the reconstruction (the rest is left for blocks, FFT plans,
the object)."""


def choose_residency(mode, *, gpu, need_bytes=0, resident_bytes=0, free_bytes=None):
    """Resolve ``data_residency`` for one chunk: 'device' or 'host'.

    Parameters
    ----------
    mode : {'auto', 'device', 'host'}
    gpu : bool
        The backend is a GPU one (on NumPy 'auto' is always 'device').
    need_bytes : int
        Device bytes the chunk's views would occupy (data, masks, engine arrays).
    resident_bytes : int
        Device bytes already held by views of this reconstruction.
    free_bytes : int or None
        Free device memory (not counting ``resident_bytes``); None: unknown ('device').
    """
    if mode in ("device", "host"):
        return mode
    if mode != "auto":
        raise ValueError(f"data_residency: got {mode!r}; expected 'auto', 'device' or 'host'")
    if not gpu or free_bytes is None:
        return "device"
    budget = AUTO_FRACTION * (free_bytes + resident_bytes)
    return "device" if resident_bytes + need_bytes <= budget else "host"


# --- copiers: the backend-specific transfer primitives ------------------------------------


class _SyncCopier:
    """NumPy: copies happen at once; there is one stream, so events are not needed."""

    def h2d(self, dst, src):
        np.copyto(dst, src)

    def d2h(self, dst, src):
        np.copyto(dst, src)

    def compute_event(self):
        return None

    def copy_event(self):
        return None

    def copy_waits(self, event):
        """Nothing to wait for: NumPy copies are synchronous."""

    def compute_waits(self, event):
        """Nothing to wait for: NumPy copies are synchronous."""

    def synchronize(self):
        """Nothing to wait for: NumPy copies are synchronous."""


class _CupyCopier:
    """CuPy: ``cudaMemcpyAsync`` between pinned host rows and device buffers on a
    non-blocking stream, ordered against the current (compute) stream by events."""

    def __init__(self, cupy):
        self._cp = cupy
        rt = cupy.cuda.runtime
        self._memcpy = rt.memcpyAsync
        self._to_device = rt.memcpyHostToDevice
        self._to_host = rt.memcpyDeviceToHost
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _record(self, stream):
        event = self._cp.cuda.Event(disable_timing=True)
        event.record(stream)
        return event

    def compute_event(self):
        return self._record(self._cp.cuda.get_current_stream())

    def copy_event(self):
        return self._record(self.stream)

    def copy_waits(self, event):
        if event is not None:
            self.stream.wait_event(event)

    def compute_waits(self, event):
        if event is not None:
            self._cp.cuda.get_current_stream().wait_event(event)

    def h2d(self, dst, src):
        # dst: C-contiguous device buffer; src: C-contiguous rows of a pinned host array
        self._memcpy(dst.data.ptr, src.ctypes.data, src.nbytes, self._to_device, self.stream.ptr)

    def d2h(self, dst, src):
        self._memcpy(dst.ctypes.data, src.data.ptr, src.nbytes, self._to_host, self.stream.ptr)

    def synchronize(self):
        self.stream.synchronize()


def make_copier(backend):
    """The transfer primitives of ``backend``."""
    return _CupyCopier(backend.xp) if backend.is_gpu else _SyncCopier()


# --- blocks ------------------------------------------------------------------------------------


class Block:
    """Rows ``sl`` of view set ``vs`` inside a :meth:`Streamer.iterate` pass.

    ``block[name]`` is the device array of those rows of ``vs.<name>`` for the names
    the pass reads (a shared mask: the (1, sy, sx) mask itself); it is valid until
    the pass moves on (a staging buffer is reused two blocks later).
    ``block[name] = value`` stores ``value`` as those rows (copied back to host
    memory for a host view set).
    """

    __slots__ = ("_arrays", "_streamer", "index", "sl", "vs")

    def __init__(self, streamer, index, vs, sl, arrays):
        self._streamer = streamer
        self.index = index
        self.vs = vs
        self.sl = sl
        self._arrays = arrays

    def __len__(self):
        return self.sl.stop - self.sl.start

    def __getitem__(self, name):
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"{name!r} is not among the arrays this pass reads") from None

    def __setitem__(self, name, value):
        self._streamer.write(self, name, value)


class Streamer:
    """Runs block passes over view sets, staging host-resident rows through the device.

    One per :class:`~ptyscan.engines.state.ReconstructionState`; its staging buffers
    (two per streamed array and shape, sized to the largest block) are kept between
    passes.

    Parameters
    ----------
    backend : Backend
    copier : object, optional
        Transfer primitives (default from the backend; tests inject others).
    """

    def __init__(self, backend, copier=None):
        self.backend = backend
        self.copier = copier if copier is not None else make_copier(backend)
        self._buffers: dict[tuple, list[Any]] = {}
        self._pending: deque = deque()  # (block index, copy-done event, device array)

    @property
    def staging_bytes(self) -> int:
        """Device bytes held by the staging buffers."""
        return sum(buf.nbytes for pair in self._buffers.values() for buf in pair)

    def iterate(self, plan, read=()):
        """Yield a :class:`Block` for each ``(vs, rows)`` of ``plan``, in order.

        ``read`` names the per-view arrays the pass uses ('data', 'mask', 'exit').
        Passes do not nest (they share the staging buffers). Ends with every copy done.
        """
        plan = list(plan)
        read = tuple(read)
        copier = self.copier
        try:
            staged = self._stage(plan, 0, read) if plan else None
            for i, (vs, sl) in enumerate(plan):
                arrays, ready = staged
                self._release(i - 2)
                if i + 1 < len(plan):
                    staged = self._stage(plan, i + 1, read)
                copier.compute_waits(ready)
                yield Block(self, i, vs, sl, arrays)
        finally:
            self.finish()

    def finish(self):
        """Wait for every copy in flight and drop the arrays kept alive for them."""
        self.copier.synchronize()
        self._pending.clear()

    # --- internals ------------------------------------------------------------------------

    def _stage(self, plan, i, read):
        """Start the copies of block ``i``'s rows; returns (arrays, ready event).

        Block ``i`` uses staging buffer ``i % 2``, last used by block ``i - 2`` (or by
        an earlier pass): the copies wait for the compute work enqueued so far.
        """
        vs, sl = plan[i]
        arrays, copies = {}, []
        for name in read:
            src = getattr(vs, name)
            if src is None:
                raise RuntimeError(f"view set has no {name!r} array yet")
            if name not in vs.host_arrays:
                arrays[name] = src if src.shape[0] == 1 and len(vs) > 1 else src[sl]
            else:
                rows = src[sl]
                buf = self._buffer(name, src, i % 2, rows.shape[0])
                arrays[name] = buf
                copies.append((buf, rows))
        if not copies:
            return arrays, None
        copier = self.copier
        copier.copy_waits(copier.compute_event())
        for buf, rows in copies:
            copier.h2d(buf, rows)
        return arrays, copier.copy_event()

    def _buffer(self, name, src, slot, rows):
        key = (name, src.shape[1:], np.dtype(src.dtype).str)
        pair = self._buffers.get(key)
        if pair is None or pair[0].shape[0] < rows:
            xp = self.backend.xp
            pair = [xp.empty((rows, *src.shape[1:]), dtype=src.dtype) for _ in range(2)]
            self._buffers[key] = pair
        return pair[slot][:rows]

    def write(self, block, name, value):
        """Store device array ``value`` as rows ``block.sl`` of ``block.vs.<name>``
        (asynchronously for host rows: ``value`` is kept alive until copied)."""
        vs, sl = block.vs, block.sl
        target = getattr(vs, name)
        rows = target[sl]
        if tuple(value.shape) != rows.shape:
            raise ValueError(
                f"writing {name!r}: got shape {tuple(value.shape)}, expected {rows.shape}"
            )
        if name not in vs.host_arrays:
            if block._arrays.get(name) is not value:  # (a view of the rows is already there)
                rows[...] = value
            return
        xp, copier = self.backend.xp, self.copier
        value = xp.ascontiguousarray(value, dtype=rows.dtype)
        copier.copy_waits(copier.compute_event())
        copier.d2h(rows, value)
        self._pending.append((block.index, copier.copy_event(), value))

    def _release(self, index):
        """Let device arrays written back by blocks up to ``index`` go: later work on the
        compute stream (which may reuse their memory) first waits for their copies."""
        while self._pending and self._pending[0][0] <= index:
            _, done, _value = self._pending.popleft()
            self.copier.compute_waits(done)
