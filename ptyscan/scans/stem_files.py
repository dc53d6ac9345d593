"""Which reader a :class:`StemScan` uses for ``meas_source`` / ``meas_params``, and the
readers of the formats behind optional extras: TIFF (``tifffile``, the ``io`` extra) and
Zarr 3 (``zarr``, the ``zarr`` extra).

A TIFF whose frames lie contiguous and uncompressed is read like an EMPAD ``.raw``
(file reads of the frames asked for); one whose pages are compressed or scattered is
read page by page; anything else (tiles spanning frames) is read whole. A Zarr array is
read by slabs of consecutive frames, its own chunks decompressed as needed: nothing
reads the whole scan.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ScanError, closest_name
from .stem_sources import (
    EMPAD_GAP_BYTES,
    ArraySource,
    BinarySource,
    H5Source,
    SelectedSource,
    mat_source,
    npy_source,
    raw_source,
    slab_runs,
)

__all__ = ["FILE_TYPES", "open_source", "tiff_source", "zarr_source"]

FILE_TYPES = {
    ".raw": "raw",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".npy": "npy",
    ".tif": "tif",
    ".tiff": "tif",
    ".mat": "mat",
    ".zarr": "zarr",
}


class TiffPageSource:
    """A TIFF series whose pages are the frames, read page by page (compressed pages)."""

    def __init__(self, tif, series, *, what):
        self.tif, self.pages, self.what = tif, series.pages, what
        self.shape = tuple(int(s) for s in series.shape)

    def read(self, leads):
        leads = np.asarray(leads, np.int64).reshape(len(leads), -1)
        flat = np.ravel_multi_index(tuple(leads.T), self.shape[:-2])
        out = np.empty((len(flat), *self.shape[-2:]), np.float32)
        for row, page in enumerate(flat):
            out[row] = self.pages[int(page)].asarray()
        return out

    def close(self):
        self.tif.close()


def tiff_source(path, where):
    """The first series of a TIFF file: (N, ky, kx) or (Ry, Rx, ky, kx) frames."""
    try:
        import tifffile
    except ImportError:
        raise ScanError(
            f"{where}.path: reading {path} needs tifffile: pip install 'ptyscan[io]'"
        ) from None
    tif = tifffile.TiffFile(path)
    series = tif.series[0]
    shape = tuple(int(s) for s in series.shape)
    if len(shape) not in (3, 4):
        tif.close()
        raise ScanError(
            f"{where}.path: {path} holds an image series of shape {shape}; expected a "
            "multi-page stack (N, ky, kx) or (Ry, Rx, ky, kx) of frames"
        )
    if series.dataoffset is not None:  # contiguous and uncompressed: plain file reads
        dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
        tif.close()
        return BinarySource(path, shape=shape, dtype=dtype, offset=series.dataoffset, gap=0)
    keyframe = series.keyframe
    if len(series.pages) == int(np.prod(shape[:-2])) and tuple(keyframe.shape) == shape[-2:]:
        return TiffPageSource(tif, series, what=path)
    array = series.asarray()  # frames that span pages or tiles: no per-frame access
    tif.close()
    return ArraySource(array, what=path)


class ZarrSource:
    """Frames of a Zarr array, read by slabs of frames consecutive in the store."""

    def __init__(self, array, *, what):
        self.array, self.what = array, what
        self.shape = tuple(int(s) for s in array.shape)

    def read(self, leads):
        leads = np.asarray(leads, np.int64).reshape(len(leads), -1)
        out = np.empty((len(leads), *self.shape[-2:]), np.float32)
        for start, stop, sel in slab_runs(leads):
            out[start:stop] = self.array[sel]
        return out

    def close(self):
        self.array = None


def zarr_source(path, key, *, zarr_kwargs=None, where):
    """The frames of a Zarr (v2 or v3) store: the array itself, or ``key`` in a group
    (None: the only 3-D or 4-D array there). ``zarr_kwargs`` go to ``zarr.open``."""
    try:
        import zarr
    except ImportError:
        raise ScanError(
            f"{where}.path: reading {path} needs zarr 3: pip install 'ptyscan[zarr]'"
        ) from None
    try:
        node = zarr.open(path, mode="r", **(zarr_kwargs or {}))
    except TypeError as exc:
        raise ScanError(
            f"{where}.zarr_kwargs: got {sorted(zarr_kwargs or {})}; zarr.open refused them "
            f"({exc}); expected its keyword arguments (key selects the array)"
        ) from None
    except (FileNotFoundError, ValueError) as exc:
        raise ScanError(f"{where}.path: {path} is not a Zarr store ({exc})") from None
    if isinstance(node, zarr.Array):
        if key not in (None, "", "/"):
            raise ScanError(
                f"{where}.key: got {key!r}; {path} is a single array of shape {node.shape}, "
                "not a group: expected key None"
            )
        return ZarrSource(node, what=path)
    arrays = {n: a for n, a in node.members(max_depth=None) if isinstance(a, zarr.Array)}
    names = sorted(arrays)
    if key is None:
        frames = [n for n in names if arrays[n].ndim in (3, 4)]
        if len(frames) != 1:
            raise ScanError(
                f"{where}.key: got None; expected the array of frames in {path} "
                f"(3-D or 4-D arrays there: {', '.join(frames) or 'none'})"
            )
        key = frames[0]
    name = str(key).strip("/")
    if name not in arrays:
        near = closest_name(name, names)
        hint = f" (did you mean {near!r}?)" if near else ""
        raise ScanError(
            f"{where}.key: got {key!r}; no array of that name in {path}{hint}; "
            f"arrays there: {', '.join(names) or 'none'}"
        )
    return ZarrSource(arrays[name], what=f"{path}:{name}")


def open_source(meas_source, meas_params, *, default_shape, where="scan.meas_params"):
    """Open PtyRAD's ``meas_source`` with ``meas_params`` (path, key, shape, offset, gap,
    selection, zarr_kwargs).

    ``meas_source`` 'file' (or None) infers the type from the extension; 'custom' takes the
    array in ``meas_params['array']`` (or ``meas_params`` itself). ``selection`` applies
    to any of them.
    """
    params = meas_params if isinstance(meas_params, dict) else {"array": meas_params}
    source = _open(meas_source, params, default_shape=default_shape, where=where)
    selection = params.get("selection")
    if selection is not None:
        source = SelectedSource(source, selection, where=f"{where}.selection")
    return source


def _open(meas_source, meas_params, *, default_shape, where):
    if meas_source == "custom":
        array = np.asarray(meas_params.get("array"))
        if array.ndim not in (3, 4) or not np.issubdtype(array.dtype, np.number):
            raise ScanError(
                f"{where}: got an array of shape {array.shape} ({array.dtype}); expected a "
                "numeric (N, ky, kx) or (Ry, Rx, ky, kx) array for meas_source 'custom'"
            )
        return ArraySource(array, what="custom array")
    path = os.fspath(meas_params["path"])
    if not os.path.exists(path):
        raise ScanError(f"{where}.path: no such file {path!r}")
    kind = FILE_TYPES.get(os.path.splitext(path.rstrip("/"))[1].lower())
    if meas_source not in (None, "file"):  # an explicit type wins over the extension
        kind = {"h5": "hdf5", "tiff": "tif"}.get(meas_source, meas_source)
    key = meas_params.get("key")
    if kind == "raw":
        shape = meas_params.get("shape") or default_shape
        if shape is None:
            raise ScanError(
                f"{where}.shape: got None; expected (N, ky, kx) of the .raw file "
                "(or set meas_Npix and pos_N_scans or pos_N_scan_slow and pos_N_scan_fast)"
            )
        offset = int(meas_params.get("offset") or 0)
        gap = meas_params.get("gap")
        gap = EMPAD_GAP_BYTES if gap is None else int(gap)
        return raw_source(path, shape=shape, offset=offset, gap=gap, where=where)
    if kind == "hdf5":
        return H5Source(path, key, where=where)
    if kind == "npy":
        return npy_source(path)
    if kind == "tif":
        return tiff_source(path, where)
    if kind == "mat":
        return mat_source(path, key, where)
    if kind == "zarr":
        return zarr_source(path, key, zarr_kwargs=meas_params.get("zarr_kwargs"), where=where)
    raise ScanError(
        f"{where}.path: cannot tell the type of {path!r}; expected one of "
        f"{', '.join(FILE_TYPES)} or meas_source raw/hdf5/npy/tif/mat/zarr"
    )
