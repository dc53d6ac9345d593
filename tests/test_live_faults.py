"""Faults of a live run: a stalled writer, a writer killed mid-write, a full disk.
(A reconstruction killed with SIGKILL and resumed: tests/test_run_control.py.)"""

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import job_recipe
from _live import live_recipe, start_writer

from ptyscan import EOS, WAIT, load_recipe
from ptyscan.app.runner import run_recipe
from ptyscan.errors import OutputError
from ptyscan.io import read_ptyr
from ptyscan.scans.moonflower import MoonFlowerScan

ROOT = Path(__file__).resolve().parents[1]


def test_stalled_writer_ends_the_scan_with_every_frame_used(tmp_path, caplog):
    proc, h5 = start_writer(tmp_path, 500, "--stall-after", "40")
    try:
        with caplog.at_level("WARNING"):
            summary = run_recipe(load_recipe(live_recipe(tmp_path, h5, poll_interval=0.05)))
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert "live_timeout" in caplog.text
    res = read_ptyr(summary.result)
    assert sorted(res.indices.tolist()) == list(range(40))
    assert sorted(res.latency["indices"].tolist()) == list(range(40))  # each used, once
    assert res.attrs["status"] == "final" and summary.after_last_frame == 5


def test_writer_killed_mid_write_never_delivers_half_a_frame(tmp_path):
    n = 3000
    proc, h5 = start_writer(tmp_path, 4000, n=n)
    time.sleep(0.25)
    proc.send_signal(signal.SIGKILL)  # very likely in the middle of a burst of frames
    proc.communicate(timeout=30)
    recipe = load_recipe(live_recipe(tmp_path, h5))
    scan = recipe.scan_class(recipe.scan, live_timeout=0.5)
    scan.initialize()
    got = {}
    for _ in range(1000):
        chunk = scan.auto(500)
        if chunk is EOS:
            break
        if chunk is WAIT:
            time.sleep(0.05)
            continue
        got.update(zip(chunk.indices.tolist(), chunk.data, strict=True))
    assert 0 < len(got) < n and sorted(got) == list(range(len(got)))
    ref = MoonFlowerScan(num_frames=n, shape=32, seed=5)  # what the writer simulated
    ref.initialize()
    checked = 0
    while checked < len(got):
        chunk = ref.auto(500)
        for i, frame in zip(chunk.indices.tolist(), chunk.data, strict=True):
            if i in got:
                np.testing.assert_array_equal(got[i], frame, err_msg=f"frame {i}")
                checked += 1


def test_disk_full_while_saving_keeps_earlier_chunks(tmp_path):
    """A file size limit (as `ulimit -f`) reached while the .ptyd grows: exit 2, one line,
    the chunks before intact."""
    job_recipe(
        tmp_path,
        scan={"num_frames": 100, "shape": 64, "save": "append", "compression": None,
              "dfile": str(tmp_path / "out" / "job.ptyd")},
        run={"frames_per_chunk": 20},
    )  # fmt: skip
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))\n"
        "from ptyscan.app.cli import main\n"
        "sys.exit(main(['-q', 'run', sys.argv[1]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "job.yaml")],
        env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "scan.dfile: no space to write" in lines[0], out.stderr
    from ptyscan.io.ptyd_read import ptyd_chunk_ids, read_chunk

    path = tmp_path / "out" / "job.ptyd"
    ids = ptyd_chunk_ids(path)
    assert len(ids) >= 1 and f"chunks 0..{len(ids) - 1} are intact" in lines[0]
    for n in ids:  # every earlier chunk reads back whole
        assert read_chunk(path, n)["data"].shape == (20, 64, 64)


def test_disk_full_at_a_checkpoint_keeps_the_last_one(tmp_path, monkeypatch):
    r = job_recipe(tmp_path, engines=[{"name": "DM", "numiter": 8}], run={"checkpoint_every": 2})
    ckpt = Path(r.checkpoint_path)
    real = shutil.disk_usage
    usage = collections.namedtuple("usage", "total used free")

    def disk_usage(path):
        if ckpt.exists():  # the disk fills up after the first checkpoint
            return usage(10**9, 10**9 - 1000, 1000)
        return real(path)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    with pytest.raises(OutputError, match=r"no space to write .*job\.checkpoint\.ptyr"):
        run_recipe(r)
    snap = read_ptyr(ckpt)  # the last checkpoint is whole
    assert snap.attrs["status"] == "checkpoint"
    assert snap.engines[0]["iterations_done"] == 2
    assert not list(ckpt.parent.glob("*.partial"))
