"""Where a :class:`StemScan` reads its diffraction patterns: PtyRAD's ``meas_source`` types
(:mod:`.stem_files` picks one; TIFF and Zarr live there too).

Each source has ``shape`` (the array as stored: ``(N, ky, kx)`` or ``(Ry, Rx, ky, kx)``)
and ``read(leads)``: the frames at ``leads`` (``(n, ndim − 2)`` int indices of the scan
axes) as ``(n, ky, kx)`` float32. Nothing reads the whole array: EMPAD ``.raw`` and
``.npy`` files are read frame by frame with file reads (runs of consecutive frames at
once, nothing memory-mapped), HDF5 datasets (and MATLAB v7.3 files, HDF5 with MATLAB's
axes reversed) frame by frame; only MATLAB files older than v7.3 (``scipy.io.loadmat``)
and ``custom`` arrays are held whole. :class:`SelectedSource` applies PtyRAD's
``meas_params.selection`` to any of them at read time.

EMPAD-1 ``.raw``: float32 frames of 128×128 pixels, each followed by 2 rows (1024 bytes)
of metadata: ``meas_params`` ``{path, shape: (N, 128, 128), offset: 0, gap: 1024}``.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..errors import ScanError, closest_name, short_repr
from .hdf5_io import dataset_names

__all__ = [
    "EMPAD_GAP_BYTES",
    "ArraySource",
    "BinarySource",
    "H5Source",
    "SelectedSource",
    "mat_source",
    "npy_source",
    "raw_source",
    "slab_runs",
]

EMPAD_GAP_BYTES = 1024
"""Metadata after each EMPAD-1 frame: 2 rows of 128 float32."""


def slab_runs(leads):
    """``(start, stop, selection)`` of each run of ``leads`` (``(n, ndim − 2)`` scan
    indices) that are consecutive along the last scan axis: one slab read each."""
    start = 0
    while start < len(leads):
        stop = start + 1
        while (
            stop < len(leads)
            and np.array_equal(leads[stop, :-1], leads[start, :-1])
            and leads[stop, -1] == leads[stop - 1, -1] + 1
        ):
            stop += 1
        lead = leads[start]
        first = int(lead[-1])
        yield start, stop, (*lead[:-1].tolist(), slice(first, first + stop - start))
        start = stop


class ArraySource:
    """Frames of an array in memory or memory-mapped (npy, raw, custom, old .mat)."""

    def __init__(self, array, *, what):
        self.array = array
        self.what = what
        self.shape = tuple(int(s) for s in array.shape)

    def read(self, leads):
        leads = np.asarray(leads, np.int64).reshape(len(leads), -1)
        out = self.array[tuple(leads.T)]
        return np.asarray(out, np.float32)

    def close(self):
        self.array = None


class H5Source:
    """Frames of an HDF5 dataset (also MATLAB v7.3), read frame by frame (runs in one read)."""

    def __init__(self, path, key, *, where, reverse=False):
        self.reverse = reverse
        self.file = h5py.File(path, "r")
        if key is None:
            names = [n for n in dataset_names(self.file) if self.file[n].ndim in (3, 4)]
            if len(names) != 1:
                self.file.close()
                raise ScanError(
                    f"{where}.key: got None; expected the dataset of frames in {path} "
                    f"(3-D or 4-D datasets there: {', '.join(names) or 'none'})"
                )
            key = names[0]
        obj = self.file.get(key)
        if not isinstance(obj, h5py.Dataset):
            names = dataset_names(self.file)
            near = closest_name(str(key).strip("/"), names)
            hint = f" (did you mean {near!r}?)" if near else ""
            self.file.close()
            raise ScanError(
                f"{where}.key: got {key!r}; no dataset of that name in {path}{hint}; "
                f"datasets there: {', '.join(names) or 'none'}"
            )
        self.dset = obj
        self.what = f"{path}:{key}"
        shape = tuple(int(s) for s in obj.shape)
        self.shape = shape[::-1] if reverse else shape

    def read(self, leads):
        leads = np.asarray(leads, np.int64).reshape(len(leads), -1)
        out = np.empty((len(leads), *self.shape[-2:]), np.float32)
        if self.reverse:  # MATLAB's column-major array: each frame is a strided hyperslab
            for row, lead in enumerate(leads):
                out[row] = self.dset[(slice(None), slice(None), *lead[::-1].tolist())].T
            return out
        for start, stop, sel in slab_runs(leads):
            self.dset.read_direct(out, np.s_[sel], np.s_[start:stop])
        return out

    def close(self):
        if self.file.id.valid:
            self.file.close()


class BinarySource:
    """Frames stored one after another in a binary file: ``offset`` bytes, then per frame
    ``ky·kx`` values of ``dtype`` and ``gap`` bytes (EMPAD .raw; .npy with gap 0). Runs of
    consecutive frames are read with one ``readinto`` each: nothing is memory-mapped, so
    the memory used is the frames asked for."""

    def __init__(self, path, *, shape, dtype, offset, gap):
        self.path, self.dtype = os.fspath(path), np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.offset, self.gap = int(offset), int(gap)
        self.what = self.path
        self._file = None

    @property
    def frame_bytes(self):
        return self.shape[-2] * self.shape[-1] * self.dtype.itemsize

    def read(self, leads):
        leads = np.asarray(leads, np.int64).reshape(len(leads), -1)
        flat = np.ravel_multi_index(tuple(leads.T), self.shape[:-2])
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open, closed by close()
        record = self.frame_bytes + self.gap
        out = np.empty((len(flat), *self.shape[-2:]), np.float32)
        for start, stop, (run,) in slab_runs(flat[:, None]):
            buf = np.empty((stop - start) * record, np.uint8)
            self._file.seek(self.offset + run.start * record)
            if self._file.readinto(buf) != buf.size:
                raise ScanError(f"{self.path}: the file ended before frame {run.stop - 1}")
            frames = buf.reshape(stop - start, record)[:, : self.frame_bytes]
            out[start:stop] = frames.copy().view(self.dtype).reshape(-1, *self.shape[-2:])
        return out

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self):  # a scan stopped by an error never reaches EOS
        self.close()


def raw_source(path, *, shape, offset, gap, where):
    """An EMPAD ``.raw`` file of float32 frames ``shape`` with ``gap`` bytes after each frame
    and ``offset`` bytes before the first; its size must match exactly."""
    *lead, ky, kx = (int(s) for s in shape)
    frame_bytes = ky * kx * 4
    if gap % 4:
        raise ScanError(f"{where}.gap: got {gap}; expected a multiple of 4 bytes (float32)")
    n = int(np.prod(lead))
    expected = offset + n * (frame_bytes + gap)
    actual = os.path.getsize(path)
    if actual != expected:
        raise ScanError(
            f"{where}: {path} has {actual} bytes; expected {expected} = offset {offset} + "
            f"{n} frames × ({ky}×{kx}×4 + gap {gap}) bytes: check meas_params.shape "
            "(N, ky, kx), offset and gap (EMPAD-1: gap 1024)"
        )
    return BinarySource(path, shape=shape, dtype="<f4", offset=offset, gap=gap)


def npy_source(path):
    """A C-ordered ``.npy`` file read frame by frame (others memory-mapped)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if fortran or dtype.hasobject or len(shape) < 3:
        return ArraySource(np.load(path, mmap_mode="r"), what=path)
    return BinarySource(path, shape=shape, dtype=dtype, offset=offset, gap=0)


