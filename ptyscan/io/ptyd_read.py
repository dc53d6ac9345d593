"""Read ``.ptyd`` prepared-data files, ours or ptypy's (layout: :mod:`ptyscan.io.ptyd_format`).

Every reader is safe to call while a writer appends: files are opened without
locking, a chunk that is not yet complete is left out (with a logged warning),
and a read that meets a writer's metadata flush is retried briefly.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import PtydError
from .h5typed import read_typed
from .ptyd_format import CHUNK_KEYS, READ_RETRY_S, normalize_meta, retrying

__all__ = [
    "PtydContents",
    "describe_ptyd",
    "ptyd_chunk_ids",
    "ptyd_chunk_sizes",
    "read_chunk",
    "read_info",
    "read_meta",
    "read_ptyd",
]

logger = logging.getLogger(__name__)

_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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
    return retrying(path, lambda: _read_open(path, read), "read", READ_RETRY_S)


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
    missing = [key for key in CHUNK_KEYS if not isinstance(group.get(key), h5py.Dataset)]
    if missing:
        return f"chunks/{name}: lacks {', '.join(missing)}"
    shapes = {key: group[key].shape for key in CHUNK_KEYS}
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
    return normalize_meta(read_typed(f["meta"]))


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
    for key in CHUNK_KEYS:
        dtype = np.result_type(*(g[key].dtype for g in groups))
        out[key] = np.empty((stops[-1], *groups[0][key].shape[1:]), dtype)
        for group, stop, count in zip(groups, stops, counts, strict=True):
            out[key][stop - count : stop] = group[key][()]
    out["indices"] = out["indices"].astype(np.int64, copy=False)
    out["positions"] = out["positions"].astype(np.float64, copy=False)
    return out
