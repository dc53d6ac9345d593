"""ptyscan: ptychography scans to reconstructions, streaming, serial or over MPI.

The public API::

    from ptyscan import PtyScan, WAIT, EOS, Chunk, ScanMeta, load_recipe
    from ptyscan.scans import get_scan, available_scans

``import ptyscan`` needs neither mpi4py, cupy nor fabio.
"""

from __future__ import annotations

from ._env import limit_blas_threads_under_mpi

limit_blas_threads_under_mpi()  # before NumPy starts its BLAS threads (see ptyscan._env)

from ._version import __version__  # noqa: E402
from .chunk import EOS, WAIT, Chunk, ScanMeta  # noqa: E402
from .errors import PtyScanError, RecipeError  # noqa: E402
from .recipe import Recipe, load_recipe  # noqa: E402
from .scan import PtyScan, PtyScanParams  # noqa: E402
from .scan_params import SyntheticScanParams  # noqa: E402

__all__ = [
    "EOS",
    "WAIT",
    "Chunk",
    "PtyScan",
    "PtyScanError",
    "PtyScanParams",
    "Recipe",
    "RecipeError",
    "ScanMeta",
    "SyntheticScanParams",
    "__version__",
    "load_recipe",
]
