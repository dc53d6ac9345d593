"""``ptypy.core``: ``PtyScan`` and the two names legacy loaders read at import.

``Ptycho`` here is no reconstruction: it only carries ``Ptycho.DEFAULT['io']``
(ptypy's output-path defaults), and ``Paths(io).home`` is that folder, which
the legacy Diamond loaders (I13, I08, DLS) use to build a default ``dfile``.
"""

from __future__ import annotations

from ....errors import UnsupportedError
from ..utils.parameters import Param
from .data import PtyScan

__all__ = ["Paths", "PtyScan", "Ptycho"]


class Ptycho:
    """Only ``Ptycho.DEFAULT['io']``; reconstructions are ptyscan's runner."""

    DEFAULT = Param(
        io=Param(
            home="./",
            rfile="recons/%(run)s/%(run)s_%(engine)s_%(iterations)04d.ptyr",
            interaction=Param(active=False),
            autosave=Param(active=False),
        )
    )

    def __init__(self, *args, **kwargs):
        raise UnsupportedError(
            "ptypy.core.Ptycho: ptyscan runs reconstructions with its runner, got a Ptycho "
            "call; use `ptyscan run recipe.yaml` with engines: [...] (README 'Porting from ptypy')"
        )
