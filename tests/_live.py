"""Helpers of the live tests: the simulator in its own process and a live recipe."""

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
N = 150


def sim_recipe(tmp_path, n=N):
    data = {
        "scan": {"name": "MoonFlowerScan", "num_frames": n, "shape": 32, "seed": 5},
        "run": {"output_dir": str(tmp_path / "sim"), "frames_per_chunk": 50},
    }
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def live_recipe(tmp_path, h5, **run):
    data = {
        "scan": {
            "name": "Hdf5Loader",
            "intensities": {"file": str(h5), "key": "entry/data/data"},
            "positions": {"slow_key": "entry/sample/y", "fast_key": "entry/sample/x"},
            "live": True,
            "live_timeout": 3.0,
            "live_timestamps": "entry/data/written_at",
            "energy": 7.2,
            "distance": 7.19,
            "psize": 172e-6,
        },
        "engines": [{"name": "DM", "numiter": 5}],
        "run": {
            "output_dir": str(tmp_path / "out"),
            "backend": "numpy",
            "frames_per_chunk": 1000,
            "poll_interval": 0.01,
            "progress": False,
            "preview_every": 0.05,
            **run,
        },
    }
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_writer(tmp_path, rate_hz, *extra, n=N):
    """``ptyscan simulate --live`` in its own process; returns (process, file)."""
    h5 = tmp_path / "acq.h5"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptyscan", "-q", "simulate", "--live", str(rate_hz),
         str(sim_recipe(tmp_path, n)), "--to", str(h5), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    end = time.monotonic() + 60
    while not h5.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the writer made no file"
        time.sleep(0.02)
    return proc, h5
