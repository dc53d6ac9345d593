"""Atomic file replacement: write beside, fsync, rename over (one implementation for all files)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from ..errors import OutputError

logger = logging.getLogger(__name__)

__all__ = ["atomic_path", "check_space", "check_writable", "keep_previous"]


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


def check_writable(folder, *, key) -> None:
    """Check that a file can be written in ``folder`` (creating it if needed), leaving
    nothing behind: folders made for the check are removed again.

    Raises :class:`~ptyscan.errors.OutputError` naming the recipe ``key``, the path
    and the reason, so a run finds out before any work, not after it.
    """
    folder = Path(folder or ".")
    created = []  # folders made here, deepest last
    try:
        missing = folder
        while not missing.exists() and missing != missing.parent:
            created.insert(0, missing)
            missing = missing.parent
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".ptyscan-write-test-{os.getpid()}"
        with open(probe, "wb") as f:
            f.write(b"x")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(
            f"{key}: cannot write in {str(folder)!r} ({reason}); expected a folder that can be "
            "created and written; choose another one, e.g. --set run.output_dir=out"
        ) from None
    finally:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()


def check_space(path, need_bytes, *, key, intact="earlier files are intact") -> None:
    """Refuse to start writing ``need_bytes`` more into ``path`` when they would not fit.

    Both the free space of the file system and the process's file size limit
    (``RLIMIT_FSIZE``, e.g. ``ulimit -f`` of a batch system) count. Checking first keeps
    what was written before intact: an HDF5 file that runs out of space in the middle
    of a write can be left unreadable. Raises :class:`~ptyscan.errors.OutputError`
    naming ``key``, the path, the sizes and ``intact``.
    """
    path = Path(path)
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:  # not made yet: its file system
        folder = folder.parent
    room = shutil.disk_usage(folder).free
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            size = path.stat().st_size if path.exists() else 0
            room = min(room, limit - size)
    except (ImportError, OSError):  # no resource module (Windows)
        pass
    if need_bytes > room:
        raise OutputError(
            f"{key}: no space to write {str(path)!r}: about {need_bytes / 1e6:.1f} MB needed, "
            f"{max(room, 0) / 1e6:.1f} MB left (disk full or file size limit); {intact}; "
            "free some space or choose another folder"
        )
