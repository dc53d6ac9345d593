"""Block passes on every CPU core: the views' blocks split between threads (NumPy).

An engine's pass over its views (Fourier update, object and probe sums, gradients) is a
loop over blocks of ``block_size`` views, each independent but for sums into shared
arrays. On the NumPy backend with ``backend.threads`` > 1, :class:`BlockPool` runs the
blocks on that many threads, each taking a contiguous run of blocks with one-thread FFTs
(scipy.fft and NumPy's array loops release the GIL, so the threads run side by side);
sums into shared arrays (``accumulate``) go to a private copy per thread, added into the
shared ones at the end in a fixed order, so a result depends only on the thread count.
A pass runs on one thread (the calling one, with the backend's own FFT threads) on
CuPy, with one thread, with a single block, or where a view set streams its rows from
host memory (the staging buffers serve one block at a time). :meth:`BlockPool.split`
runs whole-array work (ML's smoothing of the object gradient) in bands on the same
threads.

Measured on 2 cores (DM, 92 frames of 128²): one FFT thread per block and two blocks at
once is faster than two FFT threads per block (the FFTs of one 1 MB block are too short
to split well), and it parallelises the array passes besides the FFTs as well.
"""

from __future__ import annotations

import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["BlockPool"]


class BlockPool:
    """Runs ``fn(block, acc)`` for every block of a pass, on ``backend.threads`` threads.

    Parameters
    ----------
    backend : Backend
        Threads are used on NumPy only (``backend.threads``).
    """

    def __init__(self, backend):
        self.backend = backend
        self.threads = int(backend.threads or 1) if backend.name == "numpy" else 1
        self._executor = None

    def run(self, blocks, fn, accumulate=(), *, parallel=True):
        """``[fn(block, acc) for block in blocks]``, in block order.

        ``acc`` is ``accumulate`` (a tuple of arrays ``fn`` adds into) or, on the other
        threads, zeroed copies of them, added into ``accumulate`` when the pass is done.
        ``parallel=False`` (or any of the reasons in the module notes) runs on this
        thread. ``blocks`` is consumed lazily on one thread, in full first on several.
        """
        accumulate = tuple(accumulate)
        if not parallel or self.threads < 2:
            return [fn(blk, accumulate) for blk in blocks]
        blocks = list(blocks)
        n = min(self.threads, len(blocks))
        if n < 2:
            return [fn(blk, accumulate) for blk in blocks]
        bounds = [round(i * len(blocks) / n) for i in range(n + 1)]
        groups = [blocks[bounds[i] : bounds[i + 1]] for i in range(n)]
        xp = self.backend.xp
        accs = [accumulate] + [tuple(xp.zeros_like(a) for a in accumulate) for _ in groups[1:]]
        futures = [
            self._pool().submit(self._work, group, fn, acc)
            for group, acc in zip(groups, accs, strict=True)
        ]
        wait(futures)  # every thread done before an error propagates
        results = [r for f in futures for r in f.result()]
        for acc in accs[1:]:
            for total, part in zip(accumulate, acc, strict=True):
                total += part
        return results

    def split(self, n, fn):
        """``[fn(start, stop), ...]`` over up to ``threads`` contiguous ranges covering
        ``range(n)``, in order, side by side (one on the calling thread): whole-array
        work (the smoothing of a gradient) split into bands of rows or columns. ``fn``
        writes only its own range. One range ``(0, n)`` on the calling thread, with the
        backend's FFT threads, where the pool has one thread (CuPy). Call it from the
        engine's thread, not from a block of :meth:`run` (the pool's threads would wait
        on each other)."""
        parts = min(self.threads, n)
        if parts < 2:
            return [fn(0, n)]
        bounds = [round(i * n / parts) for i in range(parts + 1)]
        ranges = list(itertools.pairwise(bounds))
        futures = [self._pool().submit(self._range, fn, *r) for r in ranges[1:]]
        try:
            first = self._range(fn, *ranges[0])
        finally:
            wait(futures)  # every range done before an error propagates
        return [first] + [f.result() for f in futures]

    def _range(self, fn, start, stop):
        with self._one_fft_thread():
            return fn(start, stop)

    def _one_fft_thread(self):
        fft = self.backend.fft
        return fft.limited(1) if hasattr(fft, "limited") else contextlib.nullcontext()

    def _work(self, group, fn, acc):
        with self._one_fft_thread():
            return [fn(blk, acc) for blk in group]

    def _pool(self):
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="ptyscan-block")
        return self._executor
