"""The numba kernels of engines/cpu_kernels.py and engines/ml_kernels.py against the array
code they replace."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_helpers import model_probe, moonflower

from ptyscan.backend import get_backend
from ptyscan.engines import DM, ML, RAAR, cpu_kernels, kernels, ml_kernels
from ptyscan.engines.operator import Operator
from ptyscan.propagation import FarField

pytest.importorskip("numba")

DTYPES = [np.complex64, np.complex128]


def _random(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _case(dtype, views=6, frame=(12, 10), obj=(30, 27), seed=0):
    rng = np.random.default_rng(seed)
    bk = get_backend("numpy", precision="single" if dtype == np.complex64 else "double")
    op = Operator(bk, FarField(frame, backend=bk), frame)
    offsets = np.stack(
        [
            rng.integers(0, obj[0] - frame[0] + 1, views),
            rng.integers(0, obj[1] - frame[1] + 1, views),
        ],
        axis=1,
    )
    offsets[1] = offsets[0]  # two views at the same place: overlaps add up
    return rng, bk, op, offsets, _random(rng, (1, *obj), dtype), _random(rng, (1, *frame), dtype)


def _tol(dtype):
    return 2e-5 if dtype == np.complex64 else 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_exit_waves_equal_probe_times_views(dtype):
    _, _, op, off, obj, probe = _case(dtype)
    out = np.empty((len(off), *probe.shape[1:]), dtype)
    cpu_kernels.exit_waves(obj[0], probe[0], off, out)
    np.testing.assert_allclose(out, op.exit_waves(obj, probe, off)[:, 0, 0], rtol=_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_object_and_probe_sums_equal_the_operator_adjoints(dtype):
    rng, _, op, off, obj, probe = _case(dtype)
    real = np.finfo(dtype).dtype
    waves = _random(rng, (len(off), 1, 1, *probe.shape[1:]), dtype)
    num, den = np.zeros_like(obj), np.zeros(obj.shape[1:], real)
    cpu_kernels.object_sums(waves[:, 0, 0], probe[0], off, num[0], den)
    ref_num = op.adjoint_object(waves, probe, off, np.zeros_like(obj))
    ref_den = op.object_norm(probe, off, np.zeros(obj.shape[1:], real))
    np.testing.assert_allclose(num, ref_num, rtol=_tol(dtype), atol=_tol(dtype))
    np.testing.assert_allclose(den, ref_den, rtol=_tol(dtype))
    pnum, pden = np.zeros_like(probe), np.zeros(probe.shape[1:], real)
    cpu_kernels.probe_sums(waves[:, 0, 0], obj[0], off, pnum[0], pden)
    views = op.views(obj, off)
    np.testing.assert_allclose(
        pnum, op.adjoint_probe(waves, views), rtol=_tol(dtype), atol=_tol(dtype)
    )
    np.testing.assert_allclose(pden, op.probe_norm(views), rtol=_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_ml_adjoint_adds_both_operator_adjoints(dtype):
    """One pass over xi adds the object gradient and the probe gradient, on top of what
    the sums already hold (the block threads' partial sums)."""
    rng, _, op, off, obj, probe = _case(dtype)
    xi = _random(rng, (len(off), 1, 1, *probe.shape[1:]), dtype)
    g_o, g_p = _random(rng, obj.shape, dtype), _random(rng, probe.shape, dtype)
    expect_o = op.adjoint_object(xi, probe, off, g_o.copy())
    expect_p = g_p + op.adjoint_probe(xi, op.views(obj, off))
    ml_kernels.ml_adjoint(xi[:, 0, 0], obj[0], probe[0], off, g_o[0], g_p[0])
    np.testing.assert_allclose(g_o, expect_o, rtol=_tol(dtype), atol=_tol(dtype))
    np.testing.assert_allclose(g_p, expect_p, rtol=_tol(dtype), atol=_tol(dtype))
    with pytest.raises(ValueError, match="outside"):
        ml_kernels.ml_adjoint(xi[:, 0, 0], obj[0], probe[0], off + obj.shape[1], g_o[0], g_p[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("abc", [(-1.0, 1.0, 2.0), (-0.5, 0.75, 2.0), (-0.7, 1.0, 1.7)])
def test_dm_fourier_equals_the_reference_formulas(dtype, abc):
    """Errors and new far fields against kernels.dm_reference (DM's formulas), with views
    on both sides of the power bound and the 'photons' error written out."""
    rng = np.random.default_rng(3)
    real = np.finfo(dtype).dtype
    shape = (5, 8, 9)
    npix = shape[1] * shape[2]
    fpo = _random(rng, shape, dtype)
    spec = _random(rng, shape, dtype)
    data = (np.abs(fpo) ** 2 * rng.uniform(0.5, 1.5, shape)).astype(real)
    fmag = np.sqrt(data)
    ivar = (1 / (data + 1)).astype(real)
    errors, _, _ = kernels.dm_reference(np, fpo, spec, fmag, np.ones(5, real), abc, False)
    errors = errors / npix
    pbound = float(np.median(errors))  # some views over the bound, some within
    outside = errors > pbound
    assert outside.any() and not outside.all()
    renorm = np.where(outside, np.sqrt(pbound / errors), 1.0).astype(real)
    _, change, new = kernels.dm_reference(np, fpo, spec, fmag, renorm, abc, True)
    within = kernels.dm_reference(np, fpo, spec, fmag, renorm, abc, False)[2]
    expect = np.where(outside[:, None, None], new, within)
    delta = expect - spec
    photons = np.sum(ivar * (np.abs(fpo) ** 2 - data) ** 2) / npix
    got = spec.copy()
    sums = cpu_kernels.dm_fourier(fpo, got, data, abc, pbound)
    tol = _tol(dtype) * 10
    np.testing.assert_allclose(got, expect, rtol=tol, atol=tol)
    np.testing.assert_allclose(sums[0], errors.sum(), rtol=tol)
    np.testing.assert_allclose(sums[1], photons, rtol=tol)
    np.testing.assert_allclose(sums[2], np.sum(np.abs(delta) ** 2) / npix, rtol=tol)
    assert change > 0
    no_photons = cpu_kernels.dm_fourier(fpo, spec.copy(), data, abc, pbound, photons=False)
    assert no_photons[1] == 0 and no_photons[0] == pytest.approx(sums[0])


def _run(cls, monkeypatch, numba, n=12, **kw):
    monkeypatch.setenv("PTYSCAN_NUMBA", "1" if numba else "0")
    scan = moonflower(60, 32, noise=True)
    eng = cls(backend="numpy", precision="double", probe=model_probe(32), **kw)
    eng.add_views(scan.auto(60))
    eng.iterate(n)
    return eng


@pytest.mark.parametrize(
    "cls, kw",
    [
        (DM, {}),
        (DM, {"alpha": 0.7, "compute_log_likelihood": False}),
        (RAAR, {"beta": 0.8}),
        (DM, {"block_size": 7}),  # blocks of unequal length, split over threads
    ],
)
def test_dm_with_the_kernels_equals_its_array_code(monkeypatch, cls, kw):
    calls = []
    fourier = cpu_kernels.dm_fourier
    monkeypatch.setattr(cpu_kernels, "dm_fourier", lambda *a: calls.append(1) or fourier(*a))
    fast = _run(cls, monkeypatch, True, **kw)
    assert calls, "the numba path did not run"
    calls.clear()
    plain = _run(cls, monkeypatch, False, **kw)
    assert not calls
    for key in ("fourier", "photons", "exit"):
        got = [h[key] for h in fast.history]
        np.testing.assert_allclose(got, [h[key] for h in plain.history], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fast.object, plain.object, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fast.probe, plain.probe, rtol=0, atol=1e-6)


def test_the_kernels_stand_aside_where_they_do_not_apply(monkeypatch):
    """Two probe modes: DM keeps its array code (and still reconstructs)."""
    monkeypatch.setattr(
        cpu_kernels, "dm_fourier", lambda *a: pytest.fail("kernel used with two modes")
    )
    eng = _run(DM, monkeypatch, True, n=3, probe_modes=2)
    assert np.isfinite(eng.history[-1]["fourier"])


def test_ptyscan_numba_0_turns_them_off(monkeypatch):
    monkeypatch.setenv("PTYSCAN_NUMBA", "0")
    assert not cpu_kernels.enabled()
    monkeypatch.setenv("PTYSCAN_NUMBA", "1")
    assert cpu_kernels.enabled()


ML_TEMPLATE = dict(
    reg_del2=True, scale_precond=True, smooth_gradient=5.0, smooth_gradient_decay=0.1
)


@pytest.mark.parametrize(
    "kw",
    [
        ML_TEMPLATE,
        {"intensity_renormalization": 0.5, "probe_update_start": 3},
        {"block_size": 7, "cache_farfield": True},
    ],
)
def test_ml_with_the_kernels_equals_its_array_code(monkeypatch, kw):
    calls = []
    gaussian = ml_kernels.ml_gaussian
    monkeypatch.setattr(ml_kernels, "ml_gaussian", lambda *a: calls.append(1) or gaussian(*a))
    fast = _run(ML, monkeypatch, True, n=10, **kw)
    assert calls, "the numba path did not run"
    calls.clear()
    plain = _run(ML, monkeypatch, False, n=10, **kw)
    assert not calls
    for key in ("fourier", "photons", "loglik", "step"):
        got = [h[key] for h in fast.history]
        np.testing.assert_allclose(got, [h[key] for h in plain.history], rtol=1e-7)
    np.testing.assert_allclose(fast.object, plain.object, rtol=0, atol=1e-7)
    np.testing.assert_allclose(fast.probe, plain.probe, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kw", [{"ML_type": "poisson"}, {"floating_intensities": True}])
def test_ml_keeps_its_array_code_outside_the_kernels_case(monkeypatch, kw):
    monkeypatch.setattr(ml_kernels, "ml_gaussian", lambda *a: pytest.fail("kernel used"))
    eng = _run(ML, monkeypatch, True, n=3, **kw)
    assert np.isfinite(eng.history[-1]["loglik"])


def test_ml_fused_blocks_keep_their_buffers_between_iterations(monkeypatch):
    """Each block's far field and gradient field are overwritten, not made anew, every
    iteration (fresh arrays are page-faulted and zeroed again: that cost ML 10-20 % at
    256² frames); the line search's first-order waves go to one scratch array per thread,
    not to one per block."""
    eng = _run(ML, monkeypatch, True, n=2, block_size=7, **ML_TEMPLATE)  # 60 views: 9 blocks
    blocks = eng.state.viewsets[0].cache["blocks"]

    def addresses():
        return {
            k: {n: a.__array_interface__["data"][0] for n, a in v.items()}
            for k, v in blocks.items()
        }

    before = addresses()
    assert len(before) > 1 and all(set(v) == {"far", "xi"} for v in before.values())
    eng.iterate(2)
    assert addresses() == before
    scratch = eng._scratch.buf  # this thread's, held by the engine (goes with it)
    assert scratch.shape == (7, 1, 1, 32, 32) and scratch.dtype == np.complex128


@pytest.mark.parametrize("dtype", DTYPES)
def test_ml_kernels_equal_the_array_formulas(dtype):
    rng, _, op, off, obj, probe = _case(dtype)
    real = np.finfo(dtype).dtype
    shape = (len(off), *probe.shape[1:])
    far = _random(rng, shape, dtype)
    data = (np.abs(far) ** 2 * rng.uniform(0.5, 1.5, shape)).astype(real)
    R = 0.7
    w = (R / (1 / R + data)).astype(real)
    xi = np.empty_like(far)
    sums = ml_kernels.ml_gaussian(far, data, R, xi)
    q = np.abs(far) ** 2
    tol = _tol(dtype) * 10
    np.testing.assert_allclose(xi, far * 2 * w * (q - data), rtol=tol, atol=tol)
    np.testing.assert_allclose(sums[0], np.sum(w * (q - data) ** 2), rtol=tol)
    mean_dev = np.mean((np.abs(far) - np.sqrt(data)) ** 2, axis=(1, 2)).sum()
    np.testing.assert_allclose(sums[1], mean_dev, rtol=tol)
    h_o, h_p = _random(rng, obj.shape, dtype), _random(rng, probe.shape, dtype)
    first = np.empty_like(far)
    cross = ml_kernels.ml_taylor(obj[0], h_o[0], probe[0], h_p[0], off, xi, first)
    views, hviews = op.views(obj, off), op.views(h_o, off)
    a, b = op.taylor(views, hviews, probe, h_p)
    np.testing.assert_allclose(first, a[:, 0, 0], rtol=tol, atol=tol)
    np.testing.assert_allclose(cross, 2 * np.sum((xi * np.conj(b[:, 0, 0])).real), rtol=tol)
    dldq = 2 * w * (q - data)
    m1 = 2 * (far * np.conj(first)).real
    expect = np.sum(dldq * np.abs(first) ** 2 + w * m1**2)
    np.testing.assert_allclose(ml_kernels.ml_curvature(far, first, data, R), expect, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 13, 11), (1, 1, 5), (1, 4, 1), (2, 3, 9, 8)])
def test_del2_kernels_equal_the_array_code(monkeypatch, dtype, shape):
    from ptyscan.engines import ops

    rng = np.random.default_rng(5)
    obj, h = _random(rng, shape, dtype), _random(rng, shape, dtype)
    monkeypatch.setenv("PTYSCAN_NUMBA", "0")
    grad, value = ops.del2_grad(np, obj, 0.3)
    coeffs = ops.del2_coeffs(np, obj, h, 0.3)
    monkeypatch.setenv("PTYSCAN_NUMBA", "1")
    got_grad, got_value = ops.del2_grad(np, obj, 0.3)
    tol = _tol(dtype) * 10
    np.testing.assert_allclose(got_grad, grad, rtol=tol, atol=tol)
    np.testing.assert_allclose(got_value, value, rtol=tol)
    np.testing.assert_allclose(ops.del2_coeffs(np, obj, h, 0.3), coeffs, rtol=tol, atol=tol)
    for numba in ("0", "1"):  # out=: the gradient added into what it holds
        monkeypatch.setenv("PTYSCAN_NUMBA", numba)
        out = h.copy()
        same, added_value = ops.del2_grad(np, obj, 0.3, out=out)
        assert same is out
        np.testing.assert_allclose(out, h + grad, rtol=tol, atol=tol)
        np.testing.assert_allclose(added_value, value, rtol=tol)


def test_views_outside_the_object_are_refused_not_written():
    """The kernels do not check indices; their wrappers refuse offsets that would put
    a view outside the object (instead of reading and writing past the arrays)."""
    *_, obj, probe = _case(np.complex128)
    out = np.empty((1, *probe.shape[1:]), np.complex128)
    for bad in ([[-1, 0]], [[0, obj.shape[2] - probe.shape[2] + 1]]):
        with pytest.raises(ValueError, match="outside"):
            cpu_kernels.exit_waves(obj[0], probe[0], np.array(bad), out)
        with pytest.raises(ValueError, match="outside"):
            cpu_kernels.object_sums(out, probe[0], np.array(bad), np.zeros_like(obj[0]))
