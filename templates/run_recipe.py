"""Run a recipe, serially or under MPI: the entry point for ``mpiexec``.

    python templates/run_recipe.py recipes/moonflower.yaml
    mpiexec -n 4 python templates/run_recipe.py recipes/moonflower.yaml --set scan.num_frames=1000

It does what ``ptyscan prepare`` does (reconstruction engines are not part of
this release yet). Frames are spread over the ranks; rank 0 writes the .ptyd.
An exception on any rank aborts every rank with that rank's message, so a
failed MPI job never hangs.
"""

import sys

from ptyscan.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
