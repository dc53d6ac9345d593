"""A deliberately failing MPI test module, to check that a failure cannot hang the job.

Not collected by default (the name does not start with ``test_``). tests/test_mpi.py runs
``mpiexec -n 2 python -m pytest tests/mpi/fail_on_rank1.py`` and expects a non-zero exit
within seconds: the first test fails on rank 1 only, so rank 0 goes on into the barrier
of the second test and would wait there forever, were it not for the abort-on-failure
hook in tests/mpi/conftest.py.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.mpi


def test_fails_on_rank_1_only(comm):
    assert comm.rank != 1, "deliberate failure on rank 1"


def test_then_a_collective(comm):
    comm.barrier()
