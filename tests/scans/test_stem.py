"""StemScan: PtyRAD's init_params on 4D-STEM data, streamed chunk by chunk."""

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from _helpers import drain
from scipy import ndimage

from ptyscan.errors import PtyScanError, RecipeError
from ptyscan.geometry import (
    STEM_CALIBRATION_MODES,
    electron_wavelength_m,
    farfield_sample_pixel_m,
    stem_calibration,
)
from ptyscan.parallel import SerialComm
from ptyscan.plausibility import describe_geometry
from ptyscan.scans import get_scan
from ptyscan.simulate.electron import electron_probe
from ptyscan.simulate.stem_raw import simulate_stem_raw

StemScan = get_scan("StemScan")
DX = 0.2  # Å
BEAM = {"probe_kv": 300.0, "probe_conv_angle": 20.0}  # simulate_stem_raw's (required keys)


@pytest.fixture(scope="module")
def empad(tmp_path_factory):
    """A simulated 5 × 6 EMPAD-1 scan: 128² float32 frames, 1024 bytes after each."""
    path = tmp_path_factory.mktemp("stem") / "scan.raw"
    truth = simulate_stem_raw(
        path,
        n_slow=5,
        n_fast=6,
        dx_angstrom=DX,
        step_angstrom=0.6,
        aberrations_angstrom={"defocus": 50.0},
        block=7,
    )
    return path, truth


def _stem(path, **kw):
    pars = {
        "meas_params": {"path": str(path)},
        "pos_N_scan_slow": 5,
        "pos_N_scan_fast": 6,
        "meas_Npix": 128,
        "meas_calibration": {"mode": "dx", "value": DX},
        "probe_defocus": 50.0,
        "pos_scan_rand_std": 0,
        "pos_scan_step_size": 0.6,
        "seed": 3,
        **BEAM,
        **kw,
    }
    return StemScan(pars, comm=SerialComm())


def _frames(scan, per_chunk=7):
    chunks = drain(scan, per_chunk)
    return np.concatenate([c.data for c in chunks]), chunks


def _raw_frames(path, n=30):
    records = np.fromfile(path, "<f4").reshape(n, 130, 128)
    return records[:, :128].astype(np.float32)


def test_empad_raw_frames_calibration_and_meta(empad, caplog):
    path, truth = empad
    caplog.set_level(logging.INFO, logger="ptyscan")
    data, chunks = _frames(_stem(path))
    raw = _raw_frames(path)
    expected = raw / raw.mean(axis=0).max()  # max_at_one, nothing negative
    np.testing.assert_allclose(data, expected, rtol=1e-6)
    meta = chunks[0].meta
    pixel = farfield_sample_pixel_m(
        energy_kev=meta.energy, distance_m=meta.distance, shape=meta.shape, psize_m=meta.psize
    )
    np.testing.assert_allclose(pixel, DX * 1e-10, rtol=1e-9)
    positions = np.concatenate([c.positions for c in chunks])
    np.testing.assert_allclose(positions, truth["positions_angstrom"] * 1e-10, atol=1e-15)
    text = caplog.text
    for word in (
        "dx = 0.2000 Å",
        "dk = ",
        "kMax = ",
        "angleMax = ",
        "bright-field radius",
        "Nyquist",
        "Rayleigh",
    ):
        assert word in text


def test_start_up_geometry_knows_the_frames_before_they_are_read(empad):
    """The geometry block is logged at initialize, before load(): it must use the
    calibrated 128² frames (sample pixel dx, the 0.6 Å step in pixels), not 0 × 0."""
    path, _ = empad
    scan = _stem(path)
    scan.initialize()
    g = scan.geometry
    assert tuple(g.shape) == (128, 128)
    np.testing.assert_allclose(g.sample_pixel_m, DX * 1e-10, rtol=1e-9)
    assert g.step_px == pytest.approx(0.6 / DX, rel=1e-6)
    assert "128 × 128 pixels" in describe_geometry(g)


