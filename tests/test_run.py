"""The reconstruction runner: streaming, results (.ptyr), pictures, checkpoints, --resume."""

import numpy as np
import pytest
import yaml
from _helpers import job_recipe as recipe
from _helpers import run_until_ml_crashes

from ptyscan import EOS, load_recipe
from ptyscan.app.cli import main
from ptyscan.app.runner import run_recipe
from ptyscan.errors import PtyScanError, RecipeError
from ptyscan.io import read_ptyr
from ptyscan.io.plots import plot_names
from ptyscan.scans import get_scan


def test_run_writes_a_complete_result(tmp_path):
    r = recipe(tmp_path, run={"plot": True})
    summary = run_recipe(r)
    assert summary.result == r.result_path == str(tmp_path / "out" / "job.ptyr")
    res = read_ptyr(summary.result)
    # positions and indices: every frame once, as the scan delivered them
    scan = get_scan("MoonFlowerScan")(num_frames=24, shape=32, seed=3)
    scan.initialize()
    np.testing.assert_array_equal(res.indices, np.arange(24))
    np.testing.assert_array_equal(res.positions_initial, scan.positions)
    # history: streaming iterations (first engine, while chunks arrive) + full numiter each
    engines = list(res.history["engine"])
    streaming = np.asarray(res.history["streaming"], bool)
    assert engines[-3:] == ["ML"] * 3
    assert [e for e, s in zip(engines, streaming, strict=True) if not s] == ["DM"] * 4 + ["ML"] * 3
    assert summary.iterations == len(engines)
    assert res.object.ndim == 3 and res.probe.shape == (1, 32, 32)
    assert res.attrs["status"] == "final" and res.attrs["backend"] == "numpy"
    assert res.attrs["ranks"] == 1 and res.attrs["version_ptyscan"]
    assert [e["iterations_done"] for e in res.engines] == [4, 3]
    assert res.meta["shape"].tolist() == [32, 32]
    # the stored recipe is the resolved one and loads back to the same recipe
    again = load_recipe(yaml.safe_load(res.recipe))
    assert again.to_dict() == r.to_dict()
    for png in plot_names(summary.result).values():
        assert png.stat().st_size > 1000


def test_streaming_with_waits_uses_every_frame_once(tmp_path):
    r = recipe(
        tmp_path,
        scan={"block_wait_count": 1, "min_frames": 4},
        run={"poll_interval": 0.001, "min_frames_for_recon": 10},
        engines=[{"name": "DM", "numiter": 2}],
    )
    summary = run_recipe(r)
    res = read_ptyr(summary.result)
    assert sorted(res.indices.tolist()) == list(range(24))
    streaming = np.asarray(res.history["streaming"], bool)
    assert streaming.sum() >= 1  # it iterated while the scan was still "acquiring"
    assert (~streaming).sum() == 2


def test_checkpoint_and_resume(tmp_path, monkeypatch):
    r = recipe(
        tmp_path,
        engines=[{"name": "DM", "numiter": 4}, {"name": "ML", "numiter": 4}],
        run={"checkpoint_every": 3},
    )
    from ptyscan.engines.ml import ML

    snap = run_until_ml_crashes(r, monkeypatch)
    assert snap.attrs["status"] == "checkpoint"
    assert [e["iterations_done"] for e in snap.engines] == [3, 0]

    seen = {}
    original = ML.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen["object_before_ml"] = self.state.object_host.copy()

    monkeypatch.setattr(ML, "__init__", spy)
    summary = run_recipe(r, resume=True)
    res = read_ptyr(summary.result)
    assert [e["iterations_done"] for e in res.engines] == [4, 4]
    engines = [
        e for e, s in zip(res.history["engine"], res.history["streaming"], strict=True) if not s
    ]
    assert engines == ["DM"] * 4 + ["ML"] * 4
    assert seen["object_before_ml"].shape == snap.object.shape
    assert not (tmp_path / "out" / "job.checkpoint.ptyr").exists()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(PtyScanError, match="no checkpoint"):
        run_recipe(recipe(tmp_path), resume=True)


def test_run_needs_an_engine(tmp_path):
    r = recipe(tmp_path)
    import dataclasses

    with pytest.raises(RecipeError, match="names no engine"):
        run_recipe(dataclasses.replace(r, engines=()))


def test_cli_run_and_show(tmp_path, capsys):
    recipe(tmp_path)  # writes job.yaml
    assert (
        main(["run", str(tmp_path / "job.yaml"), "--no-progress", "--set", "run.plot=false"]) == 0
    )
    out = capsys.readouterr().out
    assert "reconstructed 24 frames" in out and "job.ptyr" in out
    result = tmp_path / "out" / "job.ptyr"
    assert main(["show", str(result)]) == 0
    out = capsys.readouterr().out
    assert "final result, backend numpy" in out
    assert all(p.exists() for p in plot_names(result).values())
    assert main(["show", str(tmp_path / "nope.ptyr")]) == 2


