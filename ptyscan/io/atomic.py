"""Atomic file replacement: write beside, fsync, rename over (one implementation for all files)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["atomic_path", "keep_previous"]


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


def keep_previous(path) -> Path | None:
    """Rename an existing ``path`` to ``<path>.old`` (replacing an older one), with a
    warning: the one policy for every output a re-run writes again (.ptyd, .ptyr).

    Returns the ``.old`` path, or None when ``path`` did not exist.
    """
    path, old = Path(path), Path(f"{path}.old")
    if not path.exists():
        return None
    logger.warning("%s exists; renamed to %s", path, old.name)
    os.replace(path, old)
    return old
