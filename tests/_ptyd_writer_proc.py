"""Child process for the crash tests of tests/test_ptyd.py.

Usage: ``python _ptyd_writer_proc.py PATH MODE N_CHUNKS FRAMES SIZE SLEEP_S``

Writes chunk after chunk with :class:`ptyscan.io.PtydWriter`, printing
``start k`` before and ``done k`` after each ``write_chunk``, until it is
killed. Chunk contents depend only on the chunk number (:func:`chunk_arrays`),
so the test can check what it reads back.
"""

import sys
import time

import numpy as np

from ptyscan.io import PtydWriter


def chunk_arrays(n, frames, size):
    """Chunk ``n``: deterministic, compressible like counting data."""
    rng = np.random.default_rng(n)
    indices = np.arange(n * frames, (n + 1) * frames, dtype=np.int64)
    data = rng.poisson(3.0, (frames, size, size)).astype(np.float32)
    weights = (data < 8).astype(np.float32)
    positions = np.stack([indices * 1e-7, indices * -2e-7], axis=1)
    return {"indices": indices, "data": data, "weights": weights, "positions": positions}


def main(path, mode, n_chunks, frames, size, sleep_s):
    with PtydWriter(path, save=mode) as writer:
        writer.write_meta({"shape": size, "psize": 75e-6, "distance": 2.0, "energy": 8.0})
        for n in range(int(n_chunks)):
            arrays = chunk_arrays(n, int(frames), int(size))
            print(f"start {n}", flush=True)
            writer.write_chunk(n, **arrays)
            print(f"done {n}", flush=True)
            time.sleep(float(sleep_s))


if __name__ == "__main__":
    main(*sys.argv[1:])
