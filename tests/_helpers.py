"""Helpers shared by test modules (tests/ is on sys.path through tests/conftest.py)."""

import time

import pytest
import yaml

from ptyscan import EOS, WAIT, load_recipe


def drain(scan, per_chunk=5, *, max_calls=200, allow_wait=True, poll_s=0.0):
    """Every chunk ``scan.auto(per_chunk)`` delivers until EOS (WAITs skipped, each
    followed by ``poll_s`` seconds of sleep, as the runner's poll_interval).

    Fails after ``max_calls`` calls without EOS, or at a WAIT when not ``allow_wait``.
    """
    chunks = []
    for _ in range(max_calls):
        msg = scan.auto(per_chunk)
        if msg is EOS:
            return chunks
        if msg is WAIT:
            assert allow_wait, "unexpected WAIT"
            time.sleep(poll_s)
            continue
        chunks.append(msg)
    raise AssertionError(f"no EOS after {max_calls} calls")


def job_recipe(tmp_path, *, engines=None, scan=None, run=None):
    """A small MoonFlower job (24 frames of 32², DM 4 + ML 3 on NumPy) written to
    ``tmp_path/job.yaml`` and loaded; ``engines`` replaces, ``scan``/``run`` update."""
    data = {
        "scan": {
            "name": "MoonFlowerScan",
            "num_frames": 24,
            "shape": 32,
            "seed": 3,
            **(scan or {}),
        },
        "engines": engines or [{"name": "DM", "numiter": 4}, {"name": "ML", "numiter": 3}],
        "run": {
            "output_dir": str(tmp_path / "out"),
            "frames_per_chunk": 10,
            "backend": "numpy",
            "progress": False,
            "plot": False,
            **(run or {}),
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)


def _power_cut(self, n=None, *, callback=None):
    raise RuntimeError("power cut")


def run_until_ml_crashes(recipe, monkeypatch):
    """Run ``recipe`` with ``ML.iterate`` failing (a power cut) and return the checkpoint
    it leaves behind (``read_ptyr``); ``ML.iterate`` works again afterwards."""
    from ptyscan.app.runner import run_recipe
    from ptyscan.engines.ml import ML
    from ptyscan.io import read_ptyr

    with monkeypatch.context() as patch:
        patch.setattr(ML, "iterate", _power_cut)
        with pytest.raises(RuntimeError, match="power cut"):
            run_recipe(recipe)
    return read_ptyr(recipe.checkpoint_path)
