"""HDF5 access shared by :class:`Hdf5Loader` and :class:`Hdf5LoaderFast` (and its workers).

- :class:`H5Files` opens each file once per process (SWMR in live mode).
- :func:`check_datasets` finds every missing file or key at once, before any frame is read.
- :class:`ReadSpec` says what to read for a frame (region of interest, per-frame darks,
  flats and masks) and how to correct it; :func:`read_frames` does it, frame by frame or in
  blocks of consecutive frames with ``read_direct``. Both ways run the same float32
  operations in the same order, so both classes give identical frames.

Compressed data (bitshuffle-LZ4, Blosc, ... as written by Eiger detectors) is decoded by
the HDF5 filter plugins of ``hdf5plugin``, imported here when installed.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import ScanError
from ..io.h5typed import dataset_names
from ..params import closest_name

try:  # registers the Eiger compression filters with HDF5
    import hdf5plugin
except ImportError:  # pragma: no cover - optional dependency
    hdf5plugin = None

__all__ = [
    "FrameSource",
    "H5Files",
    "ReadSpec",
    "axis_shape",
    "axis_values",
    "check_datasets",
    "correct_block",
    "dataset_names",
    "mask_valid",
    "read_frames",
]


class H5Files:
    """Open HDF5 files read-only, each once (per process); ``swmr`` for live files."""

    def __init__(self, *, swmr=False):
        self.swmr = swmr
        self._files: dict[str, h5py.File] = {}
        self._datasets: dict[tuple[str, str], h5py.Dataset] = {}
        self._scratch: dict[str, np.ndarray] = {}

    def file(self, path) -> h5py.File:
        path = os.fspath(path)
        handle = self._files.get(path)
        if handle is None or not handle.id.valid:
            handle = h5py.File(path, "r", swmr=self.swmr)
            self._files[path] = handle
            self._datasets = {k: v for k, v in self._datasets.items() if k[0] != path}
        return handle

    def dataset(self, path, key) -> h5py.Dataset:
        """``file[key]``; its chunk cache holds at least two chunks (a chunk of several
        frames is then decoded once, not once per frame)."""
        handle = self.file(path)
        dset = self._datasets.get((os.fspath(path), key))
        if dset is None:
            dset = handle[key]
            chunks = dset.chunks if isinstance(dset, h5py.Dataset) else None
            nbytes = 2 * int(np.prod(chunks)) * dset.dtype.itemsize if chunks else 0
            _, slots, default, w0 = handle.id.get_access_plist().get_cache()
            if nbytes > default:  # else keep HDF5's cache: a larger one only slows reading
                name = dset.name.encode()
                del dset  # close it: an open dataset keeps its cache
                dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
                dapl.set_chunk_cache(slots, nbytes, w0)
                dset = h5py.Dataset(h5py.h5d.open(handle.id, name, dapl=dapl))
            self._datasets[(os.fspath(path), key)] = dset
        return dset

    def scratch(self, name, shape, dtype) -> np.ndarray:
        """A reusable array ``name`` to read raw frames into (no page faults when reused)."""
        dtype, size = np.dtype(dtype), int(np.prod(shape))
        buf = self._scratch.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._scratch[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def close(self):
        self._datasets.clear()
        for handle in self._files.values():
            if handle.id.valid:
                handle.close()
        self._files.clear()


def _file_key(where):
    """The parameter naming the file of a dataset parameter: ``scan.mask.key`` ->
    ``scan.mask.file``, ``scan.positions.slow_key`` -> ``scan.positions.file``."""
    group, _, _ = where.rpartition(".")
    return f"{group}.file" if group.count(".") else where


def check_datasets(files, refs) -> list[str]:
    """One line per problem with ``refs``: ``[(parameter path, file, key), ...]``.

    Checks that each file exists and is HDF5, that each key is a dataset, and that HDF5
    can decode its compression filters.
    """
    problems, bad_files = [], set()
    for where, path, key in refs:
        if path is None:
            problems.append(f"{where}: no file: set its file (or intensities.file)")
            continue
        if path in bad_files:
            continue
        if not os.path.exists(path):
            problems.append(f"{_file_key(where)}: no such file {os.path.abspath(path)!r}")
            bad_files.add(path)
            continue
        try:
            handle = files.file(path)
        except OSError as exc:
            problems.append(f"{_file_key(where)}: cannot open {path!r} as HDF5 ({exc})")
            bad_files.add(path)
            continue
        obj = handle.get(key)
        if obj is None:
            near = closest_name(key.strip("/"), dataset_names(handle))
            hint = f" (did you mean {near!r}?)" if near else ""
            problems.append(f"{where}: no dataset {key!r} in {path}{hint}")
        elif not isinstance(obj, h5py.Dataset):
            problems.append(f"{where}: {key!r} in {path} is a group, not a dataset")
        else:
            problems += _filter_problems(where, obj, path)
    return problems


def _filter_problems(where, dset, path) -> list[str]:
    """A problem if HDF5 cannot decode the dataset's filters (none registered, and no
    plugin on ``HDF5_PLUGIN_PATH`` loads when one value is read)."""
    plist = dset.id.get_create_plist()
    missing = []
    for k in range(plist.get_nfilters()):
        code, _, _, name = plist.get_filter(k)
        if not h5py.h5z.filter_avail(code):
            missing.append(f"{code} ({name.decode(errors='replace') or 'unknown'})")
    if not missing or dset.size == 0:
        return []
    try:  # HDF5 loads plugins from HDF5_PLUGIN_PATH on first use
        dset[(0,) * dset.ndim]
        return []
    except OSError:
        pass
    hint = "hdf5plugin (pip install hdf5plugin)" if hdf5plugin is None else "a plugin for it"
    return [
        f"{where}: {dset.name} in {path} is compressed with filter {', '.join(missing)} that "
        f"HDF5 cannot decode here; install {hint}"
    ]


def axis_shape(shape, *, index, outer, n_outer, where):
    """Shape of a position axis after outer index, column index and squeeze (no I/O)."""
    shape = tuple(int(s) for s in shape)
    if outer is not None and len(shape) >= 2 and shape[0] == n_outer:
        shape = shape[1:]
    if index is not None:
        if not shape or not (0 <= index < shape[-1]):
            raise ScanError(
                f"Hdf5Loader: {where}_index {index} is out of range for the {where}-axis "
                f"positions of shape {shape}; it picks a column of their last axis"
            )
        shape = shape[:-1]
    if len(shape) > 2:
        shape = tuple(s for s in shape if s != 1)
    return shape


def axis_values(values, *, index, outer, n_outer, where):
    """Apply :func:`axis_shape`'s selection to the position values themselves."""
    arr = np.asarray(values)
    final = axis_shape(arr.shape, index=index, outer=outer, n_outer=n_outer, where=where)
    if outer is not None and arr.ndim >= 2 and arr.shape[0] == n_outer:
        arr = arr[outer]
    if index is not None:
        arr = arr[..., index]
    return np.asarray(arr, np.float64).reshape(final)


