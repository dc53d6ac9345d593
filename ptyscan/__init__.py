"""ptyscan: ptychography scans to reconstructions, streaming, serial or over MPI.

The public API::

    from ptyscan import PtyScan, WAIT, EOS, Chunk, ScanMeta, load_recipe
    from ptyscan.scans import get_scan, available_scans

``import ptyscan`` needs neither mpi4py, cupy nor fabio.
"""

from __future__ import annotations

from .chunk import EOS, WAIT, Chunk, ScanMeta
from .errors import PtyScanError, RecipeError
from .recipe import Recipe, load_recipe
from .scan import PtyScan, PtyScanParams

__version__ = "0.1.0"

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
    "__version__",
    "load_recipe",
]
