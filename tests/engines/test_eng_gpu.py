"""The CuPy path against the NumPy path.

Every test takes the ``cupy_module`` fixture (tests/conftest.py) and so runs twice:
on the real CuPy where a CUDA device exists (marked ``gpu``), and on the strict CPU
stand-in of tests/cupy_standin.py everywhere, which refuses what CuPy refuses
(device arrays turned into NumPy arrays implicitly, host and device arrays mixed,
pointers on the wrong side of a copy). On the stand-in the arithmetic is NumPy's,
so results agree with the NumPy backend to rounding; on a GPU to the tolerances
the issue sets.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _engine_helpers import coverage, model_probe, moonflower
from _helpers import job_recipe, run_until_ml_crashes

from ptyscan.app.runner import run_recipe
from ptyscan.engines import DM, ML, get_backend, ops
from ptyscan.errors import BackendError
from ptyscan.io import read_ptyr
from ptyscan.io.plots import plot_names
from ptyscan.propagation import FarField, NearField
from ptyscan.scans import get_scan


def _normalised_difference(a, b):
    """Mean |Δ|² after removing the global complex factor, relative to mean |b|²."""
    a, b = a.ravel(), b.ravel()
    scale = np.vdot(a, b) / np.vdot(a, a)
    return float(np.mean(np.abs(scale * a - b) ** 2) / np.mean(np.abs(b) ** 2))


def _lit(scan, state):
    """Object pixels the scan lights: coverage above 10 % of its peak."""
    cov = coverage(scan, state)
    return cov > 0.1 * cov.max()


def _on_device(cupy, arr):
    return isinstance(arr, cupy.ndarray) and not isinstance(arr, np.ndarray)


def test_cupy_and_numpy_agree_after_100_iterations(cupy_module):
    """Single precision, 70 DM + 30 ML iterations. The object is compared where the
    scan lights it (coverage above 10 % of its peak): in the dim fringe it is not
    determined by the data, and there even NumPy in single and in double precision
    differ by 0.38 (by 4e-4 inside, and by 1e-5 between two block sizes)."""
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
    assert dm.backend.name == "cupy" and _on_device(cupy_module, dm.state.object)
    lit = _lit(scan, dm.state)
    assert lit.mean() > 0.4
    assert _normalised_difference(results["cupy"][0][0][lit], results["numpy"][0][0][lit]) < 1e-3
    assert _normalised_difference(results["cupy"][1], results["numpy"][1]) < 1e-3


ENGINE_OPTIONS = {
    "dm_constraints": (
        dict(clip_object=(0.2, 1.1), obj_smooth_std=1.5, probe_modes=2, alpha=0.9),
        None,
    ),
    "ml_gaussian_all": (
        dict(probe_modes=2, object_modes=2),
        dict(
            ML_type="gaussian",
            poly_line_coeffs="all",
            reg_del2=True,
            scale_precond=True,
            floating_intensities=True,
        ),
    ),
    "ml_poisson": (dict(), dict(ML_type="poisson", smooth_gradient=3.0, scale_precond=True)),
    "ml_euclid": (dict(), dict(ML_type="euclid", poly_line_coeffs="all", reg_del2=True)),
}


@pytest.mark.parametrize("case", sorted(ENGINE_OPTIONS))
def test_engine_options_agree_with_numpy(cupy_module, case):
    """Every branch of DM and ML (constraints, probe and object modes, the three noise
    models, both line searches, floating intensities, preconditioning) in double
    precision: CuPy follows NumPy, history included. (The tolerance allows for ML's
    conjugate gradients amplifying rounding: a 1e-13 change of the start grows to
    6e-10 in six Poisson iterations with exact line searches, on NumPy alone.)"""
    dm_kw, ml_kw = ENGINE_OPTIONS[case]
    scan = moonflower(40, 32, noise=True, density=0.25)
    chunks = [scan.auto(15), scan.auto(25)]
    rng = np.random.default_rng(4)
    chunks[1] = dataclasses.replace(
        chunks[1], weights=(rng.random(chunks[1].data.shape) > 0.01).astype(np.float32)
    )
    results = {}
    for name in ("numpy", "cupy"):
        kw = dict(backend=name, precision="double", probe=model_probe(32), **dm_kw)
        dm = DM(**kw)
        dm.add_views(chunks[0])
        hist = dm.iterate(4)
        dm.add_views(chunks[1])
        hist += dm.iterate(6)
        if ml_kw is not None:
            hist += ML(state=dm.state, backend=name, precision="double", **ml_kw).iterate(8)
        results[name] = (dm.object, dm.probe, hist)
    obj_c, probe_c, hist_c = results["cupy"]
    obj_n, probe_n, hist_n = results["numpy"]
    assert isinstance(obj_c, np.ndarray) and obj_c.shape == obj_n.shape
    assert _normalised_difference(obj_c, obj_n) < 1e-6
    assert _normalised_difference(probe_c, probe_n) < 1e-6
    assert len(hist_c) == len(hist_n) == (10 if ml_kw is None else 18)
    for a, b in zip(hist_c, hist_n, strict=True):
        for key in ("fourier", "photons", "exit"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-9)
        assert all(isinstance(v, (float, int, str, bool)) for v in a.values())


def test_gather_scatter_and_smoothing_on_the_device(cupy_module):
    cupy = cupy_module
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
    real = ops.scatter_add(bk, cupy.zeros((40, 50)), cupy.asarray(vals[:, 0].real), offsets)
    np.testing.assert_allclose(
        real.get(), ops.scatter_add(ref, np.zeros((40, 50)), vals[:, 0].real, offsets)
    )
    a, b = cupy.asarray(obj), cupy.asarray(obj[..., ::-1])
    assert ops.vdot_real(cupy, a, b) == pytest.approx(ops.vdot_real(np, obj, obj[..., ::-1]))


@pytest.mark.parametrize("kind", ["farfield", "nearfield"])
def test_propagators_run_on_the_device(cupy_module, kind):
    """Forward and adjoint on device arrays, with or without a backend: the same waves
    as on NumPy."""
    cupy = cupy_module
    rng = np.random.default_rng(1)
    wave = (rng.standard_normal((3, 2, 24, 32)) + 1j * rng.standard_normal((3, 2, 24, 32))).astype(
        np.complex64
    )
    if kind == "farfield":
        make = dict(shape=(24, 32))
        cls = FarField
    else:
        make = dict(shape=(24, 32), distance_m=0.01, wavelength_m=7.3e-11, psize_m=50e-9)
        cls = NearField
    host = cls(**make)
    for backend in (get_backend("cupy"), None):
        dev = cls(**make, backend=backend) if backend is not None else cls(**make)
        fwd = dev.forward(cupy.asarray(wave))
        assert _on_device(cupy, fwd)
        np.testing.assert_allclose(fwd.get(), host.forward(wave), rtol=1e-4, atol=1e-5)
        back = dev.adjoint(fwd)
        np.testing.assert_allclose(back.get(), wave, rtol=1e-4, atol=1e-4)


def test_host_residency_streams_and_matches_device_on_cupy(cupy_module):
    """'host' streams pinned host blocks through the device (asynchronous copies on a
    second stream) and gives the results of 'device'; 'auto' keeps small scans on the
    device. DM recomputes the far fields of streamed exit waves, so the two differ by
    rounding (1e-13) after DM; ML's Poisson conjugate gradients then amplify that to
    about 1e-6 of the object's peak in five iterations (so does NumPy)."""
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
    lit = _lit(scan, dm.state)
    assert _normalised_difference(results["host"][0][0][lit], results["device"][0][0][lit]) < 1e-9
    assert _normalised_difference(results["host"][1], results["device"][1]) < 1e-9
    auto = DM(backend="cupy", probe=model_probe(64))
    auto.add_views(chunk)
    assert not auto.state.viewsets[0].streamed


