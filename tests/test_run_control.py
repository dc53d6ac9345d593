"""A run one can watch and stop: output checked first, per-iteration progress, numiter
counted after the last frame, Ctrl-C/SIGTERM → interrupted result + checkpoint + exit 130,
--resume after a stop or a SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import job_recipe

from ptyscan.app.runner import run_recipe
from ptyscan.errors import OutputError
from ptyscan.io import read_ptyr

ROOT = Path(__file__).resolve().parents[1]


def test_unwritable_output_dir_is_refused_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = job_recipe(tmp_path, run={"output_dir": str(blocker / "out")})
    from ptyscan.engines.dm import DM

    def never(self, chunk):
        raise AssertionError("work started before the output folder was checked")

    monkeypatch.setattr(DM, "add_views", never)
    with pytest.raises(OutputError, match=r"run\.output_dir: cannot write in .*a-file/out"):
        run_recipe(r)


def test_numiter_counts_iterations_after_the_last_frame(tmp_path):
    r = job_recipe(
        tmp_path,
        scan={"block_wait_count": 1},
        engines=[{"name": "DM", "numiter": 5}, {"name": "ML", "numiter": 2}],
    )
    summary = run_recipe(r)
    assert summary.streaming_iterations >= 1
    assert summary.after_last_frame == 7
    assert summary.iterations == summary.streaming_iterations + 7
    res = read_ptyr(summary.result)
    assert int(np.sum(res.history["streaming"])) == summary.streaming_iterations


def test_numiter_zero_runs_no_iteration(tmp_path):
    r = job_recipe(tmp_path, scan={"block_wait_count": 1}, engines=[{"name": "DM", "numiter": 0}])
    summary = run_recipe(r)
    assert summary.iterations == 0 and summary.streaming_iterations == 0


def test_engine_callback_every_iteration_and_stop():
    from ptyscan.engines.dm import DM
    from ptyscan.scans.moonflower import MoonFlowerScan

    scan = MoonFlowerScan(num_frames=10, shape=32, seed=1)
    scan.initialize()
    engine = DM(numiter=10, backend="numpy")
    engine.add_views(scan.auto(10))
    seen = []
    out = engine.iterate(6, callback=lambda rec: seen.append(rec["iteration"]) or len(seen) == 4)
    assert seen == [0, 1, 2, 3] and len(out) == 4 and engine.curiter == 4


def test_progress_bar_moves_every_iteration(tmp_path, capsys):
    r = job_recipe(tmp_path, engines=[{"name": "DM", "numiter": 3}], run={"progress": True})
    summary = run_recipe(r)
    err = capsys.readouterr().err
    total = summary.iterations
    assert f"{total}/{total}" in err
    assert "frames=24" in err


# --- stopping and resuming, in a separate process -----------------------------------------


def _write_recipe(tmp_path, numiter, every=5):
    """``tmp_path/job.yaml``: the helpers' small job with one DM engine."""
    job_recipe(
        tmp_path, engines=[{"name": "DM", "numiter": numiter}], run={"checkpoint_every": every}
    )
    return tmp_path / "job.yaml"


def _start(recipe, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "ptyscan", "run", str(recipe), "-q", "--no-progress", *args],
        cwd=recipe.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, proc, timeout=60.0):
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"no {path} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_writes_interrupted_result_and_checkpoint_then_resume(tmp_path, sig):
    recipe = _write_recipe(tmp_path, numiter=100000)
    ckpt = tmp_path / "out" / "job.checkpoint.ptyr"
    proc = _start(recipe)
    try:
        _wait_for(ckpt, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip() and "WARNING" not in line]
    assert len(lines) == 1, err
    assert "--resume" in lines[0] and signal.Signals(sig).name in lines[0]
    res = read_ptyr(tmp_path / "out" / "job.ptyr")
    assert res.attrs["status"] == "interrupted"
    snap = read_ptyr(ckpt)
    done = snap.engines[0]["iterations_done"]
    assert done >= 5
    # resume: the checkpoint's progress counts; numiter is the total after the last frame
    resumed = subprocess.run(
        [sys.executable, "-m", "ptyscan", "run", str(recipe), "--no-progress", "--resume",
         "--set", f"engines.0.numiter={done + 3}"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    final = read_ptyr(tmp_path / "out" / "job.ptyr")
    assert final.attrs["status"] == "final"
    assert final.engines[0]["iterations_done"] == done + 3
    assert sorted(final.indices.tolist()) == list(range(24))
    assert not ckpt.exists()


def test_sigkill_then_resume_from_last_checkpoint(tmp_path):
    recipe = _write_recipe(tmp_path, numiter=100000, every=4)
    ckpt = tmp_path / "out" / "job.checkpoint.ptyr"
    proc = _start(recipe)
    try:
        _wait_for(ckpt, proc)
        time.sleep(0.3)
        proc.kill()  # SIGKILL: nothing is written on the way out
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    if not ckpt.exists():
        pytest.fail("the run finished before it could be killed; make it longer")
    snap = read_ptyr(ckpt)
    done = snap.engines[0]["iterations_done"]
    assert done % 4 == 0 and done > 0
    resumed = _start(recipe, "--resume", "--set", f"engines.0.numiter={done + 6}")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    final = read_ptyr(tmp_path / "out" / "job.ptyr")
    assert final.engines[0]["iterations_done"] == done + 6
    after = ~np.asarray(final.history["streaming"], bool)
    assert after.sum() == done + 6  # the checkpoint's iterations plus the rest, none twice
    assert sorted(final.indices.tolist()) == list(range(24))  # every frame once


def test_stop_while_streaming_then_resume(tmp_path, monkeypatch):
    """A live run stopped before its last frame: the checkpoint's smaller object is
    placed in the full scan's object on --resume."""
    from ptyscan.app.stopping import StopRequest
    from ptyscan.errors import RunInterruptedError

    r = job_recipe(
        tmp_path,
        scan={"block_wait_count": 1, "num_frames": 40},
        engines=[{"name": "DM", "numiter": 3}],
    )
    calls = []

    def requested(self):
        calls.append(1)
        if len(calls) == 6:  # a few chunks in
            self.signal_name = "SIGINT"
        return self.signal_name is not None

    with monkeypatch.context() as patch:
        patch.setattr(StopRequest, "requested", requested)
        with pytest.raises(RunInterruptedError, match="--resume"):
            run_recipe(r)
    snap = read_ptyr(r.checkpoint_path)
    assert len(snap.indices) < 40 and snap.engines[0]["iterations_done"] == 0
    summary = run_recipe(r, resume=True)
    res = read_ptyr(summary.result)
    assert sorted(res.indices.tolist()) == list(range(40))
    assert res.engines[0]["iterations_done"] == 3


def test_output_check_leaves_nothing_behind(tmp_path):
    from ptyscan.io.atomic import check_writable

    check_writable(tmp_path / "a" / "b", key="run.output_dir")
    assert not (tmp_path / "a").exists()
