"""Launch the MPI tests (tests/mpi/) with ``mpiexec -n 2`` and ``-n 3`` from the serial suite.

Every launch runs under a timeout and is killed (with all its ranks) when it runs
over, so a misbehaving MPI job fails the test instead of hanging the suite. The
launched processes find the package through ``PYTHONPATH=<repo root>``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'ptyscan[mpi]')")

ROOT = Path(__file__).resolve().parents[1]
MPI_DIR = ROOT / "tests" / "mpi"

from _mpi_launch import MPIEXEC, Launch, mpirun, pytest_args  # noqa: E402

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(
        MPIEXEC is None,
        reason="no mpiexec next to the Python or on PATH (pip install 'ptyscan[mpi]' "
        "provides one with the mpich wheel)",
    ),
]

SUITE_TIMEOUT_S = 120
ABORT_LIMIT_S = 30


def _helpers():
    spec = importlib.util.spec_from_file_location(
        "_ptyscan_mpi_helpers", MPI_DIR / "mpi_helpers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SUITES: dict[int, tuple[Launch, Path]] = {}


@pytest.fixture(scope="module")
def mpi_suite(tmp_path_factory):
    """Run tests/mpi under ``mpiexec -n N`` once per N; ``(launch, output folder)``."""

    def launch(n):
        if n not in _SUITES:
            out = tmp_path_factory.mktemp(f"mpi{n}")
            env = {"PTYSCAN_MPI_OUTDIR": str(out), "PTYSCAN_EXPECTED_RANKS": str(n)}
            _SUITES[n] = (
                mpirun(n, pytest_args("tests/mpi"), timeout=SUITE_TIMEOUT_S, env=env),
                out,
            )
        return _SUITES[n]

    yield launch
    _SUITES.clear()


@pytest.mark.parametrize("n", [2, 3])
def test_mpi_suite_passes(mpi_suite, n):
    """Every test of tests/mpi passes on every one of n ranks (3 ranks oversubscribe 2 cores)."""
    run, out = mpi_suite(n)
    assert run.returncode == 0, f"mpiexec -n {n} pytest tests/mpi failed:\n{run.output[-8000:]}"
    outcomes = []
    for rank in range(n):  # written by tests/mpi/conftest.py at the end of each rank's session
        path = out / f"rank{rank}.json"
        assert path.is_file(), f"rank {rank} wrote no outcome:\n{run.output[-4000:]}"
        outcomes.append(json.loads(path.read_text()))
    for o in outcomes:
        assert o["size"] == n and o["exitstatus"] == 0, o
        assert o["failed"] == o["error"] == o["skipped"] == 0, o
        assert o["passed"] == o["collected"] == outcomes[0]["collected"] >= 30, o


def test_saved_ptyd_identical_for_1_2_3_ranks(mpi_suite, tmp_path):
    """The MoonFlower .ptyd written with 2 and 3 ranks equals the 1-rank file, byte for byte."""
    from ptyscan.parallel import SerialComm
    from ptyscan.scans.moonflower import MoonFlowerScan

    helpers = _helpers()
    files = {}
    for n in (2, 3):
        run, out = mpi_suite(n)
        found = list(out.glob(f"*moonflower*/MoonFlowerScan_{n}ranks.ptyd"))
        assert len(found) == 1, f"no .ptyd from {n} ranks:\n{run.output[-4000:]}"
        files[n] = found[0]
    files[1] = tmp_path / "MoonFlowerScan_1rank_here.ptyd"
    pars = {**helpers.SMALL, "auto_center": True, "save": "append", "dfile": str(files[1])}
    helpers.run(MoonFlowerScan(pars, comm=SerialComm()), 7)
    helpers.assert_ptyd_identical(files[1], files[2])
    helpers.assert_ptyd_identical(files[1], files[3])


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["-m", "mpi4py", "tests/mpi/raise_on_rank1.py", "scan"], "RuntimeError: boom"),
        (["tests/mpi/raise_on_rank1.py", "scan", "--wrap"], "[rank 1/2] RuntimeError: boom"),
        (["tests/mpi/raise_on_rank1.py", "blocked", "--wrap"], "[rank 1/2] RuntimeError: boom"),
    ],
    ids=["python-m-mpi4py", "abort_on_error", "abort_on_error-others-in-barrier"],
)
def test_hook_raising_on_rank1_ends_job(args, expect):
    """An exception on rank 1 only: non-zero exit within 30 s, rank 1's message shown."""
    run = mpirun(2, args, timeout=ABORT_LIMIT_S + 30)
    assert run.returncode != 0, run.output[-4000:]
    assert run.seconds < ABORT_LIMIT_S, f"took {run.seconds:.1f} s:\n{run.output[-4000:]}"
    assert expect in run.output, run.output[-4000:]
    assert "detector file missing on rank 1" in run.output
    assert "finished without error" not in run.output


def test_failing_mpi_test_aborts_instead_of_hanging():
    """A test failing on rank 1 only ends the job (conftest hook); rank 0 waits in a barrier."""
    run = mpirun(2, pytest_args("tests/mpi/fail_on_rank1.py"), timeout=ABORT_LIMIT_S + 30)
    assert run.returncode != 0, run.output[-4000:]
    assert run.seconds < ABORT_LIMIT_S, f"took {run.seconds:.1f} s:\n{run.output[-4000:]}"
    assert "deliberate failure on rank 1" in run.output
    assert "calling MPI_Abort(1)" in run.output


@pytest.mark.parametrize(
    ("setting", "expect"),
    [
        ("scan.shape=-3", "error: 1 problem in recipes/moonflower.yaml:"),
        ("scan.energy=8000", "error: [rank 0/2] scan.energy: 8000 keV is outside 0.1–100 keV"),
    ],
    ids=["recipe-error", "geometry-error"],
)
def test_a_user_error_under_mpi_is_printed_once_with_exit_2(tmp_path, setting, expect):
    """A recipe error (every rank) and a collective check failing: one message, exit 2."""
    args = ["-m", "ptyscan", "run", "recipes/moonflower.yaml", "--no-progress"]
    args += ["--set", f"run.output_dir={tmp_path}", "--set", setting]
    run = mpirun(2, args, timeout=ABORT_LIMIT_S + 30)
    assert run.returncode == 2, run.output[-4000:]
    assert run.output.count("error:") == 1 and expect in run.output, run.output[-4000:]
    assert "Traceback" not in run.output