# --- the runner on CuPy ----------------------------------------------------------------------


def _job(tmp_path, backend, **run):
    return job_recipe(tmp_path, scan={"add_poisson_noise": False}, run={"backend": backend, **run})


def test_run_recipe_on_cupy_writes_the_numpy_result(tmp_path, cupy_module):
    """``run_recipe`` with ``backend: cupy``: the result file, its pictures and the
    reconstruction are those of NumPy; a later engine starts from it on the device."""
    (tmp_path / "np").mkdir()
    (tmp_path / "cp").mkdir()
    ref = read_ptyr(run_recipe(_job(tmp_path / "np", "numpy")).result)
    summary = run_recipe(_job(tmp_path / "cp", "cupy", plot=True))
    res = read_ptyr(summary.result)
    assert res.attrs["backend"] == "cupy" and res.attrs["status"] == "final"
    for png in plot_names(summary.result).values():
        assert png.stat().st_size > 1000
    np.testing.assert_array_equal(res.indices, ref.indices)
    scale = np.abs(ref.object).max()
    assert np.max(np.abs(res.object - ref.object)) < 1e-3 * scale
    assert _normalised_difference(res.probe, ref.probe) < 1e-6
    for key in ("fourier", "photons"):
        np.testing.assert_allclose(res.history[key], ref.history[key], rtol=1e-3)
    # start_from on the device: the earlier object and probe, unchanged
    scan = get_scan("MoonFlowerScan")(num_frames=24, shape=32, seed=3, add_poisson_noise=False)
    dm = DM(numiter=1, backend="cupy", start_from=summary.result)
    dm.add_views(scan.auto(24))
    assert _on_device(cupy_module, dm.state.object)
    np.testing.assert_array_equal(dm.object, res.object)
    np.testing.assert_allclose(dm.probe, res.probe, rtol=1e-6)


