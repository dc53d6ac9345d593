"""Probe physics against closed forms: wavelengths, Airy radius, zone plates, χ, modes."""

import math

import numpy as np
import pytest

from ptyscan.errors import ParameterError
from ptyscan.geometry import electron_wavelength_m, xray_wavelength_m
from ptyscan.propagation import NearField
from ptyscan.simulate import (
    aberration_phase_rad,
    aperture,
    aperture_probe,
    convert_aberrations,
    electron_probe,
    focused_beam,
    fzp_focal_length_m,
    fzp_probe,
    mixed_state_probe,
    mode_fractions,
    normalize_aberrations,
    orthogonalize_modes,
)
from ptyscan.simulate.xray import AIRY_FIRST_ZERO


def centred_fft(array):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(array), norm="ortho"))


def first_zero_px(amplitude):
    """First sign change of a real 1-D profile, linearly interpolated."""
    k = next(i for i in range(len(amplitude) - 1) if amplitude[i] * amplitude[i + 1] <= 0)
    return k + amplitude[k] / (amplitude[k] - amplitude[k + 1])


# ---------------------------------------------------------------- wavelengths


@pytest.mark.parametrize(("kv", "angstrom"), [(300, 0.01969), (200, 0.02508), (80, 0.04176)])
def test_electron_wavelength_table(kv, angstrom):
    assert electron_wavelength_m(kv) / 1e-10 == pytest.approx(angstrom, abs=5e-6)


def test_xray_wavelength_is_hc_over_e():
    assert xray_wavelength_m(12.398419843320026) == pytest.approx(1e-10, rel=1e-12)


# ---------------------------------------------------------------- apertures and Airy


