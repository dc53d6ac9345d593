"""Read and write ``.ptyd`` prepared-data files in ptypy's layout.

A ``.ptyd`` file is HDF5 written the way ptypy's ``h5rw`` writes it: every
node has a ``type`` attribute (``dict`` groups; ``array``, ``scalar``,
``string``, ``None``, ``arraylist`` datasets; ``list``/``tuple`` groups), so
ptypy reads our files and we read ptypy's::

    meta/        shape, psize, center, distance, energy, num_frames, label, version
    info/        the scan parameters (documentation only)
    chunks/<n>/  data (n, ny, nx), weights (n, ny, nx), positions (n, 2) in
                 metres, indices (n,) int64

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

import dataclasses
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

from ptyscan.atomic import atomic_path
from ptyscan.errors import PtydError
from ptyscan.h5frames import Deflated, create_frames_dataset
from ptyscan.h5typed import _typed, read_typed, write_typed

__all__ = [
    "PtydContents",
    "PtydWriter",
    "describe_ptyd",
    "ptyd_chunk_ids",
    "ptyd_chunk_sizes",
    "read_chunk",
    "read_info",
    "read_meta",
    "read_ptyd",
    "read_typed",
    "write_typed",
]

logger = logging.getLogger(__name__)

H5RW_VERSION = "0.1"
_CHUNK_KEYS = ("data", "indices", "positions", "weights")
_READ_RETRY_S = 1.0  # a writer's metadata flush takes milliseconds
_WRITE_RETRY_S = 10.0  # another program (ptypy) may hold a read lock while it reads
_FORMAT_RE = re.compile(r"([^%/\\]*)%(0?\d*)d([^%/\\]*)")
_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _normalize_meta(meta):
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


# --- writing -----------------------------------------------------------------


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
        meta = _normalize_meta(meta)
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
            dsets[key] = _typed(dset, "array")
        _typed(dsets["indices"], "arraylist")
        group = _typed(f["chunks"].create_group(str(n)), "dict")
        for key, dset in dsets.items():
            group[key] = dset

    def _back_up_existing(self):
        old = Path(f"{self.path}.old")
        if self.path.exists():
            logger.warning("%s exists; renamed to %s", self.path, old.name)
            os.replace(self.path, old)
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
        _typed(f.create_group(key), "dict")


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
    return _retrying(path, opener, "open for writing", _WRITE_RETRY_S)


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


# --- reading -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class PtydContents:
    """Everything in a ``.ptyd`` file, the chunks concatenated in chunk order.

    Attributes
    ----------
    meta, info : dict
        As :func:`read_meta` and :func:`read_info` return them.
    indices : (n_frames,) int64
    data : (n_frames, ny, nx), dtype as stored (float32 or int)
    weights : (n_frames, ny, nx), dtype as stored
    positions : (n_frames, 2) float64, metres
    chunk_ids : tuple of int
        The complete chunks read, ascending.
    """

    meta: dict
    info: dict
    indices: np.ndarray
    data: np.ndarray
    weights: np.ndarray
    positions: np.ndarray
    chunk_ids: tuple


def ptyd_chunk_ids(path):
    """Sorted numbers of the complete, readable chunks of ``path``.

    A chunk behind a dangling external link (missing part file), lacking one
    of data/weights/positions/indices, or with inconsistent lengths is left
    out with a logged warning. Safe to poll while a writer appends.
    """
    return _reading(path, _valid_ids)


def ptyd_chunk_sizes(path):
    """``{chunk number: frame count}`` of the complete chunks (no frame is read)."""
    return _reading(
        path, lambda f: {n: f["chunks"][str(n)]["indices"].shape[0] for n in _valid_ids(f)}
    )


def describe_ptyd(path) -> str:
    """A human-readable summary of a ``.ptyd`` file (for ``ptyscan info``)."""

    def summary(f):
        meta, info, ids = _meta_of(f), _info_of(f), _valid_ids(f)
        groups = [f["chunks"][str(n)] for n in ids]
        frames = sum(g["indices"].shape[0] for g in groups)
        lines = [f"{path}", f"  scan      {info.get('name', '?')} (label {meta.get('label')})"]
        expected = meta.get("num_frames")
        lines.append(f"  frames    {frames} in {len(ids)} chunks (meta num_frames {expected})")
        if groups:
            d = groups[0]["data"]
            lines.append(
                f"  frame     {d.shape[1]} x {d.shape[2]} {d.dtype}, {d.compression or 'uncompressed'}"
            )
            first = groups[0]["data"][0]
            lines.append(
                f"  counts    first frame: total {float(first.sum()):.4g}, max {float(first.max()):.4g}"
            )
        for key, unit in (
            ("shape", "px"),
            ("psize", "m"),
            ("center", "px"),
            ("energy", "keV"),
            ("distance", "m"),
        ):
            value = meta.get(key)
            shown = np.array2string(np.asarray(value), precision=6) if value is not None else None
            lines.append(f"  {key:<9} {shown} {unit if value is not None else ''}".rstrip())
        if expected is not None and frames < expected:
            lines.append(f"  incomplete: {expected - frames} frames not (yet) written")
        return "\n".join(lines)

    return _reading(path, summary)


def read_meta(path):
    """The ``meta`` group as a dict (``{}`` if absent), None-typed values as None.

    ``shape`` (int64), ``psize`` and ``center`` (float64) are (2,) arrays,
    ``num_frames`` an int.
    """
    return _reading(path, _meta_of)


def read_info(path):
    """The ``info`` group (the scan parameters) as a dict, ``{}`` if absent."""
    return _reading(path, _info_of)


def read_chunk(path, n):
    """Chunk ``n`` as ``dict(indices, data, weights, positions)``; PtydError if incomplete."""
    return _reading(path, lambda f: _chunk_of(f, n))


def read_ptyd(path):
    """Read the whole file into a :class:`PtydContents`.

    Raises
    ------
    PtydError
        If the file is missing or not HDF5, or has no ``chunks`` group, no
        complete chunk, or chunks of different frame shapes.
    """
    return _reading(path, _contents_of)


def _reading(path, read):
    path = Path(path)
    if not path.is_file():
        raise PtydError(f"{path}: no such .ptyd file (hint: check the path and working directory)")
    if not _has_signature(path):
        raise PtydError(f"{path}: not an HDF5 file (expected a .ptyd from ptyscan or ptypy)")
    return _retrying(path, lambda: _read_open(path, read), "read", _READ_RETRY_S)


def _has_signature(path):
    """HDF5's signature at offset 0, 512, 1024, 2048, ... (after a user block)."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            fh.seek(offset)
            head = fh.read(8)
            if head == _SIGNATURE or len(head) < 8:
                return head == _SIGNATURE
            offset = max(512, 2 * offset)


