"""The reconstruction state shared by the engines: object, probe, views, data, exit waves.

Geometry
--------
Every frame is a *view* of the object at an integer pixel offset. A position
``p`` (metres, ``(y, x)``) becomes the global pixel ``round(p / sample_pixel)``
of the view's centre, and the view's top-left corner is that minus
``(sy // 2, sx // 2)``. The object array covers every view of every rank (from
``chunk.all_positions``) plus ``margin_px`` on each side (ptypy's extent rule);
``origin_px`` is the global pixel of ``object[..., 0, 0]``. A view falling
outside grows the object (values kept, new pixels set to the initial value).

Data are reordered once per chunk into the propagator's FFT order
(:meth:`FarField.fft_order`), as float32 (float64 in double precision) counts,
with a 0/1 mask from ``weights > 0`` (one shared mask per chunk when the chunk
shares one). Where they live is chosen per chunk (:mod:`.residency`): on the
device ('device'), or in (pinned) host memory ('host'), with the exit waves and
the per-frame masks, streamed block by block through :meth:`ReconstructionState.blocks`
(a shared mask stays on the device).

Engines take the views from :meth:`ReconstructionState.blocks` and the forward model
and its adjoints from ``state.operator`` (:class:`~.operator.Operator`, or
:class:`~.multislice.MultisliceOperator` for a multislice object).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ..errors import ParameterError
from ..geometry import sample_pixel_m, view_pixels
from ..parallel import SerialComm
from ..propagation import propagator_for
from . import ops
from .initial import initial_object, initial_probe, paste_start
from .multislice import make_operator, with_slices
from .residency import Streamer
from .views import ViewSet

__all__ = ["ReconstructionState", "ViewSet", "sample_pixel_m"]

log = logging.getLogger(__name__)


class ReconstructionState:
    """Object, probe and views of a reconstruction, on one backend and communicator.

    Parameters
    ----------
    backend : Backend
    comm : Comm, optional
        Default :class:`~ptyscan.parallel.SerialComm`.
    object_modes : int
        M, incoherent object modes.
    probe_modes : int
        K, incoherent probe modes.
    probe_model : {'aperture', 'focused'}
        Initial probe when ``probe`` is None (see :func:`initial_probe`).
    probe_size : float
        'aperture': disc diameter as a fraction of the frame side;
        'focused': unused.
    probe_defocus_m : float
        'focused', far field: distance in metres from the focus to the sample
        (negative: sample upstream of the focus).
    probe : array, optional
        Initial probe (sy, sx) or (K, sy, sx); rescaled to the mean frame power
        only when ``scale_probe`` is True.
    probe_mode_powers : sequence of float, optional
        Relative powers of the K modes (normalised to 1); default mode 0 gets
        all but 5 % per extra mode.
    margin_px : int
        Object pixels added around the scanned area on every side.
    subpixel : bool or {'none', 'linear', 'fourier'}
        Keep the fractional part of every position: :meth:`offsets` are then float
        (the operator interpolates the views, bilinearly for True/'linear', by a Fourier
        shift for 'fourier'); False/'none': positions rounded to pixels.
    start_object : (object, origin_px, sample_pixel_m), optional
        An earlier object (M', oy, ox) or (M', S', oy, ox) whose pixel (0, 0) is the
        global pixel ``origin_px``: where it overlaps, it replaces the initial ones
        (also when the object grows). Its sample pixel must equal this scan's.
    object_slices, slice_thickness_m : int, float
        S > 1: a multislice object (M, S, oy, ox), slices ``slice_thickness_m`` apart
        (:mod:`.multislice`); 1: (M, oy, ox).
    """

    def __init__(
        self,
        backend,
        comm=None,
        *,
        object_modes=1,
        probe_modes=1,
        probe_model="aperture",
        probe_size=0.5,
        probe_defocus_m=0.0,
        probe=None,
        probe_mode_powers=None,
        scale_probe=False,
        margin_px=4,
        subpixel=False,
        start_object=None,
        object_slices=1,
        slice_thickness_m=None,
    ):
        self.backend = backend
        self.comm = comm if comm is not None else SerialComm()
        self.object_modes = int(object_modes)
        self.probe_modes = int(probe_modes)
        self.probe_model = probe_model
        self.probe_size = float(probe_size)
        self.probe_defocus_m = float(probe_defocus_m)
        self._probe_given = None if probe is None else np.asarray(probe)
        self.scale_probe = bool(scale_probe)
        self.probe_mode_powers = probe_mode_powers
        self.margin_px = int(margin_px)
        self.subpixel_mode = {False: "none", True: "linear"}.get(subpixel, subpixel)
        self.subpixel = self.subpixel_mode != "none"
        self.start_object = start_object
        self.object_slices = int(object_slices)
        self.slice_thickness_m = slice_thickness_m
        self.meta = None
        self.propagator = None
        self.operator = None
        self.sample_pixel_m = None
        self.frame = None
        self.object = None
        self.origin_px = None
        self.probe = None
        self.viewsets: list[ViewSet] = []
        self.n_views_total = 0
        self.tot_power = 0.0
        self.max_power = 0.0
        self.version = 0  # bumped whenever views are added
        self._streamer = None
        self._host_prop = None

    # --- properties ----------------------------------------------------------------------

    @property
    def n_views(self) -> int:
        """Views on this rank."""
        return sum(len(v) for v in self.viewsets)

    @property
    def n_views_on_device(self) -> int:
        """Views on this rank whose arrays live on the device."""
        return sum(len(v) for v in self.viewsets if not v.streamed)

    @property
    def streamer(self) -> Streamer:
        """The :class:`~.residency.Streamer` running this state's block passes."""
        if self._streamer is None:
            self._streamer = Streamer(self.backend)
        return self._streamer

    @streamer.setter
    def streamer(self, value):
        self._streamer = value

    @property
    def npix(self) -> int:
        return int(self.frame[0] * self.frame[1])

    @property
    def mean_power(self) -> float:
        """Mean photons per data pixel over all frames of all ranks (ptypy's mean_power)."""
        return self.tot_power / max(1, self.n_views_total * self.npix)

    @property
    def object_host(self) -> np.ndarray:
        return self.backend.to_host(self.object)

    @property
    def probe_host(self) -> np.ndarray:
        return None if self.probe is None else self.backend.to_host(self.probe)

    def offsets(self, vs: ViewSet, sl=slice(None)) -> np.ndarray:
        """(B, 2) top-left pixels in the object array of views ``sl`` of ``vs``: int64, or
        float64 with the fractional parts when ``subpixel``."""
        whole = vs.pos_px[sl] - self.origin_px
        return whole if vs.frac is None else whole + vs.frac[sl]

    def blocks(self, block_size: int, *, read=(), viewsets=None):
        """Yield a :class:`~.residency.Block` for every ``block_size`` views, in order.

        Parameters
        ----------
        block_size : int
            Views per block (the last block of a view set may be shorter).
        read : sequence of str
            Per-view arrays the pass uses ('data', 'mask', 'exit'): ``block[name]``
            is their rows on the device (host rows are copied there ahead of use).
        viewsets : list of ViewSet, optional
            Only these (default: all, in order).

        ``block[name] = value`` stores rows (written back to host memory for a
        streamed view set). Block arrays are valid until the pass moves on.
        """
        block_size = max(1, int(block_size))
        plan = [
            (vs, slice(start, min(start + block_size, len(vs))))
            for vs in (self.viewsets if viewsets is None else viewsets)
            for start in range(0, len(vs), block_size)
        ]
        return self.streamer.iterate(plan, read)

    def rows(self, vs: ViewSet, sl, read=("data", "mask")) -> dict:
        """Rows ``sl`` of the per-view arrays ``read`` of ``vs`` on the device, for
        passes that visit views in no fixed order (ePIE): a dict name → array, copied
        to the device where ``vs`` keeps it in host memory. Not for writing."""
        out = {}
        for name in read:
            arr = vs.mask_rows(sl) if name == "mask" else getattr(vs, name)[sl]
            out[name] = self.backend.to_device(arr) if name in vs.host_arrays else arr
        return out

    # --- adding views --------------------------------------------------------------------

    def add_views(self, chunk, *, residency="device") -> bool:
        """Add this rank's frames of ``chunk``; collective. Returns True if the object grew.

        ``residency`` ('device' or 'host') says where the chunk's arrays live
        (:mod:`.residency`); ranks may differ.
        """
        meta = chunk.meta
        if self.meta is None:
            self._set_meta(meta)
        elif tuple(meta.shape) != self.frame or meta.propagation != self.meta.propagation:
            raise ParameterError(
                f"add_views: chunk {chunk.number} has shape {tuple(meta.shape)} and propagation "
                f"{meta.propagation!r}, but the reconstruction uses {self.frame} and "
                f"{self.meta.propagation!r}; all chunks of a scan must share them"
            )
        grew = self._fit_object(self._pixels(chunk.all_positions))
        vs = self._make_viewset(chunk, residency)
        self.viewsets.append(vs)
        stats = np.array([len(vs), vs.power.sum()], np.float64)
        peak = np.array([vs.power.max() if len(vs) else 0.0])
        ops.allreduce(self.backend, self.comm, stats)
        ops.allreduce(self.backend, self.comm, peak, "max")
        self.n_views_total += round(stats[0])
        self.tot_power += float(stats[1])
        self.max_power = max(self.max_power, float(peak[0]))
        self.version += 1
        return grew

    def _set_meta(self, meta):
        self.meta = meta
        self.frame = (int(meta.shape[0]), int(meta.shape[1]))
        self.propagator = propagator_for(meta, backend=self.backend)
        self.sample_pixel_m = sample_pixel_m(meta)
        self.set_slices(self.object_slices, self.slice_thickness_m)

    def set_slices(self, slices, thickness_m):
        """Model the object as ``slices`` slices ``thickness_m`` apart: a new operator and,
        when the count changes, the object re-sliced (:func:`~.multislice.with_slices`)."""
        self.object_slices, self.slice_thickness_m = int(slices), thickness_m
        self.operator = make_operator(
            self.backend,
            self.propagator,
            self.frame,
            slices=self.object_slices,
            thickness_m=thickness_m,
            wavelength_m=self.meta.wavelength_m,
            pixel_m=self.sample_pixel_m,
            interpolation="fourier" if self.subpixel_mode == "fourier" else "linear",
        )
        if self.object is not None:
            self.object = with_slices(self.object, self.object_slices, self.backend.xp)

    def _pixels(self, positions_m) -> np.ndarray:
        """(n, 2) int64 global top-left pixels of views at ``positions_m``."""
        return view_pixels(positions_m, self.sample_pixel_m, self.frame, self.subpixel)[0]

    def _fit_object(self, pos_px) -> bool:
        """Grow (or create) the object to cover views at ``pos_px`` plus the margin."""
        if len(pos_px) == 0:
            return False
        m = self.margin_px
        lo = pos_px.min(axis=0) - m
        hi = pos_px.max(axis=0) + np.array(self.frame) + m + int(self.subpixel)
        if self.object is None:
            self.origin_px = lo
            self.object = self._start_object(hi - lo, lo)
            return True
        old_lo = self.origin_px
        old_hi = old_lo + np.array(self.object.shape[-2:])
        new_lo, new_hi = np.minimum(old_lo, lo), np.maximum(old_hi, hi)
        if np.all(new_lo == old_lo) and np.all(new_hi == old_hi):
            return False
        grown = self._start_object(new_hi - new_lo, new_lo)
        y0, x0 = (int(v) for v in old_lo - new_lo)
        oy, ox = self.object.shape[-2:]
        grown[..., y0 : y0 + oy, x0 : x0 + ox] = self.object
        self.object, self.origin_px = grown, new_lo
        log.debug("object grew to %s (origin %s)", grown.shape, new_lo.tolist())
        return True

    def _start_object(self, size_px, origin_px):
        """The initial object (device) of ``size_px`` at ``origin_px``, start pasted in."""
        shape = (self.object_modes, *(int(v) for v in size_px))
        obj = initial_object(shape, self.backend.complex_dtype, self.object_slices)
        start = paste_start(obj, origin_px, self.start_object, self.sample_pixel_m)
        return self.backend.xp.asarray(start)

    def _make_viewset(self, chunk, residency) -> ViewSet:
        if residency not in ("device", "host"):
            raise ParameterError(
                f"add_views: residency {residency!r}; expected 'device' or 'host'"
            )
        bk, prop = self.backend, self.propagator
        rdt = bk.real_dtype
        data = np.asarray(chunk.data)
        weights = np.ones(self.frame, rdt) if chunk.weights is None else np.asarray(chunk.weights)
        if weights.ndim == 2 or (weights.ndim == 3 and weights.strides[0] == 0):
            mask = (weights.reshape(-1, *self.frame)[:1] > 0).astype(rdt)
        else:
            mask = (weights > 0).astype(rdt)
        power = (data * mask).sum(axis=(1, 2), dtype=np.float64)
        shared = mask.shape[0] == 1
        full = bool(np.all(mask == 1))
        host = set()
        if residency == "host":  # reordered on the host, kept in pinned memory
            data = self._pinned(self._host_order(np.asarray(data, dtype=rdt)))
            host.update(("data", "exit"))
            if not shared:
                mask = self._pinned(self._host_order(mask))
                host.add("mask")
        else:
            data = prop.fft_order(bk.to_device(np.ascontiguousarray(data, dtype=rdt)))
        if "mask" not in host:
            mask = prop.fft_order(bk.to_device(mask))
        pos_px, frac = view_pixels(chunk.positions, self.sample_pixel_m, self.frame, self.subpixel)
        return ViewSet(
            indices=np.asarray(chunk.indices, np.int64).copy(),
            pos_px=pos_px,
            frac=frac,
            data=data,
            mask=mask,
            power=power,
            host_arrays=frozenset(host),
            full_mask=full,
            positions_m=np.array(chunk.positions, np.float64).reshape(-1, 2),
        )

    def _host_order(self, frames):
        """``frames`` (host) in FFT order, reordered on the host."""
        if self._host_prop is None:
            self._host_prop = propagator_for(self.meta)  # NumPy
        return self._host_prop.fft_order(frames)

    def _pinned(self, arr):
        """A copy of host ``arr`` in pinned memory (an ordinary array on NumPy)."""
        out = self.backend.empty_pinned(arr.shape, arr.dtype)
        out[...] = arr
        return out

    # --- initialisation -----------------------------------------------------------------

    def ensure_probe(self, block_size=64):
        """Create the initial probe (collective) if there is none yet.

        ``block_size``: views per block of the mean-frame pass ('focused' model).
        """
        if self.probe is not None:
            return
        if self.n_views_total == 0:
            raise ParameterError(
                "the reconstruction has no frames yet: call add_views(chunk) before iterate()"
            )
        mean_frame = phase = None
        if self._probe_given is None and self.probe_model == "focused":
            mean_frame = self._mean_frame(block_size)
            if self.probe_defocus_m and self.meta.propagation == "farfield":
                phase = self._defocus_phase()
        probe = initial_probe(
            self.frame,
            modes=self.probe_modes,
            model=self.probe_model,
            size=self.probe_size,
            given=self._probe_given,
            photons=self.tot_power / max(1, self.n_views_total),
            scale=self.scale_probe or self._probe_given is None,
            mode_powers=self.probe_mode_powers,
            mean_frame=mean_frame,
            farfield_phase=phase,
            propagator=propagator_for(self.meta),  # NumPy: the probe is built on the host
        )
        self.probe = self.backend.to_device(probe.astype(self.backend.complex_dtype))

    def _defocus_phase(self):
        """Far-field phase -π λ Δz |f|² (FFT order) of a probe Δz = probe_defocus_m past focus."""
        fy = np.fft.fftfreq(self.frame[0], d=self.sample_pixel_m[0])[:, None]
        fx = np.fft.fftfreq(self.frame[1], d=self.sample_pixel_m[1])[None, :]
        return -np.pi * self.meta.wavelength_m * self.probe_defocus_m * (fy**2 + fx**2)

    def _mean_frame(self, block_size):
        """Masked mean frame over all ranks, FFT order, host float64."""
        bk = self.backend
        xp = bk.xp
        total = np.zeros(self.frame)
        count = np.zeros(self.frame)
        for blk in self.blocks(block_size, read=("data", "mask")):
            data, mask = blk["data"], blk["mask"]
            total += bk.to_host(xp.sum(data * mask, axis=0, dtype=np.float64))
            m = mask if mask.shape[0] > 1 else mask * len(blk)
            count += bk.to_host(xp.sum(m, axis=0, dtype=np.float64))
        ops.allreduce(self.backend, self.comm, total)
        ops.allreduce(self.backend, self.comm, count)
        return np.divide(total, count, out=np.zeros_like(total), where=count > 0)

    def ensure_exit(self, block_size=64):
        """Exit waves ``P·O`` for every view set that has none yet (in host memory for
        a streamed view set)."""
        self.ensure_probe(block_size)
        bk = self.backend
        new = [vs for vs in self.viewsets if vs.exit is None]
        for vs in new:
            shape = (len(vs), self.object_modes, self.probe_modes, *self.frame)
            if "exit" in vs.host_arrays:
                vs.exit = bk.empty_pinned(shape, bk.complex_dtype)
            else:
                vs.exit = bk.xp.empty(shape, dtype=bk.complex_dtype)
        for blk in self.blocks(block_size, viewsets=new):
            blk["exit"] = self.operator.exit_waves(
                self.object, self.probe, self.offsets(blk.vs, blk.sl)
            )

    def copy(self) -> ReconstructionState:
        """An independent copy (arrays copied; data shared, they are never modified)."""
        new = object.__new__(ReconstructionState)
        new.__dict__.update(self.__dict__)
        new.object = None if self.object is None else self.object.copy()
        new.probe = None if self.probe is None else self.probe.copy()
        new.origin_px = None if self.origin_px is None else self.origin_px.copy()
        new._streamer = None
        new.viewsets = [  # positions are replaced, never changed in place: shared
            dataclasses.replace(vs, exit=self._copy_exit(vs), cache={}) for vs in self.viewsets
        ]
        return new

    def _copy_exit(self, vs):
        if vs.exit is None:
            return None
        if "exit" in vs.host_arrays:
            return self._pinned(vs.exit)
        return self.backend.xp.array(vs.exit, copy=True)