def test_initial_probe_is_the_simulated_one(empad):
    path, truth = empad
    scan = _stem(path)
    data, _ = _frames(scan)
    probe = scan.probe
    assert probe.shape == (1, 128, 128) and scan.common["probe"] is probe
    assert np.sum(np.abs(probe) ** 2) == pytest.approx(data.sum(axis=(1, 2)).mean(), rel=1e-5)
    shape = truth["probe"] / np.linalg.norm(truth["probe"])
    np.testing.assert_allclose(probe[0] / np.linalg.norm(probe[0]), shape, atol=1e-5)


def test_wrong_raw_size_quotes_both_sizes(empad):
    path, _ = empad
    scan = _stem(path, pos_N_scan_fast=7, pos_N_scan_slow=5)
    with pytest.raises(PtyScanError, match=r"has 1996800 bytes; expected 2329600 = offset 0"):
        scan.initialize()


def test_wrong_h5_key_lists_the_datasets(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["entry/frames"] = np.ones((4, 8, 8), np.float32)
        f["entry/other"] = np.ones(3)
    scan = StemScan(
        meas_params={"path": str(path), "key": "entry/frame"},
        pos_N_scan_slow=2,
        pos_N_scan_fast=2,
        pos_scan_step_size=1.0,
        meas_calibration={"mode": "dx", "value": 0.5},
        **BEAM,
    )
    with pytest.raises(
        PtyScanError,
        match=r"did you mean 'entry/frames'.*datasets there: "
        r"entry/frames, entry/other",
    ):
        scan.initialize()


def _four_d(seed=0, shape=(4, 5, 16, 16)):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:16, :16]
    disk = (np.hypot(y - 8, x - 8) < 5).astype(np.float32) * 50
    return (disk + rng.normal(1.0, 2.0, shape)).astype(np.float32)  # some negatives


def test_files_and_layouts_give_the_same_frames(tmp_path):
    from scipy.io import savemat

    arr = _four_d()
    flat = arr.reshape(20, 16, 16)
    np.save(tmp_path / "a.npy", arr)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = flat
    savemat(tmp_path / "a.mat", {"cbed": arr})
    with h5py.File(tmp_path / "v73.mat", "w") as f:  # MATLAB v7.3: HDF5, column-major
        f["cbed"] = arr.T
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "a.tif", flat)  # an (N, ky, kx) stack, memory-mapped
    common = {
        "meas_calibration": {"mode": "dx", "value": 0.3},
        "seed": 1,
        "pos_scan_step_size": 1,
        **BEAM,
    }
    sources = [
        {"meas_source": "custom", "meas_params": arr},
        {"meas_params": {"path": str(tmp_path / "a.npy")}},
        {
            "meas_params": {"path": str(tmp_path / "a.h5"), "key": "data"},
            "pos_N_scan_slow": 4,
            "pos_N_scan_fast": 5,
        },
        {"meas_params": {"path": str(tmp_path / "a.mat"), "key": "cbed"}},
        {"meas_params": {"path": str(tmp_path / "v73.mat"), "key": "cbed"}},
        {
            "meas_params": {"path": str(tmp_path / "a.tif")},
            "pos_N_scan_slow": 4,
            "pos_N_scan_fast": 5,
        },
    ]
    results = []
    for kw in sources:
        data, chunks = _frames(StemScan({**common, **kw}, comm=SerialComm()), 6)
        results.append((data, np.concatenate([c.positions for c in chunks])))
    for data, pos in results[1:]:
        np.testing.assert_array_equal(data, results[0][0])
        np.testing.assert_array_equal(pos, results[0][1])


PIPELINE = {
    "meas_permute": [1, 0, 3, 2],  # swap the scan axes and the detector axes
    "meas_flipT": [1, 0, 1],
    "meas_crop": [[1, 4], None, [1, 15], [2, 14]],
    "meas_remove_neg_values": {"mode": "subtract_min"},
    "meas_normalization": {"mode": "mean_at_one"},
    "meas_pad": {
        "mode": "precompute",
        "padding_type": "power",
        "target_Npix": 20,
        "threshold": 60,
    },
    "meas_resample": {"mode": "precompute", "scale_factors": [1.5, 1.5]},
    "meas_add_detector_blur": 0.7,
    "meas_calibration": {"mode": "kMax", "value": 1.2},
    "pos_scan_rand_std": 0,
    "pos_scan_step_size": 0.5,
    **BEAM,
}


