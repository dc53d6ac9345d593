"""Hdf5Loader: the five scan layouts, frame selection, corrections, crop-at-read, recorded
values, CXI, compressed data and clear errors, on small files written in tmp_path."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from _helpers import drain

from ptyscan import preprocess
from ptyscan.errors import RecipeError, ScanError
from ptyscan.geometry import ELEMENTARY_CHARGE_C, electron_wavelength_m, photon_energy_kev
from ptyscan.scans.hdf5_loader import Hdf5Loader

A, B, M, N = 3, 4, 10, 12  # scan grid (slow, fast) and frame shape

GEOMETRY = {"energy": 7.2, "distance": 7.19, "psize": 172e-6}  # a real scan names them

LAYOUTS = ("mapped raster", "arbitrary", "unmapped raster", "meshed", "meshed unmapped")


def write(path, **datasets):
    """Write datasets (name → array, or (array, create_dataset kwargs)) into ``path``."""
    with h5py.File(path, "a") as f:
        for name, value in datasets.items():
            array, kwargs = value if isinstance(value, tuple) else (value, {})
            f.create_dataset(name.replace("__", "/"), data=array, **kwargs)
    return str(path)


def scan_file(tmp_path, kind, *, dtype=np.uint16, seed=0, name="scan.h5", **data_kwargs):
    """A scan of A×B points in ``kind`` layout.

    Returns (path, frames (A·B, M, N) in acquisition order, positions (A·B, 2) raw values).
    """
    rng = np.random.default_rng(seed)
    frames = rng.poisson(20.0, (A * B, M, N)).astype(dtype)
    slow2 = np.arange(A)[:, None] * 1.5 + rng.uniform(0, 0.01, (A, B))
    fast2 = np.arange(B)[None, :] * 2.0 + rng.uniform(0, 0.01, (A, B))
    slow1, fast1 = np.arange(A) * 1.5 + 0.25, np.arange(B) * 2.0 - 0.5
    if kind == "mapped raster":
        data, slow, fast = frames.reshape(A, B, M, N), slow2, fast2
    elif kind == "arbitrary":
        data, slow, fast = frames, slow2.ravel(), fast2.ravel()
    elif kind == "unmapped raster":
        data, slow, fast = frames, slow2, fast2
    elif kind == "meshed":
        data, slow, fast = frames.reshape(A, B, M, N), slow1, fast1
    else:
        data, slow, fast = frames, slow1, fast1
    if kind.startswith("meshed"):
        positions = np.stack(np.meshgrid(slow1, fast1, indexing="ij"), -1).reshape(-1, 2)
    else:
        positions = np.stack([slow2.ravel(), fast2.ravel()], -1)
    path = write(tmp_path / name, entry__data=(data, data_kwargs), entry__y=slow, entry__x=fast)
    return path, frames, positions


def make(path, cls=Hdf5Loader, **kw):
    pars = {
        "intensities": {"file": path, "key": "entry/data"},
        "positions": {"slow_key": "entry/y", "fast_key": "entry/x"},
        **GEOMETRY,
    }
    for key, value in kw.items():
        if isinstance(value, dict) and isinstance(pars.get(key), dict):
            pars[key] = {**pars[key], **value}
        else:
            pars[key] = value
    return cls(pars)


def collect(scan, per_chunk=5):
    """All chunks joined: (indices, data, weights, positions, meta)."""
    chunks = drain(scan, per_chunk, allow_wait=False)
    cat = lambda name: np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
    return cat("indices"), cat("data"), cat("weights"), cat("positions"), chunks[0].meta


# --- layouts and selection ----------------------------------------------------------------


@pytest.mark.parametrize("kind", LAYOUTS)
def test_every_layout_delivers_the_written_frames_and_positions(tmp_path, kind):
    path, frames, positions = scan_file(tmp_path, kind)
    scan = make(path, positions={"slow_multiplier": 1e-6, "fast_multiplier": 2e-6})
    indices, data, weights, pos, meta = collect(scan)
    assert scan.setup.layout.kind == kind
    assert indices.tolist() == list(range(A * B))
    np.testing.assert_array_equal(data, frames.astype(np.float32))
    np.testing.assert_array_equal(pos, positions * [1e-6, 2e-6])
    assert np.all(weights == 1) and meta.shape == (M, N) and meta.num_frames == A * B


def test_unknown_layout_names_the_shapes(tmp_path):
    path = write(
        tmp_path / "bad.h5",
        entry__data=np.zeros((12, M, N), np.uint16),
        entry__y=np.zeros(5),
        entry__x=np.zeros(7),
    )
    with pytest.raises(ScanError) as err:
        make(path).initialize()
    text = str(err.value)
    assert "frames laid out as (12,)" in text and "(5,)" in text and "(7,)" in text
    assert "meshed unmapped" in text


def test_bounding_box_skip_filter_and_order(tmp_path):
    path, frames, positions = scan_file(tmp_path, "mapped raster")
    keep = np.ones((A, B), np.int8)
    keep[0, 3] = 0
    write(path, entry__keep=keep)
    scan = make(
        path,
        positions={"skip": 2, "bounding_box": {"slow_axis_bounds": [0, 3], "fast_axis_bounds": 1}},
        framefilter={"key": "entry/keep"},
        frameorder={"indices": [2, 0, 0, 1]},
    )
    rows, cols = np.arange(0, 3)[::2], np.arange(1, B)[::2]  # rows 0, 2; columns 1, 3
    points = (rows[:, None] * B + cols).ravel()  # 1, 3, 9, 11
    points = points[keep.ravel()[points] > 0][[2, 0, 0, 1]]  # 1, 9, 11 → 11, 1, 1, 9
    indices, data, _, pos, _ = collect(scan)
    assert points.tolist() == [11, 1, 1, 9] and indices.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(data, frames[points])
    np.testing.assert_array_equal(pos, positions[points])


def test_arbitrary_trajectory_bounds_skip_and_num_frames(tmp_path):
    path, frames, _ = scan_file(tmp_path, "arbitrary")
    scan = make(path, positions={"skip": 3, "bounding_box": {"fast_axis_bounds": 1}}, num_frames=3)
    _, data, *_ = collect(scan)
    np.testing.assert_array_equal(data, frames[[1, 4, 7]])


@pytest.mark.parametrize(
    ("pars", "message"),
    [
        ({"frameorder": {"indices": [0, 12]}}, r"frameorder.indices \[12\] out of range"),
        ({"positions": {"bounding_box": {"slow_axis_bounds": [1, 9]}}}, "outside the 3 scan"),
        ({"positions": {"bounding_box": {"fast_axis_bounds": 4}}}, "outside the 4 scan"),
    ],
)
def test_selection_errors(tmp_path, pars, message):
    path, *_ = scan_file(tmp_path, "meshed")
    with pytest.raises(ScanError, match=message):
        make(path, **pars).initialize()


def test_slow_bounds_do_not_apply_to_a_trajectory(tmp_path):
    path, *_ = scan_file(tmp_path, "arbitrary")
    scan = make(path, positions={"bounding_box": {"slow_axis_bounds": 1}})
    with pytest.raises(ScanError, match="select frames with fast_axis_bounds"):
        scan.initialize()


def test_bad_parameters_are_recipe_errors():
    with pytest.raises(RecipeError) as err:
        Hdf5Loader(padding=[1, 2], frameorder={"indices": [-1]}, positions={"skip": 0})
    text = str(err.value)
    assert "scan.padding: must be None, an int >= 0 or 4 ints" in text
    assert "scan.frameorder.indices" in text and "scan.positions.skip" in text


# --- missing files and keys ---------------------------------------------------------------


def test_missing_files_and_keys_are_reported_together_before_reading(tmp_path):
    path, *_ = scan_file(tmp_path, "arbitrary")
    scan = make(
        path,
        intensities={"key": "entry/dta"},
        positions={"file": str(tmp_path / "nothere.h5")},
        mask={"key": "entry/mask"},
        darkfield={"file": path},
    )
    with pytest.raises(ScanError) as err:
        scan.initialize()
    lines = str(err.value).splitlines()
    assert lines[0] == "Hdf5Loader: cannot read the scan's datasets:"
    text = str(err.value)
    assert (
        f"scan.intensities.key: no dataset 'entry/dta' in {path} (did you mean 'entry/data'?)"
        in text
    )
    assert "scan.positions.file: no such file" in text and "nothere.h5" in text  # the file key
    assert "scan.mask.key: no dataset 'entry/mask'" in text
    assert "scan.darkfield.key: not set although its file is" in text


def test_no_intensities_file_is_a_clear_error():
    with pytest.raises(ScanError, match=r"scan.intensities.file: not set"):
        Hdf5Loader().initialize()


# --- corrections --------------------------------------------------------------------------


def expected_corrected(raw, dark=None, flat=None, scale=None):
    out = raw.astype(np.float32)
    if dark is not None:
        out = out - dark.astype(np.float32)
    if flat is not None:
        flat = flat.astype(np.float32)
        out = np.where(flat > 0, out / np.where(flat > 0, flat, 1), 0)
    if scale is not None:
        out = out * scale[:, None, None]
    return np.maximum(out, 0)


@pytest.mark.parametrize("dark_kind", ["2d", "stack1", "per-frame"])
def test_dark_subtraction_clips_at_zero_and_flat_divides(tmp_path, dark_kind):
    path, frames, _ = scan_file(tmp_path, "arbitrary")
    rng = np.random.default_rng(5)
    dark = {
        "2d": rng.uniform(0, 30, (M, N)),
        "stack1": rng.uniform(0, 30, (1, M, N)),
        "per-frame": rng.uniform(0, 30, (A * B, M, N)),
    }[dark_kind].astype(np.float32)
    flat = rng.uniform(0.5, 2.0, (M, N)).astype(np.float32)
    flat[2, 3] = 0
    write(path, entry__dark=dark, entry__flat=flat)
    scan = make(path, darkfield={"key": "entry/dark"}, flatfield={"key": "entry/flat"})
    _, data, weights, _, _ = collect(scan)
    dark = dark if dark_kind == "per-frame" else dark.reshape(1, M, N)
    np.testing.assert_allclose(data, expected_corrected(frames, dark, flat[None]), rtol=1e-6)
    assert np.all(data >= 0) and np.count_nonzero(data == 0) > 10  # clipped pixels
    assert np.all(weights[:, 2, 3] == 0) and np.count_nonzero(weights == 0) == A * B


def test_normalisation_scales_by_mean_over_monitor_except_outliers(tmp_path):
    path, frames, _ = scan_file(tmp_path, "meshed")
    monitor = np.linspace(90, 110, A * B)
    monitor[5] = 1000.0  # outlier: left unscaled
    write(path, entry__monitor=monitor.reshape(A, B))
    scan = make(path, normalisation={"key": "entry/monitor", "sigma": 2})
    _, data, *_ = collect(scan)
    mean, std = monitor.mean(), monitor.std()
    scale = np.where(np.abs(monitor - mean) < 2 * std, mean / monitor, 1).astype(np.float32)
    assert scale[5] == 1 and scale[0] != 1
    np.testing.assert_allclose(data, expected_corrected(frames, scale=scale), rtol=1e-6)


@pytest.mark.parametrize("invert", [False, True])
def test_masks_2d_and_per_frame(tmp_path, invert):
    path, frames, _ = scan_file(tmp_path, "unmapped raster")
    rng = np.random.default_rng(2)
    mask2d = (rng.uniform(size=(M, N)) > 0.2).astype(np.uint8)
    masks = (rng.uniform(size=(A * B, M, N)) > 0.2).astype(np.uint32) * 7
    write(path, entry__mask=mask2d, entry__masks=masks)
    valid = lambda m: (m == 0) if invert else (m > 0)  # noqa: E731
    _, data, weights, _, _ = collect(make(path, mask={"key": "entry/mask", "invert": invert}))
    np.testing.assert_array_equal(weights, np.broadcast_to(valid(mask2d), weights.shape))
    np.testing.assert_array_equal(data, frames)
    _, _, weights, _, _ = collect(make(path, mask={"key": "entry/masks", "invert": invert}))
    np.testing.assert_array_equal(weights, valid(masks))


def test_padding_adds_zero_frames_with_zero_weight(tmp_path):
    path, frames, _ = scan_file(tmp_path, "arbitrary")
    _, data, weights, _, meta = collect(make(path, padding=[1, 2, 3, 0]))
    assert data.shape == (A * B, M + 3, N + 3) and meta.shape == (M + 3, N + 3)
    np.testing.assert_array_equal(data[:, 1 : 1 + M, 3:], frames)
    inside = np.zeros((M + 3, N + 3), bool)
    inside[1 : 1 + M, 3:] = True
    assert np.all(data[:, ~inside] == 0) and np.all(weights[:, ~inside] == 0)
    assert np.all(weights[:, inside] == 1)


@pytest.mark.parametrize(
    ("shape", "center", "padding"),
    [
        ((6, 8), (4.0, 5.0), None),
        ((8, 9), (2.6, 10.4), [2, 0, 1, 3]),
        ((12, 16), "fftshift", 2),
        ((16, 21), (1.5, 10.5), None),  # larger than the frame: padded by the crop too
    ],
)
def test_crop_at_read_equals_crop_after_read(tmp_path, shape, center, padding):
    path, _, _ = scan_file(tmp_path, "meshed", dtype=np.float32)
    rng = np.random.default_rng(1)
    write(path, entry__mask=rng.uniform(size=(M, N)) > 0.3, entry__dark=np.full((M, N), 3.0))
    common = {"mask": {"key": "entry/mask"}, "darkfield": {"key": "entry/dark"}}
    full = make(path, padding=padding, center=center, **common)
    _, data, weights, _, meta_full = collect(full)
    cropped = make(path, padding=padding, center=center, shape=shape, **common)
    _, cdata, cweights, _, meta = collect(cropped)
    rows, cols = cropped.setup.spec.src  # only the region of interest is read
    assert rows.stop - rows.start <= min(shape[0], M) and cols.stop - cols.start <= min(
        shape[1], N
    )
    expect, expect_center = preprocess.crop_pad(data, shape=shape, center=meta_full.center)
    np.testing.assert_array_equal(cdata, expect)
    np.testing.assert_array_equal(
        cweights, preprocess.crop_pad(weights, shape=shape, center=meta_full.center)[0]
    )
    np.testing.assert_allclose(meta.center, expect_center)
    assert meta.shape == shape


def test_auto_center_crops_after_reading(tmp_path):
    path, *_ = scan_file(tmp_path, "arbitrary")
    scan = make(path, shape=8, auto_center=True, orientation=4, rebin=2)
    chunk = scan.auto(100)
    assert chunk.data.shape == (A * B, 4, 4) and scan.setup.center is None


# --- recorded values, outer index, electrons -------------------------------------------------


def test_recorded_energy_distance_psize_with_multiplier_and_offset(tmp_path):
    path, *_ = scan_file(tmp_path, "arbitrary")
    write(path, entry__E=np.array([8000.0]), entry__z=np.float64(5000.0), entry__p=np.array(75.0))
    scan = make(
        path,
        recorded_energy={"key": "entry/E", "multiplier": 1e-3, "offset": 0.1},
        recorded_distance={"key": "entry/z", "multiplier": 1e-3},
        recorded_psize={"key": "entry/p", "multiplier": 1e-6, "offset": 1e-6},
    )
    meta = scan.auto(3).meta
    assert meta.energy == pytest.approx(8.1)
    assert meta.distance == pytest.approx(5.0)
    assert meta.psize == pytest.approx((76e-6, 76e-6))


def test_electron_energy_becomes_the_photon_energy_of_the_same_wavelength(tmp_path):
    path, *_ = scan_file(tmp_path, "arbitrary")
    meta = make(path, energy=300.0, electron_data=True).auto(2).meta
    assert meta.energy == pytest.approx(photon_energy_kev(electron_wavelength_m(300.0)))
    assert meta.wavelength_m == pytest.approx(electron_wavelength_m(300.0))


def test_outer_index_picks_one_scan_of_a_spectro_stack(tmp_path):
    rng = np.random.default_rng(3)
    stack = rng.poisson(9.0, (3, A * B, M, N)).astype(np.uint16)
    path = write(
        tmp_path / "spectro.h5",
        entry__data=stack,
        entry__y=rng.uniform(size=(3, A * B)),
        entry__x=np.arange(A * B) * 1.0,
        entry__E=np.array([7.0, 7.1, 7.2]),
    )
    scan = make(path, outer_index=1, recorded_energy={"key": "entry/E"})
    _, data, _, pos, meta = collect(scan)
    np.testing.assert_array_equal(data, stack[1])
    with h5py.File(path) as f:
        np.testing.assert_array_equal(pos[:, 0], f["entry/y"][1])
    assert meta.energy == pytest.approx(7.1)
    with pytest.raises(ScanError, match="set outer_index"):
        make(path, recorded_energy={"key": "entry/E"}).initialize()


# --- compressed data, CXI -------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["bitshuffle-lz4", "blosc"])
def test_compressed_eiger_data_reads_transparently(tmp_path, compression):
    hdf5plugin = pytest.importorskip("hdf5plugin", reason="hdf5plugin is not installed")
    if compression == "blosc":
        compression = hdf5plugin.Blosc(cname="lz4", shuffle=hdf5plugin.Blosc.SHUFFLE)
    else:
        compression = hdf5plugin.Bitshuffle(cname="lz4")
    chunks = (1, 3, M, N)  # three frames per HDF5 chunk
    path, frames, _ = scan_file(
        tmp_path, "mapped raster", dtype=np.uint32, chunks=chunks, **compression
    )
    with h5py.File(path) as f:
        assert f["entry/data"].id.get_create_plist().get_nfilters() > 0  # really compressed
    _, data, *_ = collect(make(path, shape=(6, 6), center=(4, 5)))
    np.testing.assert_array_equal(data, frames[:, 1:7, 2:8])


def test_undecodable_compression_is_a_clear_error(tmp_path):
    hdf5plugin = pytest.importorskip("hdf5plugin", reason="hdf5plugin is not installed")
    path, *_ = scan_file(tmp_path, "arbitrary", **hdf5plugin.Bitshuffle(cname="lz4"))
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "hdf5plugin":
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
from ptyscan.scans.hdf5_loader import Hdf5Loader
scan = Hdf5Loader(intensities={{"file": {path!r}, "key": "entry/data"}},
                  positions={{"slow_key": "entry/y", "fast_key": "entry/x"}})
try:
    scan.initialize()
except Exception as exc:
    print(exc)
"""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("HDF5_PLUGIN_PATH", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert "scan.intensities.key: /entry/data in" in out.stdout, out.stderr
    assert "filter 32008 (bitshuffle" in out.stdout and "pip install hdf5plugin" in out.stdout


def test_cxi_file_needs_no_keys(tmp_path):
    rng = np.random.default_rng(4)
    frames = rng.poisson(5.0, (7, M, N)).astype(np.uint16)
    translation = rng.uniform(-1e-6, 1e-6, (7, 3))
    pixel_mask = np.zeros((M, N), np.uint32)
    pixel_mask[0, :3] = 4  # bad pixels: non-zero
    det = "entry_1__instrument_1__detector_1__"
    path = write(
        tmp_path / "scan.cxi",
        cxi_version=np.int64(160),
        entry_1__data_1__data=frames,
        entry_1__sample_1__geometry_1__translation=translation,
        entry_1__instrument_1__source_1__energy=np.float64(8.5 * 1e3 * ELEMENTARY_CHARGE_C),
        **{det + "distance": np.float64(3.2), det + "x_pixel_size": np.float64(75e-6)},
        **{det + "y_pixel_size": np.float64(55e-6), det + "mask": pixel_mask},
    )
    scan = Hdf5Loader(intensities={"file": path})
    _, data, weights, pos, meta = collect(scan)
    np.testing.assert_array_equal(data, frames)
    np.testing.assert_array_equal(pos, translation[:, [1, 0]])
    np.testing.assert_array_equal(weights[0], pixel_mask == 0)
    assert meta.energy == pytest.approx(8.5) and meta.distance == 3.2
    assert meta.psize == pytest.approx((55e-6, 75e-6))


def test_setup_is_logged(tmp_path, caplog):
    path, *_ = scan_file(tmp_path, "meshed unmapped")
    with caplog.at_level(logging.INFO, logger="ptyscan.scans.hdf5_setup"):
        make(path).initialize()
    assert "meshed unmapped scan" in caplog.text and "grid (3, 4)" in caplog.text


@pytest.mark.parametrize(("n_frames", "n_positions"), [(12, 10), (10, 12)])
def test_a_scan_stopped_early_uses_the_common_frames(tmp_path, caplog, n_frames, n_positions):
    """Frames and positions of different counts (arbitrary trajectory): ptypy uses the
    first min of both; a one-line warning names both counts; count_mismatch: error refuses."""
    rng = np.random.default_rng(5)
    frames = rng.poisson(20.0, (n_frames, M, N)).astype(np.uint16)
    y, x = np.arange(n_positions) * 1e-6, np.arange(n_positions) * 2e-6
    path = write(tmp_path / "short.h5", entry__data=frames, entry__y=y, entry__x=x)
    with caplog.at_level(logging.WARNING, logger="ptyscan.scans.hdf5_setup"):
        indices, data, _, pos, _ = collect(make(path))
    n = min(n_frames, n_positions)
    assert [r.getMessage() for r in caplog.records] == [
        f"Hdf5Loader: {n_frames} frames but {n_positions} positions: using the first {n} "
        "(a scan stopped early?)"
    ]
    np.testing.assert_array_equal(indices, np.arange(n))
    np.testing.assert_array_equal(data, frames[:n].astype(np.float32))
    np.testing.assert_allclose(pos, np.stack([y, x], 1)[:n])
    with pytest.raises(ScanError) as err:
        collect(make(path, count_mismatch="error"))
    assert str(err.value) == (
        f"Hdf5Loader: {n_frames} frames but {n_positions} positions (count_mismatch: error); "
        f"set count_mismatch: truncate to use the first {n}"
    )