def test_checkpoint_and_resume_on_cupy(tmp_path, cupy_module, monkeypatch):
    r = _job(tmp_path, "cupy", checkpoint_every=2)
    snap = run_until_ml_crashes(r, monkeypatch)
    assert snap.attrs["status"] == "checkpoint" and snap.attrs["backend"] == "cupy"
    assert [e["iterations_done"] for e in snap.engines] == [4, 0]
    res = read_ptyr(run_recipe(r, resume=True).result)
    assert [e["iterations_done"] for e in res.engines] == [4, 3]
    assert np.isfinite(res.object).all() and res.attrs["backend"] == "cupy"


@pytest.mark.mpi
def test_two_ranks_on_cupy_give_the_one_rank_result(tmp_path, cupy_module):
    """``mpiexec -n 2`` with ``backend: cupy``: the sums over ranks take device arrays
    through host memory; the result is the one-rank result."""
    from _mpi_launch import ROOT, mpirun, require_mpiexec

    require_mpiexec()
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    serial = run_recipe(_job(tmp_path / "one", "cupy", min_frames_for_recon=100))
    two = _job(tmp_path / "two", "cupy", min_frames_for_recon=100)
    if getattr(cupy_module, "STANDIN", False):
        script = str(ROOT / "tests" / "engines" / "standin_run_recipe.py")
    else:
        script = str(ROOT / "templates" / "run_recipe.py")
    run = mpirun(2, [script, two.source, "--no-progress"], timeout=120)
    assert run.returncode == 0, run.output[-4000:]
    a, b = read_ptyr(serial.result), read_ptyr(two.result_path)
    assert b.attrs["ranks"] == 2 and b.attrs["backend"] == "cupy"
    np.testing.assert_array_equal(b.indices, np.arange(24))
    scale = np.abs(a.object).max()
    assert np.max(np.abs(a.object - b.object)) < 1e-3 * scale