def _numpy_reference(arr):
    """PtyRAD's preprocessing on the whole array, plainly (the PIPELINE's settings)."""
    from ptyscan.preprocess.electron_stats import pad_background_pattern

    meas = arr.transpose(1, 0, 3, 2).reshape(20, 16, 16)
    meas = np.flip(meas, axis=1).transpose(0, 2, 1)
    meas = meas.reshape(5, 4, 16, 16)[1:4, :, 1:15, 2:14].reshape(-1, 14, 12)
    if meas.min() < 0:
        meas = meas - meas.min()
    meas = meas / np.mean(meas, axis=0, dtype=np.float32).mean()
    background = pad_background_pattern(
        meas.mean(0), padding_type="power", target_npix=20, threshold=60
    )
    canvas = np.broadcast_to(background, (len(meas), 20, 20)).copy()
    canvas[:, 3:17, 4:16] = meas
    meas = ndimage.zoom(canvas, (1, 1.5, 1.5), order=1)
    meas = ndimage.gaussian_filter(meas, sigma=0.7, axes=(-2, -1))
    return np.maximum(meas, 0).astype(np.float32)


@pytest.mark.parametrize("per_chunk", [1, 4, 12])
def test_chunks_equal_the_steps_on_the_whole_array(per_chunk):
    arr = _four_d()
    scan = StemScan(meas_source="custom", meas_params=arr, seed=1, **PIPELINE)
    data, chunks = _frames(scan, per_chunk)
    expected = _numpy_reference(arr)
    assert data.shape == expected.shape == (12, 30, 30)
    np.testing.assert_allclose(data, expected, rtol=2e-5, atol=2e-6)
    meta = chunks[0].meta
    # kMax 1.2 1/Å of the 16 px detector: dk = 0.15 1/Å, kept by the crop (12 px) and the pad
    # (20 px): dx = 1/(20 dk); the resample (30 px, dk / 1.5) keeps dx
    dx = 1 / (20 * 2 * 1.2 / 16)
    pixel = farfield_sample_pixel_m(
        energy_kev=meta.energy, distance_m=meta.distance, shape=meta.shape, psize_m=meta.psize
    )
    np.testing.assert_allclose(pixel, dx * 1e-10, rtol=1e-9)
    assert scan.probe.shape == (1, 30, 30)


def test_poisson_noise_does_not_depend_on_chunks():
    arr = _four_d()
    noise = {"meas_add_poisson_noise": {"unit": "total_e_per_pattern", "value": 1000}}
    runs = [
        _frames(StemScan(meas_source="custom", meas_params=arr, seed=4, **PIPELINE, **noise), n)[0]
        for n in (3, 12)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    clean = _numpy_reference(arr)
    assert runs[0].sum() == pytest.approx(clean.sum(), rel=0.05)
    counts = runs[0] * (1000 / clean.sum(axis=(1, 2)).mean())
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-3)  # whole electrons


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"probe_kv": 2000}, "probe_kv"),
        ({"pos_scan_step_size": 200}, "pos_scan_step_size"),
        ({"pos_scan_step_size": 0.001}, "pos_scan_step_size"),
        ({"meas_calibration": {"mode": "dx"}}, "meas_calibration"),
        ({"meas_flipT": [1, 0]}, "meas_flipT"),
        ({"meas_calibration": {"mode": "kmax", "value": 1}}, "meas_calibration.mode"),
    ],
)
def test_implausible_values_are_named_before_any_work(kwargs, key):
    with pytest.raises(RecipeError, match=rf"scan\.{key}"):
        StemScan(meas_params={"path": "/nonexistent.raw"}, **kwargs)


def test_calibration_modes_agree():
    kv, alpha, npix, dx = 300.0, 20.0, 128, 0.2
    lam = float(electron_wavelength_m(kv)) * 1e10
    ref = stem_calibration("dx", dx, npix=npix, energy_kev=kv, conv_angle_mrad=alpha)
    values = {
        "dx": dx,
        "dk": ref["dk_per_angstrom"],
        "kMax": ref["kmax_per_angstrom"],
        "da": ref["da_mrad"],
        "angleMax": ref["angle_max_mrad"],
        "n_alpha": ref["angle_max_mrad"] / alpha,
        "RBF": ref["rbf_px"],
        "fitRBF": ref["rbf_px"],
    }
    assert set(values) == set(STEM_CALIBRATION_MODES)
    for mode, value in values.items():
        cal = stem_calibration(mode, value, npix=npix, energy_kev=kv, conv_angle_mrad=alpha)
        assert cal["dx_angstrom"] == pytest.approx(dx, rel=1e-12), mode
    assert ref["kmax_per_angstrom"] == pytest.approx(1 / (2 * dx))
    assert ref["rbf_px"] == pytest.approx(20e-3 / lam / ref["dk_per_angstrom"])


