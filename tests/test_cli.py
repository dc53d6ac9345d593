"""The ``ptyscan`` command line: exit codes, messages, and the files ``prepare`` writes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ptyscan.app.cli import main
from ptyscan.errors import RecipeError
from ptyscan.io import read_ptyd
from ptyscan.registry import ENGINES
from ptyscan.scans import available_scans

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["prepare", "info", "scans", "schema"]
BAD_SHAPE = "scan.shape: must be a positive int or a pair (ny, nx) of positive ints, got -3"


def write_recipe(tmp_path, *, scan="", name="quick.yaml"):
    """A small QuickScan recipe (12 frames, saved to tmp_path) with extra ``scan`` lines."""
    path = tmp_path / name
    path.write_text(
        "scan:\n"
        "  name: QuickScan\n"
        "  num_frames: 12\n"
        "  seed: 0\n"
        "  save: append\n"
        f"  dfile: {tmp_path / 'quick.ptyd'}\n"
        f"{scan}"
        "run:\n"
        "  frames_per_chunk: 5\n"
        "  progress: false\n",
        encoding="utf-8",
    )
    return path


def run_cli(*args):
    """``python -m ptyscan.cli ARGS`` in a fresh process, working from a source checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "ptyscan.app.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


# --- scans and schema -----------------------------------------------------------------------


