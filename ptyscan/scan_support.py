"""Collective helpers of the PtyScan lifecycle: error agreement, sharing, saving.

These functions keep MPI out of :mod:`ptyscan.scan`'s hook logic. Each one is
a no-op wrapper with a :class:`~ptyscan.parallel.SerialComm`.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .errors import PeerError, ScanError
from .io.h5frames import Deflated, deflate_frames, uniform_value
from .io.sinks import prepared_sink_class
from .parallel import thread_count

__all__ = [
    "ChunkSaver",
    "collective",
    "scatter_loaded",
    "share_common",
]

log = logging.getLogger(__name__)


def collective(comm, fn, *, root_only=False, idle=False):
    """Run ``fn`` on every rank (or rank 0 only) and make all ranks agree on failure.

    With several ranks, a rank whose ``fn`` raised re-raises its exception and
    every other rank raises :class:`~ptyscan.errors.PeerError` (a ScanError) naming
    that rank and message, so
    no rank is left waiting in a later collective. Returns ``fn()``'s result
    (None on ranks that did not run it). ``idle=True``: ranks that finish first
    wait without spinning (:meth:`~ptyscan.parallel.MPIComm.idle_barrier`), for a
    long ``fn`` that uses threads (compression on rank 0).
    """
    if comm.size == 1:
        return fn()
    result, error = None, None
    if not root_only or comm.rank == 0:
        try:
            result = fn()
        except Exception as exc:
            error = exc
    if idle:
        comm.idle_barrier()
    messages = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    failed = [(rank, msg) for rank, msg in enumerate(messages) if msg is not None]
    if error is not None:
        raise error
    if failed:
        rank, msg = failed[0]
        raise PeerError(f"rank {rank} failed: {msg}")
    return result


class _ArrayRef(int):
    """Placeholder for the k-th array of a structure sent by buffer."""


def _split(obj, arrays):
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        arrays.append(obj)
        return _ArrayRef(len(arrays) - 1)
    if isinstance(obj, dict):
        return {k: _split(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_split(v, arrays) for v in obj)
    return obj


def _join(obj, arrays):
    if isinstance(obj, _ArrayRef):
        return arrays[int(obj)]
    if isinstance(obj, dict):
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_join(v, arrays) for v in obj)
    return obj


def share_common(comm, obj, root=0):
    """Broadcast a nested dict/list structure; its arrays travel by buffer, not pickle."""
    if comm.size == 1:
        return obj
    arrays: list = []
    skeleton = _split(obj, arrays) if comm.rank == root else None
    skeleton, count = comm.bcast((skeleton, len(arrays)), root=root)
    received = [comm.bcast_array(arrays[k] if comm.rank == root else None) for k in range(count)]
    return _join(skeleton, received)


def scatter_loaded(comm, loaded, blocks):
    """Send each rank its own frames of rank 0's ``load`` result (``load_parallel=None``).

    Parameters
    ----------
    loaded : (raw, positions, weights) dicts on rank 0, ignored elsewhere
    blocks : list of (n_r,) int arrays, the frames of each rank
    """
    order = np.concatenate(blocks)
    counts = [len(b) for b in blocks]
    own = blocks[comm.rank]

    def stack_root():
        raw, pos, weights = loaded
        shapes = {np.shape(raw[int(i)]) for i in order}
        if len(shapes) > 1 or any(len(s) != 2 for s in shapes):
            raise ScanError(
                "load (load_parallel=None: rank 0 loads every frame): frames must all be 2-D "
                f"with one shape, got shapes {sorted(shapes)}; check the detector ROI of the files"
            )
        frames = np.stack([np.asarray(raw[int(i)]) for i in order])
        present = [int(i) in weights for i in order]
        wstack = None
        if any(present):
            wstack = np.stack(
                [np.asarray(weights.get(int(i), np.zeros(frames.shape[1:]))) for i in order]
            )
        return frames, pos, present, wstack

    stacked = collective(comm, stack_root, root_only=True)
    frames, pos, present, wstack = stacked if comm.rank == 0 else (None,) * 4
    mine = comm.scatter_rows(frames, counts)
    pos, present = comm.bcast((pos, present))
    raw = {int(i): mine[k] for k, i in enumerate(own)}
    weights = {}
    if any(present):
        wmine = comm.scatter_rows(wstack, counts)
        start = sum(counts[: comm.rank])
        weights = {int(i): wmine[k] for k, i in enumerate(own) if present[start + k]}
    return raw, {int(i): pos[int(i)] for i in own if int(i) in pos}, weights


class ChunkSaver:
    """Gather each chunk on rank 0 and write it to the scan's ``dfile``.

    The writer is the :class:`~ptyscan.io.sinks.PreparedSink` registered for the
    file's suffix (``.ptyd``: :class:`~ptyscan.io.ptyd_write.PtydWriter`).

    Memory on rank 0 is bounded by one chunk. Chunks are written in frame-index
    order (rank blocks are contiguous and in rank order).
    """

    def __init__(self, scan):
        self.scan = scan
        self.writer = None
        self.finished = False

    def _info(self):
        info = self.scan.params.to_dict()
        info["seed"] = int(self.scan.seed)
        return info

    def save(self, chunk):
        comm = self.scan.comm
        shared_mask = chunk.weights.strides[0] == 0
        shared_mask = all(comm.allgather(shared_mask)) if comm.size > 1 else shared_mask
        data = self._gather(chunk.data, len(chunk.all_indices))
        weights = None if shared_mask else self._gather(chunk.weights, len(chunk.all_indices))

        def write():
            if shared_mask:
                mask = chunk.weights[0] if len(chunk) else self.scan.prepared_mask()
                full = np.broadcast_to(mask, data.shape)
            else:
                full = weights
            self._open()
            self.writer.write_chunk(
                chunk.number,
                indices=chunk.all_indices,
                data=data,
                weights=full,
                positions=chunk.all_positions,
            )

        collective(comm, write, root_only=True, idle=True)

    def _gather(self, rows, total):
        """This chunk's (n_total, ny, nx) stack on rank 0, as an array or ``Deflated``.

        With several ranks and gzip, every rank deflates its own frames (in
        parallel) and rank 0 only writes the blobs: the bytes are the ones a
        serial run writes. A stack uniform on every rank travels as one value.
        """
        comm = self.scan.comm
        if comm.size == 1 or self.scan.params.compression != "gzip":
            return comm.gather_rows(np.ascontiguousarray(rows))
        value = uniform_value(rows) if len(rows) else "empty"
        values = {v for v in comm.allgather(value) if not (isinstance(v, str) and v == "empty")}
        shape = (total, *rows.shape[1:])
        if len(values) == 1 and None not in values:
            return np.broadcast_to(np.asarray(values.pop(), rows.dtype), shape)
        blobs = comm.gather(deflate_frames(rows, threads=thread_count(comm)))
        if comm.rank != 0:
            return None
        return Deflated(shape=shape, dtype=rows.dtype, blobs=[b for part in blobs for b in part])

    def open_file(self):
        """Create the file and write meta and info now (ptypy does it in ``initialize``)."""
        collective(self.scan.comm, self._open, root_only=True)

    def _open(self):
        if self.writer is not None:
            return
        p = self.scan.params
        folder = os.path.dirname(os.path.abspath(p.dfile))
        os.makedirs(folder, exist_ok=True)
        self.writer = prepared_sink_class(p.dfile)(
            p.dfile,
            save=p.save,
            compression=p.compression,
            chunk_format=p.chunk_format,
            # the other ranks sleep while rank 0 writes (idle_barrier): use the node's cores
            threads=thread_count(),
        )
        self.writer.write_meta(self.scan.current_meta().to_ptyd())
        self.writer.write_info(self._info())
        log.info("saving prepared chunks to %s (%s)", p.dfile, p.save)

    def finish(self):
        """At EOS: rewrite meta (final frame count) and info, close the file (once)."""
        if self.finished:
            return
        self.finished = True

        def close():
            if self.writer is None:
                log.warning(
                    "scan ended without any frame: nothing saved to %s", self.scan.params.dfile
                )
                return
            self.writer.write_meta(self.scan.current_meta().to_ptyd())
            self.writer.write_info(self._info())
            self.writer.close()

        collective(self.scan.comm, close, root_only=True)
