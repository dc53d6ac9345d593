"""Fast, standard writing of frame stacks into chunked HDF5 datasets.

The datasets are ordinary HDF5 (one frame per HDF5 chunk, byte shuffle then
deflate or lzf, as h5py would make them), so any HDF5 reader, ptypy included,
reads them. Two things make writing faster than ``create_dataset(data=...)``:

- **gzip in parallel**: each frame is shuffled and deflated by :mod:`zlib` in a
  thread pool (zlib releases the GIL) and stored with ``write_direct_chunk``,
  instead of HDF5 compressing frame after frame on one core;
- **uniform stacks cost nothing**: a stack whose values are all equal (the usual
  all-ones weights) becomes a dataset whose *fill value* is that number and no
  chunk is ever written; HDF5 returns the fill value for unwritten chunks. A
  stack of one repeated frame (a shared mask) is compressed once.
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["GZIP_LEVEL", "create_frames_dataset"]

GZIP_LEVEL = 4
"""Deflate level (h5py's default; ptypy's files use the same)."""


def _filters(shape, compression):
    options = {"chunks": (1, *shape[1:])}
    if compression is not None:
        options.update(compression=compression, shuffle=True)
        if compression == "gzip":
            options["compression_opts"] = GZIP_LEVEL
    return options


def _uniform_value(stack):
    """The single value of a stack whose elements are all equal, else None."""
    if stack.size == 0:
        return None
    frame = stack[0] if stack.strides[0] == 0 else stack
    first = frame.flat[0]
    if stack.dtype.kind == "f" and np.isnan(first):
        return None
    if np.any(frame[(0,) * (frame.ndim - 1)] != first):  # cheap early exit on one row
        return None
    return first if np.all(frame == first) else None


def _deflate(frame, itemsize):
    shuffled = np.ascontiguousarray(frame).view(np.uint8).reshape(-1, itemsize).T
    return zlib.compress(np.ascontiguousarray(shuffled), GZIP_LEVEL)


def create_frames_dataset(group, name, stack, *, compression, threads=1):
    """Create ``group[name]`` (None: an anonymous dataset) holding ``stack``.

    Parameters
    ----------
    group : h5py.Group or h5py.File
    name : str or None
    stack : (n, ny, nx) ndarray
        Frames; a zero-stride (broadcast) stack is recognised as one repeated frame.
    compression : {'gzip', 'lzf', None}
    threads : int
        Threads for gzip compression.

    Returns
    -------
    h5py.Dataset
    """
    stack = np.asarray(stack)
    options = _filters(stack.shape, compression)
    value = _uniform_value(stack)
    if value is not None:
        return group.create_dataset(
            name, shape=stack.shape, dtype=stack.dtype, fillvalue=value, **options
        )
    if compression != "gzip":
        return group.create_dataset(name, data=np.ascontiguousarray(stack), **options)
    dset = group.create_dataset(name, shape=stack.shape, dtype=stack.dtype, **options)
    itemsize = stack.dtype.itemsize
    if stack.strides[0] == 0:
        blobs = [_deflate(stack[0], itemsize)] * len(stack)
    elif threads > 1 and len(stack) > 1:
        with ThreadPoolExecutor(threads) as pool:
            blobs = list(pool.map(lambda frame: _deflate(frame, itemsize), stack))
    else:
        blobs = [_deflate(frame, itemsize) for frame in stack]
    for row, blob in enumerate(blobs):
        dset.id.write_direct_chunk((row, 0, 0), blob)
    return dset
