"""Launch the MPI engine tests (mpi_engines.py) under ``mpiexec -n 2``, never hanging."""

from __future__ import annotations

import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'ptyscan[mpi]')")

from _mpi_launch import MPIEXEC, mpirun, pytest_args

TIMEOUT_S = 240

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'ptyscan[mpi]')"),
]


def test_engines_agree_on_one_and_two_ranks():
    args = pytest_args("tests/engines/mpi_engines.py")
    args[args.index("timeout=60")] = "timeout=180"  # an engine test iterates longer
    run = mpirun(2, args, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.output[-8000:]
    assert run.output.count("8 passed") == 2, run.output[-8000:]  # both ranks ran every test
