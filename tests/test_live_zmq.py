"""ZeroMQ streaming end to end: ``ptyscan simulate --live --zmq`` pushes frames and
positions, ``ZmqScan`` in a live run pulls them (skipped without pyzmq)."""

import os
import socket
import subprocess
import sys

import pytest
import yaml
from _live import ROOT, sim_recipe

from ptyscan import load_recipe
from ptyscan.app.runner import run_recipe
from ptyscan.io import read_ptyr

pytest.importorskip("zmq", reason="pyzmq is not installed (ptyscan[zmq])")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_zmq_live_run(tmp_path):
    port, n = free_port(), 120
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptyscan", "-q", "simulate", "--live", "400",
         str(sim_recipe(tmp_path, n)), "--zmq", f"tcp://127.0.0.1:{port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    recipe = {
        "scan": {"name": "ZmqScan", "address": f"tcp://127.0.0.1:{port}", "shape": 32,
                 "live_timeout": 20.0},
        "engines": [{"name": "DM", "numiter": 4}],
        "run": {"output_dir": str(tmp_path / "out"), "backend": "numpy", "progress": False,
                "frames_per_chunk": 1000, "poll_interval": 0.01, "plot": False},
    }  # fmt: skip
    path = tmp_path / "zmq.yaml"
    path.write_text(yaml.safe_dump(recipe))
    try:
        summary = run_recipe(load_recipe(path))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    res = read_ptyr(summary.result)
    assert sorted(res.indices.tolist()) == list(range(n))
    assert res.latency is not None and len(res.latency["seconds"]) == n
    assert res.latency["p95"] < 30
