"""PtyScan: the preparation lifecycle and the hooks a beamline subclass overrides.

The lifecycle knows no file format and no physics. A subclass implements some
of the hooks (``load`` at least); the base class calls them in a fixed order,
spreads frames over MPI ranks, broadcasts what is common, finds the centre,
crops, orients and rebins, and hands out :class:`~ptyscan.chunk.Chunk` objects
(or ``WAIT`` / ``EOS``). Hook names, signatures, return values and order follow
ptypy's ``PtyScan``; ptypy loader files run unmodified through ``ptyscan.compat``.

Per chunk: check → load → correct → weights fallback (weight2d, else ones) →
centre (first chunk only) → crop/pad to ``shape`` around the centre →
orientation → rebin → Chunk → optional ``.ptyd`` save on rank 0.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from . import preprocess
from .chunk import EOS, WAIT, Chunk, ScanMeta
from .errors import ScanError
from .parallel import assign_frames, get_comm
from .params import validate_params
from .scan_checks import (
    agree_frame_shapes,
    check_hook_output,
    check_scan_geometry,
    checked_access,
    checked_recorded_meta,
    geometry_value,
    mean_frame,
    positions_for,
    scan_positions,
    stack_frames,
)
from .scan_params import PtyScanParams
from .scan_support import ChunkSaver, collective, scatter_loaded, share_common

__all__ = ["PtyScan", "PtyScanParams"]

log = logging.getLogger(__name__)


class PtyScan:
    """Base class of every scan: lifecycle, MPI distribution and frame processing.

    Parameters
    ----------
    pars : dict or PtyScanParams, optional
        Parameters; missing keys take the class defaults (:attr:`DEFAULT`).
    comm : Comm, optional
        Communicator (default :func:`ptyscan.parallel.get_comm`).
    **kwargs
        Single parameters overriding ``pars`` (they reach subclass logic too).

    Notes
    -----
    Construction validates parameters and loads no data. ``self.info`` holds the
    validated, frozen parameters; derived facts live in :attr:`meta`. Hooks may
    set entries of ``self.recorded_meta`` (energy keV, distance m, psize m,
    center px, propagation, label) to override the parameters with values read
    from the instrument; it is broadcast with ``self.common``.
    """

    Params: ClassVar[type[PtyScanParams]] = PtyScanParams
    DEFAULT: ClassVar[dict]
    RADIATION: ClassVar[str] = "xray"  # 'xray', 'electron' or 'visible': plausible energies
    SYNTHETIC: ClassVar[bool] = False  # simulated data: the seed is logged
    ENGINE_DEFAULTS: ClassVar[dict] = {}
    """{engine name: {key: value}}: recipe defaults that differ for this scan's data (e.g.
    electrons' Fourier sub-pixel views and Poisson ML); a recipe's engines of that name
    take them unless they set them (``subpixel`` only the first engine: the others follow
    its state)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.DEFAULT = cls.Params().to_dict()

    def __init__(self, pars=None, *, comm=None, **kwargs):
        if isinstance(pars, PtyScanParams):
            pars = pars.model_dump()
        values = dict(pars or {})
        values.update(kwargs)
        self.info = validate_params(self.Params, values, prefix="scan")
        self.comm = comm if comm is not None else get_comm()
        self.num_frames = self.info.num_frames
        self.frames_accessible = 0
        self.end_of_scan = False
        self.abort = False
        self.framestart = 0
        self.common: dict = {}
        self.recorded_meta: dict = {}
        self.positions = None
        self.weight2d = None
        self.seed = getattr(self.info, "seed", None)  # synthetic and seeded scans only
        self.is_initialized = False
        self._raw_center = None
        self._center = None
        self._raw_shape = None
        self._chunk_number = 0
        self._frames_delivered = 0
        self._totals = np.zeros(self.comm.size, np.int64)
        self._mask_cache = None
        self.geometry = None  # a plausibility.Geometry once initialised
        self._saver = None if self.info.save is None else ChunkSaver(self)

    @property
    def params(self) -> PtyScanParams:
        """The validated parameters the lifecycle reads (here the same object as ``info``)."""
        return self.info

    # --- hooks (ptypy names and contracts) ---------------------------------------------

    def load_common(self) -> dict:
        """Return a dict of anything shared by all frames (darks, flats, ...)."""
        return {}

    def load_positions(self):
        """Return scan positions, ``(N, 2)`` float metres (slow, fast), or None."""
        return None

    def load_weight(self):
        """Return a 2-D weight/mask for all frames (``> 0`` valid) or None for ones."""
        return None

    def check(self, frames=None, start=None):
        """Return ``(frames_accessible, end_of_scan)`` for ``frames`` frames from ``start``.

        ``end_of_scan`` may be True, False, or None to let the base class
        decide from :attr:`num_frames`.
        """
        start = self.framestart if start is None else start
        frames = self.params.min_frames if frames is None else frames
        if self.num_frames is None:
            return frames, None
        return max(0, min(frames, self.num_frames - start)), None

    def load(self, indices):
        """Return ``(raw, positions, weights)``: dicts keyed by frame index.

        ``raw[i]`` is a 2-D frame; ``positions`` and ``weights`` may be empty.
        Every subclass must override this hook.
        """
        raise ScanError(
            f"{type(self).__name__}.load: the scan class does not load frames; "
            "override load(indices) to return (raw, positions, weights) dicts"
        )

    def correct(self, raw, weights, common):
        """Return ``(data, weights)`` dicts from raw frames; the default clips negatives."""
        data = {k: np.maximum(v, 0) for k, v in raw.items()}
        return data, weights

    def initial_probe(self):
        """(K, sy, sx) complex model of the illumination for the engines to start from
        (e.g. an electron probe from its aberrations), or None (a ptyscan extension)."""
        return None

    def post_initialize(self):
        """Called on every rank at the end of :meth:`initialize`."""

    # --- lifecycle ------------------------------------------------------------------------

    def initialize(self):
        """Load positions, weight and common data (rank 0, or all ranks) and share them."""
        if self.seed is None:  # drawn once, before the hooks (they may need it), on rank 0
            fresh = (
                int(np.random.SeedSequence().entropy % (2**63)) if self.comm.rank == 0 else None
            )
            self.seed = self.comm.bcast(fresh)
        everywhere = self.params.load_parallel in ("common", "all")
        shared = collective(self.comm, self._load_shared, root_only=not everywhere)
        if not everywhere:
            shared = share_common(self.comm, shared)
        self.common = shared["common"]
        self.recorded_meta = shared["recorded_meta"]
        self.weight2d = shared["weight2d"]
        self.num_frames = shared["num_frames"]
        self._set_positions(shared["positions"])
        self.geometry = check_scan_geometry(self)  # before anything is written
        if self._saver is not None:  # ptypy creates the .ptyd here
            self._saver.open_file()
        collective(self.comm, self.post_initialize)
        self.is_initialized = True
        if self.comm.rank == 0:
            n = "unknown" if self.num_frames is None else self.num_frames
            noise = getattr(self.params, "add_poisson_noise", False)
            random = self.SYNTHETIC or noise  # else the seed means nothing
            what = (
                type(self).__name__,
                n,
                self.comm.size,
                f", seed {self.seed}" if random else "",
            )
            log.info("%s initialised: %s frames, %d rank(s)%s", *what)

    def _load_shared(self):
        """ptypy's order: positions, weight, common; recorded meta checked after each hook."""
        self._check_meta("__init__")
        theory = self.params.positions_theory
        positions = theory if theory is not None else self.load_positions()
        self._check_meta("load_positions")
        weight2d = self.load_weight()
        self._check_meta("load_weight")
        common = dict(self.load_common() or {})
        self._check_meta("load_common")
        return {
            "common": common,
            "recorded_meta": dict(self.recorded_meta),
            "positions": None if positions is None else np.asarray(positions),
            "weight2d": None if weight2d is None else np.asarray(weight2d),
            "num_frames": self.num_frames,
        }

    def _check_meta(self, hook):
        where = f"{type(self).__name__}.{hook}"
        self.recorded_meta = checked_recorded_meta(self.recorded_meta, where)

    def _set_positions(self, positions):
        theory = self.params.positions_theory is not None
        pos, self.num_frames = scan_positions(self, positions, theory=theory)
        if pos is not None:
            self.positions = pos

    def auto(self, frames):
        """Next chunk of at most ``frames`` frames, or ``WAIT`` / ``EOS``; saves if asked."""
        out = self.get_data_chunk(frames)
        if self._saver is not None:
            if out is EOS:
                self._saver.finish()
            elif out is not WAIT:
                self._saver.save(out)
        return out

    def get_data_chunk(self, chunksize, start=None):
        """Prepare the next chunk of at most ``chunksize`` frames starting at ``start``.

        Returns a :class:`Chunk` (this rank's frames), ``WAIT`` or ``EOS``; every
        rank gets the same kind of answer at the same call.
        """
        if int(chunksize) < 1:
            raise ScanError(f"get_data_chunk: chunksize must be a positive int, got {chunksize}")
        if not self.is_initialized:
            self.initialize()
        start = self.framestart if start is None else int(start)
        accessible, eos = self._check(int(chunksize), start)
        self.frames_accessible, self.end_of_scan = accessible, eos
        if accessible <= 0 and eos:
            return EOS
        if accessible <= 0 or (accessible < self.params.min_frames and not eos):
            return WAIT
        indices = np.arange(start, start + min(accessible, int(chunksize)), dtype=np.int64)
        self.framestart = int(indices[-1]) + 1
        chunk = self._prepare(indices)
        self._chunk_number += 1
        self._frames_delivered += len(indices)
        return chunk

    def _check(self, chunksize, start):
        got = collective(self.comm, lambda: checked_access(self, chunksize, start), root_only=True)
        accessible, eos, *rest = self.comm.bcast(got)
        if rest:
            self.num_frames = rest[0]
        return accessible, eos

    # --- per-chunk processing ---------------------------------------------------------

    def _prepare(self, indices) -> Chunk:
        mine = assign_frames(indices, self.comm.size, self._totals)
        self._totals += [len(b) for b in mine]
        own = mine[self.comm.rank]
        raw, pos, weights = self._load_frames(own, mine)
        data, weights = collective(
            self.comm,
            lambda: check_hook_output(
                self, "correct", self.correct(raw, weights, self.common), own
            ),
        )
        stack, wstack = self._stack(own, data, weights)
        if self._raw_center is None:
            self._raw_center = self._find_center(stack, wstack)
        stack, self._center = self._geometry(stack, self._raw_center)
        wstack = self._geometry_weights(wstack, len(own))
        positions = collective(
            self.comm, lambda: positions_for(type(self).__name__, own, pos, self.positions)
        )
        all_pos = (
            np.concatenate(self.comm.allgather(positions)) if self.comm.size > 1 else positions
        )
        return Chunk(
            indices=own,
            data=stack,
            weights=wstack,
            positions=positions,
            meta=self.current_meta(),
            number=self._chunk_number,
            all_indices=indices,
            all_positions=all_pos,
            probe=self.initial_probe(),
        )

    def _load_frames(self, own, blocks):
        """Call ``load`` per ``load_parallel`` and return this rank's three dicts."""
        if self.params.load_parallel in ("data", "all") or self.comm.size == 1:
            return collective(
                self.comm, lambda: check_hook_output(self, "load", self.load(own), own)
            )
        every = np.concatenate(blocks)
        out = collective(
            self.comm,
            lambda: check_hook_output(self, "load", self.load(every), every),
            root_only=True,
        )
        return scatter_loaded(self.comm, out, blocks)

    def _stack(self, own, data, weights):
        """(n, ny, nx) float32 data and weights (None when the 2-D mask applies to all)."""
        shape, wshapes = agree_frame_shapes(self.comm, type(self).__name__, own, data, weights)
        self._check_raw_shape(shape if shape is not None else self._raw_shape)
        if wshapes - {self._raw_shape}:
            raise ScanError(
                f"{type(self).__name__}.load: per-frame weights must have the frame shape "
                f"{self._raw_shape}, got {sorted(wshapes)} (across all ranks)"
            )
        return stack_frames(own, data, weights, shape=self._raw_shape, mask=self._raw_mask)

    def _check_raw_shape(self, shape):
        if self._raw_shape is None:
            self._raw_shape = tuple(int(s) for s in shape) if shape else None
        elif shape and tuple(shape) != self._raw_shape:
            raise ScanError(
                f"{type(self).__name__}: frame shape changed from {self._raw_shape} to "
                f"{tuple(shape)} during the scan"
            )
        if self._raw_shape is None:
            raise ScanError(f"{type(self).__name__}: no frame shape known yet (empty chunk)")
        w = self.weight2d
        if w is not None and np.shape(w) != self._raw_shape:
            raise ScanError(
                f"{type(self).__name__}.load_weight: weight shape {np.shape(w)} does not match "
                f"frame shape {self._raw_shape}"
            )

    def _raw_mask(self):
        if self.weight2d is None:
            return np.ones(self._raw_shape, np.float32)
        return np.asarray(self.weight2d, np.float32)

    def _find_center(self, stack, wstack):
        """Raw-frame centre (cy, cx): from parameters, recorded meta or the mean frame."""
        p = self.params
        recorded = self.recorded_meta.get("center")
        auto = p.auto_center is True or (p.auto_center is None and p.center is None)
        if recorded is not None and p.auto_center is not True:
            return preprocess.resolve_center(recorded, self._raw_shape)
        if not auto:
            spec = p.center if p.center is not None else "fftshift"
            if p.center is None:
                log.warning("center is None and auto_center False: using 'fftshift'")
            return preprocess.resolve_center(spec, self._raw_shape)
        valid = (wstack if wstack is not None else self._raw_mask()[None]) > 0
        mean, count = mean_frame(self.comm, stack, valid)
        center = preprocess.center_of_mass(mean, weights=count)
        if self.comm.rank == 0:
            log.info("auto_center: centre of mass of the mean frame at %s", np.round(center, 2))
        return center

    def _geometry(self, stack, center):
        """Crop/pad around the centre, orient, rebin; return frames and final centre."""
        p = self.params
        if p.shape is not None and not preprocess.crop_is_identity(stack.shape, p.shape, center):
            stack, center = preprocess.crop_pad(stack, shape=p.shape, center=center)
        stack, center = preprocess.orient(stack, orientation=p.orientation, center=center)
        if p.rebin > 1:
            stack = preprocess.rebin(stack, p.rebin)
            center = preprocess.rebin_center(center, p.rebin)
        return np.asarray(stack, np.float32), tuple(float(c) for c in center)

    def prepared_mask(self) -> np.ndarray:
        """The (ny, nx) float32 mask of frames without weights of their own, prepared as
        the frames are (cropped or padded, oriented, rebinned); computed once."""
        if self._mask_cache is None:
            self._mask_cache = self._prepare_weights(self._raw_mask())
        return self._mask_cache

    def _prepare_weights(self, weights):
        """Crop/pad, orient and rebin a (ny, nx) mask or (n, ny, nx) weights like the frames."""
        p = self.params
        if p.shape is not None:
            weights, _ = preprocess.crop_pad(weights, shape=p.shape, center=self._raw_center)
        weights, _ = preprocess.orient(weights, orientation=p.orientation)
        if p.rebin > 1:
            weights = preprocess.rebin_weights(weights, p.rebin)
        return np.asarray(weights, np.float32)

    def _geometry_weights(self, wstack, n):
        if wstack is None:
            mask = self.prepared_mask()
            return np.broadcast_to(mask, (n, *mask.shape))
        return self._prepare_weights(wstack)

    @property
    def meta(self) -> ScanMeta:
        """Derived facts (final shape, psize, centre, ...) as known now."""
        return self.current_meta()

    def current_meta(self) -> ScanMeta:
        """Derived facts (final shape, psize, centre, ...) as known now (a new ScanMeta)."""
        p, rec = self.params, self.recorded_meta
        flags = preprocess.orientation_flags(p.orientation)
        psize = tuple(float(v) for v in np.broadcast_to(geometry_value(self, "psize"), (2,)))
        crop = p.shape if p.shape is not None else self._raw_shape or (0, 0)
        shape = tuple(int(s) // p.rebin for s in crop)
        if flags[0]:
            psize, shape = psize[::-1], shape[::-1]
        return ScanMeta(
            shape=shape,
            psize=(psize[0] * p.rebin, psize[1] * p.rebin),
            energy=float(geometry_value(self, "energy")),
            distance=float(geometry_value(self, "distance")),
            center=self._center,
            num_frames=self.num_frames,
            propagation=rec.get("propagation", p.propagation),
            label=rec.get("label", p.label),
            version=p.version,
        )

    def report(self) -> str:
        """One-paragraph summary of the scan's state (also logged on rank 0)."""
        total = "unknown" if self.num_frames is None else self.num_frames
        text = (
            f"{type(self).__name__} ({self.params.name}): {self._frames_delivered}/{total} frames "
            f"in {self._chunk_number} chunks, end_of_scan={self.end_of_scan}, "
            f"ranks={self.comm.size}; meta: {self.current_meta()}"
        )
        if self.comm.rank == 0:
            log.info(text)
        return text


PtyScan.DEFAULT = PtyScanParams().to_dict()
