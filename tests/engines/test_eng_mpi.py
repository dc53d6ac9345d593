"""Launch the MPI engine tests (mpi_engines.py) under ``mpiexec -n 2``, never hanging."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'ptyscan[mpi]')")

ROOT = Path(__file__).resolve().parents[2]
_HERE = Path(sys.executable).with_name("mpiexec")
MPIEXEC = str(_HERE) if _HERE.exists() else shutil.which("mpiexec")
TIMEOUT_S = 240

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')"),
]


def _kill(proc):
    """SIGKILL mpiexec's process group (it runs in its own session) and mpiexec."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def test_engines_agree_on_one_and_two_ranks():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"  # the ranks share this machine's cores
    cmd = [
        MPIEXEC,
        "-n",
        "2",
        sys.executable,
        "-m",
        "pytest",
        "tests/engines/mpi_engines.py",
        "-p",
        "no:cacheprovider",
        "--color=no",
        "-q",
        "-o",
        "timeout=180",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill(proc)
        output, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} ran over {TIMEOUT_S} s and was killed:\n{output[-6000:]}")
    assert proc.returncode == 0, output[-8000:]
    assert output.count("2 passed") == 2, output[-8000:]  # both ranks ran both tests
