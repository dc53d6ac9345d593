"""Set-up for the tests that run UNDER ``mpiexec`` (launched by tests/test_mpi.py).

``mpiexec -n 3 python -m pytest tests/mpi -p no:cacheprovider --color=no`` runs every
``test_*.py`` here on every rank. In a plain (serial) ``python -m pytest`` run these
modules are not collected at all: tests/test_mpi.py launches them instead.

No test may hang: when a test marked ``mpi`` fails on any rank, that rank prints the
failure and calls ``COMM_WORLD.Abort(1)`` (the hook in tests/conftest.py), which ends
every rank (the others may be
waiting in a collective of the same or the next test). The launcher's timeout is the
last resort.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

from ptyscan.parallel import _launched_size, get_comm

UNDER_MPI = _launched_size() > 1

if not UNDER_MPI:
    # Serial run: the launcher (tests/test_mpi.py) runs these under mpiexec.
    collect_ignore_glob = ["test_*.py"]
else:
    try:  # every rank must draw the same examples
        from hypothesis import settings

        settings.register_profile("mpi", derandomize=True, database=None, deadline=None)
        settings.load_profile("mpi")
    except ImportError:  # pragma: no cover - hypothesis is a test dependency
        pass


def pytest_sessionfinish(session, exitstatus):
    """Under MPI with ``PTYSCAN_MPI_OUTDIR`` set: write this rank's outcome to rank<r>.json.

    The launcher reads these instead of parsing the ranks' interleaved output.
    """
    folder = os.environ.get("PTYSCAN_MPI_OUTDIR")
    if not (UNDER_MPI and folder):
        return
    from mpi4py import MPI

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {})
    counts = {key: len(stats.get(key, [])) for key in ("passed", "failed", "error", "skipped")}
    outcome = {
        "rank": MPI.COMM_WORLD.Get_rank(),
        "size": MPI.COMM_WORLD.Get_size(),
        "exitstatus": int(exitstatus),
        "collected": session.testscollected,
        **counts,
    }
    with open(os.path.join(folder, f"rank{outcome['rank']}.json"), "w") as fh:
        json.dump(outcome, fh)


@pytest.fixture
def comm():
    """The world communicator (an MPIComm: these tests run with several ranks)."""
    return get_comm()


@pytest.fixture
def shared_dir(comm, request):
    """A folder that every rank sees: rank 0 makes it and broadcasts the path.

    With ``PTYSCAN_MPI_OUTDIR`` set (by the launcher) files stay there for the
    serial side to inspect; otherwise a temporary folder is removed afterwards.
    ``tmp_path`` is avoided: each rank's pytest would number its own base folder.
    """
    keep = os.environ.get("PTYSCAN_MPI_OUTDIR")
    path = None
    if comm.rank == 0:
        if keep:
            path = os.path.join(keep, request.node.name.replace("/", "_"))
            os.makedirs(path, exist_ok=True)
        else:
            path = tempfile.mkdtemp(prefix="ptyscan-mpi-")
    path = comm.bcast(path)
    yield path
    comm.barrier()
    if comm.rank == 0 and not keep:
        shutil.rmtree(path, ignore_errors=True)