def mask_valid(mask, invert):
    """Boolean validity of mask values: > 0 valid, or == 0 valid when ``invert``."""
    return mask == 0 if invert else mask > 0


@dataclass(frozen=True)
class FrameSource:
    """A dataset with one frame per scan point: ``file[key][prefix + lead + region]``."""

    file: str
    key: str
    prefix: tuple[int, ...] = ()


@dataclass(frozen=True)
class ReadSpec:
    """What to read for each frame and how to correct it (picklable, sent to workers).

    ``src`` (rows, columns) of each frame on disk go to ``dst`` of the loaded frame of
    ``shape``; the rest of the loaded frame is zero (padding). 2-D darks and flats are
    already cut to ``src``; per-frame ones are read with the same region.
    """

    data: FrameSource
    src: tuple[slice, slice]
    dst: tuple[slice, slice]
    shape: tuple[int, int]
    dark: FrameSource | None = None
    flat: FrameSource | None = None
    mask: FrameSource | None = None
    mask_invert: bool = False
    dark2d: np.ndarray | None = None
    flat2d: np.ndarray | None = None
    weight2d: np.ndarray | None = None
    swmr: bool = False

    @property
    def per_frame_weights(self) -> bool:
        return self.mask is not None or self.flat is not None


def correct_block(block, *, dark=None, flat=None, scale=None, clip=True):
    """Correct frames in place: ``max((raw − dark) / flat · scale, 0)`` in float32.

    With positive flats and scales this is the dark subtraction clipped at 0, then the
    flat division and the normalisation; the clip also removes any negative raw value.
    ``clip=False`` skips it where nothing can be negative (unsigned counts, no dark).

    Parameters
    ----------
    block : (n, h, w) float32 array (a view is fine)
    dark, flat : (n or 1, h, w) or (h, w) float32 arrays, optional
        Pixels where ``flat <= 0`` become 0.
    scale : (n,) float32 array, optional
        Normalisation factor of each frame.
    """
    if dark is not None:
        block -= dark
    if flat is not None:
        good = flat > 0
        block /= np.where(good, flat, np.float32(1))
        block *= good
    if scale is not None:
        block *= scale[:, None, None]
    if clip or dark is not None:
        np.maximum(block, 0, out=block)


