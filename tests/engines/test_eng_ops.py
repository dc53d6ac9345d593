"""Shared engine operations: view gather/scatter, Gaussian smoothing, regulariser, clipping."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptyscan.engines import get_backend, ops
from ptyscan.engines.blockpool import BlockPool

BK = get_backend("numpy", precision="double", threads=1)


@pytest.fixture
def views():
    rng = np.random.default_rng(0)
    obj = rng.standard_normal((2, 40, 50)) + 1j * rng.standard_normal((2, 40, 50))
    offsets = np.array([[0, 0], [3, 7], [22, 34], [3, 7], [10, 1]])
    return obj, offsets


def test_gather_methods_agree_and_cut_the_right_pixels(views):
    obj, offsets = views
    loop = ops.gather(BK, obj, offsets, (18, 16), method="loop")
    index = ops.gather(BK, obj, offsets, (18, 16), method="index")
    assert loop.shape == (5, 2, 18, 16)
    np.testing.assert_array_equal(loop, index)
    np.testing.assert_array_equal(loop[2], obj[:, 22:40, 34:50])


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("complex_", [False, True])
def test_scatter_methods_agree_and_sum_overlaps(views, shared, complex_):
    _obj, offsets = views
    rng = np.random.default_rng(1)
    shape = (18, 16) if shared else (len(offsets), 2, 18, 16)
    vals = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if complex_ else 0)
    target_shape = (40, 50) if shared else (2, 40, 50)
    dtype = complex if complex_ else float
    a = ops.scatter_add(BK, np.zeros(target_shape, dtype), vals, offsets, method="loop")
    b = ops.scatter_add(BK, np.zeros(target_shape, dtype), vals, offsets, method="index")
    np.testing.assert_allclose(a, b, atol=1e-12)
    expected = np.zeros(target_shape, dtype)
    for i, (y, x) in enumerate(offsets):
        expected[..., y : y + 18, x : x + 16] += vals if shared else vals[i]
    np.testing.assert_allclose(a, expected, atol=1e-12)


def test_smooth_length_is_the_next_7_smooth_number():
    def smooth(n):
        for p in (2, 3, 5, 7):
            while n % p == 0:
                n //= p
        return n == 1

    for n in range(1, 3000):
        m = ops.smooth_length(n)
        assert m >= n and smooth(m) and not any(smooth(k) for k in range(n, m))
    assert ops.smooth_length(4913) == 5000 and ops.smooth_length(552) == 560


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("sigma", [0.7, 3.0, 12.0])
def test_gaussian_smooth_equals_scipy_ndimage(sigma, threads):
    """The padded sizes (36 x 47, 54 x 65, 126 x 137) are made 7-smooth: all but 36 and
    54 and 126 are reflected further, which must not change the result; at sigma 12 the
    radius (48) is longer than the array (reflected more than once, as ndimage)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 30, 41)) + 1j * rng.standard_normal((2, 30, 41))
    split = BlockPool(get_backend("numpy", threads=threads)).split  # bands of 10 and 14
    out = ops.gaussian_smooth(BK, x, sigma, split=split)
    for m in range(2):
        ref = ndimage.gaussian_filter(x[m].real, sigma) + 1j * ndimage.gaussian_filter(
            x[m].imag, sigma
        )
        np.testing.assert_allclose(out[m], ref, atol=1e-12)
    real = ops.gaussian_smooth(BK, x[0].real.copy(), sigma, split=split)
    np.testing.assert_allclose(real, ndimage.gaussian_filter(x[0].real, sigma), atol=1e-12)


def test_del2_gradient_and_line_coefficients():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 9, 11)) + 1j * rng.standard_normal((1, 9, 11))
    h = rng.standard_normal((1, 9, 11)) + 1j * rng.standard_normal((1, 9, 11))
    amp = 0.3
    grad, value = ops.del2_grad(np, x, amp)
    dy, dx = np.diff(x, axis=1), np.diff(x, axis=2)
    assert value == pytest.approx(2 * amp * (np.sum(np.abs(dy) ** 2) + np.sum(np.abs(dx) ** 2)))
    c = ops.del2_coeffs(np, x, h, amp)
    for t in (-0.7, 0.4, 2.0):
        assert ops.del2_grad(np, x + t * h, amp)[1] == pytest.approx(np.polyval(c[::-1], t))
    # Wirtinger gradient: dR/dt at 0 along h is 2 Re<grad, h>
    assert c[1] == pytest.approx(2 * np.real(np.vdot(grad, h)))


def test_clip_amplitude_keeps_phase():
    x = np.array([0.1 * np.exp(1j), 2.0 * np.exp(-2j), 0.7j, 0.0], complex)
    out = ops.clip_amplitude(np, x.copy(), 0.5, 1.0)
    np.testing.assert_allclose(np.abs(out), [0.5, 1.0, 0.7, 0.5])
    np.testing.assert_allclose(np.angle(out[:3]), np.angle(x[:3]))


def test_vdot_real_blocks_match_float64():
    rng = np.random.default_rng(4)
    a = (rng.standard_normal(200_001) + 1j * rng.standard_normal(200_001)).astype(np.complex64)
    b = (rng.standard_normal(200_001) + 1j * rng.standard_normal(200_001)).astype(np.complex64)
    ref = np.real(np.vdot(a.astype(np.complex128), b.astype(np.complex128)))
    assert ops.vdot_real(np, a, b) == pytest.approx(ref, rel=1e-5)
    assert ops.vdot_real(np, a.real, b.real) == pytest.approx(
        np.dot(a.real.astype(float), b.real.astype(float)), rel=1e-5
    )


@pytest.mark.parametrize("shape", [(1, 300, 700), (3, 5)])  # several runs of 64 Ki; one
def test_add_scaled_adds_in_place(shape):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    y = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    expect = y + np.float32(-0.37) * x
    out = ops.add_scaled(np, y, -0.37, x)
    assert out is y and y.dtype == np.complex64
    np.testing.assert_allclose(y, expect, rtol=1e-6, atol=1e-6)
    strided = np.zeros((shape[-1], 4), np.complex64)[:, 1]  # not contiguous: plain path
    ops.add_scaled(np, strided, 2.0, x.reshape(-1)[: shape[-1]])
    np.testing.assert_allclose(strided, 2 * x.reshape(-1)[: shape[-1]], rtol=1e-6)
