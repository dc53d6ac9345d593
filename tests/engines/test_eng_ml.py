"""Maximum likelihood: gradients, line search, noise models, objective, hand-over from DM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _engine_helpers import model_probe, moonflower

from ptyscan.engines import DM, ML, ops
from ptyscan.engines.likelihood import argmin

MODELS = ["gaussian", "poisson", "euclid"]


@pytest.fixture(scope="module")
def chunk():
    return moonflower(20, 32, density=0.3, noise=True).get_data_chunk(100, start=0)


def prepared(chunk, **kw):
    """An ML engine in double precision with a perturbed object, ready for _gradient()."""
    ml = ML(backend="numpy", precision="double", probe=model_probe(32), probe_update_start=0, **kw)
    ml.add_views(chunk)
    st = ml.state
    st.ensure_probe()
    ml._on_new_views()
    ml._seen_version = st.version
    rng = np.random.default_rng(0)
    st.object = st.object * (1 + 0.1 * rng.standard_normal(st.object.shape))
    return ml, rng


def total(ml):
    """The objective L at the current state (data + regulariser)."""
    return ml._gradient()[3]


def test_defaults_are_ptypys():
    p = ML.Params()
    assert (p.name, p.ML_type, p.floating_intensities, p.intensity_renormalization) == (
        "ML",
        "gaussian",
        False,
        1.0,
    )
    assert (p.reg_del2, p.reg_del2_amplitude, p.smooth_gradient, p.smooth_gradient_decay) == (
        False,
        0.01,
        0.0,
        0.0,
    )
    assert (p.scale_precond, p.scale_probe_object, p.probe_update_start) == (False, 1.0, 2)
    assert p.poly_line_coeffs == "quadratic"


@pytest.mark.parametrize("floating", [False, True])
@pytest.mark.parametrize("kind", MODELS)
def test_gradient_is_the_derivative_and_line_coefficients_agree(chunk, kind, floating):
    """2 Re<g, h> = dL/dt (finite differences); fast and generic curvatures agree."""
    ml, rng = prepared(chunk, ML_type=kind, floating_intensities=floating, reg_del2=True)
    st = ml.state
    g_o, g_p, _, loglik = ml._gradient()
    h_o = rng.standard_normal(g_o.shape) + 1j * rng.standard_normal(g_o.shape)
    h_p = 1e-2 * np.abs(st.probe).max() * (rng.standard_normal(g_p.shape) + 1j)
    slope = 2 * (ops.vdot_real(np, g_o, h_o) + ops.vdot_real(np, g_p, h_p))
    fast = ml._line_coeffs(h_o, h_p, loglik, slope)
    ml.params = ml.params.model_copy(update={"cache_farfield": False})
    generic = ml._line_coeffs(h_o, h_p, loglik, slope)
    assert fast[2] == pytest.approx(generic[2], rel=1e-9)
    assert generic[1] == pytest.approx(slope, rel=1e-9)
    o0, p0, eps = st.object.copy(), st.probe.copy(), 1e-7
    values = []
    for t in (eps, -eps):
        st.object, st.probe = o0 + t * h_o, p0 + t * h_p
        values.append(total(ml))
    st.object, st.probe = o0, p0
    if floating:  # the per-frame factor moves with the state: only the slope is exact
        assert (values[0] - values[1]) / (2 * eps) == pytest.approx(slope, rel=1e-4)
    else:
        assert (values[0] - values[1]) / (2 * eps) == pytest.approx(slope, rel=1e-5)


def test_all_coefficients_are_the_exact_gaussian_polynomial(chunk):
    ml, _rng = prepared(chunk, poly_line_coeffs="all", reg_del2=True)
    st = ml.state
    g_o, g_p, _, loglik = ml._gradient()
    h_o, h_p = -g_o, -g_p
    coeffs = ml._line_coeffs(h_o, h_p, loglik, 0.0)
    assert len(coeffs) == 9
    o0, p0 = st.object.copy(), st.probe.copy()
    for t in (-3e-3, 1e-3, 5e-3):
        st.object, st.probe = o0 + t * h_o, p0 + t * h_p
        assert total(ml) == pytest.approx(np.polynomial.polynomial.polyval(t, coeffs), rel=1e-9)


def test_argmin():
    assert argmin([5.0, -4.0, 2.0], "quadratic") == pytest.approx(1.0)
    # (t² - 1)² has minima at ±1; the linear term tips it to t ≈ -1
    assert argmin([1.0, 0.1, -2.0, 0.0, 1.0], "all") == pytest.approx(-1.0, abs=0.05)
    assert np.isnan(argmin([1.0, 1.0, -1.0], "quadratic"))


def test_gaussian_likelihood_equals_dm_photon_error(chunk):
    """ptypy: ML's Gaussian error on a state equals DM's 'photons' error on that state."""
    dm = DM(backend="numpy", precision="double", probe=model_probe(32))
    dm.add_views(chunk)
    dm.iterate(4)
    dm_next = DM(state=dm.state.copy()).iterate(1)[0]["photons"]
    ml_first = ML(state=dm.state.copy()).iterate(1)[0]["photons"]
    assert ml_first == pytest.approx(dm_next, rel=1e-10)


def test_gaussian_objective_never_increases_with_exact_line_search(chunk):
    ml = ML(backend="numpy", precision="double", probe=model_probe(32), poly_line_coeffs="all")
    ml.add_views(chunk)
    ll = [r["loglik"] for r in ml.iterate(12)]
    assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(ll))
    assert ll[-1] < 0.5 * ll[0]


@pytest.mark.parametrize("poly", ["quadratic", "all"])
@pytest.mark.parametrize("kind", MODELS)
def test_objective_falls_for_every_noise_model(chunk, kind, poly):
    ml = ML(backend="numpy", probe=model_probe(32), ML_type=kind, poly_line_coeffs=poly)
    ml.add_views(chunk)
    ll = [r["loglik"] for r in ml.iterate(10)]
    falls = sum(b < a for a, b in itertools.pairwise(ll))
    assert ll[-1] < ll[0] and falls >= 7, ll


def test_benchmark_settings_reduce_the_objective(chunk):
    ml = ML(
        backend="numpy",
        probe=model_probe(32),
        reg_del2=True,
        scale_precond=True,
        smooth_gradient=5.0,
        smooth_gradient_decay=1 / 50,
        floating_intensities=True,
    )
    ml.add_views(chunk)
    ll = [r["loglik"] for r in ml.iterate(10)]
    assert ll[-1] < 0.7 * ll[0]


def test_probe_is_fixed_before_probe_update_start(chunk):
    ml = ML(backend="numpy", probe=model_probe(32), probe_update_start=2)
    ml.add_views(chunk)
    before = ml.probe.copy()
    ml.iterate(2)
    np.testing.assert_array_equal(ml.probe, before)
    ml.iterate(1)
    assert not np.array_equal(ml.probe, before)


def test_ml_continues_from_dm_state(chunk):
    dm = DM(backend="numpy", probe=model_probe(32))
    dm.add_views(chunk)
    dm.iterate(5)
    ml = ML(state=dm.state, numiter=3)
    assert ml.backend is dm.backend and ml.comm is dm.comm
    before = dm.object.copy()
    out = ml.iterate()
    assert len(out) == 3 and not np.allclose(ml.object, before)
    assert ml.state is dm.state and np.array_equal(dm.object, ml.object)


def test_gaussian_step_when_the_taylor_curvature_is_not_positive(monkeypatch, caplog):
    """ML from a flat probe on MoonFlower 64² meets a non-convex quadratic model at
    iteration 6; the exact degree-8 objective still gives a finite, descending step
    (it used to give NaN, a zero step and a conjugate-gradient restart)."""
    from ptyscan import EOS
    from ptyscan.scans import get_scan

    non_convex = []
    original = ML._line_coeffs

    def spy(self, *args, exact=False, **kwargs):
        coeffs = original(self, *args, exact=exact, **kwargs)
        if not exact and len(coeffs) == 3 and not coeffs[2] > 0:
            non_convex.append(self.curiter)
        return coeffs

    monkeypatch.setattr(ML, "_line_coeffs", spy)
    scan = get_scan("MoonFlowerScan")(num_frames=50, shape=64, seed=1)
    ml = ML(numiter=12, backend="numpy", block_size=8)
    while (chunk := scan.auto(100)) is not EOS:
        ml.add_views(chunk)
    history = ml.iterate(10)
    assert non_convex, "the scenario no longer produces a non-convex quadratic model"
    for k in non_convex:
        assert np.isfinite(history[k]["step"]) and history[k]["step"] > 0
        assert history[k + 1]["loglik"] < history[k]["loglik"]
    assert "restarting the conjugate gradient" not in caplog.text
