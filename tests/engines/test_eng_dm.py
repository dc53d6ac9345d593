"""Difference Map: parameters, constraints (inertia, clipping, support), incremental views."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_helpers import model_probe, moonflower

from ptyscan.engines import DM
from ptyscan.errors import RecipeError
from ptyscan.geometry import centred_coordinates_px


@pytest.fixture(scope="module")
def scan():
    return moonflower(24, 32, density=0.25)


@pytest.fixture(scope="module")
def chunk(scan):
    return scan.get_data_chunk(100, start=0)


def make(chunk, **kw):
    kw.setdefault("probe", model_probe(32))
    dm = DM(backend="numpy", **kw)
    dm.add_views(chunk)
    return dm


def test_defaults_are_ptypys():
    p = DM.Params()
    assert (p.name, p.alpha, p.probe_update_start, p.update_object_first) == ("DM", 1.0, 2, True)
    assert (p.overlap_converge_factor, p.overlap_max_iterations) == (0.05, 10)
    assert (p.probe_inertia, p.object_inertia, p.fourier_relax_factor) == (1e-9, 1e-4, 0.05)
    assert (p.obj_smooth_std, p.clip_object, p.probe_support) == (None, None, 0.7)
    assert p.compute_log_likelihood is True


def test_parameters_are_validated():
    with pytest.raises(RecipeError, match="did you mean 'alpha'"):
        DM(alfa=0.5, backend="numpy")
    with pytest.raises(RecipeError, match="clip_object"):
        DM(clip_object=(1.0, 0.5), backend="numpy")
    dm = DM({"numiter": 7}, backend="numpy", alpha=0.5)
    assert dm.params.numiter == 7 and dm.params.alpha == 0.5


def test_iterate_history_and_numiter(chunk):
    dm = make(chunk, numiter=5)
    first = dm.iterate(2)
    assert [r["iteration"] for r in first] == [0, 1]
    assert set(first[0]) >= {"engine", "iteration", "fourier", "photons", "exit", "seconds"}
    rest = dm.iterate()  # the remaining 3
    assert len(rest) == 3 and dm.finished and len(dm.history) == 5
    assert dm.iterate() == []
    for r in dm.history:
        assert all(np.isfinite(r[k]) and r[k] >= 0 for k in ("fourier", "photons", "exit"))
    assert dm.object.dtype == np.complex64 and dm.probe.shape == (1, 32, 32)


def test_no_log_likelihood_reports_zero_photons(chunk):
    assert make(chunk, compute_log_likelihood=False).iterate(2)[-1]["photons"] == 0.0


def test_huge_object_inertia_leaves_the_object_unchanged(chunk):
    dm = make(chunk, object_inertia=1e12, probe_update_start=0)
    before = dm.object.copy()
    dm.iterate(5)
    np.testing.assert_allclose(dm.object, before, atol=1e-6)
    assert not np.allclose(dm.probe, model_probe(32), atol=1e-3)  # the probe did move


def test_clip_object_bounds_hold(chunk):
    dm = make(chunk, clip_object=(0.85, 0.95))
    dm.iterate(4)
    amp = np.abs(dm.object)
    assert amp.min() >= 0.85 - 1e-6 and amp.max() <= 0.95 + 1e-6


def test_probe_support_holds(chunk):
    dm = make(chunk, probe_support=0.3, probe_update_start=0)
    dm.iterate(3)
    y, x = centred_coordinates_px((32, 32))
    outside = np.pi * (y**2 + x**2) >= 0.3 * 32 * 32
    assert np.all(dm.probe[0][outside] == 0)
    assert np.all(np.abs(dm.probe[0][16, 14:19]) > 0)


def test_two_chunks_give_the_same_result_as_one(scan):
    one = DM(backend="numpy", precision="double", probe=model_probe(32))
    one.add_views(scan.get_data_chunk(24, start=0))
    two = DM(backend="numpy", precision="double", probe=model_probe(32))
    two.add_views(scan.get_data_chunk(10, start=0))
    two.add_views(scan.get_data_chunk(14, start=10))
    h1, h2 = one.iterate(10), two.iterate(10)
    np.testing.assert_allclose(two.object, one.object, rtol=0, atol=1e-9)
    np.testing.assert_allclose(two.probe, one.probe, rtol=0, atol=1e-9 * np.abs(one.probe).max())
    for a, b in zip(h1, h2, strict=True):
        assert a["fourier"] == pytest.approx(b["fourier"], rel=1e-9)


def test_views_added_while_iterating(scan):
    dm = DM(backend="numpy", probe=model_probe(32))
    dm.add_views(scan.get_data_chunk(8, start=0))
    dm.iterate(3)
    shape = dm.object.shape
    dm.add_views(scan.get_data_chunk(16, start=8))
    out = dm.iterate(3)
    assert dm.state.n_views_total == 24 and dm.object.shape != shape
    assert all(vs.exit is not None for vs in dm.state.viewsets)
    assert all(np.isfinite(r["fourier"]) for r in out)


@pytest.mark.parametrize(
    "kw",
    [
        {"alpha": 0.0},
        {"obj_smooth_std": 2.0},
        {"update_object_first": False, "probe_update_start": 0},
        {"probe_modes": 2, "object_modes": 2, "probe": None},
        {"fourier_relax_factor": 0.0, "overlap_max_iterations": 1},
    ],
    ids=str,
)
def test_options_run_and_reduce_the_photon_error(chunk, kw):
    dm = make(chunk, **kw)
    h = dm.iterate(8)
    assert h[-1]["photons"] < h[0]["photons"]
    assert np.all(np.isfinite(dm.object)) and np.all(np.isfinite(dm.probe))


def test_focused_probe_model_starts_from_the_mean_frame(chunk):
    dm = DM(backend="numpy", probe_model="focused")
    dm.add_views(chunk)
    far = np.abs(dm.state.propagator.forward(dm.probe[0])) ** 2
    mean = np.mean(chunk.data, axis=0)
    np.testing.assert_allclose(
        far, mean * mean.sum() / far.sum(), rtol=1e-3, atol=1e-3 * mean.max()
    )
    assert np.all(np.isfinite(dm.iterate(3)[-1]["photons"]))


def test_probe_array_parameter_is_used_but_not_dumped(chunk):
    probe = model_probe(32)
    dm = DM(DM.Params(probe=probe), backend="numpy", numiter=3)
    assert dm.params.probe is not None and "probe" not in dm.params.to_dict()
    dm.add_views(chunk)
    np.testing.assert_allclose(dm.probe[0], probe, rtol=1e-6, atol=1e-6 * np.abs(probe).max())


def test_registry_finds_the_engines():
    from ptyscan.engines import ML
    from ptyscan.recipe import validate_engine
    from ptyscan.registry import ENGINES

    assert ENGINES.get("DM") is DM and ENGINES.get("ML") is ML
    cls, params = validate_engine({"name": "ML", "ML_type": "poisson"}, prefix="engines[1]")
    assert cls is ML and isinstance(params, ML.Params) and params.ML_type == "poisson"
    with pytest.raises(RecipeError, match="ML_type"):
        validate_engine({"name": "ML", "ML_type": "laplace"}, prefix="engines[1]")
