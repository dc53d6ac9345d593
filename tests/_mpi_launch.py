"""Launching ``mpiexec`` from the serial test suite: always under a timeout, never hanging.

Used by tests/test_mpi.py and tests/engines/test_eng_mpi.py (tests/ is on sys.path
through tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _find_mpiexec():
    """The mpiexec next to this Python (the ``mpich`` wheel's), else the one on PATH."""
    here = Path(sys.executable).with_name("mpiexec")
    return str(here) if here.exists() else shutil.which("mpiexec")


MPIEXEC = _find_mpiexec()


@dataclasses.dataclass
class Launch:
    returncode: int
    output: str
    seconds: float


def _descendants(pid):
    """Process ids below ``pid`` (Linux /proc; empty elsewhere)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _kill_tree(proc):
    """SIGKILL mpiexec, its process group and every process below it (the ranks)."""
    victims = _descendants(proc.pid)
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill()
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def require_mpiexec():
    """Skip the calling test where the optional MPI extra (mpi4py, mpiexec) is missing."""
    pytest.importorskip("mpi4py")
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install 'ptyscan[mpi]')")


def start(n, args, *, env=None, cwd=ROOT):
    """Start ``mpiexec -n n python ARGS`` (own session, output piped); the Popen.

    The caller ends it with :func:`finish` (or signals it: mpiexec forwards SIGINT and
    SIGTERM to every rank)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    full_env["OMP_NUM_THREADS"] = "1"  # ranks share this machine's cores
    full_env.update(env or {})
    cmd = [MPIEXEC, "-n", str(n), sys.executable, *args]
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc, *, timeout):
    """Wait for a :func:`start`-ed job; kill it with all its ranks and fail the test when
    it runs over ``timeout`` seconds (an MPI hang?). Its output."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        output, _ = proc.communicate()
        pytest.fail(
            f"{' '.join(proc.args)} did not finish within {timeout} s (an MPI hang?) and "
            f"was killed; last output:\n{output[-6000:]}"
        )
    return output


def kill(proc):
    """SIGKILL a :func:`start`-ed job and every one of its ranks (no-op once it ended)."""
    if proc.poll() is None:
        _kill_tree(proc)
        proc.communicate()


def mpirun(n, args, *, timeout, env=None):
    """Run ``mpiexec -n n python ARGS`` from the repo root; fail (never hang) on timeout."""
    start_s = time.monotonic()
    proc = start(n, args, env=env)
    output = finish(proc, timeout=timeout)
    return Launch(proc.returncode, output, time.monotonic() - start_s)


def pytest_args(*paths):
    """``python -m pytest PATHS`` as every rank runs it (inner per-test timeout 60 s)."""
    options = "-p no:cacheprovider --color=no -q -o timeout=60"
    return ["-m", "pytest", *paths, *options.split()]
