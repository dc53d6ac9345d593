"""StemScan's knobs mean what PtyRAD's ``init_params`` documents (PtyRAD 1.0): probe
normalisation modes, pad/resample modes, the scan pattern's flip/transpose and affine,
mixed-mode powers, and the checks of meas_Npix and pos_N_scans."""

import numpy as np
import pytest
from _helpers import drain

from ptyscan.errors import PtyScanError, RecipeError
from ptyscan.parallel import SerialComm
from ptyscan.scans.stem import StemScan

DX = 0.3


def _frames(shape=(4, 5, 16, 16), seed=0):
    """Positive frames: a bright disk whose brightness changes from frame to frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[-2], : shape[-1]]
    disk = (np.hypot(y - shape[-2] / 2, x - shape[-1] / 2) < 5).astype(np.float32) * 50
    gain = rng.uniform(0.5, 1.5, (*shape[:-2], 1, 1))
    return (disk * gain + rng.uniform(0.5, 2.0, shape)).astype(np.float32)


def _scan(arr, **kw):
    pars = {
        "meas_source": "custom",
        "meas_params": arr,
        "meas_calibration": {"mode": "dx", "value": DX},
        "pos_scan_rand_std": 0,
        "pos_scan_step_size": 0.5,
        "probe_kv": 300.0,
        "probe_conv_angle": 20.0,
        "seed": 4,
        **kw,
    }
    return StemScan(pars, comm=SerialComm())


def _prepared(scan, per_chunk=6):
    return np.concatenate([c.data for c in drain(scan, per_chunk)])


def _probe_power(scan):
    return float(np.sum(np.abs(scan.probe) ** 2))


def test_probe_normalization_mean_max_and_target():
    arr = _frames()
    expected = arr.reshape(20, 16, 16) / arr.reshape(20, 16, 16).mean(axis=0).max()
    totals = expected.sum(axis=(1, 2), dtype=np.float64)
    assert totals.max() > 1.2 * totals.mean()  # the modes differ on these data
    for mode, want in (("mean_total_ints", totals.mean()), ("max_total_ints", totals.max())):
        scan = _scan(arr, probe_normalization={"mode": mode})
        np.testing.assert_allclose(_prepared(scan), expected, rtol=1e-6)
        assert _probe_power(scan) == pytest.approx(want, rel=1e-5), mode
    scan = _scan(arr, probe_normalization={"mode": "target_intensity", "value": 123.0})
    scan.initialize()
    assert _probe_power(scan) == pytest.approx(123.0, rel=1e-5)


@pytest.mark.parametrize("source_size", [None, 0.3])
def test_max_total_ints_is_the_largest_prepared_pattern_with_noise_and_blur(source_size):
    """The second pass prepares the frames exactly as the chunks do (Poisson noise per
    frame, a blur along the scan): the probe holds the largest pattern's total."""
    arr = _frames(seed=1)
    scan = _scan(
        arr,
        probe_normalization={"mode": "max_total_ints"},
        meas_add_poisson_noise={"unit": "total_e_per_pattern", "value": 500},
        meas_add_detector_blur=0.8,
        meas_add_source_size=source_size,
        pos_scan_step_size=0.5,
    )
    data = _prepared(scan, per_chunk=7)
    totals = data.sum(axis=(1, 2), dtype=np.float64)
    assert _probe_power(scan) == pytest.approx(totals.max(), rel=1e-5)
    assert totals.max() > totals.mean() * 1.1


