"""The engine benchmarks' own arithmetic: the FFT bound, the CPU verdicts, and the object
error bench_vs_ptypy applies to both codes (timings themselves are not tested)."""

from __future__ import annotations

import importlib.util

import numpy as np
from _engine_helpers import error_against_truth
from _mpi_launch import ROOT


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_case_reports_its_fft_bound_and_verdicts(capsys):
    bench = _load("bench_engines")
    rows = [bench.run_case(e, 20, 12, "numpy", shape=32) for e in ("DM", "ML")]
    for row in rows:
        # two segments (10 + 2 iterations), the bound measured before, between and after
        assert len(row["fft_bounds_s"]) == 3 and row["fft_bound_s"] == min(row["fft_bounds_s"])
        assert len(row["segment_over_fft_bound"]) == 2
        assert row["over_fft_bound"] == np.median(row["segment_over_fft_bound"])
    for r in rows:
        r["over_dm"] = r["over_fft_bound"] / rows[0]["over_fft_bound"]
    bench._cpu_targets(rows)
    out = capsys.readouterr().out
    assert "CPU target DM 20 frames of 32²" in out and "the FFT bound (target <= 2.5)" in out
    assert "CPU target ML 20 frames of 32²" in out and "x DM (target <= 1.6)" in out
    assert rows[1]["target"]["met"] == (rows[1]["over_dm"] <= 1.6)


def test_side_by_side_ratio_takes_turns_and_reports_their_median():
    bench = _load("bench_engines")
    pair = bench.run_pair(20, 12, "numpy", shape=32, turn=5)
    assert (pair["frames"], pair["shape"], pair["iterations"]) == (20, 32, 12)
    assert len(pair["turn_ratios"]) == 3  # 5 + 5 + 2 iterations of each engine
    assert all(r > 0 for r in pair["turn_ratios"])
    assert pair["ml_over_dm"] == np.median(pair["turn_ratios"])


def test_error_against_truth_ignores_factor_and_ramp_but_not_a_change():
    rng = np.random.default_rng(1)
    truth = np.exp(1j * rng.normal(0, 0.3, (40, 50))) * (1 + 0.1 * rng.random((40, 50)))
    ys, xs = np.mgrid[0:40, 0:50]
    rec = 2.5 * np.exp(0.7j) * truth * np.exp(1j * (0.02 * ys - 0.03 * xs))
    region = np.zeros((40, 50), bool)
    region[5:35, 5:45] = True
    assert error_against_truth(rec, truth, region) < 1e-20
    bad = rec.copy()
    bad[20, 20] *= 2
    assert error_against_truth(bad, truth, region) > 1e-4


def test_vs_ptypy_places_each_code_on_the_truth_through_its_own_corners(tmp_path):
    """A reconstruction whose grid is the truth's shifted by (3, -2) pixels, with its
    views listed in another order, scores the error of its values alone."""
    bench = _load("bench_vs_ptypy")
    rng = np.random.default_rng(2)
    truth = np.exp(1j * rng.normal(0, 0.3, (60, 60)))
    corners = np.array([[10, 10], [10, 20], [20, 10], [20, 20]])
    coords = corners * 1e-7
    probe = np.ones((16, 16), np.complex64)
    np.save(tmp_path / "probe.npy", probe)
    np.savez(tmp_path / "truth.npz", object=truth, corners=corners, coords=coords)
    rec = np.full((70, 70), 1 + 0j)
    rec[3:63, 0:58] = truth[:, 2:]  # rec[y, x] = truth[y - 3, x + 2]
    order = [2, 0, 3, 1]
    np.savez(
        tmp_path / "rec.npz", object=rec, corners=corners[order] + [3, -2], coords=coords[order]
    )
    args = (tmp_path / "rec.npz", tmp_path / "truth.npz", tmp_path / "probe.npy")
    assert bench.object_error(*args) < 1e-20
    rec[25, 15] += 0.5
    np.savez(
        tmp_path / "rec.npz", object=rec, corners=corners[order] + [3, -2], coords=coords[order]
    )
    assert bench.object_error(*args) > 1e-4


def test_vs_ptypy_compares_each_ptypy_engine_with_the_ptyscan_runs_either_side():
    bench = _load("bench_vs_ptypy")

    def row(code, engine, seconds, error=0.1):
        return {
            "code": code,
            "engine": engine,
            "frames": 92,
            "object_error": error,
            "median_s_per_iteration": seconds,
        }

    rows = [
        row("ptyscan", "DM", 1.0, 0.05),
        row("ptypy", "DM", 10.0),
        row("ptyscan", "DM", 2.0, 0.05),  # the machine slowed down: both codes alike
        row("ptypy", "DM_serial", 12.0, 0.2),
        row("ptyscan", "DM", 2.0, 0.05),
        row("ptyscan", "ML", 1.0),  # no ptypy ML run: no speed-up
    ]
    (dm,) = bench._summary(rows)
    assert dm["vs"] == {"DM": 10.0 / 1.5, "DM_serial": 6.0}
    assert dm["fastest"] == "DM_serial" and dm["vs_fastest"] == 6.0
    assert dm["ptyscan_s_per_iteration"] == 2.0
    assert dm["error_ratio"] == 0.05 / 0.2
    rows[3]["median_s_per_iteration"] = 30.0  # now ptypy's DM is the fastest, named as
    (dm,) = bench._summary(rows)  # ptyscan's: its error is ptypy's, not ptyscan's own
    assert dm["fastest"] == "DM" and dm["error_ratio"] == 0.05 / 0.1


def test_settle_waits_for_a_quiet_machine(monkeypatch):
    """Runs back to back must not count each other's load: settle() waits until the
    1-minute load drops below 1.3 (or its time is up) and returns the load then."""
    quiet = _load("quiet")
    loads = iter([2.1, 1.6, 1.1, 0.9])
    monkeypatch.setattr(quiet, "load_average", lambda: next(loads))
    monkeypatch.setattr(quiet.time, "sleep", lambda s: None)
    assert quiet.settle() == 1.1
    assert quiet.is_quiet(1.1) and not quiet.is_quiet(1.3)
    monkeypatch.setattr(quiet, "load_average", lambda: 3.0)
    assert quiet.settle(timeout_s=0) == 3.0  # never waits past its limit
