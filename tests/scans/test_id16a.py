"""ID16AScan: EDF/HDF5 frames, darks, flats, detector flat, bpm5, pad/crop and undistortion."""

import sys

import h5py
import numpy as np
import pytest
from _helpers import drain
from scipy.ndimage import map_coordinates

from ptyscan.errors import RecipeError, ScanError
from ptyscan.scans.id16a import ID16AScan, undistort

SHAPE = (12, 16)

GEOMETRY = {"energy": 7.2, "distance": 7.19, "psize": 3e-6}  # ID16A has no defaults for these


def write_edf(path, data, motors=None, counters=None):
    edfimage = pytest.importorskip("fabio.edfimage", reason="fabio is not installed")
    header = {}
    if motors:
        header["motor_mne"] = " ".join(motors)
        header["motor_pos"] = " ".join(repr(float(v)) for v in motors.values())
    if counters:
        header["counter_mne"] = " ".join(counters)
        header["counter_pos"] = " ".join(repr(float(v)) for v in counters.values())
    edfimage.EdfImage(data=np.asarray(data), header=header).write(str(path))


def frames_truth(n, seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.integers(200, 4000, size=(n, *SHAPE)).astype(np.uint16)
    spy = np.round(rng.uniform(-20, 20, n), 3)
    spz = np.round(rng.uniform(-20, 20, n), 3)
    bpm5 = rng.uniform(900, 1100, n).round(1)
    darks = rng.integers(90, 110, size=(2, *SHAPE)).astype(np.uint16)
    refs = rng.integers(5000, 6000, size=(2, *SHAPE)).astype(np.uint16)
    return raw, spy, spz, bpm5, darks, refs


def write_scan(folder, n=7, seed=0, sample="cell"):
    """n EDF frames cell_0001.edf ... plus dark_000{0,1}.edf and ref_000{0,1}.edf."""
    raw, spy, spz, bpm5, darks, refs = frames_truth(n, seed)
    folder.mkdir(exist_ok=True)
    for i in range(n):
        write_edf(
            folder / f"{sample}_{i + 1:04d}.edf",
            raw[i],
            motors={"sx": 1.0, "spy": spy[i], "spz": spz[i]},
            counters={"mon": 3.0, "bpm5_ct": bpm5[i]},
        )
    for k in range(2):
        write_edf(folder / f"dark_{k:04d}.edf", darks[k])
        write_edf(folder / f"ref_{k:04d}.edf", refs[k])
    return raw, spy, spz, bpm5, darks, refs


def collect(scan, per_chunk=4):
    chunks = drain(scan, per_chunk)
    return (
        np.concatenate([c.data for c in chunks]),
        np.concatenate([c.weights for c in chunks]),
        np.concatenate([c.positions for c in chunks]),
        chunks,
    )


def plain(folder, **kw):
    """Identity geometry: frames come out as corrected (no crop, no flip)."""
    kw.setdefault("shape", SHAPE)
    return ID16AScan(
        **GEOMETRY,
        base_path=str(folder),
        sample_name="cell",
        orientation=None,
        center="fftshift",
        **kw,
    )


# --- undistort --------------------------------------------------------------------------------


def test_undistort_matches_map_coordinates_on_a_known_shift_field():
    rng = np.random.default_rng(3)
    frame = rng.uniform(0, 100, (20, 24))
    y, x = np.mgrid[0:20, 0:24].astype(np.float64)
    dh = 1.7 * np.sin(y / 5.0) + 0.3  # some points fall outside on both sides
    dv = -2.2 * np.cos(x / 7.0) + 0.45
    out = undistort(frame, (dh, dv))
    expected = map_coordinates(
        frame, [y - dv, x - dh], order=1, mode="constant", cval=frame.mean()
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    outside = (y - dv < 0) | (y - dv > 19) | (x - dh < 0) | (x - dh > 23)
    assert outside.sum() > 20 and (~outside).sum() > 300
    np.testing.assert_array_equal(out[outside], frame.mean())


def test_undistort_integer_shift_and_identity():
    frame = np.arange(30.0).reshape(5, 6)
    np.testing.assert_array_equal(undistort(frame, (0, 0)), frame)
    out = undistort(frame, (1, 2))  # out[y, x] = frame[y - 2, x - 1]
    np.testing.assert_array_equal(out[2:, 1:], frame[:-2, :-1])
    np.testing.assert_array_equal(out[:2], frame.mean())
    np.testing.assert_array_equal(out[:, 0], frame.mean())
    assert undistort(frame.astype(np.float32), (0.5, 0)).dtype == np.float32
    with pytest.raises(ScanError, match=r"dh has shape \(3, 3\), expected the frame's \(5, 6\)"):
        undistort(frame, (np.zeros((3, 3)), 0))


# --- the scan ---------------------------------------------------------------------------------


def test_raw_frames_and_positions_from_edf_headers(tmp_path):
    raw, spy, spz, *_ = write_scan(tmp_path / "d")
    scan = plain(tmp_path / "d")
    data, weights, positions, chunks = collect(scan)
    np.testing.assert_array_equal(data, raw.astype(np.float32))
    np.testing.assert_array_equal(positions, np.stack([spy, spz], axis=1) * 1e-6)
    assert np.all(weights == 1)
    meta = chunks[0].meta
    assert meta.propagation == "nearfield"
    assert (meta.distance, meta.energy, meta.num_frames) == (7.19, 7.2, 7)


def test_edf_without_fabio_is_a_clear_error(tmp_path, monkeypatch):
    """HDF5 scans need no fabio; an EDF scan without it names the package to install."""
    write_scan(tmp_path / "d", n=2)
    monkeypatch.setitem(sys.modules, "fabio", None)  # as if it were not installed
    with pytest.raises(ScanError, match=r"needs fabio, which is not installed; pip install fabio"):
        collect(plain(tmp_path / "d"))


def test_default_orientation_flips_rows(tmp_path):
    raw, *_ = write_scan(tmp_path / "d", n=3)
    scan = ID16AScan(**GEOMETRY, base_path=str(tmp_path / "d"), sample_name="cell", shape=SHAPE)
    assert scan.info.orientation == 2 and scan.info.auto_center is False
    data, *_ = collect(scan)
    np.testing.assert_array_equal(data, raw[:, ::-1, :].astype(np.float32))


def test_natural_sort_of_frame_files(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    for i in (1, 2, 10):
        write_edf(folder / f"cell_{i}.edf", np.full(SHAPE, i, np.uint16), {"spy": i, "spz": 0})
    data, _, positions, _ = collect(plain(folder))
    assert data[:, 0, 0].tolist() == [1, 2, 10]
    np.testing.assert_allclose(positions[:, 0], [1e-6, 2e-6, 10e-6])


def test_full_correction_chain(tmp_path):
    raw, _, _, bpm5, darks, refs = write_scan(tmp_path / "d")
    det = np.random.default_rng(1).uniform(0.5, 1.5, SHAPE).astype(np.float32)
    det[3, 4] = 0  # a dead pixel of the flat: divided by 1 after normalisation
    write_edf(tmp_path / "detflat.edf", det)
    mask = np.ones(SHAPE, np.float32)
    mask[0, 0] = 0
    with h5py.File(tmp_path / "mask.h5", "w") as fh:
        fh["mask"] = mask
    scan = plain(
        tmp_path / "d",
        flat_division=True,
        dark_subtraction=True,
        det_flat_field=str(tmp_path / "detflat.edf"),
        mask_file=str(tmp_path / "mask.h5"),
        recipe={"use_bpm5_ct": True, "pad_crop": (8, 20)},
        shape=(8, 20),
    )
    data, weights, *_ = collect(scan)

    dark = darks.astype(np.float64).mean(axis=0)
    flat = refs.astype(np.float64).mean(axis=0)
    ff = det / det.mean()
    ff[ff == 0] = 1
    expected = np.maximum((raw - dark) / (flat - dark), 0) / ff
    expected = expected / (bpm5 / bpm5.mean())[:, None, None]
    padded = np.zeros((7, 8, 20))
    padded[:, :, 2:18] = expected[:, 2:10, :]  # rows cropped 12 -> 8, columns padded 16 -> 20
    np.testing.assert_allclose(data, padded, rtol=2e-6)
    wexp = np.zeros((8, 20), np.float32)
    wexp[:, 2:18] = mask[2:10]
    np.testing.assert_array_equal(weights, np.broadcast_to(wexp, data.shape))


def test_dark_subtraction_clips_negatives(tmp_path):
    raw, *_ = write_scan(tmp_path / "d", n=2)
    darks_high = np.full((2, *SHAPE), 3000, np.uint16)
    for k in range(2):
        write_edf(tmp_path / "d" / f"dark_{k:04d}.edf", darks_high[k])
    data, *_ = collect(plain(tmp_path / "d", dark_subtraction=True))
    np.testing.assert_array_equal(data, np.maximum(raw.astype(np.float32) - 3000, 0))
    assert (data == 0).any() and (data > 0).any()


def test_flat_minus_dark_not_positive_has_zero_weight(tmp_path):
    write_scan(tmp_path / "d", n=2)
    refs = np.full((2, *SHAPE), 5000, np.uint16)
    refs[:, 5, 6] = 50  # ref below the dark level: no flat there
    for k in range(2):
        write_edf(tmp_path / "d" / f"ref_{k:04d}.edf", refs[k])
    data, weights, *_ = collect(plain(tmp_path / "d", flat_division=True))
    assert np.all(np.isfinite(data))
    assert np.all(data[:, 5, 6] == 0) and np.all(weights[:, 5, 6] == 0)
    assert weights.sum() == 2 * (np.prod(SHAPE) - 1)


def test_distortion_maps_are_applied_with_zero_weight_outside(tmp_path):
    raw, *_ = write_scan(tmp_path / "d", n=3)
    y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float32)
    dh = (0.8 * np.sin(y / 3)).astype(np.float32)
    dv = (1.3 + 0.2 * np.cos(x / 4)).astype(np.float32)
    write_edf(tmp_path / "dh.edf", dh)
    write_edf(tmp_path / "dv.edf", dv)
    mask = np.ones(SHAPE, np.float32)
    mask[6, 7] = 0
    np.save(tmp_path / "mask.npy", mask)
    scan = plain(
        tmp_path / "d",
        distortion_h_file=str(tmp_path / "dh.edf"),
        distortion_v_file=str(tmp_path / "dv.edf"),
        mask_file=str(tmp_path / "mask.npy"),
    )
    data, weights, *_ = collect(scan)
    for k in range(3):
        frame = raw[k].astype(np.float32)
        np.testing.assert_allclose(data[k], undistort(frame, (dh, dv)), rtol=1e-6)
    outside = (y - dv < 0) | (y - dv > SHAPE[0] - 1) | (x - dh < 0) | (x - dh > SHAPE[1] - 1)
    # valid: inside, and every pixel that contributes to the interpolation unmasked
    mask_seen = map_coordinates(mask.astype(np.float64), [y - dv, x - dh], order=1, cval=0)
    expected = (~outside & (mask_seen > 1 - 1e-6)).astype(np.float32)
    np.testing.assert_array_equal(weights[0], expected)
    assert 0 < (~outside).sum() - expected.sum() <= 4  # the masked pixel's neighbourhood
    assert outside[0].all() and 0 < outside.sum() < outside.size / 2


def test_hdf5_variant_equals_edf(tmp_path):
    raw, spy, spz, bpm5, darks, refs = write_scan(tmp_path / "edf", n=5)
    folder = tmp_path / "h5"
    folder.mkdir()

    def write_h5(path, frames, motors=None, counters=None):
        with h5py.File(path, "w") as fh:
            group = fh.create_group("entry_0000/measurement/frelon")
            group["data"] = frames
            params = group.create_group("parameters")
            if motors:
                params["motor_mne "] = " ".join(motors).encode()  # ESRF's trailing spaces
                params["motor_pos "] = " ".join(repr(float(v)) for v in motors.values())
                params["counter_mne "] = " ".join(counters)
                params["counter_pos "] = " ".join(repr(float(v)) for v in counters.values())

    for i in range(5):
        write_h5(
            folder / f"cell_{i:04d}.h5",
            raw[i : i + 1],
            {"spy": spy[i], "spz": spz[i]},
            {"bpm5_ct": bpm5[i]},
        )
    write_h5(folder / "dark_0000.h5", darks)  # both darks in one file
    write_h5(folder / "ref_0000.h5", refs)
    kw = {"flat_division": True, "recipe": {"use_bpm5_ct": True, "detector": "frelon"}}
    from_h5 = collect(plain(folder, **kw))
    from_edf = collect(plain(tmp_path / "edf", **kw))
    np.testing.assert_array_equal(from_h5[0], from_edf[0])
    np.testing.assert_array_equal(from_h5[2], from_edf[2])
    with pytest.raises(ScanError, match=r"set scan.recipe.detector"):
        collect(plain(folder))
    with pytest.raises(ScanError, match=r"has no entry_0000/measurement/eiger"):
        collect(plain(folder, recipe={"detector": "eiger"}))


def test_bpm5_non_positive_readings_are_interpolated(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    for i, ct in enumerate([100.0, -5.0, 300.0]):
        write_edf(
            folder / f"cell_{i}.edf",
            np.full(SHAPE, 600, np.uint16),
            {"spy": i, "spz": 0},
            {"bpm5_ct": ct},
        )
    data, *_ = collect(plain(folder, recipe={"use_bpm5_ct": True}))
    np.testing.assert_allclose(data[:, 0, 0], [600 / 0.5, 600 / 1.0, 600 / 1.5], rtol=1e-6)


def test_errors_are_clear(tmp_path):
    write_scan(tmp_path / "d", n=2)
    with pytest.raises(RecipeError, match=r"scan.base_path: required for ID16AScan"):
        ID16AScan(**GEOMETRY, sample_name="cell")
    with pytest.raises(RecipeError, match=r"scan.distortion_v_file: must be given together"):
        ID16AScan(**GEOMETRY, base_path=".", sample_name="x", distortion_h_file="dh.edf")
    with pytest.raises(RecipeError, match=r"scan.recipe.detectr: unknown key \(did you mean"):
        ID16AScan(**GEOMETRY, base_path=".", sample_name="x", recipe={"detectr": "frelon"})
    with pytest.raises(ScanError, match=r"no frames nothing\*.edf/.h5 in"):
        ID16AScan(**GEOMETRY, base_path=str(tmp_path / "d"), sample_name="nothing").initialize()
    with pytest.raises(ScanError, match=r"header has no motor 'spx' \(scan.motors\)"):
        plain(tmp_path / "d", motors=["spx", "spz"]).initialize()
    for name in ("dark_0000.edf", "dark_0001.edf"):
        (tmp_path / "d" / name).unlink()
    with pytest.raises(ScanError, match=r"dark subtraction needs dark\*.edf files"):
        plain(tmp_path / "d", dark_subtraction=True).initialize()