def _read_open(path, read):
    try:  # without locking: a file another process is writing can be read
        f = h5py.File(path, "r", locking=False)
    except (TypeError, ValueError):  # h5py or HDF5 too old for the option
        f = h5py.File(path, "r")
    with f:
        return read(f)


def _retrying(path, action, what, seconds):
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


def _chunks_group(f):
    chunks = f.get("chunks")
    if not isinstance(chunks, h5py.Group):
        layout = "meta, info, chunks/<n>/{data, weights, positions, indices}"
        raise PtydError(f"{f.filename}: no 'chunks' group; expected the .ptyd layout ({layout})")
    return chunks


def _chunk_problem(chunks, name, main):
    """Why ``chunks/<name>`` is not a complete chunk, or None."""
    if not name.isdigit() or str(int(name)) != name:
        return f"chunks/{name}: not a chunk number"
    link = chunks.get(name, getlink=True)
    bare = isinstance(link, h5py.ExternalLink) and os.path.basename(link.filename) == link.filename
    if bare and not (main.parent / link.filename).is_file():  # HDF5 would try the cwd next
        return f"chunks/{name}: part file {link.filename} missing next to {main.name}"
    group = chunks.get(name)
    if not isinstance(group, h5py.Group):
        return f"chunks/{name}: not a group (a dangling external link?)"
    missing = [key for key in _CHUNK_KEYS if not isinstance(group.get(key), h5py.Dataset)]
    if missing:
        return f"chunks/{name}: lacks {', '.join(missing)}"
    shapes = {key: group[key].shape for key in _CHUNK_KEYS}
    n = shapes["indices"][0] if len(shapes["indices"]) == 1 else -1
    data = shapes["data"]
    if (
        len(data) != 3
        or data[0] != n
        or shapes["weights"] != data
        or shapes["positions"] != (n, 2)
    ):
        return f"chunks/{name}: shapes {shapes}; expected n frames in all, weights like data"
    return None


def _valid_ids(f):
    chunks, ids = _chunks_group(f), []
    for name in chunks:
        try:
            problem = _chunk_problem(chunks, name, Path(f.filename))
        except OSError as exc:  # a damaged part file
            problem = f"chunks/{name}: unreadable ({exc})"
        if problem:
            logger.warning("%s: skipping %s", f.filename, problem)
        else:
            ids.append(int(name))
    return sorted(ids)


def _chunk_of(f, n):
    chunks = _chunks_group(f)
    if chunks.get(str(n), getlink=True) is None:
        raise PtydError(f"{f.filename}: no chunks/{n}; complete chunks: {_valid_ids(f)}")
    problem = _chunk_problem(chunks, str(n), Path(f.filename))
    if problem:
        raise PtydError(f"{f.filename}: {problem}")
    return _concatenated([chunks[str(n)]])


def _meta_of(f):
    if "meta" not in f:
        logger.warning("%s: no 'meta' group", f.filename)
        return {}
    return _normalize_meta(read_typed(f["meta"]))


def _info_of(f):
    return read_typed(f["info"]) if "info" in f else {}


def _contents_of(f):
    ids = _valid_ids(f)
    if not ids:
        raise PtydError(
            f"{f.filename}: has no chunks/0 (no complete chunk at all); "
            "was it written by a run that stopped before its first chunk?"
        )
    groups = [f["chunks"][str(n)] for n in ids]
    shapes = sorted({g["data"].shape[1:] for g in groups})
    if len(shapes) > 1:
        raise PtydError(f"{f.filename}: chunks {ids} have frame shapes {shapes}; expected one")
    arrays = _concatenated(groups)
    return PtydContents(meta=_meta_of(f), info=_info_of(f), chunk_ids=tuple(ids), **arrays)


def _concatenated(groups):
    """The chunks' datasets read into preallocated arrays (no second copy)."""
    counts = [g["indices"].shape[0] for g in groups]
    stops = np.cumsum(counts)
    out = {}
    for key in _CHUNK_KEYS:
        dtype = np.result_type(*(g[key].dtype for g in groups))
        out[key] = np.empty((stops[-1], *groups[0][key].shape[1:]), dtype)
        for group, stop, count in zip(groups, stops, counts, strict=True):
            out[key][stop - count : stop] = group[key][()]
    out["indices"] = out["indices"].astype(np.int64, copy=False)
    out["positions"] = out["positions"].astype(np.float64, copy=False)
    return out
