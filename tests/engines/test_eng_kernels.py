"""The fused CUDA gather/scatter kernels (ptyscan/engines/kernels.py) against the
flat-index reference (``take``/``add.at``) and the NumPy slice loops, on fresh random
inputs of every layout the engines use. Needs a CUDA device (marked ``gpu``)."""

from __future__ import annotations

import numpy as np
import pytest

from ptyscan.engines import get_backend, kernels, ops


@pytest.fixture
def cupy():
    cupy = pytest.importorskip("cupy", reason="cupy is not installed")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device visible to cupy")
    except Exception:
        pytest.skip("no CUDA device visible to cupy")
    return cupy


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