def test_gpu_benchmark_case_runs_on_cupy(cupy_module, capsys):
    """benchmarks/bench_engines.py's case (the ``--gpu`` target at a small size):
    warm-up excluded from the timing, device memory and name reported, targets
    worked out (DM against 5 ms only at 1000 frames of 256², ML against 2× DM)."""
    import importlib.util

    from _mpi_launch import ROOT

    spec = importlib.util.spec_from_file_location(
        "bench_engines", ROOT / "benchmarks" / "bench_engines.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = [bench.run_case(e, 30, 3, "cupy", shape=32, warmup=2) for e in ("DM", "ML")]
    for row in rows:
        assert row["backend"] == "cupy" and row["warmup"] == 2 and row["iterations"] == 3
        assert row["device_pool_mb"] is not None and row["device"]
        assert 0 < row["object_error"] < 1 and np.isfinite(row["photons"])
    bench._gpu_targets(rows)
    assert rows[0]["target_s_per_iteration"] is None  # not the 1000 × 256² case
    assert rows[1]["target_s_per_iteration"] == 2 * rows[0]["s_per_iteration"]
    assert "GPU target ML 30 frames of 32²" in capsys.readouterr().out


# --- choosing and checking the device -----------------------------------------------------


def test_auto_picks_cupy_where_it_computes(cupy_module):
    bk = get_backend("auto")
    assert bk.name == "cupy" and bk.device == cupy_module.cuda.runtime.getDevice()


def test_a_gpu_that_cannot_compute_is_reported(monkeypatch, caplog):
    """CuPy that sees a device but fails a first computation (an NVRTC or cuFFT that
    does not match the driver): 'auto' falls back to NumPy with a warning, 'cupy'
    fails at once with the reason and a hint, not in the middle of a run."""
    import cupy_standin

    from ptyscan import backend as backend_module

    cupy_standin.install(monkeypatch.setitem)
    monkeypatch.setattr(backend_module, "_checked", {})

    def broken(*args, **kwargs):
        raise RuntimeError("cuFFT error: CUFFT_INTERNAL_ERROR")

    monkeypatch.setattr(cupy_standin.MODULES["cupyx.scipy.fft"], "fft2", broken)
    with caplog.at_level("WARNING", logger="ptyscan.backend"):
        assert get_backend("auto").name == "numpy"
    assert "cannot compute on it (RuntimeError: cuFFT error: CUFFT_INTERNAL_ERROR)" in caplog.text
    with pytest.raises(BackendError, match="CUDA device 0 is visible but CuPy cannot compute"):
        get_backend("cupy")


def test_ranks_of_a_node_share_its_gpus_out(monkeypatch):
    """``device``: the node-local rank modulo the devices CuPy sees (the engines pass
    it under MPI), so four ranks on a two-GPU node use GPUs 0, 1, 0, 1."""
    import cupy_standin

    cupy = cupy_standin.install(monkeypatch.setitem)
    cupy_standin.set_devices(2)
    got = []
    for local in range(4):
        bk = get_backend("cupy", device=local)
        got.append((bk.device, cupy.cuda.runtime.getDevice()))
    assert got == [(0, 0), (1, 1), (0, 0), (1, 1)]
    assert get_backend("cupy").device == 1  # None: CuPy's current device stays


@pytest.mark.mpi
def test_two_ranks_use_two_gpus(tmp_path, monkeypatch):
    """``mpiexec -n 2`` on a node with two (stand-in) GPUs: each rank computes on its
    own device, recorded in the result."""
    from _mpi_launch import ROOT, mpirun, require_mpiexec

    require_mpiexec()
    job = _job(tmp_path, "cupy")
    script = str(ROOT / "tests" / "engines" / "standin_run_recipe.py")
    run = mpirun(2, [script, job.source, "--no-progress"], timeout=120, env={"STANDIN_GPUS": "2"})
    assert run.returncode == 0, run.output[-4000:]
    res = read_ptyr(job.result_path)
    assert res.attrs["ranks"] == 2 and res.attrs["devices"].tolist() == [0, 1]


def test_frame_dot_on_the_device(cupy_module):
    """Per-frame sums of products, float64, equal to NumPy's on float32 input."""
    cupy = cupy_module
    rng = np.random.default_rng()
    a, b = rng.standard_normal((2, 5, 30, 40)).astype(np.float32)
    got = ops.frame_dot(cupy, cupy.asarray(a), cupy.asarray(b))
    assert got.dtype == np.float64 and got.shape == (5,)
    expected = (a.astype(float) * b).sum(axis=(1, 2))
    scale = np.abs(a.astype(float) * b).sum(axis=(1, 2))  # sums of signs cancel: absolute error
    np.testing.assert_array_less(np.abs(got.get() - expected), 1e-6 * scale)
    np.testing.assert_array_less(np.abs(ops.frame_dot(np, a, b) - expected), 1e-4 * scale)
