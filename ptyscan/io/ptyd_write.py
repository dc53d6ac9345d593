"""Write ``.ptyd`` prepared-data files chunk by chunk (layout: :mod:`ptyscan.io.ptyd_format`).

``'append'`` keeps the chunks in the main file. ``'link'`` writes chunk ``n``
to its own part file ``<stem><chunk_format % n>.h5`` next to the main file
(holding ``chunks/<n>``) and links it from the main file by relative name.

Crash consistency
-----------------
A writer killed (SIGKILL included) after ``write_chunk`` returned for chunks
``0 .. k-1`` leaves files whose first ``k`` chunks read back exactly.

- Files stay closed between calls: each call opens, writes, flushes, closes.
- ``'append'``: a chunk's datasets are written unlinked into free space at the
  end of the file and linked into ``chunks/`` last, so a kill while frames are
  written leaves the earlier chunks untouched. HDF5 has no journal: a kill
  during the final metadata flush of a call (milliseconds) can still damage
  the file, and a concurrent reader may briefly see a half-linked last chunk.
- ``'link'``: every file (part and main) is written under a temporary name,
  fsync'ed and renamed into place, so a kill at any moment leaves the old or
  the new consistent state (at worst an unlinked part file).

Limits: one writer per file; after power loss, ``'append'`` files are only as
durable as the page cache; on Windows a rename over a main file that another
process holds open fails.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from ..errors import PtydError
from .atomic import atomic_path, check_space, keep_previous
from .h5frames import Deflated, create_frames_dataset
from .h5typed import set_type, write_typed
from .ptyd_format import H5RW_VERSION, WRITE_RETRY_S, normalize_meta, retrying

__all__ = ["PtydWriter"]

logger = logging.getLogger(__name__)

_FORMAT_RE = re.compile(r"([^%/\\]*)%(0?\d*)d([^%/\\]*)")


class PtydWriter:
    """Write a ``.ptyd`` file chunk by chunk, crash-consistently (module doc).

    Parameters
    ----------
    path : str or os.PathLike
        The main file. An existing file is renamed to ``path + '.old'``
        (replacing an older one); in ``'link'`` mode its part files become
        ``<part>.old`` as well and the ``.old`` main file links to them.
    save : {'append', 'link'}
        Chunks in the main file, or one part file per chunk.
    compression : {'gzip', 'lzf', None}
        For data and weights: gzip level 4 or lzf, with byte shuffle, one
        frame per HDF5 chunk.
    chunk_format : str
        Part-file suffix with one integer conversion (ptypy's parameter):
        chunk 3 of ``scan.ptyd`` goes to ``scan.chunk03.h5``.
    threads : int
        Threads compressing frames in parallel (gzip); see :mod:`ptyscan.h5frames`.

    Notes
    -----
    Use as a context manager. Call :meth:`write_meta` before or right after
    the first :meth:`write_chunk`; ptypy cannot read a file without meta.
    """

    def __init__(
        self, path, *, save="append", compression="gzip", chunk_format=".chunk%02d", threads=1
    ):
        self.path = Path(path)
        self.threads = max(1, int(threads))
        _check_options(self.path, save, compression, chunk_format)
        self.save, self.compression, self.chunk_format = save, compression, chunk_format
        self._written, self._meta_written, self._closed = [], False, False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._back_up_existing()
        self._edit_main(_init_layout, create=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def chunk_ids(self):
        """list of int: the chunk numbers written so far, in order."""
        return list(self._written)

    def part_path(self, n):
        """Path of chunk ``n``'s part file (``'link'`` mode)."""
        return self.path.with_name(self.path.stem + self.chunk_format % n + ".h5")

    def write_meta(self, meta):
        """Write or replace the ``meta`` group.

        Parameters
        ----------
        meta : Mapping or dataclass instance
            ptypy's keys: ``shape`` (pixels), ``psize`` (m), ``center``
            (pixels), ``distance`` (m), ``energy`` (keV), ``num_frames``,
            ``label``, ``version``. A scalar shape or psize becomes (2,).
        """
        self._check_open()
        meta = normalize_meta(meta)
        self._edit_main(lambda f: _replace_group(f, "meta", meta))
        self._meta_written = True

    def write_info(self, info):
        """Replace the ``info`` group by ``info`` (a Mapping); on error keep the old one."""
        self._check_open()
        if not isinstance(info, Mapping):
            raise PtydError(f"{self.path}: info: got {type(info).__name__}, expected a dict")
        self._edit_main(lambda f: _replace_group(f, "info", info))

    def write_chunk(self, n, *, indices, data, weights, positions):
        """Write chunk ``n``; once this returns the chunk survives a crash.

        Parameters
        ----------
        n : int
            Chunk number >= 0, each written once.
        indices : (n_frames,) int
            Frame indices, stored int64 (ptypy itself ignores them).
        data : (n_frames, ny, nx) float or int, or Deflated
            Stored with their dtype (a :class:`~ptyscan.h5frames.Deflated` stack is
            written as it was compressed).
        weights : (n_frames, ny, nx) or (ny, nx)
            Stored with their dtype; a 2-D mask is repeated for every frame,
            as ptypy reads weights frame by frame.
        positions : (n_frames, 2) float
            Metres (y, x), stored float64.
        """
        self._check_open()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise PtydError(f"{self.path}: chunk number: got {n!r}, expected an int >= 0")
        n = int(n)
        if n in self._written:
            raise PtydError(f"{self.path}: chunks/{n} already written (hint: number 0, 1, 2...)")
        arrays = _chunk_arrays(f"{self.path}: chunks/{n}", indices, data, weights, positions)
        need = sum(_nbytes(a) for a in arrays.values()) + (64 << 10)  # + metadata
        check_space(
            self.path if self.save == "append" else self.part_path(n),
            need,
            key="scan.dfile",
            intact=f"chunks 0..{n - 1} are intact" if n else "nothing was written",
        )
        if self.save == "append":
            self._edit_main(lambda f: self._store_chunk(f, n, arrays))
        else:
            part = self.part_path(n)
            _replace_atomically(part, lambda f: self._store_chunk(f, n, arrays, new=True))
            link = h5py.ExternalLink(part.name, f"/chunks/{n}")
            self._edit_main(lambda f: f["chunks"].__setitem__(str(n), link))
        self._written.append(n)

    def close(self):
        """Stop writing; the files are complete after every call already."""
        if not self._closed and not self._meta_written:
            logger.warning("%s: closed without write_meta(); ptypy cannot read it", self.path)
        self._closed = True

    def _check_open(self):
        if self._closed:
            raise PtydError(f"{self.path}: writer is closed (hint: write inside the 'with')")

    def _edit_main(self, edit, create=False):
        if create or self.save == "link":  # the main file changes atomically
            _replace_atomically(self.path, edit, copy=not create)
            return
        with _open_for_writing(self.path, "r+") as f:
            edit(f)
            f.attrs["mtime"] = time.asctime()

    def _store_chunk(self, f, n, arrays, new=False):
        if new:
            _init_layout(f, groups=("chunks",))
        dsets = {}
        for key, array in arrays.items():  # unlinked datasets first, linked at the end
            if key in ("data", "weights"):
                dset = create_frames_dataset(
                    f, None, array, compression=self.compression, threads=self.threads
                )
            else:
                dset = f.create_dataset(None, data=array)
            dsets[key] = set_type(dset, "array")
        set_type(dsets["indices"], "arraylist")
        group = set_type(f["chunks"].create_group(str(n)), "dict")
        for key, dset in dsets.items():
            group[key] = dset

    def _back_up_existing(self):
        old = Path(f"{self.path}.old")
        keep_previous(self.path)
        if self.save != "link":
            return
        pattern, moved = _part_regex(self.path, self.chunk_format), {}
        matches = [(e, pattern.fullmatch(e.name)) for e in sorted(self.path.parent.iterdir())]
        for entry, match in matches:
            if match and match.group(1):  # older .old or stale .partial part files
                entry.unlink()
        for entry, match in matches:
            if match and not match.group(1):
                os.replace(entry, f"{entry}.old")
                moved[entry.name] = entry.name + ".old"
        if moved and old.exists():
            _relink(old, moved)


def _check_options(path, save, compression, chunk_format):
    if save not in ("append", "link"):
        raise PtydError(f"{path}: save: got {save!r}, expected 'append' or 'link'")
    if compression not in ("gzip", "lzf", None):
        raise PtydError(f"{path}: compression: got {compression!r}, expected gzip, lzf or None")
    if not isinstance(chunk_format, str) or not _FORMAT_RE.fullmatch(chunk_format):
        raise PtydError(
            f"{path}: chunk_format: got {chunk_format!r}, expected text with one integer "
            "conversion and no path separator, e.g. '.chunk%02d'"
        )


def _part_regex(path, chunk_format):
    head, _, tail = _FORMAT_RE.fullmatch(chunk_format).groups()
    name = re.escape(path.stem + head) + r"\d+" + re.escape(tail + ".h5")
    return re.compile(name + r"(\.old|\.partial)?")


def _relink(old_main, moved):
    """Point the backed-up main file's links at the backed-up part files."""
    try:
        with _open_for_writing(old_main, "r+") as f:
            chunks = f.get("chunks", {})
            for name in list(chunks):
                link = chunks.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink) and link.filename in moved:
                    del chunks[name]
                    chunks[name] = h5py.ExternalLink(moved[link.filename], link.path)
    except OSError as exc:
        logger.warning("%s: could not relink it to the .old part files (%s)", old_main, exc)