def test_pad_and_resample_given_without_mode_run_on_the_fly():
    """PtyRAD: a meas_pad / meas_resample block without a mode is 'on_the_fly' (applied);
    mode null turns it off; no block (the default) is none."""
    arr = _frames()
    pad = {"target_Npix": 20, "padding_type": "constant", "value": 0.0}
    shapes = {}
    for name, kw in {
        "none": {},
        "pad": {"meas_pad": pad},
        "pad_off": {"meas_pad": {**pad, "mode": None}},
        "resample": {"meas_resample": {"scale_factors": [1.5, 1.5]}},
    }.items():
        scan = _scan(arr, **kw)
        shapes[name] = _prepared(scan).shape[1:]
    assert shapes == {"none": (16, 16), "pad": (20, 20), "pad_off": (16, 16), "resample": (24, 24)}
    with pytest.raises(
        RecipeError, match=r"scale_factors.*two equal zoom factors.*\[1\.5, 2\.0\]"
    ):
        _scan(arr, meas_resample={"scale_factors": [1.5, 2.0]})


def _positions(**kw):
    scan = _scan(_frames(shape=(12, 16, 16)), pos_N_scan_slow=3, pos_N_scan_fast=4, **kw)
    scan.initialize()
    return scan.positions / 1e-10


def test_scan_transpose_swaps_y_and_x_of_each_position():
    plain = _positions(pos_scan_step_size=0.5)
    swapped = _positions(pos_scan_step_size=0.5, pos_scan_flipT=[0, 0, 1])
    np.testing.assert_allclose(swapped, plain[:, ::-1])
    both = _positions(pos_scan_step_size=0.5, pos_scan_flipT=[1, 1, 0])
    np.testing.assert_allclose(both, -plain)  # the raster is centred: flips negate


def test_scan_affine_acts_on_row_vectors_as_ptyrad():
    """(y, x) · A: a 90° rotation takes (y, x) to (−x, y), a 45° shear to (y + x, x),
    an asymmetry a scales y by 1 + a/2 and x by 1 − a/2."""
    plain = _positions(pos_scan_step_size=0.5)
    y, x = plain.T
    cases = {
        (1.0, 0.0, 90.0, 0.0): np.stack([-x, y], 1),
        (1.0, 0.0, 0.0, 45.0): np.stack([y + x, x], 1),
        (1.0, 0.2, 0.0, 0.0): np.stack([1.1 * y, 0.9 * x], 1),
    }
    for affine, want in cases.items():
        np.testing.assert_allclose(
            _positions(pos_scan_step_size=0.5, pos_scan_affine=affine), want, atol=1e-12
        )


@pytest.mark.parametrize(
    ("pows", "fractions"),
    [([0.1], [0.8, 0.1, 0.1]), ([0.7, 0.2, 0.1], [0.7, 0.2, 0.1])],
)
def test_pmode_init_pows_one_value_or_all_modes(pows, fractions):
    scan = _scan(_frames(), probe_pmode_max=3, probe_pmode_init_pows=pows)
    scan.initialize()
    power = np.sum(np.abs(scan.probe) ** 2, axis=(1, 2))
    np.testing.assert_allclose(power / power.sum(), fractions, atol=1e-5)


@pytest.mark.parametrize("pows", [[0.5, 0.2], [0.5, 0.2, 0.2]])
def test_pmode_init_pows_lists_must_cover_every_mode_and_sum_to_one(pows):
    with pytest.raises(RecipeError, match=r"probe_pmode_init_pows.*probe_pmode_max = 3 fractions"):
        _scan(_frames(), probe_pmode_max=3, probe_pmode_init_pows=pows)


def test_meas_npix_and_pos_n_scans_are_checked_against_the_data(tmp_path):
    arr = _frames()
    with pytest.raises(PtyScanError, match=r"meas_Npix: got 128; the data's detector is 16 × 16"):
        _scan(arr, meas_Npix=128).initialize()
    with pytest.raises(PtyScanError, match=r"pos_N_scans: got 21; the data hold 20 frames"):
        _scan(arr, pos_N_scans=21).initialize()
    raw = tmp_path / "scan.raw"  # EMPAD-like: 16 × 16 float32 frames, 64 bytes after each
    records = np.zeros((20, 16 * 16 + 16), np.float32)
    records[:, : 16 * 16] = arr.reshape(20, -1)
    records.tofile(raw)
    scan = StemScan(
        meas_params={"path": str(raw), "gap": 64},
        meas_Npix=16,
        pos_N_scans=20,
        meas_calibration={"mode": "dx", "value": DX},
        pos_source="custom",
        pos_params=np.zeros((20, 2)),
        probe_kv=300.0,
        probe_conv_angle=20.0,
        comm=SerialComm(),
    )
    np.testing.assert_allclose(_prepared(scan), _prepared(_scan(arr)), rtol=1e-6)