def test_engine_starts_from_an_earlier_result(tmp_path):
    from ptyscan.engines import DM

    first = run_recipe(recipe(tmp_path, engines=[{"name": "DM", "numiter": 15}]))
    earlier = read_ptyr(first.result)
    scan = get_scan("MoonFlowerScan")(num_frames=24, shape=32, seed=3)
    dm = DM(numiter=3, backend="numpy", start_from=first.result)
    for chunk in [scan.auto(10), scan.auto(10), scan.auto(10)]:
        dm.add_views(chunk)
    # same scan, same geometry: the object and the probe are the earlier result's
    np.testing.assert_array_equal(dm.object, earlier.object)
    np.testing.assert_allclose(dm.probe, earlier.probe, rtol=1e-6)
    fresh = DM(numiter=3, backend="numpy")
    scan = get_scan("MoonFlowerScan")(num_frames=24, shape=32, seed=3)
    while (chunk := scan.auto(10)) is not EOS:
        fresh.add_views(chunk)
    assert dm.iterate(1)[0]["fourier"] < 0.5 * fresh.iterate(1)[0]["fourier"]


def test_start_from_a_different_geometry_is_refused(tmp_path):
    from ptyscan.engines import DM
    from ptyscan.errors import ParameterError

    first = run_recipe(recipe(tmp_path, engines=[{"name": "DM", "numiter": 2}]))
    scan = get_scan("MoonFlowerScan")(num_frames=24, shape=32, seed=3, distance=3.0)
    dm = DM(numiter=1, backend="numpy", start_from=first.result)
    with pytest.raises(ParameterError, match="sample pixel"):
        dm.add_views(scan.auto(10))


@pytest.mark.mpi
def test_run_recipe_script_under_mpiexec_matches_one_rank(tmp_path):
    """``mpiexec -n 2 python templates/run_recipe.py RECIPE``: one result, same as serial."""
    from _mpi_launch import ROOT, mpirun, require_mpiexec

    require_mpiexec()
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    serial = run_recipe(
        recipe(
            tmp_path / "one", run={"min_frames_for_recon": 100}, scan={"add_poisson_noise": False}
        )
    )
    two = recipe(
        tmp_path / "two", run={"min_frames_for_recon": 100}, scan={"add_poisson_noise": False}
    )
    script = str(ROOT / "templates" / "run_recipe.py")
    run = mpirun(2, [script, two.source, "--no-progress"], timeout=120)
    assert run.returncode == 0, run.output[-4000:]
    assert "on 2 rank(s)" in run.output
    a, b = read_ptyr(serial.result), read_ptyr(two.result_path)
    assert b.attrs["ranks"] == 2 and a.attrs["ranks"] == 1
    np.testing.assert_array_equal(b.indices, np.arange(24))
    # the same reconstruction up to float32 summation order
    scale = np.abs(a.object).max()
    assert np.max(np.abs(a.object - b.object)) < 1e-3 * scale


@pytest.mark.parametrize("contiguous", [1, 3])
def test_numiter_contiguous_is_a_run_setting(tmp_path, contiguous):
    """Between polls of the scan the first engine runs run.numiter_contiguous iterations:
    24 frames in chunks of 10 are 3 polls, each followed by one burst."""
    summary = run_recipe(recipe(tmp_path, run={"numiter_contiguous": contiguous}))
    streaming = np.asarray(read_ptyr(summary.result).history["streaming"], bool)
    assert streaming.sum() == 3 * contiguous
    assert summary.iterations == 3 * contiguous + 4 + 3


def test_an_engines_numiter_contiguous_is_accepted_and_changes_nothing(tmp_path):
    """ptypy's engine key (its templates set it) is accepted; the iterations are still
    set by run.numiter_contiguous and numiter (issue 11)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = run_recipe(recipe(tmp_path / "a"))
    engines = [{"name": "DM", "numiter": 4, "numiter_contiguous": 2}, {"name": "ML", "numiter": 3}]
    keyed = run_recipe(recipe(tmp_path / "b", engines=engines))
    assert keyed.iterations == plain.iterations == 3 + 4 + 3


def test_a_rerun_keeps_the_previous_result_as_old(tmp_path, caplog):
    r = recipe(tmp_path)
    first = read_ptyr(run_recipe(r).result)
    with caplog.at_level("WARNING", logger="ptyscan.io.atomic"):
        summary = run_recipe(recipe(tmp_path, engines=[{"name": "DM", "numiter": 2}]))
    old = read_ptyr(summary.result + ".old")
    np.testing.assert_array_equal(old.object, first.object)
    assert [e["iterations_done"] for e in read_ptyr(summary.result).engines] == [2]
    assert any("job.ptyr exists; renamed to job.ptyr.old" in m for m in caplog.messages)


def test_cli_options_after_the_command_and_no_exit_error_for_ml(tmp_path, capsys, caplog):
    r = recipe(tmp_path, engines=[{"name": "ML", "numiter": 2}])
    assert main(["run", r.source, "-q", "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("reconstructed 24 frames, ")
    assert "fourier" in out[0] and "exit" not in out[0]
