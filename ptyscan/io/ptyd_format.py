"""The ``.ptyd`` layout shared by its writer and reader (ptypy's ``h5rw`` conventions).

A ``.ptyd`` file is HDF5 written the way ptypy's ``h5rw`` writes it: every
node has a ``type`` attribute (``dict`` groups; ``array``, ``scalar``,
``string``, ``None``, ``arraylist`` datasets; ``list``/``tuple`` groups), so
ptypy reads our files and we read ptypy's::

    meta/        shape, psize, center, distance, energy, num_frames, label, version
    info/        the scan parameters (documentation only)
    chunks/<n>/  data (n, ny, nx), weights (n, ny, nx), positions (n, 2) in
                 metres, indices (n,) int64

Writing: :mod:`ptyscan.io.ptyd_write`; reading: :mod:`ptyscan.io.ptyd_read`.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..errors import PtydError

__all__ = [
    "CHUNK_KEYS",
    "H5RW_VERSION",
    "READ_RETRY_S",
    "WRITE_RETRY_S",
    "normalize_meta",
    "retrying",
]

H5RW_VERSION = "0.1"
CHUNK_KEYS = ("data", "indices", "positions", "weights")
"""The datasets of every ``chunks/<n>`` group."""
READ_RETRY_S = 1.0  # a writer's metadata flush takes milliseconds
WRITE_RETRY_S = 10.0  # another program (ptypy) may hold a read lock while it reads


def normalize_meta(meta):
    """ptypy's conventions: shape/psize/center (2,) arrays, num_frames an int."""
    if dataclasses.is_dataclass(meta) and not isinstance(meta, type):
        meta = dataclasses.asdict(meta)
    out = dict(meta)
    for key, dtype in (("shape", np.int64), ("psize", np.float64), ("center", np.float64)):
        if out.get(key) is not None and not isinstance(out[key], str):
            array = np.array(out[key], dtype=dtype)
            out[key] = np.repeat(array, 2) if array.ndim == 0 else array
    if out.get("num_frames") is not None:
        out["num_frames"] = int(out["num_frames"])
    return out


def retrying(path, action, what, seconds):
    """Run ``action``; retry an OSError (a lock, a writer mid-flush) for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except PtydError:
            raise
        except OSError as exc:
            if time.monotonic() >= deadline:
                hint = "hint: is another program writing it?"
                raise PtydError(f"{path}: cannot {what}: {exc} ({hint})") from exc
            time.sleep(0.05)
