"""Reconstruction engines: Difference Map, RAAR, ePIE/rPIE and Maximum Likelihood on
NumPy or CuPy.

Engines are found by name through the entry-point group ``ptyscan.engines``
(:data:`ptyscan.registry.ENGINES`); this package holds the built-in
ones. Each engine is written once against a :class:`Backend` (``xp``, ``fft``);
CuPy is imported only by :func:`get_backend`.

>>> from ptyscan.engines import DM, ML
>>> dm = DM(numiter=100, backend="numpy")        # doctest: +SKIP
>>> dm.add_views(chunk); dm.iterate()            # doctest: +SKIP
>>> ml = ML(numiter=50, state=dm.state)          # doctest: +SKIP
>>> ml.iterate()                                 # doctest: +SKIP
"""

from ..backend import Backend, get_backend
from .base import Engine
from .dm import DM
from .epie import EPIE
from .ml import ML
from .multislice import MultisliceOperator
from .operator import Operator
from .params import DMParams, EngineParams, EPIEParams, MLParams, RAARParams
from .raar import RAAR
from .state import ReconstructionState

__all__ = [
    "DM",
    "EPIE",
    "ML",
    "RAAR",
    "Backend",
    "DMParams",
    "EPIEParams",
    "Engine",
    "EngineParams",
    "MLParams",
    "MultisliceOperator",
    "Operator",
    "RAARParams",
    "ReconstructionState",
    "get_backend",
]
