"""Live reconstruction end to end: ``ptyscan simulate --live`` writes an SWMR file at a
high rate while ``run_recipe`` follows it, previews it and measures per-frame latency."""

import h5py
import numpy as np
import pytest
from _live import N, live_recipe, start_writer

from ptyscan import load_recipe
from ptyscan.app.runner import run_recipe
from ptyscan.io import read_ptyr


def test_live_run_follows_a_fast_acquisition(tmp_path):
    proc, h5 = start_writer(tmp_path, 500)
    try:
        summary = run_recipe(load_recipe(live_recipe(tmp_path, h5)))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"wrote {N} frames live" in out
    res = read_ptyr(summary.result)
    assert res.attrs["status"] == "final"
    assert sorted(res.indices.tolist()) == list(range(N))  # every frame, once
    assert summary.after_last_frame == 5
    lat = res.latency
    assert lat is not None and sorted(lat["indices"].tolist()) == list(range(N))
    assert np.all(lat["seconds"] > 0) and lat["p50"] <= lat["p95"] <= lat["max"]
    assert summary.latency["p95"] == pytest.approx(lat["p95"])
    assert (tmp_path / "out" / "live_preview.png").exists()
    assert not (tmp_path / "out" / "live.ptyr.old").exists()  # previews are not kept as .old


def test_simulate_live_file_layout(tmp_path):
    proc, h5 = start_writer(tmp_path, 2000, n=40)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    with h5py.File(h5, "r") as f:
        data, written = f["entry/data/data"], f["entry/data/written_at"][()]
        assert data.shape == (40, 32, 32) and data.maxshape[0] == 40
        assert np.all(np.diff(written) >= 0)
        ys, xs = f["entry/sample/y"][()], f["entry/sample/x"][()]
    from ptyscan.scans.moonflower import MoonFlowerScan

    scan = MoonFlowerScan(num_frames=40, shape=32, seed=5)
    scan.initialize()
    np.testing.assert_allclose(np.stack([ys, xs], 1), scan.positions)


def test_preview_is_rewritten_during_the_run(tmp_path, monkeypatch):
    from ptyscan.app import runner

    statuses = []
    original = runner.write_ptyr

    def spy(path, result):
        statuses.append(result.attrs["status"])
        return original(path, result)

    monkeypatch.setattr(runner, "write_ptyr", spy)
    proc, h5 = start_writer(tmp_path, 300)
    try:
        run_recipe(load_recipe(live_recipe(tmp_path, h5, checkpoint_every=0)))
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert statuses.count("preview") >= 2
