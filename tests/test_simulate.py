"""Tests for ptyscan.simulate: objects, probes and scan patterns."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptyscan.errors import ParameterError
from ptyscan.simulate import (
    SCAN_MODELS,
    aperture_probe,
    focused_probe,
    moonflower_object,
    noise_screen,
    normalize_photons,
    positions_by_model,
    raster_positions,
    round_positions,
    smooth_step,
)

# ---------------------------------------------------------------- helpers


def centred_fft(array):
    """Far field with the centre pixel (n // 2) as zero frequency, unitary."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(array), norm="ortho"))


def radius_from_centre(shape):
    ny, nx = shape
    y = np.arange(ny)[:, None] - ny // 2
    x = np.arange(nx)[None, :] - nx // 2
    return np.hypot(y, x)


def rms_diameter_px(probe):
    """Intensity-weighted RMS diameter about the intensity centroid."""
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    y, x = np.indices(intensity.shape)
    total = intensity.sum()
    cy, cx = (intensity * y).sum() / total, (intensity * x).sum() / total
    return 2.0 * math.sqrt((intensity * ((y - cy) ** 2 + (x - cx) ** 2)).sum() / total)


def nearest_neighbour_distances(points):
    d = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


# ---------------------------------------------------------------- objects


def test_moonflower_dtype_shape_and_ranges():
    obj = moonflower_object(128)
    assert obj.dtype == np.complex64 and obj.shape == (128, 128)
    amp, phase = np.abs(obj), np.angle(obj)
    assert amp.min() >= 0.6 - 1e-6 and amp.max() <= 1.0 + 1e-6
    assert phase.min() >= -1.0 - 1e-6 and phase.max() <= 1.0 + 1e-6
    assert amp.max() - amp.min() > 0.3 and phase.max() - phase.min() > 1.5
    assert amp.std() > 0.05 and phase.std() > 0.1


def test_moonflower_is_deterministic():
    np.testing.assert_array_equal(moonflower_object((64, 80)), moonflower_object((64, 80)))


@pytest.mark.parametrize("shape", [(64, 96), (96, 64), (33, 50)])
def test_moonflower_rectangular(shape):
    obj = moonflower_object(shape)
    assert obj.shape == shape and np.all(np.isfinite(obj))
    assert np.abs(obj).std() > 0.02


def test_moonflower_custom_ranges_and_pure_phase():
    obj = moonflower_object(64, amplitude_range=(0.2, 0.5), phase_range=(0.0, 2.0))
    assert np.abs(obj).min() == pytest.approx(0.2, abs=1e-6)
    assert np.abs(obj).max() == pytest.approx(0.5, abs=1e-6)
    pure = moonflower_object(64, amplitude_range=(1.0, 1.0))
    np.testing.assert_allclose(np.abs(pure), 1.0, atol=1e-6)


def test_moonflower_has_fine_detail_but_little_power_at_nyquist():
    obj = moonflower_object(256)
    for image in (np.abs(obj), np.angle(obj)):
        power = np.abs(np.fft.fft2(image - image.mean())) ** 2
        freq = np.hypot(np.fft.fftfreq(256)[:, None], np.fft.fftfreq(256)[None, :])
        fine = power[freq > 1 / 8].sum() / power.sum()  # periods below 8 pixels
        nyquist = power[freq > 0.45].sum() / power.sum()
        assert fine > 1e-3
        assert nyquist < 1e-2 * fine


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amplitude_range": (1.0, 0.5)}, "amplitude_range"),
        ({"amplitude_range": (-0.1, 1.0)}, "amplitude_range"),
        ({"phase_range": (0.0, float("nan"))}, "phase_range"),
        ({"phase_range": 3.0}, "phase_range"),
    ],
)
def test_moonflower_bad_ranges(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        moonflower_object(32, **kwargs)


@pytest.mark.parametrize("shape", [0, (32, -1), (32, 32, 32), 12.5])
def test_moonflower_bad_shape(shape):
    with pytest.raises(ParameterError, match="shape"):
        moonflower_object(shape)


def test_noise_screen_statistics_and_seeding():
    screen = noise_screen((64, 96), rng=3, correlation_px=4.0, amplitude=0.5)
    assert screen.shape == (64, 96) and screen.dtype == np.float32
    assert screen.mean() == pytest.approx(0.0, abs=1e-5)
    assert screen.std() == pytest.approx(0.5, rel=1e-4)
    again = noise_screen((64, 96), rng=np.random.default_rng(3), correlation_px=4.0, amplitude=0.5)
    np.testing.assert_array_equal(screen, again)
    other = noise_screen((64, 96), rng=4, correlation_px=4.0, amplitude=0.5)
    assert not np.array_equal(screen, other)
    # smooth: neighbouring pixels strongly correlated; white noise is not
    smooth_corr = np.corrcoef(screen[:, :-1].ravel(), screen[:, 1:].ravel())[0, 1]
    white = noise_screen((64, 96), rng=3, correlation_px=0.0, amplitude=1.0)
    white_corr = np.corrcoef(white[:, :-1].ravel(), white[:, 1:].ravel())[0, 1]
    assert smooth_corr > 0.9 and abs(white_corr) < 0.1


def test_noise_screen_bad_inputs():
    with pytest.raises(ParameterError, match="rng"):
        noise_screen(16, rng="seed")
    with pytest.raises(ParameterError, match="correlation_px"):
        noise_screen(16, rng=0, correlation_px=-1.0)
    with pytest.raises(ParameterError, match="amplitude"):
        noise_screen(16, rng=0, amplitude=float("inf"))


# ---------------------------------------------------------------- probes


def test_smooth_step_values():
    d = np.array([-10.0, -2.0, -1.0, 0.0, 1.0, 2.0, 10.0])
    got = smooth_step(d, width=2.0)
    np.testing.assert_allclose(got, [0, 0, 0, 0.5, 1, 1, 1], atol=1e-15)
    fine = smooth_step(np.linspace(-3, 3, 601), width=4.0)
    assert np.all(np.diff(fine) >= 0) and fine[0] == 0 and fine[-1] == 1
    np.testing.assert_array_equal(smooth_step(d, width=0.0), [0, 0, 0, 0.5, 1, 1, 1])
    with pytest.raises(ParameterError, match="width"):
        smooth_step(d, width=-1.0)


def test_normalize_photons_single_and_modes():
    rng = np.random.default_rng(0)
    probe = (rng.standard_normal((16, 16)) + 1j * rng.standard_normal((16, 16))).astype(
        np.complex64
    )
    out = normalize_photons(probe, 1e6)
    assert out.dtype == np.complex64 and out.shape == probe.shape
    assert np.sum(np.abs(out.astype(np.complex128)) ** 2) == pytest.approx(1e6, rel=1e-5)
    modes = np.stack([probe, 0.5 * probe, 0.1 * probe])
    out = normalize_photons(modes, 1e8)
    power = np.sum(np.abs(out.astype(np.complex128)) ** 2, axis=(1, 2))
    assert power.sum() == pytest.approx(1e8, rel=1e-5)
    np.testing.assert_allclose(power / power[0], [1.0, 0.25, 0.01], rtol=1e-5)
    np.testing.assert_array_equal(modes[0], probe)  # input untouched


def test_normalize_photons_bad_inputs():
    with pytest.raises(ParameterError, match="photons"):
        normalize_photons(np.ones((4, 4)), -1.0)
    with pytest.raises(ParameterError, match="photons"):
        normalize_photons(np.ones((4, 4)), float("nan"))
    with pytest.raises(ParameterError, match="probe"):
        normalize_photons(np.zeros((4, 4)), 1e6)
    with pytest.raises(ParameterError, match="probe"):
        normalize_photons(np.ones(4), 1e6)


def test_focused_probe_photons_dtype_and_centre():
    probe = focused_probe(128, photons=1e8)
    assert probe.dtype == np.complex64 and probe.shape == (128, 128)
    assert np.sum(np.abs(probe.astype(np.complex128)) ** 2) == pytest.approx(1e8, rel=1e-5)
    intensity = np.abs(probe) ** 2
    y, x = np.indices(intensity.shape)
    centroid = [(intensity * y).sum() / intensity.sum(), (intensity * x).sum() / intensity.sum()]
    np.testing.assert_allclose(centroid, [64, 64], atol=1.0)


@pytest.mark.parametrize(
    ("shape", "pupil_fraction", "edge_px"), [(128, 0.5, 4.0), ((96, 128), 0.4, 3.0)]
)
def test_focused_probe_far_field_inside_pupil(shape, pupil_fraction, edge_px):
    probe = focused_probe(shape, pupil_fraction=pupil_fraction, edge_px=edge_px)
    far = np.abs(centred_fft(probe.astype(np.complex128))) ** 2
    ny, nx = far.shape
    radius = pupil_fraction * min(ny, nx) / 2 + edge_px
    outside = far[radius_from_centre(far.shape) > radius].sum()
    assert outside < 1e-3 * far.sum()
    assert far.sum() == pytest.approx(np.sum(np.abs(probe) ** 2), rel=1e-4)  # Parseval


def test_focused_probe_default_size_is_about_a_third_of_frame():
    diameter = rms_diameter_px(focused_probe(128))
    assert 0.25 * 128 < diameter < 0.42 * 128


def test_focused_probe_is_structured_not_a_disc():
    amp = np.abs(focused_probe(128))
    # defocus fringes: the amplitude along a radius has several local maxima
    profile = amp[64, 64:110]
    peaks = np.sum((profile[1:-1] > profile[:-2]) & (profile[1:-1] > profile[2:]))
    assert peaks >= 2


def test_focused_probe_defocus_widens():
    focused = rms_diameter_px(focused_probe(128, defocus_rad=0.0))
    defocused = rms_diameter_px(focused_probe(128, defocus_rad=20.0))
    assert defocused > 3 * focused


def test_focused_probe_bad_inputs():
    with pytest.raises(ParameterError, match="pupil_fraction"):
        focused_probe(64, pupil_fraction=1.5)
    with pytest.raises(ParameterError, match="pupil_fraction"):
        focused_probe(64, pupil_fraction=0.0)
    with pytest.raises(ParameterError, match="photons"):
        focused_probe(64, photons=0)
    with pytest.raises(ParameterError, match="edge_px"):
        focused_probe(64, edge_px=-1)
    with pytest.raises(ParameterError, match="defocus_rad"):
        focused_probe(64, defocus_rad=float("nan"))


def test_aperture_probe_disc():
    probe = aperture_probe((64, 80), radius_px=10.0, edge_px=2.0, photons=1e7)
    assert probe.dtype == np.complex64 and probe.shape == (64, 80)
    intensity = np.abs(probe.astype(np.complex128)) ** 2
    assert intensity.sum() == pytest.approx(1e7, rel=1e-5)
    r = radius_from_centre((64, 80))
    assert np.all(intensity[r >= 11.0] == 0)
    inside = intensity[r <= 9.0]
    np.testing.assert_allclose(inside, inside[0], rtol=1e-5)  # flat top
    np.testing.assert_allclose(np.angle(probe[r <= 9.0]), 0.0, atol=1e-6)  # flat phase


def test_aperture_probe_bad_radius():
    with pytest.raises(ParameterError, match="radius_px"):
        aperture_probe(64, radius_px=-3.0)


# ---------------------------------------------------------------- patterns


@pytest.mark.parametrize("count", [1, 2, 7, 8, 50, 200])
def test_round_positions_count_and_centre(count):
    pos = round_positions(count, spacing_m=1.5e-6)
    assert pos.shape == (count, 2) and pos.dtype == np.float64
    np.testing.assert_array_equal(pos[0], [0.0, 0.0])


def test_round_positions_shells():
    spacing = 2e-6
    pos = round_positions(300, spacing_m=spacing)
    shell = np.hypot(pos[:, 0], pos[:, 1]) / spacing
    np.testing.assert_allclose(shell, np.round(shell), atol=1e-9)  # radii k * spacing
    shell = np.round(shell).astype(int)
    assert np.all(np.diff(shell) >= 0)  # shell by shell
    for k in range(1, shell.max()):  # every complete shell holds about 2 pi k points
        assert abs(np.sum(shell == k) - 2 * math.pi * k) <= 1
        angles = np.arctan2(pos[shell == k, 0], pos[shell == k, 1]) % (2 * math.pi)
        assert np.all(np.diff(angles) > 0)  # angle increasing


def test_round_positions_neighbour_spacing():
    spacing = 1e-6
    nn = nearest_neighbour_distances(round_positions(150, spacing_m=spacing))
    assert np.all(nn > 0.9 * spacing) and np.all(nn < 1.1 * spacing)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=400))
