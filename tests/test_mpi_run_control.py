"""Stop and preview under MPI: ``mpiexec`` forwards SIGINT/SIGTERM to every rank; the job
finishes the iteration on all ranks, writes the interrupted ``.ptyr`` and a checkpoint
once (rank 0), exits 130, and ``--resume`` under MPI continues; ``run.preview_every``
rewrites the ``.ptyr`` (status ``preview``) and its picture meanwhile. Also with a
loader rank apart from the engine ranks (``run.loader_ranks``)."""

from __future__ import annotations

import signal
import time

import pytest
from _helpers import job_recipe
from _mpi_launch import MPIEXEC, finish, kill, mpirun, require_mpiexec, start

from ptyscan.io import read_ptyr

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')"),
]


def _wait_for(paths, proc, timeout=90.0):
    end = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if proc.poll() is not None:
            pytest.fail(f"the job ended before writing {paths}:\n{finish(proc, timeout=5)}")
        if time.monotonic() > end:
            kill(proc)
            pytest.fail(f"no {paths} after {timeout} s")
        time.sleep(0.05)


def _wait_for_a_newer_preview(ptyr, iterations, proc, timeout=60.0):
    """Until the preview at ``ptyr`` holds more than ``iterations`` iterations."""
    end = time.monotonic() + timeout
    while len(read_ptyr(ptyr).history["fourier"]) <= iterations:
        if proc.poll() is not None or time.monotonic() > end:
            kill(proc)
            pytest.fail(f"the preview was not rewritten within {timeout} s")
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("ranks", "loaders", "sig"),
    [(2, 0, signal.SIGINT), (2, 0, signal.SIGTERM), (3, 1, signal.SIGINT)],
    ids=["2-ranks-SIGINT", "2-ranks-SIGTERM", "3-ranks-1-loader-SIGINT"],
)
def test_stop_under_mpi_writes_once_exits_130_and_resumes(tmp_path, ranks, loaders, sig):
    require_mpiexec()
    job_recipe(
        tmp_path,
        engines=[{"name": "DM", "numiter": 100000}],
        run={"checkpoint_every": 5, "preview_every": 0.3, "plot": True, "loader_ranks": loaders},
    )
    recipe, out = tmp_path / "job.yaml", tmp_path / "out"
    ptyr, ckpt, picture = out / "job.ptyr", out / "job.checkpoint.ptyr", out / "job_preview.png"
    proc = start(ranks, ["-m", "ptyscan", "-q", "run", str(recipe), "--no-progress"])
    try:
        _wait_for([ckpt, ptyr, picture], proc)
        preview = read_ptyr(ptyr)  # atomic rewrites: never half a file
        assert preview.attrs["status"] == "preview"
        assert preview.attrs["ranks"] == ranks - loaders  # the ranks that reconstruct
        _wait_for_a_newer_preview(ptyr, len(preview.history["fourier"]), proc)
        proc.send_signal(sig)  # mpiexec forwards it to every rank
        output = finish(proc, timeout=60)
    finally:
        kill(proc)
    assert proc.returncode == 130, output[-4000:]
    name = signal.Signals(sig).name
    said = [line for line in output.splitlines() if "interrupted by" in line]
    assert len(said) == 1 and name in said[0] and "--resume" in said[0], output[-4000:]
    assert "Traceback" not in output
    res = read_ptyr(ptyr)
    assert res.attrs["status"] == "interrupted"
    snap = read_ptyr(ckpt)
    done = snap.engines[0]["iterations_done"]
    assert done >= 5 and f"after {len(res.history['fourier'])} iterations" in said[0]
    assert len(snap.history["fourier"]) == len(res.history["fourier"])
    assert not list(out.glob("*.tmp*")), list(out.iterdir())  # no write left half done
    args = ["-m", "ptyscan", "-q", "run", str(recipe), "--no-progress", "--resume"]
    args += ["--set", f"engines.0.numiter={done + 3}", "--set", "run.preview_every=0"]
    resumed = mpirun(ranks, args, timeout=120)
    assert resumed.returncode == 0, resumed.output[-4000:]
    final = read_ptyr(ptyr)
    assert final.attrs["status"] == "final"
    assert final.engines[0]["iterations_done"] == done + 3
    assert sorted(final.indices.tolist()) == list(range(24))
    assert not ckpt.exists()


def test_stop_while_the_loader_rank_still_streams_then_resume(tmp_path):
    """SIGTERM while frames still come from the loader rank: the engine ranks stop, take
    what the loader sent up to its last message (no send left pending, no hang), write
    the frames so far; --resume then uses every frame."""
    require_mpiexec()
    job_recipe(
        tmp_path,
        scan={"num_frames": 40, "block_wait_count": 1},
        engines=[{"name": "DM", "numiter": 3}],
        run={"frames_per_chunk": 2, "poll_interval": 0.5, "preview_every": 0.2, "loader_ranks": 1},
    )
    recipe, out = tmp_path / "job.yaml", tmp_path / "out"
    ptyr, ckpt = out / "job.ptyr", out / "job.checkpoint.ptyr"
    proc = start(3, ["-m", "ptyscan", "-q", "run", str(recipe), "--no-progress"])
    try:
        _wait_for([ptyr], proc)
        assert read_ptyr(ptyr).attrs["status"] == "preview"
        proc.send_signal(signal.SIGTERM)
        output = finish(proc, timeout=60)
    finally:
        kill(proc)
    assert proc.returncode == 130, output[-4000:]
    assert output.count("interrupted by SIGTERM") == 1, output[-4000:]
    res, snap = read_ptyr(ptyr), read_ptyr(ckpt)
    assert res.attrs["status"] == "interrupted"
    assert 0 < len(res.indices) < 40 and snap.engines[0]["iterations_done"] == 0
    args = ["-m", "ptyscan", "-q", "run", str(recipe), "--no-progress", "--resume"]
    args += ["--set", "run.poll_interval=0.01", "--set", "run.preview_every=0"]
    resumed = mpirun(3, args, timeout=120)
    assert resumed.returncode == 0, resumed.output[-4000:]
    final = read_ptyr(ptyr)
    assert sorted(final.indices.tolist()) == list(range(40))
    assert final.engines[0]["iterations_done"] == 3