def _init_layout(f, groups=("chunks", "meta", "info")):
    f.attrs["h5rw_version"] = H5RW_VERSION
    f.attrs["ctime"] = f.attrs["mtime"] = time.asctime()
    for key in groups:
        set_type(f.create_group(key), "dict")


def _replace_group(f, key, value):
    staging = key + ".new"
    if staging in f:
        del f[staging]
    try:
        write_typed(f, staging, dict(value))
    except Exception:
        if staging in f:
            del f[staging]
        raise
    if key in f:
        del f[key]
    f.move(staging, key)


def _replace_atomically(path, edit, copy=False):
    """Write (a copy of) ``path`` under a temporary name, fsync, rename into place."""
    with atomic_path(path) as tmp:
        if copy:
            shutil.copyfile(path, tmp)
        with _open_for_writing(tmp, "r+" if copy else "w") as f:
            edit(f)
            f.attrs["mtime"] = time.asctime()


def _open_for_writing(path, mode):
    if mode != "w" and not Path(path).exists():
        raise PtydError(f"{path}: vanished while writing (hint: did another process move it?)")
    opener = functools.partial(h5py.File, path, mode, libver="earliest")
    return retrying(path, opener, "open for writing", WRITE_RETRY_S)


def _nbytes(array) -> int:
    """Bytes an array takes in the file at most (a Deflated stack: its blobs)."""
    if isinstance(array, Deflated):
        return sum(len(b) for b in array.blobs)
    return int(getattr(array, "nbytes", 0))


