"""RAAR and ePIE/rPIE: ptypy's parameters, the RAAR ↔ DM identity, convergence on a small
MoonFlower scan, residency and the CuPy path (MPI: mpi_engines.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_helpers import model_probe, moonflower, object_error

from ptyscan.engines import DM, EPIE, RAAR
from ptyscan.errors import RecipeError
from ptyscan.registry import ENGINES


@pytest.fixture(scope="module")
def chunk():
    scan = moonflower(60, 32, density=0.25)
    return scan, scan.auto(60)


def run(cls, chunk, n, **kw):
    kw.setdefault("backend", "numpy")
    engine = cls(probe=model_probe(32), **kw)
    engine.add_views(chunk)
    engine.iterate(n)
    return engine


def test_registered_with_ptypy_names_and_defaults():
    assert ENGINES.get("RAAR") is RAAR
    assert ENGINES.get("EPIE") is EPIE and ENGINES.get("ePIE") is EPIE
    assert RAAR.Params().beta == 0.75
    p = EPIE.Params()
    assert (p.alpha, p.beta, p.object_norm_is_global, p.probe_update_start) == (1, 1, False, 2)
    with pytest.raises(RecipeError, match="beta"):
        RAAR(alpha=0.5, backend="numpy")
    with pytest.raises(RecipeError, match="synchronization"):
        EPIE(synchronization=2, backend="numpy")
    with pytest.raises(RecipeError, match="clip_object"):
        EPIE(clip_object=(2, 1), backend="numpy")


def test_raar_with_beta_one_is_dm_with_alpha_one(chunk):
    """ptypy's coefficients: RAAR (1 - 2β, β, 2) equals DM (-α, 1, 1 + α) at β = α = 1."""
    raar = run(RAAR, chunk[1], 6, beta=1.0, precision="double")
    dm = run(DM, chunk[1], 6, alpha=1.0, precision="double")
    np.testing.assert_array_equal(raar.object, dm.object)
    np.testing.assert_array_equal(raar.probe, dm.probe)
    assert [h["fourier"] for h in raar.history] == [h["fourier"] for h in dm.history]
    other = run(RAAR, chunk[1], 6, precision="double")  # beta 0.75 is another iteration
    assert not np.allclose(other.object, dm.object)


@pytest.mark.parametrize(
    ("cls", "kw", "limit"),
    [
        (RAAR, {}, 0.04),
        (EPIE, {}, 0.04),
        (EPIE, {"rpie_alpha": 0.1}, 0.02),
        (EPIE, {"object_norm_is_global": True, "alpha": 0.9, "beta": 0.5}, 0.04),
    ],
)
def test_converges_on_moonflower(chunk, cls, kw, limit):
    scan, data = chunk
    engine = run(cls, data, 30, **kw)
    fourier = [h["fourier"] for h in engine.history]
    assert fourier[-1] < 0.1 * fourier[0]
    assert object_error(scan, engine.state) < limit
    assert all(np.isfinite(h["photons"]) and h["exit"] > 0 for h in engine.history)


def test_epie_order_seed_and_residency(chunk):
    data = chunk[1]
    a = run(EPIE, data, 4, precision="double")
    b = run(EPIE, data, 4, precision="double", data_residency="host", block_size=7)
    np.testing.assert_array_equal(a.object, b.object)
    c = run(EPIE, data, 4, precision="double", seed=1)
    assert not np.allclose(c.object, a.object)
    d = run(EPIE, data, 4, precision="double", random_order=False, clip_object=(0, 1.2))
    assert np.abs(d.object).max() <= 1.2 + 1e-12


@pytest.mark.parametrize(("cls", "kw"), [(RAAR, {}), (EPIE, {"rpie_alpha": 0.5})])
def test_cupy_path_agrees_with_numpy(cupy_module, chunk, cls, kw):
    data = chunk[1]
    ref = run(cls, data, 5, precision="double", **kw)
    dev = run(cls, data, 5, precision="double", backend="cupy", **kw)
    assert isinstance(dev.state.object, cupy_module.ndarray)
    np.testing.assert_allclose(dev.object, ref.object, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dev.probe, ref.probe, rtol=1e-9, atol=1e-9)
    streamed = run(cls, data, 5, precision="double", backend="cupy", data_residency="host", **kw)
    np.testing.assert_allclose(streamed.object, ref.object, rtol=1e-7, atol=1e-7)
