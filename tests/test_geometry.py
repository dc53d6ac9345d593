"""Tests for ptyscan.geometry: closed forms, inverses and input checks."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptyscan.errors import ParameterError
from ptyscan.geometry import (
    centred_coordinates_px,
    electron_wavelength_m,
    farfield_sample_pixel_m,
    frame_shape,
    photon_energy_kev,
    positions_to_pixels,
    xray_wavelength_m,
)

ANGSTROM = 1e-10
# h c in keV Angstrom from the exact SI constants, computed here by hand
HC_KEV_ANGSTROM = 6.62607015e-34 * 299792458.0 / 1.602176634e-19 / 1e3 / ANGSTROM


def test_hc_value_by_hand():
    assert math.isclose(HC_KEV_ANGSTROM, 12.3984198, rel_tol=1e-8)


def test_xray_wavelength_cu_k_alpha():
    assert xray_wavelength_m(8.04778) / ANGSTROM == pytest.approx(1.5406, abs=5e-5)


def test_xray_wavelength_closed_form_and_arrays():
    energies = np.array([1.0, 6.2, 12.398419843320026, 100.0])
    got = xray_wavelength_m(energies)
    assert isinstance(got, np.ndarray) and got.shape == (4,)
    np.testing.assert_allclose(got / ANGSTROM, HC_KEV_ANGSTROM / energies, rtol=1e-12)
    assert xray_wavelength_m(12.398419843320026) == pytest.approx(1e-10, rel=1e-12)
    assert isinstance(xray_wavelength_m(8.0), float)


@pytest.mark.parametrize(
    ("energy_kev", "expected_angstrom"),
    [(300.0, "0.01969"), (200.0, "0.02508"), (80.0, "0.04176")],
)
def test_electron_wavelength_reference_values(energy_kev, expected_angstrom):
    got = electron_wavelength_m(energy_kev) / ANGSTROM
    assert f"{got:.4g}" == expected_angstrom


def test_electron_wavelength_non_relativistic_limit():
    # lambda = h / sqrt(2 m e V): 1.2264 nm / sqrt(V) at low voltage
    volts = 10.0
    mass_kg = 9.1093837015e-31
    classical = 6.62607015e-34 / math.sqrt(2 * mass_kg * 1.602176634e-19 * volts)
    assert electron_wavelength_m(volts / 1e3) == pytest.approx(classical, rel=1e-4)


def test_electron_shorter_than_photon_of_same_energy():
    assert electron_wavelength_m(100.0) < xray_wavelength_m(100.0)


@given(st.floats(min_value=0.01, max_value=1000.0))
def test_photon_energy_inverts_wavelength(energy_kev):
    assert photon_energy_kev(xray_wavelength_m(energy_kev)) == pytest.approx(energy_kev, rel=1e-12)


def test_photon_energy_of_one_angstrom():
    assert photon_energy_kev(1e-10) == pytest.approx(HC_KEV_ANGSTROM, rel=1e-12)


def test_farfield_pixel_by_hand():
    # lambda = 1 Angstrom, z = 5 m, 128 pixels of 172 um: 1e-10 * 5 / (128 * 172e-6)
    expected = 1e-10 * 5.0 / (128 * 172e-6)
    got = farfield_sample_pixel_m(
        energy_kev=HC_KEV_ANGSTROM, distance_m=5.0, shape=128, psize_m=172e-6
    )
    assert got.shape == (2,)
    np.testing.assert_allclose(got, [expected, expected], rtol=1e-12)


def test_farfield_pixel_rectangular_and_pair_psize():
    got = farfield_sample_pixel_m(
        wavelength_m=2e-10, distance_m=2.0, shape=(100, 200), psize_m=(50e-6, 75e-6)
    )
    np.testing.assert_allclose(got, [2e-10 * 2 / (100 * 50e-6), 2e-10 * 2 / (200 * 75e-6)])


def test_farfield_pixel_for_electrons_via_wavelength():
    lam = electron_wavelength_m(300.0)
    got = farfield_sample_pixel_m(wavelength_m=lam, distance_m=0.1, shape=64, psize_m=1e-4)
    np.testing.assert_allclose(got, lam * 0.1 / (64 * 1e-4))


def test_positions_to_pixels_by_hand():
    pos = np.array([[0.0, 0.0], [1e-6, -2e-6], [3e-6, 5e-7]])
    got = positions_to_pixels(pos, (1e-7, 5e-8))
    np.testing.assert_allclose(got, [[0, 0], [10, -40], [30, 10]])
    assert got.dtype == np.float64 and got.shape == (3, 2)
    np.testing.assert_allclose(positions_to_pixels(pos, 1e-7), pos / 1e-7)


def test_frame_shape_and_centre():
    assert frame_shape(64) == (64, 64)
    assert frame_shape((3, 5)) == (3, 5)
    y, x = centred_coordinates_px((4, 5))
    assert y.shape == (4, 1) and x.shape == (1, 5)
    assert y[2, 0] == 0 and x[0, 2] == 0
    np.testing.assert_array_equal(y[:, 0], [-2, -1, 0, 1])


@pytest.mark.parametrize(
    ("func", "value", "match"),
    [
        (xray_wavelength_m, -1.0, "energy_kev"),
        (xray_wavelength_m, 0.0, "energy_kev"),
        (xray_wavelength_m, float("nan"), "energy_kev"),
        (xray_wavelength_m, "eight", "energy_kev"),
        (electron_wavelength_m, float("inf"), "energy_kev"),
        (photon_energy_kev, -1e-10, "wavelength_m"),
        (photon_energy_kev, [1e-10, 0.0], "wavelength_m"),
    ],
)
def test_bad_scalars_raise(func, value, match):
    with pytest.raises(ParameterError, match=match):
        func(value)


def test_bad_farfield_inputs_raise():
    good = {"energy_kev": 8.0, "distance_m": 5.0, "shape": 128, "psize_m": 172e-6}
    with pytest.raises(ParameterError, match="exactly one"):
        farfield_sample_pixel_m(**good, wavelength_m=1e-10)
    with pytest.raises(ParameterError, match="exactly one"):
        farfield_sample_pixel_m(**{**good, "energy_kev": None})
    with pytest.raises(ParameterError, match="distance_m"):
        farfield_sample_pixel_m(**{**good, "distance_m": -5.0})
    with pytest.raises(ParameterError, match="shape"):
        farfield_sample_pixel_m(**{**good, "shape": 0})
    with pytest.raises(ParameterError, match="shape"):
        farfield_sample_pixel_m(**{**good, "shape": (128, 128, 3)})
    with pytest.raises(ParameterError, match="shape"):
        farfield_sample_pixel_m(**{**good, "shape": 12.5})
    with pytest.raises(ParameterError, match="psize_m"):
        farfield_sample_pixel_m(**{**good, "psize_m": (1e-4, 1e-4, 1e-4)})
    with pytest.raises(ParameterError, match="psize_m"):
        farfield_sample_pixel_m(**{**good, "psize_m": 0.0})


def test_bad_positions_raise():
    with pytest.raises(ParameterError, match=r"positions_m.*\(N, 2\)"):
        positions_to_pixels(np.zeros(3), 1e-8)
    with pytest.raises(ParameterError, match="positions_m"):
        positions_to_pixels([[0.0, np.nan]], 1e-8)
    with pytest.raises(ParameterError, match="sample_pixel_m"):
        positions_to_pixels(np.zeros((2, 2)), -1e-8)


def test_errors_are_value_errors():
    with pytest.raises(ValueError, match="expected a positive finite number"):
        xray_wavelength_m(-8.0)
