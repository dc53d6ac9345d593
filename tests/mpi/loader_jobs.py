"""MPI jobs with loader ranks (``run.loader_ranks: 2``: world ranks 1 and 2 load, rank 0
runs DM), launched by tests/test_loader_ranks.py as::

    mpiexec -n 3 python tests/mpi/loader_jobs.py fail OUTPUT_DIR
    mpiexec -n 3 python tests/mpi/loader_jobs.py weights OUTPUT_DIR
    mpiexec -n 3 python tests/mpi/loader_jobs.py ahead OUTPUT_DIR

``fail``: the scan's ``load`` raises on loader rank 2 (its loader group's rank 1) from
frame 20 on, while the engine rank iterates; the job is wrapped in ``abort_on_error``
as the command line is, and must end quickly with that message. ``weights``: a scan
whose frames carry weights of their own (not one shared mask), so weights travel
with the frames; the test compares the result with :func:`recipe` run in one process.
``ahead``: loaders much faster than a slow engine (100 frames in chunks of 10, the engine
sleeps 30 ms per iteration); each loader rank writes when it loads which frames
(``load_<rank>.txt``) and the engine rank when it takes which chunk (``added.txt``), so the
test can check that no loader runs more than ``AHEAD_CHUNKS`` chunks ahead.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from ptyscan.app.runner import run_recipe
from ptyscan.engines import DM
from ptyscan.parallel import abort_on_error, get_comm
from ptyscan.recipe import load_recipe
from ptyscan.scans.moonflower import MoonFlowerScan

MESSAGE = "boom: detector file missing on a loader rank"


class FailsOnLoader(MoonFlowerScan):
    def load(self, indices):
        if self.comm.rank == 1 and len(indices) and min(indices) >= 20:
            raise RuntimeError(MESSAGE)
        return super().load(indices)


class OwnWeights(MoonFlowerScan):
    """Frame i has weight 0 on pixel row ``i % 64`` (a dead line moving over the scan)."""

    def load(self, indices):
        raw, positions, _ = super().load(indices)
        weights = {}
        for i in raw:
            w = np.ones(self.info.shape, np.float32)
            w[int(i) % self.info.shape[0]] = 0
            weights[i] = w
        return raw, positions, weights


class Recorded(MoonFlowerScan):
    """Writes ``time first-index`` per load to ``load_<loader rank>.txt`` in $JOB_OUTPUT."""

    def load(self, indices):
        if len(indices):
            path = os.path.join(os.environ["JOB_OUTPUT"], f"load_{self.comm.rank}.txt")
            with open(path, "a") as fh:
                fh.write(f"{time.time()!r} {min(indices)}\n")
        return super().load(indices)


class SlowDM(DM):
    """DM that writes ``time first-index`` per chunk taken to added.txt, and sleeps 30 ms
    per iteration (an engine far slower than the loaders)."""

    def add_views(self, chunk):
        with open(os.path.join(os.environ["JOB_OUTPUT"], "added.txt"), "a") as fh:
            fh.write(f"{time.time()!r} {min(chunk.all_indices)}\n")
        return super().add_views(chunk)

    def _iterate_once(self):
        time.sleep(0.03)
        return super()._iterate_once()


def recipe(mode, output_dir, loader_ranks):
    """The job's recipe: 50 frames of 64², DM on NumPy (1000 iterations for ``fail``, 4
    after every frame is in for ``weights``)."""
    numiter = {"fail": 1000, "weights": 4, "ahead": 2}[mode]
    frames = 100 if mode == "ahead" else 50
    r = load_recipe(
        {
            "scan": {"name": "MoonFlowerScan", "num_frames": frames, "shape": 64, "seed": 3},
            "engines": [{"name": "DM", "numiter": numiter}],
            "run": {
                "output_dir": output_dir,
                "frames_per_chunk": 10,
                "backend": "numpy",
                "progress": False,
                "plot": False,
                "min_frames_for_recon": 10 if mode == "ahead" else 50,
                "loader_ranks": loader_ranks,
            },
        }
    )
    if mode == "ahead":
        return dataclasses.replace(r, scan_class=Recorded, engine_classes=(SlowDM,))
    scan_class = FailsOnLoader if mode == "fail" else OwnWeights
    return dataclasses.replace(r, scan_class=scan_class)


def main(mode, output_dir):
    os.environ["JOB_OUTPUT"] = output_dir
    os.makedirs(output_dir, exist_ok=True)
    comm = get_comm()
    with abort_on_error(comm):
        run_recipe(recipe(mode, output_dir, 2), comm=comm)
    if mode == "fail":
        print(f"rank {comm.rank}: finished without error (unexpected)", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
