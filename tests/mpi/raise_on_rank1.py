"""An MPI job in which something raises on rank 1 only; it must end, non-zero, quickly.

Launched by tests/test_mpi.py as::

    mpiexec -n 2 python -m mpi4py tests/mpi/raise_on_rank1.py scan     # mpi4py's abort
    mpiexec -n 2 python tests/mpi/raise_on_rank1.py scan --wrap        # abort_on_error
    mpiexec -n 2 python tests/mpi/raise_on_rank1.py blocked --wrap     # others stuck in Barrier

``scan``: a PtyScan subclass whose ``load`` raises on rank 1. ``blocked``: rank 1 raises
outside any ptyscan collective while the other ranks wait in a barrier, which hangs
forever unless the exception aborts the job. Without ``--wrap`` the script relies on
``python -m mpi4py`` to turn the uncaught exception into ``MPI_Abort``.
"""

from __future__ import annotations

import contextlib
import sys

from ptyscan import EOS
from ptyscan.parallel import abort_on_error, get_comm
from ptyscan.scans.moonflower import MoonFlowerScan

MESSAGE = "boom: detector file missing on rank 1"


class RaisesOnRank1(MoonFlowerScan):
    def load(self, indices):
        if self.comm.rank == 1:
            raise RuntimeError(MESSAGE)
        return super().load(indices)


def main(mode, wrap):
    comm = get_comm()
    guard = abort_on_error(comm) if wrap else contextlib.nullcontext()
    with guard:
        if mode == "scan":
            scan = RaisesOnRank1(num_frames=8, shape=32, seed=1, comm=comm)
            while scan.auto(4) is not EOS:
                pass
        elif mode == "blocked":
            if comm.rank == 1:
                raise RuntimeError(MESSAGE)
            comm.barrier()
        else:
            raise SystemExit(f"unknown mode {mode!r}; use 'scan' or 'blocked'")
    print(f"rank {comm.rank}: finished without error (unexpected)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], "--wrap" in sys.argv[2:])