def _stack_like(value):
    """An ndarray, or a :class:`~ptyscan.h5frames.Deflated` stack as it is."""
    return value if isinstance(value, Deflated) else np.asarray(value)


def _chunk_arrays(where, indices, data, weights, positions):
    indices, data, weights = np.asarray(indices), _stack_like(data), _stack_like(weights)
    arrays = {"data": data, "indices": indices, "weights": weights}
    arrays["positions"] = np.asarray(positions, dtype=np.float64)
    n = data.shape[0] if data.ndim == 3 else -1
    if data.ndim == 3 and weights.shape == data.shape[1:]:
        arrays["weights"] = np.broadcast_to(weights, data.shape)
    expected = {
        "data": (data.ndim == 3 and n > 0 and data.dtype.kind in "biuf", "(n>0, ny, nx) real"),
        "indices": (indices.shape == (n,) and indices.dtype.kind in "iu", f"({n},) int"),
        "weights": (
            arrays["weights"].shape == data.shape and weights.dtype.kind in "biuf",
            "(ny, nx) or like data, real",
        ),
        "positions": (arrays["positions"].shape == (n, 2), f"({n}, 2) metres"),
    }
    for key, (ok, shape) in expected.items():
        if not ok:
            got = f"{arrays[key].shape} {arrays[key].dtype}"
            raise PtydError(f"{where}: {key}: got shape {got}, expected {shape}")
    arrays["indices"] = indices.astype(np.int64)
    return arrays
