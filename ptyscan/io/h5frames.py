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
from dataclasses import dataclass

import numpy as np

__all__ = ["GZIP_LEVEL", "Deflated", "create_frames_dataset", "deflate_frames", "uniform_value"]

GZIP_LEVEL = 4
"""Deflate level (h5py's default; ptypy's files use the same)."""


def _filters(shape, compression):
    options = {"chunks": (1, *shape[1:])}
    if compression is not None:
        options.update(compression=compression, shuffle=True)
        if compression == "gzip":
            options["compression_opts"] = GZIP_LEVEL
    return options


def uniform_value(stack):
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


def deflate_frames(stack, *, threads=1) -> list[bytes]:
    """Each frame of ``stack`` shuffled and deflated as HDF5 stores it (one blob per frame)."""
    stack = np.asarray(stack)
    itemsize = stack.dtype.itemsize
    if stack.strides[0] == 0 and len(stack):
        return [_deflate(stack[0], itemsize)] * len(stack)
    if threads > 1 and len(stack) > 1:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda frame: _deflate(frame, itemsize), stack))
    return [_deflate(frame, itemsize) for frame in stack]


@dataclass(frozen=True, eq=False)
class Deflated:
    """A frame stack already deflated (e.g. by the MPI ranks that hold the frames).

    Attributes
    ----------
    shape : (n, ny, nx) tuple
    dtype : numpy.dtype
    blobs : list of bytes
        One :func:`deflate_frames` blob per frame, in order.
    """

    shape: tuple
    dtype: np.dtype
    blobs: list

    @property
    def ndim(self) -> int:
        return len(self.shape)


def create_frames_dataset(group, name, stack, *, compression, threads=1):
    """Create ``group[name]`` (None: an anonymous dataset) holding ``stack``.

    Parameters
    ----------
    group : h5py.Group or h5py.File
    name : str or None
    stack : (n, ny, nx) ndarray or Deflated
        Frames; a zero-stride (broadcast) stack is recognised as one repeated frame;
        a :class:`Deflated` stack is stored as gzip without compressing again.
    compression : {'gzip', 'lzf', None}
    threads : int
        Threads for gzip compression.

    Returns
    -------
    h5py.Dataset
    """
    if isinstance(stack, Deflated):
        dset = group.create_dataset(
            name, shape=stack.shape, dtype=stack.dtype, **_filters(stack.shape, "gzip")
        )
        blobs = stack.blobs
    else:
        stack = np.asarray(stack)
        options = _filters(stack.shape, compression)
        value = uniform_value(stack)
        if value is not None:
            return group.create_dataset(
                name, shape=stack.shape, dtype=stack.dtype, fillvalue=value, **options
            )
        if compression != "gzip":
            return group.create_dataset(name, data=np.ascontiguousarray(stack), **options)
        dset = group.create_dataset(name, shape=stack.shape, dtype=stack.dtype, **options)
        blobs = deflate_frames(stack, threads=threads)
    for row, blob in enumerate(blobs):
        dset.id.write_direct_chunk((row, 0, 0), blob)
    return dset
