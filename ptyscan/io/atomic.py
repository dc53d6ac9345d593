"""Atomic file replacement: write beside, fsync, rename over (one implementation for all files)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success make it ``path`` atomically.

    The caller writes the whole new file at the yielded path. When the block
    ends normally the file is fsync'ed and renamed over ``path`` (readers see
    the old or the new file, never a partial one); when it raises, the
    temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