def _runs(leads, block):
    """Split consecutive frames into runs (start row, stop row) readable in one hyperslab."""
    if not block or len(leads) < 2:
        return [(k, k + 1) for k in range(len(leads))]
    arr = np.asarray(leads)
    step = np.diff(arr, axis=0)
    joined = (step[:, -1] == 1) & np.all(step[:, :-1] == 0, axis=1)
    cuts = np.flatnonzero(~joined) + 1
    edges = [0, *cuts.tolist(), len(leads)]
    return list(itertools.pairwise(edges))


def _read(dset, source, lead, n, region, out=None):
    """Read ``n`` consecutive frames from ``lead`` (region only) as a raw (n, h, w) array.

    Frame by frame (``out`` None) with h5py indexing, else with ``read_direct`` into ``out``.
    """
    sel = (*source.prefix, *lead[:-1], slice(lead[-1], lead[-1] + n), *region)
    if out is None:
        return np.asarray(dset[sel])
    dset.read_direct(out, sel)
    return out


def read_frames(files, spec, leads, out, *, weights=None, scales=None, block=False):
    """Fill ``out`` with corrected frames of the scan points at ``leads``.

    Parameters
    ----------
    files : H5Files
    spec : ReadSpec
    leads : sequence of tuple of int
        Index of each frame in the frames dataset (without the frame axes).
    out : (n, h, w) float32 array, zero outside ``spec.dst``
    weights : (n, h, w) float32 array, optional
        Filled when the spec has per-frame masks or flats.
    scales : (n,) float32 array, optional
        Normalisation factor of each frame.
    block : bool
        Read runs of consecutive frames with one ``read_direct`` each (else frame by frame).
    """
    leads = [tuple(int(i) for i in lead) for lead in leads]
    handles = {}
    for name in ("data", "dark", "flat", "mask"):
        source = getattr(spec, name)
        if source is not None:
            handles[name] = files.dataset(source.file, source.key)
            if spec.swmr:
                handles[name].refresh()
    rows, cols = spec.dst
    # unsigned counts stay >= 0 unless a dark is subtracted or a scale is negative
    clip = handles["data"].dtype.kind not in "ub" or (scales is not None and np.any(scales < 0))
    for a, b in _runs(leads, block):
        n = b - a

        def read(name, dtype=np.float32, n=n, a=a):
            dset, hw = handles[name], (rows.stop - rows.start, cols.stop - cols.start)
            buf = files.scratch(name, (n, *hw), dset.dtype) if block else None
            raw = _read(dset, getattr(spec, name), leads[a], n, spec.src, buf)
            raw = raw.reshape(n, *raw.shape[-2:])
            return raw if dtype is None else raw.astype(dtype, copy=False)

        region = out[a:b, rows, cols]
        np.copyto(region, read("data", dtype=None).reshape(region.shape), casting="unsafe")
        dark = read("dark") if "dark" in handles else spec.dark2d
        flat = read("flat") if "flat" in handles else spec.flat2d
        scale = None if scales is None else scales[a:b]
        correct_block(region, dark=dark, flat=flat, scale=scale, clip=clip)
        if weights is not None:
            weights[a:b] = 1 if spec.weight2d is None else spec.weight2d
            valid = weights[a:b, rows, cols]
            if "mask" in handles:
                valid *= mask_valid(read("mask", dtype=None), spec.mask_invert)
            if "flat" in handles:
                valid *= flat > 0