def test_raster_flip_affine_and_random_positions():
    arr = _four_d(shape=(12, 16, 16))
    base = {
        **BEAM,
        "meas_source": "custom",
        "meas_params": arr,
        "pos_N_scan_slow": 3,
        "pos_N_scan_fast": 4,
        "pos_scan_step_size": 0.5,
        "seed": 2,
        "meas_calibration": {"mode": "dx", "value": 0.25},
        "pos_scan_rand_std": 0,
    }

    def positions(**kw):
        scan = StemScan({**base, **kw}, comm=SerialComm())
        scan.initialize()
        return scan.positions / 1e-10

    plain = positions()
    assert np.allclose(np.diff(plain[:4, 1]), 0.5) and np.allclose(plain[:, 0].mean(), 0)
    flipped = positions(pos_scan_flipT=[1, 0, 0])
    np.testing.assert_allclose(flipped[:4, 0], plain[-4:, 0])
    scaled = positions(pos_scan_affine=[2.0, 0, 0, 0])
    np.testing.assert_allclose(scaled, 2 * plain)
    shaken = positions(pos_scan_rand_std=0.4)
    assert 0.02 < np.std(shaken - plain) < 0.2  # 0.4 px of 0.25 Å


def test_probe_aberrations_and_modes():
    arr = _four_d(shape=(4, 16, 16))
    scan = StemScan(
        meas_source="custom",
        meas_params=arr,
        pos_N_scan_slow=2,
        pos_N_scan_fast=2,
        meas_calibration={"mode": "dx", "value": 0.3},
        pos_scan_step_size=1.0,
        probe_kv=300,
        probe_conv_angle=15,
        probe_defocus=30,
        probe_aberrations={"A1": 5, "A1phi": 20},
        probe_pmode_max=3,
        probe_normalization={"mode": "target_intensity", "value": 7.0},
        seed=1,
    )
    scan.initialize()
    assert scan.probe.shape == (3, 16, 16)
    assert np.sum(np.abs(scan.probe) ** 2) == pytest.approx(7.0, rel=1e-4)
    main = electron_probe(
        16,
        energy_kev=300,
        semi_angle_mrad=15,
        sample_pixel_m=0.3e-10,
        aberrations_angstrom={"defocus": 30, "A1": 5, "A1phi": 20},
    )
    overlap = (
        abs(np.vdot(main, scan.probe[0])) / np.linalg.norm(main) / np.linalg.norm(scan.probe[0])
    )
    assert overlap > 0.99


RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "stem_empad.yaml"