def mat_source(path, key, where):
    from scipy.io import loadmat
    from scipy.io.matlab import matfile_version

    if h5py.is_hdf5(path):  # v7.3 is HDF5 of MATLAB's column-major array: axes reversed
        return H5Source(path, key, where=where, reverse=True)
    try:
        matfile_version(path)
    except ValueError as exc:
        raise ScanError(f"{where}.path: {path} is not a MATLAB file ({exc})") from None
    contents = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    if key not in contents:
        raise ScanError(
            f"{where}.key: got {key!r}; no variable of that name in {path}; variables "
            f"there: {', '.join(sorted(contents)) or 'none'}"
        )
    return ArraySource(np.asarray(contents[key]), what=f"{path}:{key}")


class SelectedSource:
    """PtyRAD's ``meas_params.selection`` on another source, applied as frames are read:
    per stored axis None (all), an index (the axis goes) or ``[start, stop]`` /
    ``[start, stop, step]`` (NumPy slicing); missing trailing axes are kept whole."""

    def __init__(self, base, selection, *, where="scan.meas_params.selection"):
        self.base, self.what = base, base.what
        shape = base.shape
        if len(selection) > len(shape):
            raise ScanError(
                f"{where}: got {short_repr(selection)}; expected at most one entry per axis "
                f"of the stored array {shape}"
            )
        maps = []
        items = [*selection, *[None] * (len(shape) - len(selection))]
        for axis, (item, n) in enumerate(zip(items, shape, strict=True)):
            index = np.arange(n)
            try:
                picked = (
                    index
                    if item is None
                    else index[item if isinstance(item, int) else slice(*item)]
                )
            except IndexError:
                picked = np.empty(0, np.int64)
            if np.size(picked) == 0:
                raise ScanError(
                    f"{where}[{axis}]: got {short_repr(item)}; selects nothing of the {n} "
                    f"entries of axis {axis} of the stored array {shape}"
                )
            maps.append(int(picked) if np.ndim(picked) == 0 else picked)
        if any(isinstance(m, int) for m in maps[-2:]):
            raise ScanError(
                f"{where}: got {short_repr(selection)}; an index on a detector axis drops it: "
                "expected [start, stop] or None for the last two axes"
            )
        self.scan_maps, self.detector = maps[:-2], tuple(maps[-2:])
        self.shape = tuple(len(m) for m in maps if not isinstance(m, int))
        if len(self.shape) not in (3, 4):
            raise ScanError(
                f"{where}: got {short_repr(selection)}; leaves shape {self.shape} of the stored "
                f"{shape}; expected (N, ky, kx) or (Ry, Rx, ky, kx)"
            )

    def read(self, leads):
        leads = np.asarray(leads, np.int64).reshape(len(leads), -1)
        columns, axis = [], 0
        for m in self.scan_maps:
            if isinstance(m, int):
                columns.append(np.full(len(leads), m, np.int64))
            else:
                columns.append(m[leads[:, axis]])
                axis += 1
        frames = self.base.read(np.stack(columns, axis=1))
        rows, cols = self.detector
        return np.ascontiguousarray(frames[:, rows[:, None], cols[None, :]])

    def close(self):
        self.base.close()