def test_far_field_of_a_disc_has_the_airy_first_zero():
    n, radius = 512, 16
    probe = aperture_probe(n, radius_px=radius, edge_px=2.0, photons=1.0)
    far = centred_fft(probe.astype(np.complex128))  # real: the disc is symmetric
    zero = first_zero_px(far[n // 2, n // 2 :].real)
    assert zero == pytest.approx(AIRY_FIRST_ZERO * n / (2 * radius), rel=0.005)


def test_focused_beam_spot_is_airy_of_lens_aperture():
    n, wavelength, focal, pixel = 512, 1e-10, 0.1, 50e-9
    du = wavelength * focal / (n * pixel)  # aperture-plane pixel
    diameter = 32 * du
    probe = focused_beam(
        n,
        wavelength_m=wavelength,
        sample_pixel_m=pixel,
        focal_length_m=focal,
        diameter_m=diameter,
        edge_px=2.0,
        photons=1.0,
    ).astype(np.complex128)
    assert np.sum(np.abs(probe) ** 2) == pytest.approx(1.0, rel=1e-5)
    x = np.arange(n // 2) * pixel
    cut = probe[n // 2, n // 2 :] * np.exp(-1j * np.pi * x**2 / (wavelength * focal))
    cut = (cut * np.exp(-1j * np.angle(cut[0]))).real  # the lens curvature removed: real
    expected = AIRY_FIRST_ZERO * wavelength * focal / diameter
    assert first_zero_px(cut) * pixel == pytest.approx(expected, rel=0.005)
    # spot_size picks the aperture whose Airy diameter is the requested spot
    spot = focused_beam(
        n,
        wavelength_m=wavelength,
        sample_pixel_m=pixel,
        focal_length_m=focal,
        spot_size_m=2 * expected,
        edge_px=2.0,
        photons=1.0,
    )
    np.testing.assert_allclose(spot, probe, atol=1e-6)


def test_focused_beam_defocus_matches_near_field_propagation():
    kw = dict(wavelength_m=1e-10, sample_pixel_m=40e-9, focal_length_m=0.05, diameter_m=60e-6)
    focus = focused_beam(128, photons=1.0, **kw).astype(np.complex128)
    defocused = focused_beam(128, photons=1.0, defocus_m=1e-3, **kw)
    near = NearField(128, distance_m=1e-3, wavelength_m=1e-10, psize_m=40e-9).forward(focus)
    np.testing.assert_allclose(defocused, near, atol=2e-6)
    assert np.abs(defocused).max() < 0.5 * np.abs(focus).max()  # the beam spreads


def test_binary_zone_plate_focuses_at_2_rn_drn_over_lambda():
    """A binary zone plate built from dRn and Rn only focuses (first order) at f = 2 Rn dRn / λ."""
    wavelength, d_rn, r_n, pixel, n = 1e-10, 100e-9, 10e-6, 25e-9, 1024
    zones = round(r_n / (2 * d_rn))  # outermost zone width r_N - r_{N-1} ≈ Rn / (2 N)
    y, x = (np.indices((n, n)) - n // 2) * pixel
    r = np.hypot(y, x)
    index = np.floor((r / r_n) ** 2 * zones)  # zone boundaries r_k = Rn sqrt(k / N)
    plate = ((index % 2 == 0) & (r <= r_n)).astype(np.complex128)
    focal = fzp_focal_length_m(outer_zone_width_m=d_rn, radius_m=r_n, wavelength_m=wavelength)
    assert focal == pytest.approx(2 * r_n * d_rn / wavelength)
    distances = focal * np.linspace(0.9, 1.1, 21)
    peak = []
    for z in distances:
        field = NearField(n, distance_m=z, wavelength_m=wavelength, psize_m=pixel).forward(plate)
        peak.append(abs(field[n // 2, n // 2]) ** 2)
    assert distances[int(np.argmax(peak))] == pytest.approx(focal, rel=0.011)


def test_fzp_probe_is_sharpest_at_its_focus_and_has_a_dark_centre_when_defocused():
    kw = dict(
        wavelength_m=1.24e-10,
        sample_pixel_m=20e-9,
        outer_zone_width_m=50e-9,
        radius_m=20e-6,
        diameter_m=40e-6,
        central_stop_m=15e-6,
        photons=1.0,
    )
    peaks = [np.abs(fzp_probe(128, focus_to_sample_m=ls, **kw)).max() for ls in (-1e-4, 0, 1e-4)]
    assert peaks[1] > 1.5 * max(peaks[0], peaks[2])
    far = np.abs(fzp_probe(256, focus_to_sample_m=1.5e-3, **kw)) ** 2
    r = np.hypot(*(np.indices(far.shape) - 128))  # beam 187 px wide, stop shadow 70 px
    assert far[(r > 8) & (r < 30)].mean() < 0.2 * far[(r > 50) & (r < 85)].mean()


def test_aperture_forms_stop_offset_and_rotation():
    rect = aperture(64, form="rect", size_px=(10, 30), edge_px=0.0)
    assert np.count_nonzero(np.abs(rect[32]) >= 0.5) == 31 and np.count_nonzero(rect[:, 32]) == 11
    soft = aperture(64, form="rect", size_px=(10, 30), edge_px=2.0)
    turned = aperture(64, form="rect", size_px=(10, 30), edge_px=2.0, rotate_rad=math.pi / 2)
    np.testing.assert_allclose(np.abs(turned), np.abs(soft).T, atol=1e-9)
    stop = aperture(64, size_px=40, central_stop=0.5, edge_px=0.0)
    assert stop[32, 32] == 0 and abs(stop[32, 32 + 15]) == 1 and stop[32, 32 + 25] == 0
    moved = aperture(64, size_px=20, offset_px=(0, 10), edge_px=0.0)
    np.testing.assert_allclose(
        np.abs(moved), np.roll(np.abs(aperture(64, size_px=20, edge_px=0.0)), 10, 1)
    )
    soft = np.abs(aperture(64, size_px=40, edge_px=4.0)[32, 32:])
    assert np.all(np.diff(soft) <= 1e-12) and 0 < soft[20] < 1


def test_aperture_diffuser_is_seeded_and_needs_rng():
    a = aperture(64, size_px=40, diffuser=(0.5, 3.0), rng=1)
    np.testing.assert_array_equal(a, aperture(64, size_px=40, diffuser=(0.5, 3.0), rng=1))
    assert not np.array_equal(a, aperture(64, size_px=40, diffuser=(0.5, 3.0), rng=2))
    assert np.std(np.angle(a[np.abs(a) > 0.99])) == pytest.approx(0.5, rel=0.3)
    with pytest.raises(ParameterError, match="rng"):
        aperture(64, diffuser=(0.5, 3.0))
    with pytest.raises(ParameterError, match="diffuser"):
        aperture(64, diffuser=(0.5,), rng=1)


def test_focused_beam_errors():
    kw = dict(wavelength_m=1e-10, sample_pixel_m=50e-9, focal_length_m=0.1)
    with pytest.raises(ParameterError, match="does not fit"):
        focused_beam(64, diameter_m=1e-3, **kw)
    with pytest.raises(ParameterError, match="give one"):
        focused_beam(64, diameter_m=1e-5, spot_size_m=1e-7, **kw)
    with pytest.raises(ParameterError, match="antialiasing"):
        focused_beam(64, antialiasing=1.5, **kw)
    with pytest.raises(ParameterError, match="central_stop_m"):
        fzp_probe(
            64,
            wavelength_m=1e-10,
            sample_pixel_m=5e-8,
            outer_zone_width_m=5e-8,
            radius_m=9e-5,
            diameter_m=1e-5,
            central_stop_m=2e-5,
        )


def test_antialiasing_keeps_the_probe_close():
    kw = dict(
        wavelength_m=1e-10,
        sample_pixel_m=50e-9,
        focal_length_m=0.1,
        diameter_m=30e-6,
        photons=1.0,
        defocus_m=1e-4,
    )
    fine = focused_beam(64, antialiasing=2, **kw)
    assert fine.shape == (64, 64)
    coarse = focused_beam(64, **kw)
    assert np.abs(np.vdot(fine, coarse)) > 0.9


# ---------------------------------------------------------------- aberrations


def test_chi_of_single_aberrations():
    lam, alpha, phi = 2e-12, 0.01, math.radians(40)
    ay, ax = alpha * math.sin(phi), alpha * math.cos(phi)
    k = 2 * math.pi / lam

    def chi(values):
        return float(aberration_phase_rad(ay, ax, wavelength_m=lam, aberrations=values))

    assert chi({"defocus": 1e-8}) == pytest.approx(-k * 1e-8 * alpha**2 / 2)
    assert chi({"C10": 1e-8}) == pytest.approx(k * 1e-8 * alpha**2 / 2)
    assert chi({"Cs": 1e-3}) == pytest.approx(k * 1e-3 * alpha**4 / 4)
    assert chi({"C12": 5e-9, "phi12": 30}) == pytest.approx(
        k * 5e-9 * alpha**2 / 2 * math.cos(2 * (phi - math.radians(30)))
    )
    assert chi({"B2": 1e-7, "B2phi": 10}) == pytest.approx(  # C21 = 3 B2
        k * 3e-7 * alpha**3 / 3 * math.cos(phi - math.radians(10))
    )
    assert chi({"C23a": 2e-7}) == pytest.approx(k * 2e-7 * alpha**3 / 3 * math.cos(3 * phi))
    assert chi({"C23b": 2e-7}) == pytest.approx(k * 2e-7 * alpha**3 / 3 * math.sin(3 * phi))
    assert chi({"C50": 1.0}) == pytest.approx(k * alpha**6 / 6)


def test_notations_normalise_to_krivanek_polar():
    got = normalize_aberrations(
        {"defocus": 100, "Cs": 1e4, "A1": 5, "A1phi": 30, "S3": 2, "C21a": 3, "C21b": 4}
    )
    assert got["C10"] == -100 and got["C30"] == 1e4
    assert got["C12"] == 5 and got["phi12"] == pytest.approx(30)
    assert got["C32"] == 8 and got["phi32"] == 0  # S3 = C32 / 4, angle 0 by default
    assert got["C21"] == pytest.approx(5) and got["phi21"] == pytest.approx(
        math.degrees(math.atan2(4, 3))
    )
    assert list(got) == ["C10", "C12", "phi12", "C21", "phi21", "C30", "C32", "phi32"]
    negative = normalize_aberrations({"C12": -2, "phi12": 10})
    assert negative == {"C12": 2, "phi12": pytest.approx(100)}


def test_notation_round_trips():
    polar = {
        "C10": -50.0,
        "C12": 3.0,
        "phi12": 20.0,
        "C21": 30.0,
        "phi21": 100.0,
        "C23": 7.0,
        "phi23": 50.0,
        "C32": 4.0,
        "phi32": 10.0,
        "C45": 2.0,
        "phi45": 60.0,
    }
    for notation in ("cartesian", "haider"):
        back = normalize_aberrations(convert_aberrations(polar, to=notation))
        assert back.keys() == polar.keys()
        np.testing.assert_allclose([back[k] for k in polar], list(polar.values()), atol=1e-9)
    haider = convert_aberrations(polar, to="haider")
    assert haider["B2"] == pytest.approx(10.0) and haider["S3"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"C10": 1, "defocus": 2}, "already given"),
        ({"A1": 1, "C12": 2}, "already given"),
        ({"C12": 1, "C12a": 2}, "polar and Cartesian"),
        ({"C11": 1}, "invalid aberration order"),
        ({"C22": 1}, "invalid aberration order"),
        ({"C60": 1}, "invalid aberration order"),
        ({"phi10": 5}, "round aberration"),
        ({"C30a": 5}, "round aberration"),
        ({"C1phi": 5}, "round aberration"),
        ({"phi12": 30}, "without its magnitude"),
        ({"C12": float("nan")}, "finite"),
        ({"defocsu": 1}, "did you mean 'defocus'"),
    ],
)
def test_aberration_errors(values, match):
    with pytest.raises(ParameterError, match=match):
        normalize_aberrations(values)


# ---------------------------------------------------------------- electron probes


def test_electron_probe_pupil_is_the_aperture_with_phase_minus_chi():
    n, pixel, kv, mrad = 128, 0.2e-10, 300, 20
    aberrations = {"defocus": 50, "A1": 10, "A1phi": 30}
    probe = electron_probe(
        n,
        energy_kev=kv,
        semi_angle_mrad=mrad,
        sample_pixel_m=pixel,
        aberrations_angstrom=aberrations,
        edge_px=0,
        electrons=1e6,
    )
    assert probe.dtype == np.complex64
    assert np.sum(np.abs(probe.astype(np.complex128)) ** 2) == pytest.approx(1e6, rel=1e-5)
    pupil = centred_fft(probe.astype(np.complex128))
    lam = electron_wavelength_m(kv)
    k = (np.arange(n) - n // 2) / (n * pixel)
    ay, ax = lam * k[:, None], lam * k[None, :]
    inside = np.hypot(ay, ax) < 0.98e-3 * mrad
    outside = np.hypot(ay, ax) > 1.02e-3 * mrad
    assert np.abs(pupil[outside]).max() < 1e-6 * np.abs(pupil).max()
    scaled = {"C10": -50e-10, "C12": 10e-10, "phi12": 30}
    chi = aberration_phase_rad(ay, ax, wavelength_m=lam, aberrations=scaled)
    residual = np.angle(pupil[inside] * np.exp(1j * chi[inside]))
    np.testing.assert_allclose(residual - residual[0], 0.0, atol=1e-3)
    assert np.count_nonzero(inside) == pytest.approx(
        math.pi * (1e-3 * mrad / lam * n * pixel) ** 2, rel=0.05
    )


def test_electron_probe_errors():
    with pytest.raises(ParameterError, match="Nyquist"):
        electron_probe(64, energy_kev=300, semi_angle_mrad=30, sample_pixel_m=1e-10)
    with pytest.raises(ParameterError, match="did you mean"):
        electron_probe(
            64,
            energy_kev=300,
            semi_angle_mrad=20,
            sample_pixel_m=0.2e-10,
            aberrations_angstrom={"Cs3": 1},
        )
    with pytest.raises(ParameterError, match="electrons"):
        electron_probe(64, energy_kev=300, semi_angle_mrad=20, sample_pixel_m=0.2e-10, electrons=0)


# ---------------------------------------------------------------- mixed states


@pytest.mark.parametrize("method", ["hermite", "noise"])
def test_mixed_state_modes_are_orthogonal_with_the_documented_powers(method):
    main = aperture_probe(64, radius_px=12, photons=1e6)
    modes = mixed_state_probe(main, n_modes=4, powers=0.02, method=method, rng=3)
    assert modes.shape == (4, 64, 64) and modes.dtype == np.complex64
    flat = modes.reshape(4, -1).astype(np.complex128)
    gram = flat.conj() @ flat.T
    np.testing.assert_allclose(np.diag(gram).real, [0.94e6, 0.02e6, 0.02e6, 0.02e6], rtol=1e-5)
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-5 * 1e6
    # mode 0 keeps the main probe's shape
    assert abs(np.vdot(flat[0], main.ravel())) / (
        np.linalg.norm(flat[0]) * np.linalg.norm(main)
    ) == pytest.approx(1, abs=1e-6)


def test_mode_fractions_total_and_main():
    np.testing.assert_allclose(mode_fractions(3, [0.1, 0.05]), [0.85, 0.1, 0.05])
    np.testing.assert_allclose(mode_fractions(4, [0.1]), [0.7, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(
        mode_fractions(3, [0.1, 0.05], relative_to="main"), np.array([1, 0.1, 0.05]) / 1.15
    )
    np.testing.assert_allclose(mode_fractions(1, 0.5), [1.0])
    with pytest.raises(ParameterError, match="sum < 1"):
        mode_fractions(3, [0.6, 0.5])
    with pytest.raises(ParameterError, match="positive"):
        mode_fractions(3, [0.1, -0.1])


def test_mixed_state_noise_is_seeded():
    main = aperture_probe(32, radius_px=6)
    a = mixed_state_probe(main, n_modes=3, method="noise", rng=5)
    np.testing.assert_array_equal(a, mixed_state_probe(main, n_modes=3, method="noise", rng=5))
    with pytest.raises(ParameterError, match="rng"):
        mixed_state_probe(main, n_modes=3, method="noise")


def test_orthogonalize_modes_keeps_the_incoherent_sum():
    rng = np.random.default_rng(0)
    modes = rng.standard_normal((3, 16, 16)) + 1j * rng.standard_normal((3, 16, 16))
    modes[1] += 0.8 * modes[0]
    ortho = orthogonalize_modes(modes.astype(np.complex64))
    flat = ortho.reshape(3, -1).astype(np.complex128)
    gram = flat.conj() @ flat.T
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-4 * np.abs(gram).max()
    power = np.diag(gram).real
    assert np.all(np.diff(power) <= 0)
    np.testing.assert_allclose((np.abs(ortho) ** 2).sum(0), (np.abs(modes) ** 2).sum(0), rtol=1e-4)