def test_probe_z_shift_is_a_change_of_defocus():
    """Propagating the probe forward by z Å equals a probe focused z Å further up:
    defocus (positive underfocus) reduced by z."""
    arr = _frames(shape=(2, 2, 64, 64))
    common = {
        "probe_conv_angle": 20.0,
        "probe_kv": 300.0,
        "meas_calibration": {"mode": "dx", "value": 0.25},
    }
    probes = {}
    for name, kw in {
        "shifted": {"probe_defocus": 80.0, "probe_z_shift": 30.0},
        "refocused": {"probe_defocus": 50.0},
        "plain": {"probe_defocus": 80.0},
    }.items():
        scan = _scan(arr, **common, **kw)
        scan.initialize()
        probes[name] = scan.probe[0]

    def overlap(a, b):
        return abs(np.vdot(a, b)) / np.linalg.norm(a) / np.linalg.norm(b)

    assert overlap(probes["shifted"], probes["refocused"]) > 0.999
    assert overlap(probes["shifted"], probes["plain"]) < 0.9
    assert np.sum(np.abs(probes["shifted"]) ** 2) == pytest.approx(
        np.sum(np.abs(probes["plain"]) ** 2), rel=1e-4
    )


def test_random_seed_is_seed_and_illumination_is_electron():
    scan = _scan(_frames(), random_seed=7, seed=None)
    assert scan.info.seed == 7
    with pytest.raises(RecipeError, match=r"random_seed: got 7 and seed 4; expected one"):
        _scan(_frames(), random_seed=7)
    with pytest.raises(RecipeError, match=r"probe_illum_type"):
        _scan(_frames(), probe_illum_type="xray")


def test_positions_from_ptychoshelves_and_fold_slice(tmp_path):
    import h5py
    from scipy.io import savemat

    xy = np.array([[1.0, 2.0], [3.5, 2.0], [1.0, 4.25], [3.5, 4.25]])  # (x, y) px
    savemat(tmp_path / "old.mat", {"outputs": {"probe_positions": xy}})
    with h5py.File(tmp_path / "v73.mat", "w") as f:  # MATLAB v7.3 stores (N, 2) as (2, N)
        f["outputs/probe_positions"] = xy.T
    with h5py.File(tmp_path / "pos.h5", "w") as f:
        f["ppY"] = np.array([0.5, 0.5, 1.0, 1.0])  # Å
        f["ppX"] = np.array([0.0, 0.75, 0.0, 0.75])
    arr = _frames(shape=(4, 16, 16))
    for name in ("old.mat", "v73.mat"):
        scan = _scan(arr, pos_source="PtyShv", pos_params=str(tmp_path / name))
        scan.initialize()
        np.testing.assert_allclose(scan.positions, xy[:, ::-1] * DX * 1e-10)
    scan = _scan(arr, pos_source="foldslice_hdf5", pos_params=str(tmp_path / "pos.h5"))
    scan.initialize()
    want = -np.array([[1.0, 0.75], [1.0, 0.0], [0.5, 0.75], [0.5, 0.0]]) * 1e-10
    np.testing.assert_allclose(scan.positions, want)
    with pytest.raises(PtyScanError, match=r"no outputs\.probe_positions"):
        savemat(tmp_path / "empty.mat", {"object": np.ones(3)})
        _scan(arr, pos_source="PtyShv", pos_params=str(tmp_path / "empty.mat")).initialize()


