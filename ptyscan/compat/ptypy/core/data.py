"""``ptypy.core.data.PtyScan``: ptyscan's PtyScan with the surface ptypy loaders use.

Differences from :class:`ptyscan.PtyScan`, all for unmodified ptypy loaders:

- ``DEFAULT`` is a :class:`~ptyscan.compat.ptypy.utils.Param` of the defaults
  (``self.DEFAULT.copy(99)`` then ``update(pars, in_place_depth=99)``).
- ``self.info`` is a mutable Param. What the loader writes into it (in
  ``__init__`` or in the hooks: ``self.info.center = ...``) is validated again
  against the class's ``Params`` model before frames are prepared, and the
  validated copy (:attr:`params`) is what the lifecycle uses. After
  :meth:`initialize`, rank 0's ``info`` is sent to every rank when only rank 0
  ran the hooks.
- ``self.meta.energy = ...`` (also ``distance``, ``psize``, ``center``,
  ``propagation``, ``label``) records an instrument value that overrides the
  parameter; a NeXus ``(1,)`` array becomes a scalar. Reading ``self.meta.x``
  gives the current :class:`~ptyscan.chunk.ScanMeta` value.
- ``add_poisson_noise`` (a key of ptypy's PtyScan) and ``seed`` are accepted, as
  for ptyscan's synthetic scans; native scans of measured data have neither.
- ptypy's attributes ``orientation``, ``rebin``, ``min_frames``,
  ``load_in_parallel``, ``load_common_in_parallel``, ``save``, ``dfile``
  exist, and ``_finalize()`` is called once at the end of the scan.
- ``ptypy.utils.parallel`` talks to this scan's communicator.
"""

from __future__ import annotations

from ....chunk import EOS
from ....errors import RecipeError, ScanError
from ....params import plain, validate_params
from ....scan import PtyScan as NativePtyScan
from ....scan_checks import checked_recorded_meta
from ....scan_params import SyntheticScanParams
from ...defaults import as_tuples
from ..utils import parallel
from ..utils.parameters import Param, asParam

__all__ = ["META_KEYS", "MetaView", "PtyScan"]

META_KEYS = ("energy", "distance", "psize", "center", "propagation", "label")
"""Meta values a loader may record by assignment (``self.meta.energy = 8.7``)."""


class MetaView:
    """``scan.meta`` of a ptypy-style scan: reads the current meta, records assignments."""

    def __init__(self, scan):
        object.__setattr__(self, "scan", scan)

    def __getattr__(self, name):
        return getattr(self.scan.current_meta(), name)

    def __getitem__(self, name):
        return getattr(self, name)

    def __setattr__(self, name, value):
        scan = self.scan
        if name in META_KEYS:  # checked now: a NeXus (1,) array becomes a float
            where = f"{type(scan).__name__}: meta.{name} ="
            scan.recorded_meta = checked_recorded_meta({**scan.recorded_meta, name: value}, where)
        elif name == "num_frames":
            scan.num_frames = None if value is None else int(value)
        elif name == "shape":
            scan.info.shape = value
        else:
            raise ScanError(
                f"{type(scan).__name__}: meta.{name} cannot be set, got {value!r:.60}; a "
                f"loader may set meta.{', meta.'.join(META_KEYS)}, meta.num_frames, meta.shape"
            )

    __setitem__ = __setattr__

    def __repr__(self):
        return f"MetaView({self.scan.current_meta()!r})"


class PtyScan(NativePtyScan):
    """Base class of ptypy-style loaders (see the module notes for what differs)."""

    Params = SyntheticScanParams
    """ptypy's PtyScan keys, ``add_poisson_noise`` included, and ``seed`` for its noise."""

    TUPLE_KEYS: frozenset = frozenset({"shape", "psize"})
    """Keys whose ptypy type is a tuple, not a list (more from ``register``): ``DEFAULT``
    and the ``ptypy`` scan give the loader tuples there, as a ptypy script would."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.DEFAULT = asParam(as_tuples(plain(cls.Params().model_dump()), cls.TUPLE_KEYS))

    def __init__(self, pars=None, comm=None, **kwargs):
        values = Param()
        values.update(pars or {}, 99)
        values.update(kwargs, 99)
        super().__init__(plain(values), comm=comm)
        parallel.use_comm(self.comm)
        self.model = self.info
        self.info = asParam(plain(self.model.model_dump()))
        self.orientation = self.model.orientation
        self.rebin = self.model.rebin
        self.min_frames = self.model.min_frames
        lp = self.model.load_parallel
        self.load_common_in_parallel = lp in ("all", "common")
        self.load_in_parallel = lp in ("all", "data")
        self.save = self.model.save
        self.dfile = self.model.dfile
        self.has_positions = None
        self.finalized = False

    @property
    def params(self):
        """The validated parameters the lifecycle uses (``info`` as last synchronised)."""
        return self.model

    @property
    def meta(self):
        """Read the current meta; assign energy, distance, psize, center to record them."""
        return MetaView(self)

    def sync_info(self, when):
        """Validate ``self.info`` again (after the loader changed it) into :attr:`params`."""
        try:
            self.model = validate_params(type(self).Params, plain(self.info), prefix="scan")
        except RecipeError as exc:
            where = f" (set by {type(self).__name__} {when})"
            raise RecipeError([line + where for line in exc.problems]) from None
        self.save, self.dfile = self.model.save, self.model.dfile

    def initialize(self):
        """ptypy's initialize: hooks on rank 0 (or all ranks), ``info`` shared, then synced."""
        parallel.use_comm(self.comm)
        self.sync_info("in __init__")
        super().initialize()
        if self.comm.size > 1 and not self.load_common_in_parallel:
            self.info = self.comm.bcast(self.info if self.comm.rank == 0 else None)
        self.sync_info("in its hooks")
        self.common = asParam(self.common)  # ptypy: common is a Param
        self.has_positions = self.positions is not None

    def get_data_chunk(self, chunksize, start=None):
        """As :meth:`ptyscan.PtyScan.get_data_chunk`, with ``parallel`` on this scan's comm."""
        parallel.use_comm(self.comm)
        if self.is_initialized:
            self.sync_info("after initialize")
        return super().get_data_chunk(chunksize, start)

    def auto(self, frames):
        """As :meth:`ptyscan.PtyScan.auto`; calls ``_finalize()`` once at the end of the scan."""
        out = super().auto(frames)
        if out is EOS and not self.finalized:
            self.finalized = True
            self._finalize()
        return out

    def _finalize(self):
        """Called once at the end of the scan (ptypy loaders close their files here)."""


PtyScan.DEFAULT = asParam(as_tuples(plain(PtyScan.Params().model_dump()), PtyScan.TUPLE_KEYS))
"""The defaults of every ptypy-style scan, as a ptypy ``Param``."""
