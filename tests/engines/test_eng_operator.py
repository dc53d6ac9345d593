"""The forward operator of engines/operator.py and the multislice one of
engines/multislice.py: their adjoints (dot-product tests), far and near field, with
object and probe modes, on NumPy and on the CuPy path."""

from __future__ import annotations

import numpy as np
import pytest

from ptyscan.engines import get_backend
from ptyscan.engines.multislice import MultisliceOperator
from ptyscan.engines.operator import Operator
from ptyscan.propagation import FarField, NearField

FRAME = (12, 10)
OFFSETS = np.array([[0, 0], [3, 4], [9, 12], [3, 4], [6, 1]])  # overlapping, one repeated
FRACTIONS = np.array([[0.25, 0.5], [0.0, 0.75], [0.9, 0.1], [0.5, 0.0], [0.0, 0.0]])


def _propagator(kind, backend):
    if kind == "far":
        return FarField(FRAME, center=(5.5, 5), backend=backend)
    return NearField(FRAME, distance_m=0.02, wavelength_m=1e-10, psize_m=50e-9, backend=backend)


def _random(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _dot(a, b):
    return complex(np.vdot(np.asarray(a).ravel(), np.asarray(b).ravel()))


def _check_adjoints(backend, kind, modes, subpixel=False):
    """<A x, y> = <x, A* y> for x → fw(P · view(x)) and x → fw(x · view(O))."""
    M, K = modes
    offsets = OFFSETS + FRACTIONS if subpixel else OFFSETS
    rng = np.random.default_rng(7)
    interpolation = subpixel if isinstance(subpixel, str) else "linear"
    op = Operator(backend, _propagator(kind, backend), FRAME, interpolation)
    linear = Operator(backend, _propagator(kind, backend), FRAME)  # object_norm: bilinear
    dev, host = backend.to_device, backend.to_host
    obj, probe = _random(rng, (M, 22, 25)), _random(rng, (K, *FRAME))
    far = _random(rng, (len(offsets), M, K, *FRAME))
    # object map, probe fixed
    a_obj = host(op.forward(dev(obj), dev(probe), offsets))
    back = op.adjoint_object(
        op.backpropagate(dev(far)), dev(probe), offsets, backend.xp.zeros((M, 22, 25), complex)
    )
    assert _dot(a_obj, far) == pytest.approx(_dot(obj, host(back)), rel=1e-12)
    # probe map, object fixed
    views = op.views(dev(obj), offsets)
    a_pr = host(op.propagate(op.product(views, dev(probe))))
    back_p = op.adjoint_probe(op.backpropagate(dev(far)), views)
    assert _dot(a_pr, far) == pytest.approx(_dot(probe, host(back_p)), rel=1e-12)
    # the combined adjoint adds both; forward is exit waves then propagation
    g_o = backend.xp.zeros((M, 22, 25), complex)
    g_p = backend.xp.zeros((K, *FRAME), complex)
    op.adjoint(dev(far), dev(probe), views, offsets, g_o, g_p)
    np.testing.assert_allclose(host(g_o), host(back), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(g_p), host(back_p), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a_obj, a_pr, rtol=1e-12, atol=1e-12)
    # the normalisers are the adjoints applied to the probe and the views themselves
    norm_o = host(op.object_norm(dev(probe), offsets, backend.xp.zeros((22, 25))))
    expect = host(
        linear.adjoint_object(
            op.product(linear.views(dev(obj), offsets) * 0 + 1, dev(probe)),
            dev(probe),
            offsets,
            backend.xp.zeros((M, 22, 25), complex),
        )
    )[0].real
    np.testing.assert_allclose(norm_o, expect, rtol=1e-12)
    norm_p = host(op.probe_norm(views))
    np.testing.assert_allclose(norm_p, (np.abs(host(views)) ** 2).sum(axis=(0, 1)), rtol=1e-12)


def _check_multislice_adjoints(backend, kind, modes, subpixel, slices=3):
    """<A x, y> = <x, A* y> for every slice's map x → fw(exit(O with slice s = x)) and
    the probe's map of the multislice operator, the adjoints from one back-propagation
    through the slices."""
    M, K = modes
    offsets = OFFSETS + FRACTIONS if subpixel else OFFSETS
    rng = np.random.default_rng(11)
    between = NearField(
        FRAME, distance_m=2e-9, wavelength_m=2.5e-12, psize_m=3e-11, backend=backend
    )
    interpolation = subpixel if isinstance(subpixel, str) else "linear"
    op = MultisliceOperator(
        backend,
        _propagator(kind, backend),
        FRAME,
        slices=slices,
        between=between,
        interpolation=interpolation,
    )
    dev, host, xp = backend.to_device, backend.to_host, backend.xp
    obj, probe = _random(rng, (M, slices, 22, 25)), _random(rng, (K, *FRAME))
    far = _random(rng, (len(offsets), M, K, *FRAME))
    g_o = xp.zeros((M, slices, 22, 25), complex)
    g_p = xp.zeros((K, *FRAME), complex)
    op.adjoint(dev(far.copy()), dev(probe), op.views(dev(obj), offsets), offsets, g_o, g_p)
    g_o, g_p = host(g_o), host(g_p)
    for s in range(slices):
        x = _random(rng, (M, 22, 25))
        other = obj.copy()
        other[:, s] = x
        lhs = np.vdot(host(op.forward(dev(other), dev(probe), offsets)).ravel(), far.ravel())
        assert lhs == pytest.approx(np.vdot(x.ravel(), g_o[:, s].ravel()), rel=1e-12)
    x = _random(rng, probe.shape)
    lhs = np.vdot(host(op.forward(dev(obj), dev(x), offsets)).ravel(), far.ravel())
    assert lhs == pytest.approx(np.vdot(x.ravel(), g_p.ravel()), rel=1e-12)


CHECKS = {"one slice": _check_adjoints, "multislice": _check_multislice_adjoints}


@pytest.mark.parametrize("model", list(CHECKS))
@pytest.mark.parametrize("subpixel", [False, True, "fourier"])
@pytest.mark.parametrize("kind", ["far", "near"])
@pytest.mark.parametrize("modes", [(1, 1), (2, 3)])
def test_adjoints_numpy(kind, modes, subpixel, model):
    backend = get_backend("numpy", precision="double", threads=1)
    CHECKS[model](backend, kind, modes, subpixel)


@pytest.mark.parametrize("model", list(CHECKS))
@pytest.mark.parametrize("subpixel", [False, True, "fourier"])
@pytest.mark.parametrize("kind", ["far", "near"])
@pytest.mark.parametrize("modes", [(1, 1), (2, 3)])
def test_adjoints_cupy(cupy_module, kind, modes, subpixel, model):
    CHECKS[model](get_backend("cupy", precision="double"), kind, modes, subpixel)


def test_subpixel_views_interpolate_and_integer_ones_are_exact():
    bk = get_backend("numpy", precision="double", threads=1)
    op = Operator(bk, _propagator("far", bk), FRAME)
    ys, xs = np.mgrid[0:22, 0:25]
    plane = (2.0 * ys + 3.0 * xs + 1j * ys)[None]  # linear: bilinear interpolation is exact
    views = op.views(plane, OFFSETS + FRACTIONS)
    for view, (y, x) in zip(views, OFFSETS + FRACTIONS, strict=True):
        ry, rx = np.mgrid[0:12, 0:10]
        np.testing.assert_allclose(view[0], 2 * (y + ry) + 3 * (x + rx) + 1j * (y + ry))
    rng = np.random.default_rng(0)
    obj = _random(rng, (2, 22, 25))
    np.testing.assert_array_equal(op.views(obj, OFFSETS.astype(float)), op.views(obj, OFFSETS))


def test_forward_is_the_product_of_probe_and_object_views():
    bk = get_backend("numpy", precision="double", threads=1)
    rng = np.random.default_rng(3)
    op = Operator(bk, _propagator("far", bk), FRAME)
    obj, probe = _random(rng, (2, 22, 25)), _random(rng, (3, *FRAME))
    waves = op.exit_waves(obj, probe, OFFSETS)
    assert waves.shape == (5, 2, 3, *FRAME)
    y, x = OFFSETS[2]
    np.testing.assert_array_equal(waves[2, 1, 2], obj[1, y : y + 12, x : x + 10] * probe[2])
    np.testing.assert_allclose(
        op.forward(obj, probe, OFFSETS), op.propagator.fw(waves), rtol=1e-13, atol=1e-13
    )
