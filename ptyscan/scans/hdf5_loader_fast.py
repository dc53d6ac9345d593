"""Hdf5LoaderFast: :class:`Hdf5Loader` reading frames in parallel worker processes.

Same parameters and the same frames, bit for bit (the same float32 operations, in the same
order). Differences are in how frames are read:

- consecutive frames are read as one hyperslab with ``read_direct`` into preallocated
  arrays, not frame by frame;
- the frames of a chunk are split between ``workers`` processes, each with its own HDF5
  library and file handles, so decompression (bitshuffle-LZ4, Blosc) and reading run in
  parallel; h5py serialises every call in one process, so threads would not help. The
  workers write into shared memory, which the returned frames are views of.

The frames returned by ``load`` are views of a buffer that is reused once nothing refers
to them any more (fresh memory costs page faults, more than reading uncompressed frames).

Workers are started with the ``forkserver`` method (never ``fork``: the parent may hold
open HDF5 files, MPI and threads) when the scan initialises, and stopped at the end of the
scan (or :meth:`close`). As with any ``multiprocessing`` code, a script that uses this
class must guard its entry point with ``if __name__ == "__main__":``; set ``workers: 0``
to read in the calling process instead.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import sys
import tempfile
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from ..errors import ScanError
from ..parallel import thread_count
from .hdf5_io import H5Files, read_frames
from .hdf5_loader import Hdf5Loader
from .hdf5_params import Hdf5LoaderFastParams

__all__ = ["Hdf5LoaderFast", "Hdf5LoaderFastParams"]

_WORKER: dict = {}
"""State of a worker process (its ReadSpec, open files, mapped buffers); empty in the parent."""


def _init_worker(spec):
    _WORKER["spec"] = spec
    _WORKER["files"] = H5Files(swmr=spec.swmr)
    _WORKER["maps"] = {}


def _ready(_=None):
    """Open the frames file now (in a fresh worker); return the worker's pid."""
    spec = _WORKER["spec"]
    _WORKER["files"].dataset(spec.data.file, spec.data.key)
    return os.getpid()


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
"""Fault in all pages of a new mapping at once (Linux): much cheaper than page by page."""


def _map_file(path, size):
    """Flat float32 array over the shared file ``path`` of ``size`` floats."""
    with open(path, "r+b") as fh:
        buffer = mmap.mmap(fh.fileno(), size * 4, flags=mmap.MAP_SHARED | _POPULATE)
    return np.frombuffer(buffer, np.float32)


def _mapped(refs):
    """Flat float32 arrays of the shared buffers ``refs`` [(name, size) or None], each
    mapped once per worker; mappings of other (older) buffers are dropped."""
    maps = _WORKER["maps"]
    names = {ref[0] for ref in refs if ref is not None}
    for name in set(maps) - names:
        del maps[name]
    for ref in refs:
        if ref is not None and ref[0] not in maps:
            maps[ref[0]] = _map_file(*ref)
    return [None if ref is None else maps[ref[0]] for ref in refs]


def _work(out, weights, frame_shape, first, leads, scales):
    """Read frames ``first ..`` of a chunk into the shared buffers (in a worker process).

    ``out`` and ``weights`` are ``(path, size)`` of shared buffers (weights may be None).
    Returns the worker's pid (the parent unlinks a buffer file once every worker mapped it).
    """
    n, (h, w) = len(leads), frame_shape
    rows = slice(first * h * w, (first + n) * h * w)
    out, weights = (
        None if a is None else a[rows].reshape(n, h, w) for a in _mapped([out, weights])
    )
    spec = _WORKER["spec"]
    read_frames(_WORKER["files"], spec, leads, out, weights=weights, scales=scales, block=True)
    return os.getpid()


