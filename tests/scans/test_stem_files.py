"""StemScan's file readers: Zarr 3 (the zarr extra), TIFF stacks (the io extra) and
``meas_params.selection``; each gives the frames of the same array held in memory, and
reads no more frames at once than a chunk (or a statistics block) asks for."""

import sys

import h5py
import numpy as np
import pytest
from _helpers import drain

from ptyscan.errors import PtyScanError, RecipeError
from ptyscan.parallel import SerialComm
from ptyscan.scans import stem as stem_module
from ptyscan.scans.stem import StemScan
from ptyscan.scans.stem_files import open_source

COMMON = {
    "meas_calibration": {"mode": "dx", "value": 0.3},
    "seed": 1,
    "pos_scan_rand_std": 0,
    "pos_scan_step_size": 0.5,
    "probe_kv": 300.0,
    "probe_conv_angle": 20.0,
}
PER_CHUNK = 4


def _four_d(shape=(4, 5, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[-2], : shape[-1]]
    disk = (np.hypot(y - shape[-2] / 2, x - shape[-1] / 2) < 5).astype(np.float32) * 50
    return (disk + rng.normal(1.0, 2.0, shape)).astype(np.float32)


def _prepared(pars):
    chunks = drain(StemScan({**COMMON, **pars}, comm=SerialComm()), PER_CHUNK)
    return np.concatenate([c.data for c in chunks]), np.concatenate([c.positions for c in chunks])


@pytest.fixture
def read_sizes(monkeypatch):
    """Frames per read of every source opened by StemScan; the statistics pass reads
    blocks of 3 frames (PASS_BYTES shrunk), the chunks PER_CHUNK frames."""
    sizes = []

    def spying(*args, **kwargs):
        source = open_source(*args, **kwargs)
        read = source.read

        def counted(leads):
            sizes.append(len(leads))
            return read(leads)

        source.read = counted
        return source

    monkeypatch.setattr(stem_module, "open_source", spying)
    monkeypatch.setattr(stem_module, "PASS_BYTES", 3 * 16 * 16 * 4)
    return sizes


def _same_as_memory(arr, pars, read_sizes, **grid):
    reference = _prepared({"meas_source": "custom", "meas_params": arr, **grid})
    read_sizes.clear()
    got = _prepared({**pars, **grid})
    np.testing.assert_array_equal(got[0], reference[0])
    np.testing.assert_array_equal(got[1], reference[1])
    assert read_sizes and max(read_sizes) <= PER_CHUNK < arr.size // arr.shape[-1] // arr.shape[-2]


def test_zarr_group_4d_and_3d_arrays_read_per_chunk(tmp_path, read_sizes):
    zarr = pytest.importorskip("zarr", minversion="3")
    arr = _four_d()
    group = zarr.open_group(tmp_path / "scan.zarr", mode="w")
    group.create_array("entry/data4", shape=arr.shape, chunks=(1, 2, 16, 16), dtype="f4")[:] = arr
    flat = group.create_array("entry/data3", shape=(20, 16, 16), chunks=(3, 16, 16), dtype="<u2")
    counts = np.clip(np.rint(arr), 0, None).astype(np.uint16)
    flat[:] = counts.reshape(20, 16, 16)
    path = str(tmp_path / "scan.zarr")
    _same_as_memory(arr, {"meas_params": {"path": path, "key": "/entry/data4"}}, read_sizes)
    _same_as_memory(
        counts.astype(np.float32),
        {"meas_source": "zarr", "meas_params": {"path": path, "key": "entry/data3"}},
        read_sizes,
        pos_N_scan_slow=4,
        pos_N_scan_fast=5,
    )


def test_zarr_single_array_store_and_v2_format(tmp_path, read_sizes):
    zarr = pytest.importorskip("zarr", minversion="3")
    arr = _four_d(seed=2)
    store = zarr.create_array(
        tmp_path / "v2.zarr", shape=arr.shape, chunks=(2, 2, 8, 8), dtype="f4", zarr_format=2
    )
    store[:] = arr
    pars = {"meas_params": {"path": str(tmp_path / "v2.zarr"), "zarr_kwargs": {"zarr_format": 2}}}
    _same_as_memory(arr, pars, read_sizes)


def test_zarr_wrong_key_lists_the_arrays(tmp_path):
    zarr = pytest.importorskip("zarr", minversion="3")
    group = zarr.open_group(tmp_path / "s.zarr", mode="w")
    group.create_array("entry/frames", shape=(4, 8, 8), dtype="f4")
    group.create_array("entry/dark", shape=(8, 8), dtype="f4")
    path = str(tmp_path / "s.zarr")
    scan = StemScan(meas_params={"path": path, "key": "entry/frame"}, **COMMON)
    with pytest.raises(
        PtyScanError,
        match=r"scan\.meas_params\.key: got 'entry/frame'; no array of that name in .*s\.zarr "
        r"\(did you mean 'entry/frames'\?\); arrays there: entry/dark, entry/frames",
    ):
        scan.initialize()
    bad = StemScan(meas_params={"path": path, "zarr_kwargs": {"no_such_option": 1}}, **COMMON)
    with pytest.raises(PtyScanError, match=r"scan\.meas_params\.zarr_kwargs: got \['no_such"):
        bad.initialize()
    with pytest.raises(RecipeError, match=r"meas_params\.zarr_kwargs.*must not set mode"):
        StemScan(meas_params={"path": path, "zarr_kwargs": {"mode": "w"}})


def test_zarr_missing_is_a_named_error(tmp_path, monkeypatch):
    (tmp_path / "s.zarr").mkdir()
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr raises ImportError
    scan = StemScan(meas_params={"path": str(tmp_path / "s.zarr")}, **COMMON)
    with pytest.raises(PtyScanError, match=r"meas_params\.path: .* needs zarr 3: pip install"):
        scan.initialize()


@pytest.mark.parametrize(
    "layout", ["stack3d", "shaped4d", "zlib4d", "pages3d", "bigendian3d"], ids=str
)
def test_tiff_stacks_read_per_chunk(tmp_path, read_sizes, layout):
    """A multi-page TIFF: contiguous (file reads), compressed or written page by page
    (read a page at a time), 3-D (N, ky, kx) or 4-D (Ry, Rx, ky, kx)."""
    tifffile = pytest.importorskip("tifffile")
    arr = _four_d(seed=3)
    flat = arr.reshape(20, 16, 16)
    path = tmp_path / "scan.tif"
    grid = {}
    if layout == "shaped4d":
        tifffile.imwrite(path, arr, photometric="minisblack")
    elif layout == "zlib4d":
        tifffile.imwrite(path, arr, photometric="minisblack", compression="zlib")
    elif layout == "pages3d":
        with tifffile.TiffWriter(path) as tif:
            for frame in flat:
                tif.write(frame, photometric="minisblack", metadata=None)
    elif layout == "bigendian3d":
        arr = np.clip(np.rint(arr), 0, None)
        tifffile.imwrite(path, arr.reshape(20, 16, 16).astype(">u2"), byteorder=">")
    else:
        tifffile.imwrite(path, flat, photometric="minisblack")
    if layout.endswith("3d"):
        grid = {"pos_N_scan_slow": 4, "pos_N_scan_fast": 5}
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 20  # one page per frame
    _same_as_memory(
        arr, {"meas_source": "tiff", "meas_params": {"path": str(path)}}, read_sizes, **grid
    )


def test_tiff_of_one_image_is_refused(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "one.tif", np.ones((16, 16), np.float32))
    scan = StemScan(meas_params={"path": str(tmp_path / "one.tif")}, **COMMON)
    with pytest.raises(PtyScanError, match=r"image series of shape \(16, 16\); expected a multi"):
        scan.initialize()


def test_selection_slices_the_stored_array_as_numpy(tmp_path, read_sizes):
    arr = _four_d(shape=(6, 7, 16, 16), seed=4)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = arr
    selection = [[1, 5], [0, 7, 2], None, [2, 14]]
    expected = arr[1:5, 0:7:2, :, 2:14]
    pars = {"meas_params": {"path": str(tmp_path / "a.h5"), "selection": selection}}
    _same_as_memory(expected, pars, read_sizes)
    one_row = {"meas_params": {"path": str(tmp_path / "a.h5"), "selection": [3]}}
    got, _ = _prepared({**one_row, "pos_N_scan_slow": 1, "pos_N_scan_fast": 7})
    want, _ = _prepared(
        {
            "meas_source": "custom",
            "meas_params": arr[3],
            "pos_N_scan_slow": 1,
            "pos_N_scan_fast": 7,
        }
    )
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ([[1, 5], None, 3, None], r"an index on a detector axis drops it"),
        ([[9, 12]], r"selection\[0\]: got \[9, 12\]; selects nothing of the 6 entries"),
        ([None] * 5, r"at most one entry per axis of the stored array \(6, 7, 16, 16\)"),
    ],
)
def test_selection_errors_name_the_axis(tmp_path, selection, message):
    arr = _four_d(shape=(6, 7, 16, 16))
    scan = StemScan(
        meas_source="custom", meas_params={"array": arr, "selection": selection}, **COMMON
    )
    with pytest.raises(PtyScanError, match=message):
        scan.initialize()
    with pytest.raises(RecipeError, match=r"meas_params\.selection.*got 'a'"):
        StemScan(meas_source="custom", meas_params={"array": arr, "selection": ["a"]})