def _run_recipe(tmp_path, command, n, dfile, *, numiter, frames_per_chunk=None):
    """Simulate an n × n EMPAD scan (0.2 Å pixels, 0.6 Å steps, 50 Å underfocus) and give
    it to ``ptyscan COMMAND recipes/stem_empad.yaml``; return (raw path, truth, exit code)."""
    from ptyscan.app.cli import main

    raw = tmp_path / "stem_empad.raw"
    truth = simulate_stem_raw(
        raw,
        n_slow=n,
        n_fast=n,
        dx_angstrom=0.2,
        step_angstrom=0.6,
        aberrations_angstrom={"defocus": 50.0},
    )
    sets = {
        "scan.meas_params.path": raw,
        "scan.pos_N_scan_slow": n,
        "scan.pos_N_scan_fast": n,
        "scan.dfile": tmp_path / dfile,
        "run.output_dir": tmp_path / "out",
        "engines.0.numiter": numiter,
    }
    if frames_per_chunk is not None:
        sets["run.frames_per_chunk"] = frames_per_chunk
    args = [command, str(RECIPE), "--no-progress"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return raw, truth, main(args)


@pytest.mark.parametrize("command", ["prepare", "run"])
def test_recipe_prepares_and_reconstructs_a_simulated_empad_file(tmp_path, capsys, command):
    from ptyscan.io import read_ptyd, read_ptyr

    raw, _, code = _run_recipe(tmp_path, command, 6, "stem.ptyd", frames_per_chunk=16, numiter=3)
    assert code == 0
    err = capsys.readouterr().err
    assert "StemScan calibration (dx): dx = 0.2000 Å" in err and "Rayleigh limit" in err
    prepared = read_ptyd(tmp_path / "stem.ptyd")
    assert prepared.data.shape == (36, 128, 128)
    if command == "run":
        result = read_ptyr(tmp_path / "out" / "stem_empad.ptyr")
        np.testing.assert_allclose(result.sample_pixel_m, 0.2e-10, rtol=1e-9)
        assert np.isfinite(result.object).all()
        again = _stem(
            raw,
            pos_N_scan_slow=6,
            pos_N_scan_fast=6,
            pos_source="ptyr",
            pos_params=str(tmp_path / "out" / "stem_empad.ptyr"),
        )
        again.initialize()
        np.testing.assert_array_equal(again.positions, result.positions_final)


def test_weights_follow_the_shape_changing_steps():
    from ptyscan.preprocess import electron as steps

    frames = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    mask = np.ones((4, 4), np.float32)
    mask[0, 0] = 0
    meta = steps.FrameMeta(np.arange(2), 0.1)
    for weights in (np.broadcast_to(mask, frames.shape), np.stack([mask, mask])):
        bg = np.zeros((6, 6), np.float32)
        f, w, m = steps.pad_background(
            frames, weights, meta, background=bg, box=(slice(1, 5), slice(1, 5))
        )
        assert f.shape == w.shape == (2, 6, 6) and w[0, 1, 1] == 0 and w.sum() == 2 * 35
        f, w, m = steps.resample(f, w, m, factor=2.0)
        assert f.shape == w.shape == (2, 12, 12) and m.dk_per_angstrom == pytest.approx(0.05)
        assert w[1, 2, 2] == 0 and w[1, 5, 5] == 1


@pytest.mark.parametrize("per_chunk", [1, 5, 42])
def test_source_size_blur_reads_a_halo_and_equals_the_whole_array(per_chunk):
    rng = np.random.default_rng(3)
    arr = (np.abs(rng.normal(5.0, 3.0, (8, 6, 12, 12))) + 1).astype(np.float32)
    pars = {
        **BEAM,
        "meas_crop": [[1, 8], None, None, None],
        "pos_scan_step_size": 0.5,
        "meas_add_source_size": 0.25,
        "meas_pad": {
            "mode": "precompute",
            "padding_type": "constant",
            "target_Npix": 16,
            "value": 0.1,
        },
        "meas_calibration": {"mode": "dx", "value": 0.3},
        "pos_scan_rand_std": 0,
    }
    scan = StemScan(meas_source="custom", meas_params=arr, seed=1, **pars)
    data, _ = _frames(scan, per_chunk)
    meas = arr[1:8].copy()
    meas /= meas.reshape(-1, 12, 12).mean(axis=0).max()
    canvas = np.full((7, 6, 16, 16), 0.01, np.float32)
    canvas[..., 2:14, 2:14] = meas
    expected = ndimage.gaussian_filter(canvas, sigma=0.5, axes=(0, 1)).reshape(42, 16, 16)
    np.testing.assert_allclose(data, expected, rtol=1e-5, atol=1e-7)
    total = scan.calibration["mean_total_intensity"]
    assert total == pytest.approx(expected.sum() / 42, rel=1e-5)


def _best_correlation(image, template):
    """Largest normalised cross-correlation of ``template`` over every window of ``image``."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(image, template.shape)
    windows = windows - windows.mean(axis=(-2, -1), keepdims=True)
    t = template - template.mean()
    num = np.einsum("abij,ij->ab", windows, t)
    den = np.sqrt(np.einsum("abij,abij->ab", windows, windows) * (t * t).sum())
    return float((num / den).max())


@pytest.mark.slow
def test_reconstruction_of_the_simulated_empad_scan_finds_the_object(tmp_path):
    """The recipe's ML (Poisson, Fourier sub-pixel views) on the prepared frames recovers the
    weak phase object (geometry, positions and orientation agree): its phase correlates with
    the truth (0.958 measured), a transposed truth not (0.36)."""
    from ptyscan.io import read_ptyr

    _, truth, code = _run_recipe(tmp_path, "run", 10, "s.ptyd", numiter=30)
    assert code == 0
    obj = read_ptyr(tmp_path / "out" / "stem_empad.ptyr").object
    phase = np.angle(obj.reshape(-1, *obj.shape[-2:])[0])
    scanned = np.angle(truth["object"])[54 : 54 + 47, 54 : 54 + 47]  # the views' middles
    assert _best_correlation(phase, scanned) > 0.9
    assert _best_correlation(phase, scanned.T) < 0.5


@pytest.mark.parametrize("file_format", ["hdf5", "npy", "mat", "tif"])
@pytest.mark.parametrize("output_shape", [None, [3, -1, 30, 30]], ids=["flat", "4d"])
def test_meas_export_writes_the_prepared_patterns(tmp_path, file_format, output_shape):
    """PtyRAD's file names (``name_<shape>.<file_format>``) and formats (mat: the HDF5
    file named .mat); output_shape regroups the frames: (3, 4, 30, 30)."""
    arr = _four_d()
    export = {"file_dir": str(tmp_path / "exp"), "file_format": file_format}
    export["output_shape"] = output_shape
    scan = StemScan(meas_source="custom", meas_params=arr, seed=1, meas_export=export, **PIPELINE)
    data, _ = _frames(scan, 5)
    shape = (12, 30, 30) if output_shape is None else (3, 4, 30, 30)
    name = tmp_path / "exp" / f"ptyrad_init_meas_{'_'.join(map(str, shape))}.{file_format}"
    assert scan.export_path == str(name)
    if file_format == "npy":
        stored = np.load(name)
    elif file_format == "tif":
        tifffile = pytest.importorskip("tifffile")
        stored = tifffile.imread(name)
    else:
        with h5py.File(name, "r") as f:
            stored = f["meas"][()]
    assert stored.shape == shape
    np.testing.assert_array_equal(stored.reshape(data.shape), data)


def test_meas_export_output_shape_must_hold_the_frames(tmp_path):
    export = {"file_dir": str(tmp_path), "output_shape": [5, -1, 30, 30]}
    scan = StemScan(meas_source="custom", meas_params=_four_d(), meas_export=export, **PIPELINE)
    with pytest.raises(
        PtyScanError, match=r"output_shape: got \[5, -1, 30, 30\]; expected a shape of the 12"
    ):
        _frames(scan, 5)


def test_meas_export_true_goes_next_to_the_data(empad):
    path, _ = empad
    scan = _stem(path, meas_export=True, num_frames=4)
    _frames(scan, 3)
    with h5py.File(path.parent / "ptyrad_init_meas_4_128_128.hdf5", "r") as f:
        assert f["meas"].shape == (4, 128, 128)


def test_positions_from_ptyrad_and_custom(tmp_path):
    arr = _four_d(shape=(4, 16, 16))
    base = {
        **BEAM,
        "meas_source": "custom",
        "meas_params": arr,
        "seed": 2,
        "meas_calibration": {"mode": "dx", "value": 0.25},
        "pos_scan_rand_std": 0,  # PtyRAD displaces loaded positions too (0.15 px by default)
    }
    px = np.array([[0, 0], [0, 3], [3, 0], [3, 3]], np.float64)
    path = tmp_path / "ptyrad.hdf5"
    with h5py.File(path, "w") as f:
        f["model_attributes/crop_pos"] = px.astype(np.int32)
        f["optimizable_tensors/probe_pos_shifts"] = np.full((4, 2), 0.5, np.float32)
    expected = (px + 0.5) * 0.25e-10
    for kw in (
        {"pos_source": "PtyRAD", "pos_params": str(path)},
        {"pos_source": "custom", "pos_params": px + 0.5},
    ):
        scan = StemScan({**base, **kw}, comm=SerialComm())
        scan.initialize()
        np.testing.assert_allclose(scan.positions, expected)
    bad = StemScan({**base, "pos_source": "PtyRAD", "pos_params": str(path.with_suffix(".x"))})
    with pytest.raises(PtyScanError, match=r"expected the path of a PtyRAD \.hdf5 result"):
        bad.initialize()
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["something"] = np.ones(3)
    other = StemScan({**base, "pos_source": "PtyRAD", "pos_params": str(tmp_path / "other.h5")})
    with pytest.raises(PtyScanError, match=r"no model_attributes/crop_pos.*something"):
        other.initialize()


def test_engines_start_from_the_scans_electron_probe():
    """Each chunk carries the scan's probe; an engine given no probe starts from it (not
    the X-ray aperture default); an explicit probe_model still wins. X-ray scans: None."""
    from ptyscan.engines import DM
    from ptyscan.scans import get_scan

    def first_probe(scan, **params):
        chunk = next(c for c in drain(scan, 20))
        assert chunk.probe is not None
        dm = DM(backend="numpy", probe_modes=chunk.probe.shape[0], **params)
        dm.add_views(chunk)
        return chunk.probe, dm.probe

    scan = StemScan(
        meas_source="custom", meas_params=_four_d(), seed=1, pos_scan_step_size=1, **BEAM
    )
    given, used = first_probe(scan)
    np.testing.assert_allclose(used, given, rtol=1e-5, atol=1e-6 * np.abs(given).max())
    _, aperture = first_probe(
        StemScan(
            meas_source="custom", meas_params=_four_d(), seed=1, pos_scan_step_size=1, **BEAM
        ),
        probe_model="aperture",
    )
    assert not np.allclose(aperture, given, atol=1e-3 * np.abs(given).max())
    moonflower = get_scan("QuickScan")(num_frames=4)
    assert next(c for c in drain(moonflower, 4)).probe is None


@pytest.mark.parametrize(
    ("flipT", "rotated", "warned"),
    [(None, False, False), ([0, 0, 1], False, True), ([1, 0, 0], False, True), (None, True, True)],
    ids=["aligned", "transposed", "flipped", "rotated"],
)
def test_com_fit_finds_a_transposed_or_rotated_detector(tmp_path, caplog, flipT, rotated, warned):
    """The centre-of-mass field of a phase object is curl-free only with the right detector
    axes: a transposed detector is named with the meas_flipT that fixes it (issue 12: a
    transposed detector gave 0.52 with no warning)."""
    from ptyscan.preprocess.dpc import axes_advice, com_rotation_fit

    path = tmp_path / "scan.raw"
    simulate_stem_raw(
        path, n_slow=12, n_fast=12, dx_angstrom=DX, step_angstrom=0.6, phase_rad=0.5, seed=2
    )
    scan = StemScan(
        meas_params={"path": str(path)},
        **BEAM,
        pos_N_scan_slow=12,
        pos_N_scan_fast=12,
        meas_Npix=128,
        meas_calibration={"mode": "dx", "value": DX},
        pos_scan_rand_std=0,
        pos_scan_step_size=0.6,
        meas_flipT=flipT,
    )
    with caplog.at_level(logging.INFO, logger="ptyscan.scans.stem"):
        scan.initialize()
    lines = [r for r in caplog.records if "centre-of-mass" in r.getMessage()]
    assert len(lines) == 1
    assert (lines[0].levelno == logging.WARNING) == (warned and not rotated)
    if flipT:
        assert "the detector looks mirrored; try meas_flipT: [0, 0, 0]" in lines[0].getMessage()
    if rotated:  # the same field turned by 30 degrees: the fit gives it back
        from ptyscan.preprocess.dpc import frame_centers_of_mass

        frames = np.stack(
            [np.fromfile(path, "<f4").reshape(-1, 130, 128)[i, :128] for i in range(144)]
        )
        com = frame_centers_of_mass(frames)
        com -= com.mean(axis=0)
        c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
        turned = np.stack([c * com[:, 0] + s * com[:, 1], -s * com[:, 0] + c * com[:, 1]], 1)
        fit = com_rotation_fit(turned, (12, 12))
        assert not fit["transpose"] and abs(abs(fit["rotation_deg"]) - 30) < 2
        message, worrying = axes_advice(fit, None)
        assert worrying and "differ by a rotation" in message