def test_loaded_positions_are_flipped_turned_and_displaced_as_ptyrad():
    """PtyRAD processes every position source: the flips reorder the (slow, fast) grid of
    positions, the affine turns them about their mean, the displacement is added."""
    arr = _frames(shape=(2, 3, 16, 16))
    custom = np.array([[0.0, 0.0], [0.2, 1.0], [0.0, 2.1], [1.0, 0.1], [1.1, 1.0], [0.9, 2.0]])

    def positions(**kw):
        scan = _scan(arr, pos_source="custom", pos_params=custom, **kw)
        scan.initialize()
        return scan.positions / (DX * 1e-10)

    np.testing.assert_allclose(positions(), custom)
    np.testing.assert_allclose(positions(pos_scan_flipT=[1, 0, 0]), custom[[3, 4, 5, 0, 1, 2]])
    np.testing.assert_allclose(
        positions(pos_scan_flipT=[0, 1, 1]), custom[[2, 1, 0, 5, 4, 3], ::-1]
    )
    turned = positions(pos_scan_affine=[1.0, 0.0, 90.0, 0.0])
    centred = custom - custom.mean(axis=0)
    np.testing.assert_allclose(
        turned - custom.mean(axis=0), np.stack([-centred[:, 1], centred[:, 0]], 1), atol=1e-12
    )
    shaken = positions(pos_scan_rand_std=0.3, seed=9)
    assert 0.1 < np.std(shaken - custom) < 0.6


def test_missing_beam_and_scan_step_are_named_before_anything_is_read():
    """PtyRAD requires probe_kv, probe_conv_angle and pos_scan_step_size; each left out
    is one line of the error (the step only when something needs it)."""
    with pytest.raises(RecipeError) as err:
        StemScan(
            meas_params={"path": "/nonexistent.raw"}, meas_calibration={"mode": "dx", "value": DX}
        )
    assert [line.split(":")[0] for line in err.value.problems] == [
        "scan.probe_kv",
        "scan.probe_conv_angle",
        "scan.pos_scan_step_size",
    ]
    assert "expected the acceleration voltage in kV" in err.value.problems[0]
    with pytest.raises(RecipeError, match=r"which meas_add_poisson_noise in e_per_Ang2 needs"):
        StemScan(
            meas_source="custom",
            meas_params=_frames(),
            pos_source="custom",
            pos_params=np.zeros((20, 2)),
            meas_add_poisson_noise={"unit": "e_per_Ang2", "value": 1e4},
            probe_kv=300.0,
            probe_conv_angle=20.0,
        )


def test_meas_crop_takes_numpy_ranges_with_negative_ends():
    arr = _frames(shape=(4, 5, 16, 16))
    got = _prepared(_scan(arr, meas_crop=[[1, -1], [-3, 5], [2, -2], None]))
    want = _prepared(_scan(np.ascontiguousarray(arr[1:-1, -3:, 2:-2, :])))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(PtyScanError, match=r"meas_crop: the slow range \[3, 1\] does not fit"):
        _scan(arr, meas_crop=[[3, 1], None, None, None]).initialize()
    with pytest.raises(PtyScanError, match=r"meas_crop: got .*leaves 0 × 16 detector px"):
        _scan(arr, meas_crop=[None, None, [5, 5], None]).initialize()


def test_meas_reshape_infers_minus_one_as_numpy():
    arr = _frames(shape=(4, 5, 16, 16))
    grid = {"pos_N_scan_slow": 4, "pos_N_scan_fast": 5}
    got = _prepared(_scan(arr, meas_reshape=[-1, 16, 16], **grid))
    np.testing.assert_array_equal(got, _prepared(_scan(arr.reshape(20, 16, 16), **grid)))
    with pytest.raises(PtyScanError, match=r"meas_reshape: got \[-1, 8, 32\]; expected"):
        _scan(arr, meas_reshape=[-1, 8, 32], **grid).initialize()