def test_scans_lists_classes_with_one_line_summaries(capsys):
    assert main(["scans"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert {"MoonFlowerScan", "QuickScan", "PtydScan"} <= set(rows)
    assert len(lines) == len(rows)  # one line each
    assert rows["MoonFlowerScan"].startswith("Synthetic far-field scan")
    assert rows["QuickScan"].startswith("Small, fast MoonFlower variant")
    assert rows["PtydScan"].strip()


def test_schema_shows_defaults_and_help(capsys):
    assert main(["schema", "MoonFlowerScan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("MoonFlowerScan parameters")
    (k,) = [i for i, line in enumerate(lines) if line.split()[:1] == ["energy"]]
    assert re.fullmatch(r"\s+energy\s+= 7\.2", lines[k])
    assert "keV" in lines[k + 1]
    # Fields a subclass only re-defaults keep their parent's help.
    (s,) = [i for i, line in enumerate(lines) if line.split()[:1] == ["shape"]]
    assert re.fullmatch(r"\s+shape\s+= \[128, 128\]", lines[s])
    assert "Frame shape" in lines[s + 1]


def test_schema_of_the_run_section(capsys):
    assert main(["schema", "run"]) == 0
    out = capsys.readouterr().out
    for key in ("backend", "output_dir", "frames_per_chunk", "poll_interval", "progress"):
        assert re.search(rf"^\s+{key}\s+= ", out, re.MULTILINE), key
    assert "= 'auto'" in out
    assert "= 100" in out


def test_schema_of_an_unknown_name(capsys):
    assert main(["schema", "Nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: schema: unknown scan class, engine or section 'Nope'; "
        f"available: {', '.join([*available_scans(), *ENGINES.names(), 'run'])}"
    ]


@pytest.mark.parametrize(
    ("name", "near"),
    [("MoonFlowerScn", "MoonFlowerScan"), ("quickscan", "QuickScan"), ("rnu", "run")],
)
def test_schema_did_you_mean(capsys, name, near):
    assert main(["schema", name]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"(did you mean '{near}'?)" in line


# --- prepare --------------------------------------------------------------------------------


def test_prepare_writes_the_ptyd(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    assert main(["prepare", str(recipe)]) == 0
    out = capsys.readouterr().out
    dfile = tmp_path / "quick.ptyd"
    assert "prepared 12 frames in 3 chunks" in out
    assert str(dfile) in out
    contents = read_ptyd(dfile)
    assert contents.data.shape == (12, 64, 64)
    assert contents.indices.tolist() == list(range(12))
    assert int(contents.meta["num_frames"]) == 12


def test_prepare_with_set_override(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    args = ["prepare", str(recipe), "--set", "scan.num_frames=7", "--set", "scan.shape=32"]
    assert main(args) == 0
    assert "prepared 7 frames" in capsys.readouterr().out
    contents = read_ptyd(tmp_path / "quick.ptyd")
    assert contents.data.shape == (7, 32, 32)


def test_prepare_no_progress_flag(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    assert main(["prepare", str(recipe), "--no-progress", "--set", "scan.num_frames=3"]) == 0
    assert len(read_ptyd(tmp_path / "quick.ptyd").indices) == 3


def test_prepare_bad_recipe_exits_2_without_traceback(tmp_path, capsys):
    recipe = write_recipe(tmp_path, scan="  shape: -3\n  engery: 7\n")
    assert main(["prepare", str(recipe)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: 2 problems in {recipe}:",
        f"  {BAD_SHAPE}",
        "  scan.engery: unknown key (did you mean 'energy'?)",
    ]
    assert not (tmp_path / "quick.ptyd").exists()


def test_prepare_bad_override_exits_2(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    assert main(["prepare", str(recipe), "--set", "scan.num_frames"]) == 2
    err = capsys.readouterr().err
    assert "--set 'scan.num_frames': expected KEY.PATH=VALUE" in err
    assert "Traceback" not in err


def test_prepare_override_fixes_a_bad_recipe(tmp_path, capsys):
    recipe = write_recipe(tmp_path, scan="  shape: -3\n")
    assert main(["prepare", str(recipe), "--set", "scan.shape=32"]) == 0
    assert read_ptyd(tmp_path / "quick.ptyd").data.shape == (12, 32, 32)


def test_prepare_missing_recipe_file(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert main(["prepare", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: cannot read recipe: No such file or directory" in err


def test_debug_shows_the_exception(tmp_path):
    recipe = write_recipe(tmp_path, scan="  shape: -3\n")
    with pytest.raises(RecipeError) as info:
        main(["--debug", "prepare", str(recipe)])
    assert info.value.problems == [BAD_SHAPE]


# --- info -----------------------------------------------------------------------------------


def test_info_prints_frames_and_shape(tmp_path, capsys):
    assert main(["prepare", str(write_recipe(tmp_path))]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "quick.ptyd")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\b12\b", out)
    assert re.search(r"\b64\b", out)


# --- argparse -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], *([c] for c in SUBCOMMANDS)], ids=["top", *SUBCOMMANDS])
def test_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ptyscan")
    assert " ".join(["ptyscan", *command]) in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("ptyscan ")


@pytest.mark.parametrize("argv", [[], ["nosuchcommand"], ["prepare"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: ptyscan" in capsys.readouterr().err


# --- a real process: exit codes as a shell sees them ----------------------------------------


def test_subprocess_exit_codes(tmp_path):
    good = write_recipe(tmp_path)
    bad = write_recipe(tmp_path, scan="  shape: -3\n", name="bad.yaml")

    done = run_cli("prepare", good, "--set", "scan.num_frames=4")
    assert done.returncode == 0, done.stderr
    assert "prepared 4 frames" in done.stdout
    assert len(read_ptyd(tmp_path / "quick.ptyd").indices) == 4

    done = run_cli("prepare", bad)
    assert done.returncode == 2
    assert BAD_SHAPE in done.stderr
    assert "Traceback" not in done.stderr

    done = run_cli("schema", "Nope")
    assert done.returncode == 2
    assert done.stderr.startswith("error: schema: unknown scan class")
    assert "Traceback" not in done.stderr

    done = run_cli("--debug", "prepare", bad)
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "RecipeError" in done.stderr
    assert BAD_SHAPE in done.stderr


def test_python_dash_m_ptyscan_is_the_command():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", "ptyscan", "scans"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "MoonFlowerScan" in out.stdout


SYNTHETIC = {"MoonFlowerScan", "QuickScan", "SimScan"}
OWN_SCHEMA = {"plugin", "ptypy"}  # their schema is the file/class keys; the class has the rest


def _schema_keys(capsys, name):
    assert main(["schema", name]) == 0
    out = capsys.readouterr().out
    return set(re.findall(r"^\s+(\w+)\s+= ", out, re.MULTILINE))


@pytest.mark.parametrize("name", sorted(set(available_scans()) - OWN_SCHEMA))
def test_noise_and_seed_are_keys_of_synthetic_scans_only(capsys, name):
    keys = _schema_keys(capsys, name)
    assert "energy" in keys  # the schema was read
    synthetic = name in SYNTHETIC
    assert ("add_poisson_noise" in keys) is synthetic
    # StemScan keeps seed for its own meas_add_poisson_noise and simulated positions
    assert ("seed" in keys) is (synthetic or name == "StemScan")


def test_noise_and_seed_on_measured_data_are_unknown_keys_with_a_hint(tmp_path, capsys):
    recipe = tmp_path / "beamline.yaml"
    recipe.write_text(
        "scan:\n  name: Hdf5Loader\n  seed: 3\n  add_poisson_noise: true\n"
        f"run: {{output_dir: {tmp_path / 'out'}}}\n",
        encoding="utf-8",
    )
    assert main(["run", str(recipe)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"error: 2 problems in {recipe}:"
    hint = "only scans that simulate their frames have it (MoonFlowerScan, QuickScan, SimScan"
    for line, key in zip(lines[1:], ("seed", "add_poisson_noise"), strict=True):
        assert line.startswith(f"  scan.{key}: unknown key; {key}: {hint}")
    assert not (tmp_path / "out").exists()


def test_ptypy_loaders_keep_ptypys_add_poisson_noise():
    from ptyscan.compat.ptypy.core.data import PtyScan as PtypyStyle

    assert PtypyStyle.DEFAULT["add_poisson_noise"] is False
    assert "seed" in PtypyStyle.DEFAULT
