"""Samples: images, thickness and refractive index, materials, smoothing, noise screens."""

import math

import h5py
import numpy as np
import pytest

from ptyscan.errors import ParameterError
from ptyscan.geometry import xray_wavelength_m
from ptyscan.simulate import (
    delta_from_formula,
    load_image,
    noise_transmission,
    object_from_image,
    refractive_index,
    thickness_from_image,
    transmission_from_thickness,
)
from ptyscan.simulate.materials import electron_density_per_m3, parse_formula
from ptyscan.simulate.samples import place_on_canvas, smooth, zoom


def test_load_image_formats(tmp_path):
    image = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "a.npy", image)
    np.testing.assert_array_equal(load_image(tmp_path / "a.npy"), image)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["entry/img"] = image
    np.testing.assert_array_equal(load_image(tmp_path / "a.h5", key="entry/img"), image)
    from PIL import Image

    Image.fromarray(np.uint8(image * 10)).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), image * 10)
    rgb = np.stack([image * 10] * 3, axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(load_image(tmp_path / "rgb.png"), image * 10)
    with pytest.raises(ParameterError, match="key"):
        load_image(tmp_path / "a.h5")
    with pytest.raises(ParameterError, match="no dataset"):
        load_image(tmp_path / "a.h5", key="nope")
    with pytest.raises(ParameterError, match="does not exist"):
        load_image(tmp_path / "missing.npy")
    (tmp_path / "a.txt").write_text("1 2")
    with pytest.raises(ParameterError, match=r"expected a \.npy"):
        load_image(tmp_path / "a.txt")


def test_object_from_image_maps_ranges():
    image = np.linspace(0, 5, 20).reshape(4, 5)
    obj = object_from_image(image, amplitude_range=(0.5, 1.0), phase_range=(-1.0, 2.0))
    assert obj.dtype == np.complex64
    assert np.abs(obj).min() == pytest.approx(0.5) and np.abs(obj).max() == pytest.approx(1.0)
    assert np.angle(obj).min() == pytest.approx(-1.0, abs=1e-6)
    assert np.angle(obj).max() == pytest.approx(2.0, abs=1e-6)
    assert np.angle(obj[0, 0]) == pytest.approx(-1.0, abs=1e-6)  # minimum -> low ends
    with pytest.raises(ParameterError, match="amplitude_range"):
        object_from_image(image, amplitude_range=(-1, 1))


def test_transmission_from_thickness_and_refractive_index():
    wavelength = 1e-10
    thickness = thickness_from_image(np.array([[0.0, 1.0], [2.0, 4.0]]), max_thickness_m=2e-6)
    np.testing.assert_allclose(thickness, [[0, 0.5e-6], [1e-6, 2e-6]])
    t = transmission_from_thickness(thickness, delta=1e-5, beta=1e-7, wavelength_m=wavelength)
    k = 2 * math.pi / wavelength
    np.testing.assert_allclose(np.abs(t), np.exp(-k * 1e-7 * thickness), rtol=1e-6)
    small = transmission_from_thickness(1e-7, delta=1e-6, beta=0.0, wavelength_m=wavelength)
    assert np.angle(small) == pytest.approx(-k * 1e-13, rel=1e-5)  # phase advance: negative


def test_refractive_index_from_henke_tables():
    pytest.importorskip("periodictable", reason="the [sim] extra is not installed")
    # CXRO (Henke) values, Si 2.33 g/cm3 at 10 keV: delta 4.8918e-6, beta 7.3734e-8
    delta, beta = refractive_index("Si", density_g_cm3=2.33, energy_kev=10.0)
    assert delta == pytest.approx(4.8918e-6, rel=5e-3)
    assert beta == pytest.approx(7.3734e-8, rel=2e-2)
    with pytest.raises(ParameterError, match="unknown element"):
        refractive_index("Xx", density_g_cm3=1.0, energy_kev=10.0)


def test_refractive_index_without_tables_falls_back_to_f1_equal_z(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "periodictable", None)  # import fails
    delta, beta = refractive_index("Si", density_g_cm3=2.33, energy_kev=10.0)
    assert beta is None
    assert delta == delta_from_formula("Si", density_g_cm3=2.33, energy_kev=10.0)


def test_delta_from_formula_without_tables():
    assert parse_formula("Ca(OH)2") == {"Ca": 1, "O": 2, "H": 2}
    assert parse_formula("Si3N4") == {"Si": 3, "N": 4}
    # water: 10 electrons per 18.015 g/mol
    n_e = electron_density_per_m3("H2O", density_g_cm3=1.0)
    assert n_e == pytest.approx(1e6 / 18.015 * 6.02214076e23 * 10, rel=1e-4)
    # Si at 10 keV: Henke tables give 4.89e-6 (f1 = 14.2 instead of Z = 14)
    assert delta_from_formula("Si", density_g_cm3=2.33, energy_kev=10) == pytest.approx(
        4.89e-6, rel=0.02
    )
    # delta scales as wavelength**2
    ratio = delta_from_formula("C", density_g_cm3=2.0, energy_kev=8) / delta_from_formula(
        "C", density_g_cm3=2.0, energy_kev=16
    )
    assert ratio == pytest.approx((xray_wavelength_m(8) / xray_wavelength_m(16)) ** 2)
    for bad, match in [
        ("Xx", "unknown element"),
        ("Ca(OH", "unbalanced"),
        ("", "formula"),
        ("H2-", "cannot read"),
    ]:
        with pytest.raises(ParameterError, match=match):
            parse_formula(bad)


def test_noise_transmission_is_seeded_with_the_requested_rms():
    screen = noise_transmission(
        (128, 128),
        rng=3,
        phase_rms=0.3,
        phase_mfs_px=4.0,
        amplitude_rms=0.05,
        amplitude_mfs_px=2.0,
    )
    again = noise_transmission(
        (128, 128),
        rng=np.random.default_rng(3),
        phase_rms=0.3,
        phase_mfs_px=4.0,
        amplitude_rms=0.05,
        amplitude_mfs_px=2.0,
    )
    np.testing.assert_array_equal(screen, again)
    assert np.angle(screen).std() == pytest.approx(0.3, rel=0.01)
    assert np.abs(screen).std() == pytest.approx(0.05, rel=0.05)
    phase = np.angle(screen)
    corr = np.corrcoef(phase[:, :-1].ravel(), phase[:, 1:].ravel())[0, 1]
    assert corr > 0.8  # smooth over the feature size
    with pytest.raises(ParameterError, match="phase_rms"):
        noise_transmission(8, rng=0, phase_rms=-1, phase_mfs_px=1)


def test_smooth_zoom_and_canvas():
    delta = np.zeros((33, 33))
    delta[16, 16] = 1.0
    blurred = smooth(delta, fwhm_px=2.3548200450309493 * 2)  # sigma 2
    profile = blurred[16]
    assert profile[18] / profile[16] == pytest.approx(math.exp(-0.5), rel=0.02)
    cplx = smooth(delta * (1 + 1j), fwhm_px=4.0)
    np.testing.assert_allclose(cplx.real, cplx.imag)
    assert zoom(np.ones((10, 20)), 2).shape == (20, 40)
    assert zoom(np.ones((10, 20)) * 1j, (0.5, 1)).shape == (5, 20)
    canvas = place_on_canvas(np.full((2, 2), 5.0), (6, 6), offset_px=(1, -1), fill=1j)
    assert canvas.dtype == np.complex64 and canvas[0, 0] == 1j
    np.testing.assert_array_equal(np.argwhere(canvas == 5), [[3, 1], [3, 2], [4, 1], [4, 2]])
    cropped = place_on_canvas(np.arange(100).reshape(10, 10), (4, 4))
    np.testing.assert_array_equal(cropped.real, np.arange(100).reshape(10, 10)[3:7, 3:7])
