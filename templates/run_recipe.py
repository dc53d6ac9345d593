"""Run a recipe, serially or under MPI: the entry point for ``mpiexec``.

    python templates/run_recipe.py recipes/moonflower.yaml
    mpiexec -n 4 python templates/run_recipe.py recipes/moonflower.yaml --set scan.num_frames=1000

It does what ``ptyscan run`` does: the scan is prepared chunk by chunk, frames
spread over the ranks (the rank that prepares a frame reconstructs with it), and
the recipe's engines reconstruct; rank 0 writes the .ptyr result, its pictures
and, with ``scan.save``, the .ptyd. An exception on any rank aborts every rank
with that rank's message, so a failed MPI job never hangs.
"""

import sys

from ptyscan.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
