"""The fused CUDA gather/scatter kernels (ptyscan/engines/kernels.py) against the
flat-index reference (``take``/``add.at``) and the NumPy slice loops, on fresh random
inputs of every layout the engines use. Needs a CUDA device (marked ``gpu``)."""

from __future__ import annotations

import numpy as np
import pytest

from ptyscan.engines import get_backend, kernels, ops


@pytest.fixture
def cupy(cuda_cupy):
    """The real CuPy on a CUDA device (tests/conftest.py skips without one)."""
    return cuda_cupy


def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _offsets(rng, n, frame, plane):
    """``n`` random top-left pixels inside ``plane``, with repeats (overlaps add up)."""
    offs = np.stack(
        [rng.integers(0, plane[0] - frame[0] + 1, n), rng.integers(0, plane[1] - frame[1] + 1, n)],
        axis=1,
    )
    offs[-1] = offs[0]
    return offs


def test_the_kernels_are_used_only_on_real_cupy():
    assert not kernels.available(np)
    import cupy_standin

    assert not kernels.available(cupy_standin)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("modes", [1, 3])
def test_gather_kernel_equals_the_reference(cupy, dtype, modes):
    rng = np.random.default_rng()
    bk = get_backend("cupy", precision="single" if dtype == np.complex64 else "double")
    obj = _random(rng, (modes, 70, 90), dtype)
    offsets = _offsets(rng, 37, (24, 20), (70, 90))
    dev = cupy.asarray(obj)
    fast = ops.gather(bk, dev, offsets, (24, 20), method="kernel")
    ref = ops.gather(bk, dev, offsets, (24, 20), method="index")
    loop = ops.gather(get_backend("numpy"), obj, offsets, (24, 20), method="loop")
    assert fast.shape == (37, modes, 24, 20) and fast.dtype == dtype
    np.testing.assert_array_equal(fast.get(), ref.get())
    np.testing.assert_array_equal(fast.get(), loop)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "target_shape, values_shape",
    [
        ((1, 70, 90), (37, 1, 24, 20)),
        ((3, 70, 90), (37, 3, 24, 20)),
        ((70, 90), (37, 24, 20)),
        ((70, 90), (24, 20)),  # one array for every view
        ((2, 70, 90), (2, 24, 20)),  # one array per mode, for every view
    ],
)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, np.float32, np.float64])
def test_scatter_kernel_equals_the_reference(cupy, target_shape, values_shape, dtype):
    rng = np.random.default_rng()
    bk = get_backend("cupy", precision="double")
    offsets = _offsets(rng, 37, (24, 20), (70, 90))
    start = _random(rng, target_shape, dtype)
    vals = cupy.asarray(_random(rng, values_shape, dtype))
    fast = ops.scatter_add(bk, cupy.asarray(start), vals, offsets, method="kernel")
    ref = ops.scatter_add(bk, cupy.asarray(start), vals, offsets, method="index")
    loop = ops.scatter_add(get_backend("numpy"), start.copy(), vals.get(), offsets, method="loop")
    tol = 1e-5 if dtype in (np.complex64, np.float32) else 1e-12
    np.testing.assert_allclose(fast.get(), ref.get(), rtol=tol, atol=tol * 40)
    np.testing.assert_allclose(fast.get(), loop, rtol=tol, atol=tol * 40)
    assert not np.allclose(fast.get(), start)  # something was added


@pytest.mark.gpu
def test_the_cupy_engines_use_the_kernels(cupy, monkeypatch):
    """A DM iteration on CuPy goes through the kernels (not the flat-index path)."""
    calls = []
    for name in ("gather", "scatter_add"):
        real = getattr(kernels, name)
        monkeypatch.setattr(
            kernels, name, lambda *a, _real=real, _n=name, **k: calls.append(_n) or _real(*a, **k)
        )
    from _engine_helpers import model_probe, moonflower

    from ptyscan.engines import DM

    dm = DM(backend="cupy", probe=model_probe(64))
    dm.add_views(moonflower(30, 64).auto(30))
    dm.iterate(1)
    assert {"gather", "scatter_add"} <= set(calls)


# --- DM's fused Fourier update --------------------------------------------------------------


def _reference_kernels(monkeypatch):
    """Replace the three CUDA kernels by kernels.dm_reference (NumPy or CuPy arrays)."""

    def errors(xp, f, s, m, c):
        return kernels.dm_reference(xp, f, s, m, xp.ones(len(f), m.dtype), (0.0, 1.0, c), 0)[0]

    def change(xp, f, s, m, r, abc, renormed):
        return kernels.dm_reference(xp, f, s, m, r, abc, renormed)[1]

    def update(xp, f, s, m, r, abc, renormed):
        s[...] = kernels.dm_reference(xp, f, s, m, r, abc, renormed)[2]
        return s

    monkeypatch.setattr(kernels, "dm_errors", errors)
    monkeypatch.setattr(kernels, "dm_exit_change", change)
    monkeypatch.setattr(kernels, "dm_update", update)


