"""An MPI job in which one of two loader ranks fails after some chunks went through
while the engine rank iterates; it must end, non-zero, quickly, with that message.

Launched by tests/test_loader_ranks.py as::

    mpiexec -n 3 python tests/mpi/loader_fails.py OUTPUT_DIR

World ranks 1 and 2 load (``run.loader_ranks: 2``), rank 0 runs DM. The scan's ``load``
raises on loader rank 2 (its loader group's rank 1) from frame 20 on; the job is wrapped
in ``abort_on_error`` as the command line is.
"""

from __future__ import annotations

import dataclasses
import sys

from ptyscan.app.runner import run_recipe
from ptyscan.parallel import abort_on_error, get_comm
from ptyscan.recipe import load_recipe
from ptyscan.scans.moonflower import MoonFlowerScan

MESSAGE = "boom: detector file missing on a loader rank"


class FailsOnLoader(MoonFlowerScan):
    def load(self, indices):
        if self.comm.rank == 1 and len(indices) and min(indices) >= 20:
            raise RuntimeError(MESSAGE)
        return super().load(indices)


def main(output_dir):
    recipe = load_recipe(
        {
            "scan": {"name": "MoonFlowerScan", "num_frames": 50, "shape": 64, "seed": 3},
            "engines": [{"name": "DM", "numiter": 1000}],
            "run": {
                "output_dir": output_dir,
                "frames_per_chunk": 10,
                "backend": "numpy",
                "progress": False,
                "plot": False,
                "loader_ranks": 2,
            },
        }
    )
    recipe = dataclasses.replace(recipe, scan_class=FailsOnLoader)
    comm = get_comm()
    with abort_on_error(comm):
        run_recipe(recipe, comm=comm)
    print(f"rank {comm.rank}: finished without error (unexpected)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
