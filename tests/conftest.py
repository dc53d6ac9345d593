"""Fixtures and hooks shared by every test module.

Under ``mpiexec`` (tests/mpi, tests/engines/mpi_engines.py, launched by
tests/test_mpi.py and tests/engines/test_eng_mpi.py), a test marked ``mpi`` that
fails on one rank prints the failure and aborts the whole job, so no other rank
waits forever in a collective (the launcher's timeout is the last resort).
"""

import logging

import pytest

from ptyscan.parallel import _launched_size

UNDER_MPI = _launched_size() > 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Abort every rank when a test marked ``mpi`` fails on this rank under MPI."""
    outcome = yield
    report = outcome.get_result()
    if not (report.failed and UNDER_MPI and item.get_closest_marker("mpi")):
        return
    from mpi4py import MPI

    from ptyscan.parallel import MPIComm, abort_job

    comm = MPIComm(MPI.COMM_WORLD)
    capman = item.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.suspend_global_capture(in_=True)
    text = (
        f"\n[rank {comm.rank}/{comm.size}] {item.nodeid} FAILED during {report.when}; "
        f"calling MPI_Abort(1) so that no rank hangs\n{report.longreprtext}\n"
    )
    for name, content in report.sections:
        text += f"--- {name} ---\n{content}\n"
    abort_job(comm, text)


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """``main`` calls logging.basicConfig(force=True); drop its handler and level afterwards."""
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
