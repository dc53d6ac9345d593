"""Far- and near-field propagators: adjoint identity, Parseval, inverses, analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from ptyscan.chunk import ScanMeta
from ptyscan.errors import ParameterError
from ptyscan.propagation import FarField, NearField, propagator_for


def _random(shape, rng, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _dft_reference(x, center):
    """Direct unitary DFT with the zero frequency at ``center`` (any real centre)."""
    ny, nx = x.shape
    ky, kx = np.arange(ny), np.arange(nx)
    ey = np.exp(-2j * np.pi * np.outer(ky - center[0], np.arange(ny)) / ny)
    ex = np.exp(-2j * np.pi * np.outer(np.arange(nx), kx - center[1]) / nx)
    return ey @ x @ ex / np.sqrt(ny * nx)


FAR_CASES = [
    ((16, 16), None),
    ((15, 12), None),
    ((16, 20), (3, 17)),
    ((16, 16), (7.25, 8.6)),
    ((9, 11), (-1.5, 4.0)),
]

NEAR = dict(distance_m=7.8e-3, wavelength_m=1e-10, psize_m=(50e-9, 40e-9))


def _propagators():
    yield from (FarField(shape, center=center) for shape, center in FAR_CASES)
    yield NearField((32, 24), **NEAR)
    yield NearField((16, 16), distance_m=-0.01, wavelength_m=1e-10, psize_m=30e-9)


@pytest.mark.parametrize("prop", list(_propagators()), ids=repr)
def test_adjoint_identity_parseval_and_inverse(prop):
    rng = np.random.default_rng(0)
    x = _random((3, *prop.shape), rng)
    y = _random((3, *prop.shape), rng)
    ax = prop.forward(x)
    assert np.vdot(ax, y) == pytest.approx(np.vdot(x, prop.adjoint(y)), rel=1e-12)
    assert np.linalg.norm(ax) == pytest.approx(np.linalg.norm(x), rel=1e-12)  # Parseval
    np.testing.assert_allclose(prop.adjoint(ax), x, atol=1e-12)
    np.testing.assert_allclose(prop.forward(prop.adjoint(y)), y, atol=1e-12)


@pytest.mark.parametrize("prop", list(_propagators()), ids=repr)
def test_engine_interface_matches_forward(prop):
    """fw = fft_order ∘ forward and bw ∘ fft_order = adjoint (what the engines use)."""
    rng = np.random.default_rng(1)
    x = _random((2, *prop.shape), rng)
    np.testing.assert_allclose(prop.fw(x), prop.fft_order(prop.forward(x)), atol=1e-12)
    np.testing.assert_allclose(prop.bw(prop.fft_order(x)), prop.adjoint(x), atol=1e-12)
    np.testing.assert_allclose(prop.detector_order(prop.fft_order(x)), x, atol=0)


@pytest.mark.parametrize(("shape", "center"), FAR_CASES)
def test_farfield_equals_direct_dft_with_shifted_zero_frequency(shape, center):
    x = _random(shape, np.random.default_rng(2))
    expected_center = (shape[0] // 2, shape[1] // 2) if center is None else center
    np.testing.assert_allclose(
        FarField(shape, center=center).forward(x), _dft_reference(x, expected_center), atol=1e-10
    )


@pytest.mark.parametrize(
    ("shape", "center"), [((16, 16), None), ((15, 12), None), ((8, 10), (2, 9))]
)
def test_farfield_of_a_plane_wave_is_a_delta_at_the_centre(shape, center):
    prop = FarField(shape, center=center)
    out = prop.forward(np.ones(shape, np.complex128))
    cy, cx = (shape[0] // 2, shape[1] // 2) if center is None else center
    expected = np.zeros(shape)
    expected[cy, cx] = np.sqrt(shape[0] * shape[1])
    np.testing.assert_allclose(out, expected, atol=1e-10)


def test_farfield_of_a_delta_is_flat():
    x = np.zeros((8, 12), np.complex128)
    x[0, 0] = 1
    out = FarField((8, 12)).forward(x)
    np.testing.assert_allclose(out, np.full((8, 12), 1 / np.sqrt(96)), atol=1e-12)


def test_fftshift_convention_matches_moonflower_frames():
    """Default centre = numpy fftshift of the unitary FFT (how MoonFlower makes frames)."""
    x = _random((4, 10, 7), np.random.default_rng(3))
    expected = np.fft.fftshift(np.fft.fft2(x, norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(FarField((10, 7)).forward(x), expected, atol=1e-12)


def test_single_precision_is_kept():
    x = _random((2, 16, 16), np.random.default_rng(4), np.complex64)
    for prop in (FarField((16, 16), center=(7.5, 8)), NearField((16, 16), **NEAR)):
        assert prop.forward(x).dtype == np.complex64
        assert prop.adjoint(x).dtype == np.complex64
        np.testing.assert_allclose(prop.adjoint(prop.forward(x)), x, atol=1e-5)
    assert FarField((16, 16)).forward(x.real.astype(np.float32)).dtype == np.complex64


def test_nearfield_zero_distance_is_identity():
    x = _random((16, 20), np.random.default_rng(5))
    prop = NearField((16, 20), distance_m=0.0, wavelength_m=1e-10, psize_m=1e-7)
    np.testing.assert_allclose(prop.forward(x), x, atol=1e-14)
    np.testing.assert_allclose(prop.adjoint(x), x, atol=1e-14)


def test_nearfield_plane_wave_gets_the_angular_spectrum_phase():
    """A grid plane wave exp(2πi f·r) is an eigenfunction: it gains exp(ikz(√(1-λ²f²) - 1))."""
    ny, nx = 32, 24
    py, px = NEAR["psize_m"]
    lam, z = NEAR["wavelength_m"], NEAR["distance_m"]
    my, mx = 3, -5  # cycles across the frame
    y = np.arange(ny)[:, None] * py
    x = np.arange(nx)[None, :] * px
    fy, fx = my / (ny * py), mx / (nx * px)
    wave = np.exp(2j * np.pi * (fy * y + fx * x))
    phase = 2 * np.pi / lam * z * (np.sqrt(1 - lam**2 * (fy**2 + fx**2)) - 1)
    out = NearField((ny, nx), **NEAR).forward(wave)
    np.testing.assert_allclose(out, wave * np.exp(1j * phase), atol=1e-10)


def test_nearfield_gaussian_beam_matches_the_paraxial_solution():
    """Gaussian waist w0 after z (Fresnel): u = 1/(1 + iz/zR) exp(-r²/(w0² + iλz/π))."""
    n, psize, lam = 256, 50e-9, 1e-10
    w0 = 10 * psize
    z = np.pi * w0**2 / lam  # one Rayleigh range: the beam widens by √2
    c = np.arange(n) - n // 2
    r2 = (c[:, None] * psize) ** 2 + (c[None, :] * psize) ** 2
    u0 = np.exp(-r2 / w0**2)
    q = w0**2 + 1j * lam * z / np.pi
    expected = (w0**2 / q) * np.exp(-r2 / q)
    out = NearField((n, n), distance_m=z, wavelength_m=lam, psize_m=psize).forward(u0)
    assert np.max(np.abs(out - expected)) < 1e-6
    assert np.sum(np.abs(out) ** 2) == pytest.approx(np.sum(u0**2), rel=1e-12)


def test_nearfield_backward_distance_undoes_forward():
    x = _random((16, 16), np.random.default_rng(6))
    fwd = NearField((16, 16), **NEAR)
    back = NearField((16, 16), **{**NEAR, "distance_m": -NEAR["distance_m"]})
    np.testing.assert_allclose(back.forward(fwd.forward(x)), x, atol=1e-12)


def test_propagator_for_meta():
    far = ScanMeta(
        shape=(32, 30), psize=(1e-4, 1e-4), energy=7.2, distance=7.0, center=(16.0, 14.5)
    )
    prop = propagator_for(far)
    assert isinstance(prop, FarField) and prop.center == (16.0, 14.5) and prop.shape == (32, 30)
    prop = propagator_for(ScanMeta(shape=(32, 30), psize=(1e-4, 1e-4), energy=7.2, distance=7.0))
    assert prop.center == (16.0, 15.0)
    near = ScanMeta(
        shape=(16, 16), psize=(5e-8, 5e-8), energy=17.0, distance=0.01, propagation="nearfield"
    )
    prop = propagator_for(near)
    assert isinstance(prop, NearField)
    assert prop.wavelength_m == pytest.approx(near.wavelength_m)
    assert prop.psize_m == (5e-8, 5e-8) and prop.distance_m == 0.01


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ParameterError, match="expected \\(\\.\\.\\., 8, 8\\)"):
        FarField((8, 8)).forward(np.zeros((4, 4), complex))
    with pytest.raises(ParameterError, match="center"):
        FarField((8, 8), center=(1.0, np.nan))
    with pytest.raises(ParameterError, match="wavelength_m"):
        NearField((8, 8), distance_m=1.0, wavelength_m=0, psize_m=1e-6)
    bad = ScanMeta(shape=(8, 8), psize=(1e-4, 1e-4), energy=7.2, distance=7.0, propagation="x")
    with pytest.raises(ParameterError, match="farfield"):
        propagator_for(bad)
