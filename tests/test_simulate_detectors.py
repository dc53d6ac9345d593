"""Detector models: Poisson and read-noise statistics, ADU, saturation and gap masks."""

import numpy as np
import pytest

from ptyscan.errors import ParameterError
from ptyscan.simulate import DETECTORS, DetectorModel, detect, detector_model, gap_mask


def test_poisson_plus_read_noise_mean_and_variance():
    model = DetectorModel(qe=0.5, read_noise=3.0, full_well=1e9, dtype="uint32")
    intensity = np.full((256, 256), 400.0)
    frame, valid = detect(intensity, model, rng=np.random.default_rng(0))
    assert frame.dtype == np.uint32 and valid.all()
    counts = frame.astype(np.float64)
    n = counts.size
    assert counts.mean() == pytest.approx(200.0, abs=4 * np.sqrt(209 / n))
    # Poisson (200) + read noise (9) + rounding to integers (1/12)
    assert counts.var() == pytest.approx(200 + 9 + 1 / 12, rel=4 * np.sqrt(2 / n))


def test_adu_conversion_and_noise_free_mode():
    model = DetectorModel(adu=4.0, poisson=False, dtype="float32", full_well=1e9)
    frame, _ = detect(np.full((8, 8), 402.0), model, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(frame, 100.0)  # round(402 / 4)
    poisson = DetectorModel(adu=4.0, full_well=1e9, dtype="uint32")
    frame, _ = detect(np.full((128, 128), 4000.0), poisson, rng=np.random.default_rng(1))
    assert frame.mean() == pytest.approx(1000.0, rel=0.01)


def test_full_well_saturation_is_clipped_and_masked():
    model = DetectorModel(full_well=100.0, poisson=False)
    intensity = np.full((16, 16), 10.0)
    intensity[3:5, 7] = 1000.0
    frame, valid = detect(intensity, model, rng=np.random.default_rng(0))
    assert frame[3, 7] == 100 and not valid[3:5, 7].any()
    assert valid.sum() == 256 - 2 and np.all(frame[valid] == 10)


def test_dtype_limit_is_clipped_and_masked():
    model = DetectorModel(full_well=1e6, dtype="uint8", poisson=False)
    intensity = np.full((4, 4), 100.0)
    intensity[0, 0] = 1000.0
    frame, valid = detect(intensity, model, rng=np.random.default_rng(0))
    assert frame.dtype == np.uint8 and frame[0, 0] == 255 and not valid[0, 0]
    assert valid.sum() == 15


def test_pilatus_gap_masks():
    model = detector_model("PILATUS_300K")
    assert model.shape == (619, 487)
    full = gap_mask(model, model.shape)
    assert full.sum() == 3 * 195 * 487
    assert not full[195:212].any() and not full[407:424].any() and full[:195].all()
    big = detector_model("PILATUS_1M")
    assert big.shape == (1043, 981)
    mask = gap_mask(big, big.shape)
    assert not mask[:, 487:494].any() and mask[:195, 486].all() and mask[:195, 494].all()
    assert mask.sum() == 10 * 195 * 487
    assert detector_model("PILATUS_6M").shape == (2527, 2463)
    assert detector_model("PILATUS_2M").shape == (1679, 1475)


def test_frame_cut_around_the_detector_centre():
    model = detector_model({"name": "PILATUS_300K", "center": (203, 243)})
    mask = gap_mask(model, (64, 64))  # frame row 32 is detector row 203 (inside the gap)
    rows = np.flatnonzero(~mask.any(axis=1))
    np.testing.assert_array_equal(rows, np.arange(195, 212) - 203 + 32)
    assert mask[:, 0].sum() == 64 - 17
    default = gap_mask(detector_model("PILATUS_300K"), (128, 128))
    assert default.all()  # the middle module only
    edge = gap_mask(model.replace(center=(5, 5)), (32, 32))  # off the detector: masked
    assert not edge[:11].any() and not edge[:, :11].any() and edge[11:, 11:].all()


def test_gaps_are_zeroed_in_recorded_frames():
    model = detector_model({"name": "PILATUS_300K", "center": (203, 243)})
    frame, valid = detect(np.full((64, 64), 50.0), model, rng=np.random.default_rng(3))
    assert np.all(frame[~valid] == 0) and frame[valid].mean() == pytest.approx(50, rel=0.05)
    np.testing.assert_array_equal(valid, gap_mask(model, (64, 64)))


def test_frelon_scintillator_gain():
    model = detector_model("FRELON_TAPER")
    intensity = np.full((128, 128), 500.0)
    frame, _ = detect(intensity, model, rng=np.random.default_rng(0))
    expected = 500 * model.sci_qe * model.qe / model.adu
    assert frame.mean() == pytest.approx(expected, rel=0.02)
    assert frame.dtype == np.uint16


def test_detector_model_specs():
    assert detector_model(None) is None
    assert detector_model({}) == DETECTORS["GenericCCD16bit"]
    assert detector_model("") == DETECTORS["GenericCCD16bit"]
    assert detector_model("GenericCCD32bit").dtype == "uint32"
    custom = detector_model({"name": "FLI_PL1001", "read_noise": 2.0})
    assert custom.read_noise == 2.0 and custom.adu == 10.0
    with pytest.raises(ParameterError, match="did you mean 'PILATUS_1M'"):
        detector_model("PILATUS_1m")
    with pytest.raises(ParameterError, match="unknown attribute"):
        detector_model({"name": "PILATUS_1M", "gain": 2})
    with pytest.raises(ParameterError, match="adu"):
        detector_model({"adu": 0})