def test_round_positions_exact_count_property(count):
    pos = round_positions(count, spacing_m=1e-6)
    assert len(pos) == count
    np.testing.assert_array_equal(pos, round_positions(count + 5, spacing_m=1e-6)[:count])


def test_raster_positions_grid():
    spacing = 3e-7
    pos = raster_positions(10, spacing_m=spacing)  # 4 columns, 3 rows
    assert pos.shape == (10, 2)
    np.testing.assert_allclose(np.unique(pos[:, 1]), (np.arange(4) - 1.5) * spacing)
    np.testing.assert_allclose(np.unique(pos[:, 0]), (np.arange(3) - 1.0) * spacing)
    np.testing.assert_allclose(pos[0], [-spacing, -1.5 * spacing])
    assert np.all(np.diff(pos[:, 0]) >= 0)  # row by row: y slow
    np.testing.assert_allclose(np.diff(pos[:4, 1]), spacing)  # x fast within a row
    centre = (pos.max(axis=0) + pos.min(axis=0)) / 2
    np.testing.assert_allclose(centre, 0.0, atol=1e-20)


def test_raster_positions_square_is_centred():
    pos = raster_positions(49, spacing_m=1e-6)
    np.testing.assert_allclose(pos.mean(axis=0), 0.0, atol=1e-18)
    nn = nearest_neighbour_distances(pos)
    np.testing.assert_allclose(nn, 1e-6)


def test_positions_by_model_dispatch():
    np.testing.assert_array_equal(
        positions_by_model("round", 20, spacing_m=1e-6), round_positions(20, spacing_m=1e-6)
    )
    np.testing.assert_array_equal(
        positions_by_model("raster", 20, spacing_m=1e-6), raster_positions(20, spacing_m=1e-6)
    )
    assert set(SCAN_MODELS) == {"round", "raster", "spiral"}


def test_positions_by_model_unknown_lists_models():
    with pytest.raises(ParameterError, match=r"zigzag.*'round'.*'raster'.*'spiral'"):
        positions_by_model("zigzag", 10, spacing_m=1e-6)


@pytest.mark.parametrize("func", [round_positions, raster_positions])
@pytest.mark.parametrize(
    ("count", "spacing", "match"),
    [(0, 1e-6, "count"), (2.5, 1e-6, "count"), (True, 1e-6, "count"), (10, 0.0, "spacing_m")],
)
def test_patterns_bad_inputs(func, count, spacing, match):
    with pytest.raises(ParameterError, match=match):
        func(count, spacing_m=spacing)
