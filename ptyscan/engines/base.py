"""What DM and ML share: common parameters, construction, view intake and the iteration loop."""

from __future__ import annotations

import abc
import logging
import time

import numpy as np

from ..backend import Backend, get_backend
from ..errors import ParameterError
from ..geometry import centred_coordinates_px
from ..parallel import SerialComm, local_rank, thread_count
from ..params import ParamsModel, validate_params
from . import cpu_kernels, ops
from .blockpool import BlockPool
from .operator import Operator
from .params import EngineParams
from .posref import amplitude_at, refine_positions, rms_shift_px
from .residency import choose_residency
from .state import ReconstructionState

__all__ = ["Engine", "EngineParams"]

log = logging.getLogger(__name__)

_BLOCK_BYTES = {"numpy": 1 << 20, "cupy": 512 << 20}
"""Complex wave bytes per block; NumPy: each block runs on one core (:mod:`.blockpool`),
1 MB measured best on 2 cores (larger blocks fall out of cache)."""


class Engine(abc.ABC):
    """Base class: parameters, backend, state, ``add_views`` and ``iterate``.

    Parameters
    ----------
    params : dict or Params, optional
        Engine parameters; missing keys take the defaults.
    backend : str or Backend, optional
        'auto' (default), 'numpy', 'cupy' or a :class:`Backend`.
    comm : Comm, optional
        Communicator (default :class:`~ptyscan.parallel.SerialComm`).
    state : ReconstructionState, optional
        Continue from another engine's state (its backend and comm are used).
    **kwargs
        Single parameters overriding ``params``.
    """

    Params = EngineParams

    def __init__(self, params=None, *, backend=None, comm=None, state=None, **kwargs):
        self.params = self._validate(params, kwargs)
        p = self.params
        if state is not None:
            if comm is not None and comm is not state.comm:
                raise ParameterError(
                    f"{type(self).__name__}: comm differs from the given state's comm; "
                    "pass state alone (its comm is used)"
                )
            self.comm = state.comm
            self.backend = state.backend
            if isinstance(backend, Backend | str) and _backend_name(backend) not in (
                "auto",
                state.backend.name,
            ):
                raise ParameterError(
                    f"{type(self).__name__}: backend {_backend_name(backend)!r} differs from the "
                    f"state's {state.backend.name!r}; pass state alone"
                )
            self._follow_slices(state)
            subpixel = state.subpixel_mode
            if "subpixel" in p.model_fields_set and p.subpixel != subpixel:
                raise ParameterError(
                    f"{type(self).__name__}: subpixel {p.subpixel!r} differs from the state's "
                    f"{subpixel!r}; the engine that starts the reconstruction sets it"
                )
        else:
            self.comm = comm if comm is not None else SerialComm()
            if isinstance(backend, Backend):
                self.backend = backend
            else:
                self.backend = get_backend(
                    backend or "auto",
                    precision=p.precision,
                    threads=thread_count(self.comm),
                    device=local_rank(self.comm) if self.comm.size > 1 else None,
                )
        self._state = state
        self._history: list[dict] = []
        self.curiter = 0
        self._support = None
        self._seen_version = None
        self._pool = BlockPool(self.backend)
        self._jit = self.backend.name == "numpy" and cpu_kernels.enabled()

    def _fused_cpu(self, vs) -> bool:
        """The numba kernels (:mod:`.cpu_kernels`) serve view set ``vs``: NumPy with numba,
        one object and one probe mode, integer positions, a single-slice object."""
        st = self._state
        return (
            self._jit
            and vs.frac is None
            and st.object_modes == 1
            and st.probe_modes == 1
            and type(st.operator) is Operator
        )

    def _exit_waves_cpu(self, blk, out=None):
        """(B, 1, 1, sy, sx) exit waves ``P · view(O)`` of a block with the numba kernel
        (where :meth:`_fused_cpu`), into ``out`` if given."""
        st = self._state
        if out is None:
            out = self.backend.xp.empty((len(blk), 1, 1, *st.frame), dtype=st.probe.dtype)
        off = st.offsets(blk.vs, blk.sl)
        cpu_kernels.exit_waves(st.object[0], st.probe[0], off, out[:, 0, 0])
        return out

    def _follow_slices(self, state):
        """Continue from ``state``'s slices; ML may split a one-slice state into the
        ``object_slices`` it is given (or take another ``slice_thickness``)."""
        p, name = self.params, type(self).__name__
        given = "object_slices" in p.model_fields_set
        slices = p.object_slices if given else state.object_slices
        thickness = p.slice_thickness or state.slice_thickness_m
        if slices > 1 and not p.MULTISLICE:
            raise ParameterError(
                f"{name}: the state has object_slices {slices}; {name} models one slice "
                "(DM, RAAR and ePIE refuse multislice objects): continue with ML"
            )
        if given and slices != state.object_slices and state.object_slices > 1:
            raise ParameterError(
                f"{name}: object_slices {slices} differs from the state's "
                f"{state.object_slices}; only a one-slice state can be split into slices"
            )
        if slices > 1:  # the checks of object_slices > 1 (line search, refinement method)
            self.params = self._validate(
                self.params, {"object_slices": slices, "slice_thickness": thickness}
            )
        if (slices, thickness) != (state.object_slices, state.slice_thickness_m):
            if state.meta is None:
                state.object_slices, state.slice_thickness_m = slices, thickness
            else:
                state.set_slices(slices, thickness)

    @classmethod
    def _validate(cls, params, kwargs):
        if isinstance(params, cls.Params) and not kwargs:
            return params
        if isinstance(params, ParamsModel):  # (model_dump would drop excluded fields)
            values = {name: getattr(params, name) for name in type(params).model_fields}
        else:
            values = dict(params or {})
        values.update(kwargs)
        default = cls.Params.model_fields["name"].default
        values.setdefault("name", default)
        prefix = values["name"] if isinstance(values["name"], str) else default
        return validate_params(cls.Params, values, prefix=prefix)

    # --- public API ----------------------------------------------------------------------

    @property
    def state(self) -> ReconstructionState | None:
        """The reconstruction state (None until the first :meth:`add_views`)."""
        return self._state

    @property
    def history(self) -> list[dict]:
        """Error dicts of every iteration so far (same on every rank)."""
        return list(self._history)

    @property
    def object(self) -> np.ndarray:
        """(M, oy, ox) complex object on the host."""
        return self._require_state().object_host

    @property
    def probe(self) -> np.ndarray:
        """(K, sy, sx) complex probe on the host (initialised on first use)."""
        st = self._require_state()
        st.ensure_probe(self.block_size)
        return st.probe_host

    @property
    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, positions_m)`` of every frame of every rank, by frame index: (N,)
        int64 and (N, 2) float64 metres (y, x), refined where ``position_refinement``
        moved them; collective."""
        st = self._require_state()
        mine = [(vs.indices, vs.positions_m) for vs in st.viewsets]
        pairs = [pair for rank in self.comm.allgather(mine) for pair in rank]
        indices = np.concatenate([i for i, _ in pairs]).astype(np.int64)
        pos = np.concatenate([p for _, p in pairs]).reshape(-1, 2)
        order = np.argsort(indices, kind="stable")
        return indices[order], pos[order]

    @property
    def finished(self) -> bool:
        """True once ``numiter`` iterations are done."""
        return self.curiter >= self.params.numiter

    def add_views(self, chunk) -> None:
        """Add this rank's frames of ``chunk`` (collective: every rank calls it)."""
        if self._state is None:
            p = self.params
            probe, start_object = p.probe, None
            if p.start_from is not None:
                from ..io.results import read_result

                start = read_result(p.start_from)  # ours, ptypy's .ptyr or PtyRAD's .hdf5
                probe = start.probe if probe is None else probe
                start_object = (start.object, start.object_origin_px, start.sample_pixel_m)
            scan_probe = probe is None and "probe_model" not in p.model_fields_set
            if scan_probe and getattr(chunk, "probe", None) is not None:
                probe = chunk.probe  # the scan's model (electrons), not the aperture default
            self._state = ReconstructionState(
                self.backend,
                self.comm,
                object_modes=p.object_modes,
                probe_modes=p.probe_modes,
                probe_model=p.probe_model,
                probe_size=p.probe_size,
                probe_defocus_m=p.probe_defocus_m,
                probe=probe,
                probe_mode_powers=p.probe_mode_powers,
                margin_px=p.object_margin_px,
                subpixel=p.subpixel,
                start_object=start_object,
                object_slices=p.object_slices,
                slice_thickness_m=p.slice_thickness,
            )
        residency = self._residency(chunk)
        self._state.add_views(chunk, residency=residency)
        log.debug(
            "%s: chunk %s, %d views in %s memory (data_residency %r)",
            self.params.name,
            chunk.number,
            len(chunk.indices),
            residency,
            self.params.data_residency,
        )

    def iterate(self, n=None, *, callback=None) -> list[dict]:
        """Run ``n`` iterations (default: all remaining up to ``numiter``); collective.

        Returns one dict per iteration: ``engine``, ``iteration`` (0-based, this
        engine), ``fourier``, ``photons``, ``exit`` (ptypy's error triple, means over
        all frames of all ranks), ``seconds``, ``position_shift_px`` (with
        ``position_refinement``: RMS distance of all views from their initial
        positions, sample pixels) and engine-specific extras.

        ``callback(record)``, when given, is called after every iteration (on every
        rank) with that iteration's dict; when it returns True the loop stops there
        (e.g. Ctrl-C: the iteration under way is finished, no further one started).
        The callback must answer alike on every rank.
        """
        n = max(0, self.params.numiter - self.curiter) if n is None else int(n)
        st = self._require_state()
        out = []
        for _ in range(n):
            start = time.perf_counter()
            if self._seen_version != st.version:
                st.ensure_probe(self.block_size)
                self._on_new_views()
                self._seen_version = st.version
            errors = self._iterate_once()
            record = {"engine": self.params.name, "iteration": self.curiter, **errors}
            if self.params.position_refinement is not None:
                record["position_shift_px"] = self._refine_positions()
            record["seconds"] = time.perf_counter() - start
            self.curiter += 1
            self._history.append(record)
            out.append(record)
            log.debug("%s", record)
            if callback is not None and callback(record):
                break
        if out and self.comm.rank == 0:
            last = out[-1]
            log.debug(
                "%s: %d iterations, last errors fourier %.4g photons %.4g exit %.4g",
                self.params.name,
                len(out),
                last["fourier"],
                last["photons"],
                last["exit"],
            )
        return out

    # --- helpers for subclasses ------------------------------------------------------------

    def _require_state(self) -> ReconstructionState:
        if self._state is None:
            raise ParameterError(
                f"{type(self).__name__}: no frames yet; call add_views(chunk) first"
            )
        return self._state

    def _refine_positions(self) -> float:
        """Refine this rank's positions after iteration ``curiter`` when due (module
        :mod:`.posref`); returns the RMS shift from the initial positions (pixels)."""
        pr, st = self.params.position_refinement, self._state
        amplitude = amplitude_at(pr, self.curiter, self.params.numiter)
        if amplitude is not None:
            refine_positions(
                st, pr, iteration=self.curiter, amplitude_m=amplitude, block_size=self.block_size
            )
        return rms_shift_px(st)

    def _on_new_views(self):  # noqa: B027 (an optional hook, deliberately empty)
        """Called before an iteration when views were added since the last one."""

    @abc.abstractmethod
    def _iterate_once(self) -> dict:
        """One iteration over every view; returns this iteration's error dict."""

    def _residency(self, chunk) -> str:
        """'device' or 'host' for ``chunk`` (resolves ``data_residency`` 'auto')."""
        mode, bk = self.params.data_residency, self.backend
        if mode != "auto" or not bk.is_gpu:
            return choose_residency(mode, gpu=bk.is_gpu)
        st = self._state
        frame = tuple(int(v) for v in chunk.meta.shape)
        per_view = self._device_bytes_per_view(frame, _per_frame_weights(chunk))
        return choose_residency(
            mode,
            gpu=True,
            need_bytes=per_view * len(chunk.indices),
            resident_bytes=per_view * st.n_views_on_device,
            free_bytes=bk.free_device_bytes(),
        )

    def _device_bytes_per_view(self, frame, per_frame_mask) -> int:
        """Device bytes one view keeps in 'device' residency: data and mask here;
        engines add their own per-view arrays."""
        real = np.dtype(self.backend.real_dtype).itemsize
        return frame[0] * frame[1] * real * (2 if per_frame_mask else 1)

    def _wave_bytes(self, frame) -> int:
        """Bytes of one view's exit waves (M × K complex frames)."""
        p = self.params
        itemsize = np.dtype(self.backend.complex_dtype).itemsize
        return p.object_modes * p.probe_modes * frame[0] * frame[1] * itemsize

    @property
    def block_size(self) -> int:
        if self.params.block_size:
            return self.params.block_size
        st = self._state
        per_view = (  # a multislice pass keeps S waves per view
            st.object_modes
            * st.object_slices
            * st.probe_modes
            * st.npix
            * np.dtype(self.backend.complex_dtype).itemsize
        )
        budget = _BLOCK_BYTES.get(self.backend.name, 4 << 20)
        return max(1, budget // per_view)

    def map_blocks(self, fn, read=(), accumulate=(), viewsets=None) -> list:
        """``[fn(block, acc) for block in state.blocks(...)]`` on every CPU core.

        See :class:`~.blockpool.BlockPool`: ``fn`` adds into ``acc`` (``accumulate`` or a
        per-thread copy) and must not write shared state otherwise. One thread where a
        view set streams from host memory.
        """
        st = self._state
        streamed = any(vs.streamed for vs in (st.viewsets if viewsets is None else viewsets))
        blocks = st.blocks(self.block_size, read=read, viewsets=viewsets)
        return self._pool.run(blocks, fn, accumulate, parallel=not streamed)

    def support(self):
        """(sy, sx) real 0/1 probe support on the device, or None."""
        if self.params.probe_support is None:
            return None
        if self._support is None:
            frame = self._state.frame
            y, x = centred_coordinates_px(frame)
            disc = np.pi * (y**2 + x**2) < self.params.probe_support * frame[0] * frame[1]
            self._support = self.backend.to_device(disc.astype(self.backend.real_dtype))
        return self._support

    def _global_means(self, sums, count):
        """Means over all ranks of per-frame sums: ``Σ_ranks sums / Σ_ranks count``."""
        buf = np.append(np.asarray(sums, np.float64), float(count))
        ops.allreduce(self.backend, self.comm, buf)
        return buf[:-1] / max(buf[-1], 1.0)


def _per_frame_weights(chunk) -> bool:
    """The chunk has one weight frame per view (not one shared frame)."""
    w = chunk.weights
    if w is None:
        return False
    w = np.asarray(w)
    return w.ndim == 3 and w.shape[0] > 1 and w.strides[0] != 0


def _backend_name(backend):
    return backend.name if isinstance(backend, Backend) else str(backend).lower()
