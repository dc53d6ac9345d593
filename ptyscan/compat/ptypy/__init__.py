"""ptyscan's own implementation of the part of ptypy 0.9 that beamline loaders use.

Laid out like ptypy, so that a loader file written for ptypy runs unmodified
when ptyscan imports it (``scan: {name: ptypy, file: ..., class: ...}``): its
``from ptypy.core.data import PtyScan``, ``from ..core.data import PtyScan``,
``from .. import utils as u``, ``from . import register``,
``from ..utils.verbose import log``, ``from .. import io`` and
``from ..utils import parallel`` all resolve here. An installed ptypy is never
imported. See README "Porting from ptypy" for what is left out and why.
"""

from __future__ import annotations

from . import core, experiment, io, utils

__all__ = ["core", "experiment", "io", "utils"]
