"""CuPy against NumPy (runs only where CuPy sees a CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_helpers import model_probe, moonflower

from ptyscan.engines import DM, ML, get_backend, ops

cupy = pytest.importorskip("cupy", reason="cupy is not installed (pip install 'ptyscan[gpu]')")


def _device_count():
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver / no device
        return 0


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_device_count() == 0, reason="no CUDA device visible to cupy"),
]


def _normalised_difference(a, b):
    """Mean |Δ|² after removing the global complex factor, relative to mean |b|²."""
    a, b = a.ravel(), b.ravel()
    scale = np.vdot(a, b) / np.vdot(a, a)
    return float(np.mean(np.abs(scale * a - b) ** 2) / np.mean(np.abs(b) ** 2))


def test_cupy_and_numpy_agree_after_100_iterations():
    scan = moonflower(100, 64)
    chunk = scan.auto(100)
    results = {}
    for name in ("numpy", "cupy"):
        dm = DM(backend=name, probe=model_probe(64))
        dm.add_views(chunk)
        dm.iterate(70)
        ML(state=dm.state, reg_del2=True, smooth_gradient=5.0, smooth_gradient_decay=0.05).iterate(
            30
        )
        results[name] = (dm.object, dm.probe)
    assert _normalised_difference(results["cupy"][0], results["numpy"][0]) < 1e-3
    assert _normalised_difference(results["cupy"][1], results["numpy"][1]) < 1e-3


def test_gather_scatter_and_smoothing_on_the_device():
    bk, ref = get_backend("cupy", precision="double"), get_backend("numpy", precision="double")
    rng = np.random.default_rng(0)
    obj = rng.standard_normal((1, 40, 50)) + 1j * rng.standard_normal((1, 40, 50))
    offsets = np.array([[0, 0], [3, 7], [22, 34], [3, 7]])
    got = ops.gather(bk, cupy.asarray(obj), offsets, (18, 16))
    np.testing.assert_array_equal(got.get(), ops.gather(ref, obj, offsets, (18, 16)))
    vals = rng.standard_normal((4, 1, 18, 16)) + 1j
    target = ops.scatter_add(bk, cupy.zeros((1, 40, 50), complex), cupy.asarray(vals), offsets)
    expected = ops.scatter_add(ref, np.zeros((1, 40, 50), complex), vals, offsets)
    np.testing.assert_allclose(target.get(), expected, atol=1e-12)
    smooth = ops.gaussian_smooth(bk, cupy.asarray(obj), 3.0).get()
    np.testing.assert_allclose(smooth, ops.gaussian_smooth(ref, obj, 3.0), atol=1e-12)


def test_host_residency_streams_and_matches_device_on_cupy():
    """'host' streams pinned host blocks through the device (asynchronous copies on a
    second stream) and gives the results of 'device'; 'auto' keeps small scans on the
    device."""
    import dataclasses

    scan = moonflower(60, 64)
    chunk = scan.auto(60)
    rng = np.random.default_rng(0)
    weights = (rng.random(chunk.data.shape) > 0.02).astype(np.float32)
    chunks = [chunk, dataclasses.replace(chunk, weights=weights)]  # shared and per-frame mask
    results = {}
    for residency in ("device", "host"):
        kw = dict(backend="cupy", precision="double", block_size=7, data_residency=residency)
        dm = DM(probe=model_probe(64), **kw)
        for c in chunks:
            dm.add_views(c)
            dm.iterate(5)
        ml = ML(state=dm.state, ML_type="poisson", poly_line_coeffs="all", **kw)
        ml.iterate(5)
        for vs in dm.state.viewsets:
            on_host = isinstance(vs.data, np.ndarray) and isinstance(vs.exit, np.ndarray)
            assert on_host == (residency == "host") == vs.streamed
        results[residency] = (ml.object, ml.probe)
    assert _normalised_difference(results["host"][0], results["device"][0]) < 1e-12
    assert _normalised_difference(results["host"][1], results["device"][1]) < 1e-12
    auto = DM(backend="cupy", probe=model_probe(64))
    auto.add_views(chunk)
    assert not auto.state.viewsets[0].streamed