class _Buffer:
    """A float32 frame buffer, reused once no array made from it is alive.

    Reusing memory avoids the page faults of fresh arrays, which cost more than reading
    uncompressed frames. ``shared`` buffers live in a file mapping (``/dev/shm``) that
    worker processes map by path; the file is unlinked once every worker has mapped it.
    """

    def __init__(self, frames, frame_shape, *, shared):
        self.frames, self.frame_shape = frames, tuple(frame_shape)
        self.size = frames * self.frame_shape[0] * self.frame_shape[1]
        self.name, self.path, self.mapped_by = None, None, set()
        if not shared:
            self.flat = np.zeros(self.size, np.float32)
            self._idle_refs = sys.getrefcount(self.flat)
            return
        fd, self.path = tempfile.mkstemp(prefix="ptyscan-hdf5-", dir=_shared_folder(self.size * 4))
        self.name = self.path
        self._cleanup = weakref.finalize(self, _remove, self.path)  # also at exit
        try:
            os.ftruncate(fd, self.size * 4)
        except BaseException:
            self.unlink()
            raise
        finally:
            os.close(fd)
        self.flat = _map_file(self.path, self.size)
        self._idle_refs = sys.getrefcount(self.flat)

    def fits(self, frames, frame_shape, shared) -> bool:
        """Large enough, same frame shape, shared if asked, and no array of it in use."""
        idle = sys.getrefcount(self.flat) <= self._idle_refs  # every view adds one
        same = tuple(frame_shape) == self.frame_shape and (self.name is not None or not shared)
        return idle and same and frames <= self.frames

    def view(self, frames):
        h, w = self.frame_shape
        return self.flat[: frames * h * w].reshape(frames, h, w)

    def ref(self):
        """(name, size) by which workers map the buffer (the file may be unlinked by now)."""
        return None if self.name is None else (self.name, self.size)

    def unlink(self):
        """Remove the file (workers that mapped it keep the memory until they drop it)."""
        if self.path is not None:
            self._cleanup()
            self.path = None


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _shared_folder(nbytes):
    """``/dev/shm`` (memory) when it has room for ``nbytes`` twice over, else the temporary
    folder (a file in the page cache; a full tmpfs would crash the mapping with SIGBUS)."""
    folder = "/dev/shm"
    with contextlib.suppress(OSError):
        stat = os.statvfs(folder)
        if os.access(folder, os.W_OK) and stat.f_bavail * stat.f_frsize > 2 * nbytes:
            return folder
    return None


class Hdf5LoaderFast(Hdf5Loader):
    """Hdf5Loader reading frames in parallel processes with read_direct (same results)."""

    Params = Hdf5LoaderFastParams

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        self._pool = None
        self._stop_pool = None
        self._buffers = {}
        workers = self.info.workers
        self.workers = thread_count(self.comm) if workers is None else workers

    def post_initialize(self):
        super().post_initialize()
        if self.workers > 1:
            self._start_pool()

    def close(self):
        """Close the files and stop the worker processes (restarted when needed)."""
        super().close()
        for buf in self._buffers.values():
            buf.unlink()
        self._buffers = {}
        if self._stop_pool is not None:
            self._stop_pool()
        self._pool = self._stop_pool = None

    def _start_pool(self):
        ctx = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.setup.spec,)
        )
        self._pool = pool
        self._stop_pool = weakref.finalize(self, pool.shutdown, wait=True)
        try:  # start the workers now, not on the first chunk
            list(pool.map(_ready, range(self.workers)))
        except BrokenProcessPool as exc:
            self.close()
            raise ScanError(
                f"{type(self).__name__}: its {self.workers} worker processes could not start "
                f"({exc}). multiprocessing starts them by importing the main script: guard its "
                "entry point with 'if __name__ == \"__main__\":', or set workers: 0 to read in "
                "this process"
            ) from exc

    def _buffer(self, kind, frames, *, shared):
        """A reusable buffer for ``frames`` frames (a new one while the old is in use)."""
        shape = self.setup.spec.shape
        buf = self._buffers.get(kind)
        if buf is None or not buf.fits(frames, shape, shared):
            if buf is not None:
                buf.unlink()
            buf = self._buffers[kind] = _Buffer(frames, shape, shared=shared)
        return buf

    def _read(self, points):
        n, spec = len(points), self.setup.spec
        parallel = self.workers > 1 and n > 1
        if parallel and self._pool is None:
            self._start_pool()
        out = self._buffer("frames", n, shared=parallel)
        weights = self._buffer("weights", n, shared=parallel) if spec.per_frame_weights else None
        leads = self._leads(points)
        scales = None if self._scales is None else self._scales[points]
        if parallel:
            self._run_workers(leads, scales, out, weights)
        else:
            wview = None if weights is None else weights.view(n)
            read_frames(
                self.files, spec, leads, out.view(n), weights=wview, scales=scales, block=True
            )
        return out.view(n), None if weights is None else weights.view(n)

    def _run_workers(self, leads, scales, out, weights):
        parts = [p for p in np.array_split(np.arange(len(leads)), self.workers) if len(p)]
        wref = None if weights is None else weights.ref()
        try:
            futures = [
                self._pool.submit(
                    _work,
                    out.ref(),
                    wref,
                    self.setup.spec.shape,
                    int(part[0]),
                    leads[part[0] : part[-1] + 1],
                    None if scales is None else scales[part[0] : part[-1] + 1],
                )
                for part in parts
            ]
            pids = {future.result() for future in futures}
        except BrokenProcessPool as exc:
            self.close()
            raise ScanError(
                f"{type(self).__name__}: a worker process died while reading frames ({exc}); "
                "set workers: 0 to read in this process and see the error"
            ) from exc
        for buf in (out, weights):
            if buf is not None:
                buf.mapped_by |= pids
                if len(buf.mapped_by) >= self.workers:
                    buf.unlink()