def _dm_run(backend, alpha=1.0, precision="double"):
    from _engine_helpers import model_probe, moonflower

    from ptyscan.engines import DM

    dm = DM(backend=backend, probe=model_probe(64), precision=precision, alpha=alpha)
    dm.add_views(moonflower(40, 64).auto(40))
    dm.iterate(8)
    return dm


@pytest.mark.parametrize("alpha", [1.0, 0.7])
def test_dm_fused_path_with_the_reference_formulas_equals_the_array_code(monkeypatch, alpha):
    """On NumPy: DM through _fourier_fused, with kernels.dm_reference standing in for the
    CUDA kernels, gives DM's array-code result (so the formulas the GPU self-check holds
    the kernels to are DM's own)."""
    monkeypatch.setenv("PTYSCAN_NUMBA", "0")  # the array code, not the numba kernels
    plain = _dm_run("numpy", alpha)
    _reference_kernels(monkeypatch)
    monkeypatch.setattr(kernels, "dm_fourier_usable", lambda xp, dtype: True)
    updates = []
    reference_update = kernels.dm_update
    monkeypatch.setattr(
        kernels, "dm_update", lambda *a: updates.append(a[-1]) or reference_update(*a)
    )
    fused = _dm_run("numpy", alpha)
    assert len(updates) >= 8 and 1 in updates  # the fused path ran, renormalising views
    for key in ("fourier", "photons", "exit"):
        got = [h[key] for h in fused.history]
        np.testing.assert_allclose(got, [h[key] for h in plain.history], rtol=1e-9)
    np.testing.assert_allclose(fused.object, plain.object, rtol=0, atol=1e-9)


def test_dm_kernels_that_fail_leave_the_array_code_with_a_warning(monkeypatch, caplog):
    """The safety net: where the kernels cannot be built (here a CuPy stand-in without
    ReductionKernel), dm_fourier_usable answers False once, with a warning."""
    import cupy_standin

    monkeypatch.setattr(kernels, "available", lambda xp: True)
    monkeypatch.setattr(kernels, "_usable", {})
    with caplog.at_level("WARNING", logger="ptyscan.engines.kernels"):
        assert not kernels.dm_fourier_usable(cupy_standin, np.complex64)
        assert not kernels.dm_fourier_usable(cupy_standin, np.complex64)
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records)
    ) == 1
    assert "DM keeps its array code" in caplog.text
    assert not kernels.dm_fourier_usable(np, np.complex64)  # NumPy: never


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("renormed", [0, 1])
def test_dm_kernels_equal_the_reference(cupy, dtype, renormed):
    rng = np.random.default_rng()
    shape = (5, 40, 36)
    real = np.finfo(dtype).dtype
    fpo, spec = (cupy.asarray(_random(rng, shape, dtype)) for _ in range(2))
    fmag = cupy.asarray(rng.random(shape).astype(real))
    renorm = cupy.asarray(rng.uniform(0.3, 1.0, 5).astype(real))
    abc = (-0.8, 1.0, 1.8)
    errors, change, new = kernels.dm_reference(cupy, fpo, spec, fmag, renorm, abc, renormed)
    tol = 1e-5 if dtype == np.complex64 else 1e-12
    got = kernels.dm_errors(cupy, fpo, spec, fmag, abc[2])
    np.testing.assert_allclose(got.get(), errors.get(), rtol=tol)
    assert kernels.dm_exit_change(cupy, fpo, spec, fmag, renorm, abc, renormed) == pytest.approx(
        change, rel=tol
    )
    out = kernels.dm_update(cupy, fpo, spec, fmag, renorm, abc, renormed)
    assert out is spec
    np.testing.assert_allclose(spec.get(), new.get(), rtol=tol, atol=tol)
    assert kernels.dm_fourier_usable(cupy, dtype)


@pytest.mark.gpu
def test_dm_on_cupy_with_and_without_the_fused_update(cupy, monkeypatch):
    """Single precision, 8 iterations: the fused update and the array code agree."""
    fused = _dm_run("cupy", precision="single")
    assert kernels.dm_fourier_usable(cupy, np.complex64)
    monkeypatch.setattr(kernels, "dm_fourier_usable", lambda xp, dtype: False)
    plain = _dm_run("cupy", precision="single")
    for key in ("fourier", "exit"):
        got = [h[key] for h in fused.history]
        np.testing.assert_allclose(got, [h[key] for h in plain.history], rtol=1e-3)
    obj_f, obj_p = fused.object, plain.object
    scale = np.abs(obj_p).max()
    assert np.abs(obj_f - obj_p).max() < 1e-3 * scale
