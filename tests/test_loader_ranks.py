"""``run.loader_ranks``: loader ranks apart from engine ranks, under ``mpiexec -n 3``.

Every launch runs under a timeout (tests/_mpi_launch.py). The scans are tiny (50
frames of 64², 5 DM iterations) because three ranks share this machine's two cores.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from _helpers import job_recipe
from _mpi_launch import MPIEXEC, mpirun, require_mpiexec

from ptyscan.app.loader_ranks import check_loader_ranks
from ptyscan.app.runner import run_recipe
from ptyscan.errors import RecipeError
from ptyscan.io import read_ptyr
from ptyscan.scans.moonflower import MoonFlowerScan

ABORT_LIMIT_S = 30

JOBS = Path(__file__).resolve().parent / "mpi" / "loader_jobs.py"
RUN_TIMEOUT_S = 120


def test_loader_ranks_checked_against_the_rank_count(caplog):
    assert check_loader_ranks(0, 1) == 0 and check_loader_ranks(0, 4) == 0
    assert check_loader_ranks(1, 3) == 1 and check_loader_ranks(3, 4) == 3
    with pytest.raises(RecipeError) as info:
        check_loader_ranks(3, 3)
    text = str(info.value)
    assert "run.loader_ranks: 3 with 3 MPI ranks leaves no rank to run the engines" in text
    assert "expected at most 2" in text and "mpiexec -n 4" in text
    with caplog.at_level(logging.WARNING):
        assert check_loader_ranks(2, 1) == 0
    assert "run.loader_ranks: 2 ignored in a single process" in caplog.text


def test_loader_ranks_in_one_process_run_as_the_default(tmp_path, caplog):
    """A recipe written for a cluster still runs on a laptop: same result, a warning."""
    engines = [{"name": "DM", "numiter": 3}]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = run_recipe(job_recipe(tmp_path / "a", engines=engines))
    with caplog.at_level(logging.WARNING):
        split = run_recipe(job_recipe(tmp_path / "b", engines=engines, run={"loader_ranks": 1}))
    assert "loader_ranks: 1 ignored in a single process" in caplog.text
    assert split.loader_ranks == 0 and split.ranks == 1
    np.testing.assert_array_equal(read_ptyr(split.result).object, read_ptyr(plain.result).object)


def _recipe(tmp_path):
    """50 frames of 64² in chunks of 10; DM iterates only once every frame is in
    (``min_frames_for_recon: 50``: how many iterations run while frames stream in
    depends on timing when the frames come from other ranks)."""
    data = {
        "scan": {"name": "MoonFlowerScan", "num_frames": 50, "shape": 64, "seed": 3},
        "engines": [{"name": "DM", "numiter": 5}],
        "run": {
            "frames_per_chunk": 10,
            "backend": "numpy",
            "progress": False,
            "plot": False,
            "min_frames_for_recon": 50,
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(n, recipe, out, *settings):
    args = ["-m", "ptyscan", "-q", "run", str(recipe), "--set", f"run.output_dir={out}"]
    for setting in settings:
        args += ["--set", setting]
    run = mpirun(n, args, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.output[-4000:]
    return run, read_ptyr(out / "job.ptyr")


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')")
def test_one_loader_rank_gives_the_default_result(tmp_path):
    """mpiexec -n 3 with 1 loader rank: the same frames, chunks and iterations as every
    rank loading; the object equals the 2-rank default's bit for bit (the same two engine
    ranks hold the same frames: the same sums in the same order) and the 3-rank
    default's to float32 rounding (sums over three ranks instead of two, in complex64:
    a few 1e-5 of the object's largest value after 6 iterations; 1e-3 allowed)."""
    require_mpiexec()
    recipe = _recipe(tmp_path)
    run, split = _run(3, recipe, tmp_path / "split", "run.loader_ranks=1")
    assert "on 3 rank(s) (1 loading)" in run.output, run.output[-2000:]
    _, every3 = _run(3, recipe, tmp_path / "every3")
    _, every2 = _run(2, recipe, tmp_path / "every2")
    for other in (every3, every2):
        np.testing.assert_array_equal(split.indices, other.indices)
        np.testing.assert_array_equal(split.positions_initial, other.positions_initial)
        np.testing.assert_array_equal(split.object_origin_px, other.object_origin_px)
        assert split.object.shape == other.object.shape
        assert len(split.history["fourier"]) == len(other.history["fourier"]) == 6
    assert sorted(split.indices.tolist()) == list(range(50))
    assert split.attrs["ranks"] == 2  # the engine ranks
    np.testing.assert_array_equal(split.object, every2.object)
    np.testing.assert_array_equal(split.probe, every2.probe)
    scale = np.abs(every3.object).max()
    assert np.abs(split.object - every3.object).max() <= 1e-3 * scale
    np.testing.assert_allclose(split.history["fourier"], every3.history["fourier"], rtol=1e-4)


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')")
def test_two_loader_ranks_give_the_serial_result(tmp_path):
    """mpiexec -n 3 with 2 loader ranks and one engine rank: frames from both loaders
    reach it in order, and the object is the one-process run's, bit for bit."""
    require_mpiexec()
    recipe = _recipe(tmp_path)
    _, split = _run(3, recipe, tmp_path / "split", "run.loader_ranks=2")
    one = run_recipe(_load(recipe, tmp_path / "one"))
    serial = read_ptyr(one.result)
    np.testing.assert_array_equal(split.indices, serial.indices)
    np.testing.assert_array_equal(split.object, serial.object)


