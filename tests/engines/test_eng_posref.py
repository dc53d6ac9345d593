"""Position refinement (``position_refinement``): parameters, schedule, annealing in DM,
the gradient method in ML, the state and results carrying refined positions, CuPy path."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_helpers import (
    aligned_true_object,
    misplaced_moonflower,
    model_probe,
    moonflower,
    position_error_px,
)

from ptyscan.engines import DM, EPIE, ML, RAAR
from ptyscan.engines.params import DMParams, PositionRefinementParams
from ptyscan.engines.posref import amplitude_at, grid_moves, refine_positions
from ptyscan.errors import RecipeError


@pytest.fixture(scope="module")
def misplaced():
    return misplaced_moonflower()


def _chunk(misplaced):
    scan, true, pixel = misplaced
    scan.framestart = 0  # every test reads the whole scan again
    return scan.auto(100), true, pixel


def test_the_block_takes_ptypys_forms():
    assert DMParams().position_refinement is None
    assert DMParams(position_refinement=False).position_refinement is None
    default = DMParams(position_refinement=True).position_refinement
    assert default == PositionRefinementParams()
    assert (default.method, default.nshifts, default.interval) == ("annealing", 4, 1)
    assert (default.amplitude, default.max_shift, default.metric) == (1e-6, 2e-6, "fourier")
    assert default.amplitude_decay and default.start is None and default.stop is None
    given = DMParams(position_refinement={"method": "Annealing", "start": 2, "nshifts": 8})
    assert given.position_refinement.nshifts == 8
    with pytest.raises(RecipeError, match=r"position_refinement.nshift: .*'nshifts'\?"):
        DM(position_refinement={"nshift": 8})
    grid = DMParams(position_refinement={"method": "GridSearch"}).position_refinement
    assert grid.method == "gridsearch"
    with pytest.raises(RecipeError, match="gradient method refines on the 'fourier'"):
        ML(position_refinement={"method": "gradient", "metric": "photon"})


def test_the_schedule_follows_start_stop_interval_and_decay():
    pr = PositionRefinementParams(start=2, stop=10, interval=2, amplitude=8.0)
    due = {i: amplitude_at(pr, i, numiter=20) for i in range(12)}
    assert [i for i, a in due.items() if a is not None] == [2, 4, 6, 8]
    assert due[2] == 8.0 and due[6] == pytest.approx(4.0)
    flat = pr.model_copy(update={"amplitude_decay": False})
    assert amplitude_at(flat, 8, numiter=20) == 8.0
    assert amplitude_at(PositionRefinementParams(), 19, numiter=20) is not None
    assert amplitude_at(PositionRefinementParams(), 20, numiter=20) is None
    assert amplitude_at(None, 0, numiter=20) is None


@pytest.mark.parametrize("cls", [DM, ML, RAAR, EPIE])
def test_off_and_never_due_give_todays_results(misplaced, cls):
    chunk, _, _ = _chunk(misplaced)
    results = []
    for pr in (None, {"start": 50}):
        engine = cls(backend="numpy", probe=model_probe(32), position_refinement=pr)
        engine.add_views(chunk)
        hist = engine.iterate(3)
        results.append((engine.object, hist, engine.positions))
    (obj0, hist0, pos0), (obj1, hist1, pos1) = results
    np.testing.assert_array_equal(obj1, obj0)
    assert [h["fourier"] for h in hist1] == [h["fourier"] for h in hist0]
    assert "position_shift_px" not in hist0[0] and hist1[-1]["position_shift_px"] == 0
    np.testing.assert_array_equal(pos0[1], np.asarray(chunk.positions))
    np.testing.assert_array_equal(pos1[1], pos0[1])


def test_the_grid_search_tries_ptypys_grid():
    pixel = np.array([2.0, 3.0])
    pr = PositionRefinementParams(method="gridsearch", amplitude=1, max_shift=100.0)
    # amplitude 1.5 smaller pixels: the 5 × 5 whole-pixel grid without its centre, each
    # axis moving by its own pixel; max_shift 4 = 2 pixels: |k|² < 4 keeps 8 of them
    moves = grid_moves(pr, 3.0, pixel)
    assert len(moves) == 24 and not np.any(np.all(moves == 0, axis=1))
    np.testing.assert_array_equal(np.unique(moves[:, 0]), [-4, -2, 0, 2, 4])
    np.testing.assert_array_equal(np.unique(moves[:, 1]), [-6, -3, 0, 3, 6])
    near = grid_moves(pr.model_copy(update={"max_shift": 4.0}), 3.0, pixel)
    ks = {tuple(k) for k in (near / pixel).astype(int)}
    assert ks == {(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)} - {(0, 0)}
    assert len(grid_moves(pr, 2.0, pixel)) == 0  # at most one pixel: no move (as ptypy)


def test_the_grid_search_finds_whole_pixel_errors_exactly():
    """With the true object and probe, one grid search puts every view (off by up to
    two pixels per axis) on its true position."""
    exact = moonflower(30, 32, density=0.25)
    true, pixel = np.asarray(exact.positions, np.float64), exact.sample_pixel_m
    k = np.random.default_rng(5).integers(-2, 3, true.shape)
    k[0] = 0  # the object grid is aligned on frame 0
    from ptyscan.parallel import SerialComm
    from ptyscan.scans.moonflower import MoonFlowerScan

    scan = MoonFlowerScan(
        num_frames=30,
        shape=32,
        density=0.25,
        seed=1,
        positions_theory=true + k * pixel,
        comm=SerialComm(),
    )
    scan.initialize()
    dm = DM(backend="numpy", precision="double", probe=scan.true_probe)
    dm.add_views(scan.auto(100))
    st = dm.state
    st.ensure_probe()
    truth = aligned_true_object(scan, st)
    st.object[0] = np.where(np.isfinite(truth), truth, 1)
    pr = PositionRefinementParams(method="gridsearch", max_shift=4 * pixel[0])
    assert np.count_nonzero(k) > 30
    refine_positions(st, pr, iteration=0, amplitude_m=2 * pixel[0], block_size=16)
    indices, positions = dm.positions
    np.testing.assert_allclose(positions, true[indices], rtol=0, atol=1e-9 * pixel[0])


@pytest.mark.parametrize(
    ("pr", "factor"),
    [({"nshifts": 4}, 0.85), ({"method": "GridSearch"}, 0.8)],
    ids=["annealing", "gridsearch"],
)
def test_trial_searches_in_dm_shrink_the_position_error(misplaced, pr, factor):
    chunk, true, pixel = _chunk(misplaced)
    pr = {**pr, "amplitude": 2 * pixel[0], "max_shift": 4 * pixel[0]}
    dm = DM(backend="numpy", probe=model_probe(32), numiter=40, position_refinement=pr)
    dm.add_views(chunk)
    before = position_error_px(dm, true, pixel)
    hist = dm.iterate(20)
    after = position_error_px(dm, true, pixel)
    assert before == pytest.approx(1.6, abs=0.1)
    assert after < factor * before
    assert hist[-1]["position_shift_px"] > 0.3
    # the views use the refined positions: pixels follow the metres, whole-pixel moves
    vs = dm.state.viewsets[0]
    np.testing.assert_array_equal(
        vs.pos_px, np.round(vs.positions_m / pixel).astype(np.int64) - 16
    )
    if pr.get("method") == "GridSearch":
        moved = (dm.positions[1] - np.asarray(chunk.positions)) / pixel
        np.testing.assert_allclose(moved, np.round(moved), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("subpixel", "factor"), [("none", 0.75), ("linear", 0.6)])
def test_gradient_refinement_in_ml_shrinks_the_position_error(misplaced, subpixel, factor):
    chunk, true, pixel = _chunk(misplaced)
    dm = DM(backend="numpy", probe=model_probe(32), subpixel=subpixel)
    dm.add_views(chunk)
    dm.iterate(30)
    before = position_error_px(dm, true, pixel)
    pr = {"method": "gradient", "amplitude": pixel[0], "max_shift": 4 * pixel[0]}
    ml = ML(state=dm.state, numiter=100, position_refinement=pr)
    ml.iterate()
    after = position_error_px(ml, true, pixel)
    assert after < factor * before
    # a later engine continues from the refined positions
    later = DM(state=ml.state)
    np.testing.assert_array_equal(later.positions[1], ml.positions[1])


@pytest.mark.parametrize("method", ["annealing", "gridsearch", "gradient"])
@pytest.mark.parametrize("subpixel", ["none", "linear"])
def test_refinement_on_the_cupy_path(cupy_module, misplaced, method, subpixel):
    chunk, _, pixel = _chunk(misplaced)
    pr = {"method": method, "amplitude": 2 * pixel[0], "max_shift": 3 * pixel[0]}
    positions = []
    for name in ("numpy", "cupy"):
        engine = DM(
            backend=name,
            probe=model_probe(32),
            precision="double",
            subpixel=subpixel,
            position_refinement=pr,
        )
        engine.add_views(chunk)
        engine.iterate(3)
        positions.append(engine.positions[1])
    assert not np.array_equal(positions[0], np.asarray(chunk.positions))
    np.testing.assert_allclose(positions[1], positions[0], rtol=0, atol=1e-6 * pixel[0])


def test_the_result_holds_the_refined_positions_and_their_picture(tmp_path):
    from _helpers import job_recipe

    from ptyscan.app.runner import run_recipe
    from ptyscan.io import read_ptyr

    scan, _, pixel = misplaced_moonflower(50, error_px=1.5)
    pr = {"method": "gradient", "amplitude": float(pixel[0]), "max_shift": 4 * float(pixel[0])}
    engines = [
        {"name": "DM", "numiter": 10},
        {"name": "ML", "numiter": 10, "position_refinement": pr},
    ]
    r = job_recipe(
        tmp_path,
        engines=engines,
        scan={
            "num_frames": 50,
            "seed": 1,
            "density": 0.25,
            "positions_theory": scan.positions.tolist(),
        },
        run={"plot": True},
    )
    res = read_ptyr(run_recipe(r).result)
    np.testing.assert_array_equal(res.positions_initial, scan.positions)
    moved = np.linalg.norm(res.positions_final - res.positions_initial, axis=1) / pixel[0]
    assert moved.max() > 0.2 and moved.max() <= 4 + 1e-6
    shift = res.history["position_shift_px"]  # NaN in the iterations of DM
    assert np.all(np.isfinite(shift[-10:])) and np.all(np.isnan(shift[:-10]))
    assert (tmp_path / "out" / "job_positions.png").exists()
