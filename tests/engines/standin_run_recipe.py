"""``templates/run_recipe.py`` with the CuPy stand-in (tests/cupy_standin.py) installed,
showing ``STANDIN_GPUS`` devices (default 1).

Launched by tests/engines/test_eng_gpu.py under ``mpiexec``, so that the engines'
CuPy path, its sums over ranks included, runs on machines without a GPU.
"""

import os
import runpy
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import cupy_standin  # noqa: E402

cupy_standin.install()
cupy_standin.set_devices(int(os.environ.get("STANDIN_GPUS", "1")))
template = str(TESTS.parent / "templates" / "run_recipe.py")
sys.argv = [template, *sys.argv[1:]]
runpy.run_path(template, run_name="__main__")
