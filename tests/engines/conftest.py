"""Set-up of the engine tests.

``mpi_engines.py`` runs UNDER ``mpiexec`` (launched by test_eng_mpi.py); it is not
collected in a serial run (its name does not start with ``test_``). When a test
marked ``mpi`` fails on one rank there, that rank calls ``COMM_WORLD.Abort(1)`` so
that no rank waits forever in a collective (the launcher's timeout is the last
resort).
"""

from __future__ import annotations

import sys

import pytest

from ptyscan.parallel import _launched_size

UNDER_MPI = _launched_size() > 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.failed and UNDER_MPI and item.get_closest_marker("mpi")):
        return
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    sys.stderr.write(
        f"\n[rank {world.Get_rank()}/{world.Get_size()}] {item.nodeid} FAILED during "
        f"{report.when}; calling MPI_Abort(1) so that no rank hangs\n{report.longreprtext}\n"
    )
    sys.stderr.flush()
    world.Abort(1)