def _load(path, out):
    from ptyscan.recipe import load_recipe

    return load_recipe(path, [f"run.output_dir={out}"])


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')")
def test_a_failing_loader_rank_aborts_the_job_with_its_message(tmp_path):
    """One of two loader ranks raises in ``load`` while the engine rank iterates: the job
    ends non-zero within 30 s and shows the message (never a hang)."""
    require_mpiexec()
    run = mpirun(3, [str(JOBS), "fail", str(tmp_path)], timeout=ABORT_LIMIT_S + 30)
    assert run.returncode != 0, run.output[-4000:]
    assert run.seconds < ABORT_LIMIT_S, f"took {run.seconds:.1f} s:\n{run.output[-4000:]}"
    assert "RuntimeError: boom: detector file missing on a loader rank" in run.output
    assert "finished without error" not in run.output


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')")
def test_a_user_error_on_the_loader_rank_is_printed_once_with_exit_2(tmp_path):
    """The scan runs on the loader rank only: its geometry check fails there, and the
    command line shows that rank's one line and exits 2 (the engine rank waits no more)."""
    require_mpiexec()
    args = ["-m", "ptyscan", "run", str(_recipe(tmp_path)), "--no-progress"]
    args += ["--set", f"run.output_dir={tmp_path}", "--set", "run.loader_ranks=1"]
    args += ["--set", "scan.energy=8000"]
    run = mpirun(3, args, timeout=ABORT_LIMIT_S + 30)
    assert run.returncode == 2, run.output[-4000:]
    assert run.seconds < ABORT_LIMIT_S, f"took {run.seconds:.1f} s:\n{run.output[-4000:]}"
    assert run.output.count("error:") == 1, run.output[-4000:]
    assert "error: [rank 2/3] scan.energy: 8000 keV is outside" in run.output
    assert "Traceback" not in run.output


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')")
def test_a_live_acquisition_with_a_loader_rank(tmp_path):
    """A live SWMR file written at 200 Hz, followed by one loader rank while two engine
    ranks iterate: every frame is used once and each one's latency (write to first use,
    the loader's write times sent with the chunks) is measured."""
    require_mpiexec()
    from _live import live_recipe, start_writer

    writer, h5 = start_writer(tmp_path, 200)
    try:
        recipe = live_recipe(tmp_path, h5, loader_ranks=1, plot=False)
        run = mpirun(3, ["-m", "ptyscan", "-q", "run", str(recipe)], timeout=RUN_TIMEOUT_S)
        writer.communicate(timeout=60)
    finally:
        writer.kill()
    assert run.returncode == 0, run.output[-4000:]
    assert "(1 loading)" in run.output and "latency p50" in run.output, run.output[-2000:]
    res = read_ptyr(tmp_path / "out" / "live.ptyr")
    assert sorted(res.indices.tolist()) == list(range(150))
    lat = res.latency
    assert sorted(lat["indices"].tolist()) == list(range(150))
    assert np.all(np.isfinite(lat["seconds"])) and np.all(lat["seconds"] > 0)
    assert lat["p95"] < 30


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')")
def test_per_frame_weights_travel_with_the_frames(tmp_path):
    """Frames with weights of their own (a dead row moving from frame to frame) from two
    loader ranks: the engine rank gets each frame's weights; the object is the one of the
    same job in one process, bit for bit."""
    require_mpiexec()
    run = mpirun(3, [str(JOBS), "weights", str(tmp_path / "split")], timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.output[-4000:]
    spec = importlib.util.spec_from_file_location("_ptyscan_loader_jobs", JOBS)
    jobs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(jobs)
    serial = read_ptyr(run_recipe(jobs.recipe("weights", str(tmp_path / "one"), 0)).result)
    (path,) = (tmp_path / "split").glob("*.ptyr")
    split = read_ptyr(path)
    np.testing.assert_array_equal(split.indices, serial.indices)
    np.testing.assert_array_equal(split.object, serial.object)
    # the weights matter: without them (one shared mask of ones) the object differs
    plain = jobs.recipe("weights", str(tmp_path / "plain"), 0)
    plain = dataclasses.replace(plain, scan_class=MoonFlowerScan)
    assert not np.allclose(read_ptyr(run_recipe(plain).result).object, serial.object)


def test_loader_ranks_wait_for_the_engines(tmp_path):
    """Backpressure: two loader ranks that prepare 100 frames (10 chunks) far faster than the
    engine iterates never run more than AHEAD_CHUNKS chunks ahead: a loader loads chunk k
    only after the engine has taken chunk k - AHEAD_CHUNKS - 1 (it took chunk k - 3 before
    the loader's wait for it ended, and chunk k - 4 before that). Without the wait every
    chunk is loaded before the engine has taken the second."""
    from ptyscan.app.loader_ranks import AHEAD_CHUNKS

    require_mpiexec()
    run = mpirun(3, [str(JOBS), "ahead", str(tmp_path)], timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.output[-4000:]
    added = {int(i) // 10: float(t) for t, i in _records(tmp_path / "added.txt")}
    assert sorted(added) == list(range(10))
    loads = [
        (float(t), int(i) // 10)
        for rank in (0, 1)
        for t, i in _records(tmp_path / f"load_{rank}.txt")
    ]
    assert {k for _, k in loads} == set(range(10))
    lag = AHEAD_CHUNKS + 2
    for t, k in loads:
        if k >= lag:
            assert t >= added[k - lag], f"chunk {k} loaded before the engine took chunk {k - lag}"
    assert max(t for t, k in loads) > added[1]  # the loaders did wait for the engine


def _records(path):
    return [line.split() for line in path.read_text().splitlines()]
