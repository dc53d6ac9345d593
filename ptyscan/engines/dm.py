"""Difference Map (Thibault et al., Ultramicroscopy 109, 338 (2009)), as ptypy 0.9's DM.

One iteration:

1. Fourier update of every view, exit waves ``ψ`` in place, with ptypy's
   generalised projection coefficients ``(a, b, c) = (-α, 1, 1 + α)``::

       F = fw((1 - c) ψ + c P·O)
       ψ += b · bw(F · fm) + a P·O - (a + b) ψ

   ``fm`` is the relaxed modulus constraint: with ``err`` the masked mean of
   ``(|F| - sqrt(I))²`` and the power bound ``pbound = ¼ fourier_relax_factor²
   max_frame_power / npix``, ``fm = (1 - mask) + mask (sqrt(I) + (|F| - sqrt(I)) r)
   / (|F| + 1e-10)`` with ``r = sqrt(pbound / err)`` when ``err > pbound``. Views
   within the bound take ``ψ += (a + b c)(P·O - ψ)``.
2. Overlap update: object then probe (``update_object_first``), repeated up to
   ``overlap_max_iterations`` times until the relative probe change falls below
   ``overlap_converge_factor``; inertia terms ``object_inertia · mean_power`` and
   ``probe_inertia · n_frames · M`` keep the previous estimate; the probe is
   multiplied by its support. Numerators and denominators are summed over MPI
   ranks (each rank holds its own frames).

Device memory: for a view set on the device the engine keeps the exit waves'
spectra ``Ψ = fw(ψ)`` next to ``ψ`` (one FFT per view and mode less per
iteration), ``sqrt(I)`` and ``mask / (I + 1)``. A streamed view set
('host' residency) keeps only ``ψ``, in host memory, as ptypy does: the Fourier
update starts from ``fw(ψ)`` of the block and the derived arrays are recomputed
per block (``ViewSet.derived``), so the results agree to rounding.

Errors per frame (ptypy's triple): ``fourier`` = masked mean ``(|F| - sqrt(I))²``,
``photons`` = ``Σ mask (|fw(P·O)|² - I)² / (I + 1) / npix`` (before the update, from
the far field the update computes anyway: no extra FFT; ``compute_log_likelihood``),
``exit`` = ``Σ_modes
mean |Δψ|²``; the history holds their means over all frames of all ranks.
"""

from __future__ import annotations

import numpy as np

from . import cpu_kernels, kernels, ops
from .base import Engine
from .params import DMParams

__all__ = ["DM", "DMParams"]


class DM(Engine):
    """Difference Map engine; see the module documentation for the algorithm.

    ``DM(params=None, *, backend=None, comm=None, state=None, **kwargs)``;
    ``add_views(chunk)``, ``iterate(n)``, ``object``, ``probe``, ``history``.
    """

    Params = DMParams

    def __init__(self, params=None, *, backend=None, comm=None, state=None, **kwargs):
        super().__init__(params, backend=backend, comm=comm, state=state, **kwargs)
        self._abc = self._coefficients()
        self._probe_buf = None
        self._pbound = 0.0

    def _coefficients(self):
        """ptypy's projection coefficients ``(a, b, c)`` of the Fourier update."""
        alpha = self.params.alpha
        return (-alpha, 1.0, 1.0 + alpha)

    def _device_bytes_per_view(self, frame, per_frame_mask) -> int:
        real = np.dtype(self.backend.real_dtype).itemsize
        extra = 2 * self._wave_bytes(frame) + 2 * real * frame[0] * frame[1]  # ψ, Ψ, sqrt(I), ivar
        return super()._device_bytes_per_view(frame, per_frame_mask) + extra

    def _on_new_views(self):
        st, bk = self._state, self.backend
        st.ensure_exit(self.block_size)
        self._pbound = 0.25 * self.params.fourier_relax_factor**2 * st.max_power / st.npix
        if self._probe_buf is None:
            self._probe_buf = bk.xp.zeros_like(st.probe)
        for vs in st.viewsets:  # new view sets have no spectra yet; streamed ones get none
            if not vs.streamed and "far_exit" not in vs.cache:
                vs.cache["far_exit"] = st.operator.propagate(vs.exit)

    def _iterate_once(self) -> dict:
        fourier, photons, exit_ = self._fourier_update()
        self._overlap_update()
        return {"fourier": fourier, "photons": photons, "exit": exit_}

    # --- Fourier update ---------------------------------------------------------------

    def _fourier_update(self):
        st, bk = self._state, self.backend
        xp = bk.xp
        sums = xp.zeros(3, dtype=np.float64)
        for part in self.map_blocks(
            lambda blk, _: self._fourier_block(blk), read=("data", "mask", "exit")
        ):
            sums += part
        errs = self._global_means(bk.to_host(sums), st.n_views)
        return float(errs[0]), float(errs[1]), float(errs[2])

    def _fourier_block(self, blk):
        """Update the exit waves of a block of views; (3,) sums of the view errors.

        Works on the far fields: the exit waves' spectra ``Ψ = fw(ψ)`` are kept
        (``vs.cache['far_exit']``), so the update costs one forward FFT (of P·O,
        which also gives the 'photons' error) and one inverse FFT (ψ = bw(Ψ) for the
        overlap update) per view and mode; the propagator is unitary, so this is
        ptypy's update exactly. A streamed block computes ``Ψ = fw(ψ)`` first.
        """
        st, bk = self._state, self.backend
        xp, op = bk.xp, st.operator
        a, b, c = self._abc
        vs, sl = blk.vs, blk.sl
        full = vs.full_mask
        data, mask = blk["data"], blk["mask"]
        if vs.streamed:
            spec = op.propagate(blk["exit"], overwrite=True)
        else:
            spec = vs.cache["far_exit"][sl]
        if self._fused_cpu(vs):
            fpo = op.propagate(self._exit_waves_cpu(blk), overwrite=True)  # fw(P·O)
            if full:
                return self._fourier_cpu(blk, fpo, spec)
        else:
            fpo = op.forward(st.object, st.probe, st.offsets(vs, sl))  # fw(P·O)
        fmag = vs.derived("fmag", sl, blk, lambda d, m: xp.sqrt(d))
        if self.params.compute_log_likelihood:
            ivar = vs.derived("ivar", sl, blk, lambda d, m: _inverse_variance(bk, d, m))
        out = xp.zeros(3, dtype=np.float64)
        if self.params.compute_log_likelihood:
            model = ops.mode_sum(ops.abs2(xp, fpo))
            model -= data
            model *= model
            out[1] = ops.vdot_real(xp, model, ivar) / st.npix
        if full and fpo.shape[1:3] == (1, 1) and kernels.dm_fourier_usable(xp, fpo.dtype):
            return self._fourier_fused(blk, fpo, spec, fmag, out)
        if c == 2:  # DM
            comb = fpo * 2
            comb -= spec
        else:
            comb = fpo * c
            if c != 1:
                comb += (1 - c) * spec
        amp = ops.mode_sum(ops.abs2(xp, comb))  # (B, sy, sx)
        xp.sqrt(amp, out=amp)
        fdev = amp - fmag
        if full:
            err = ops.frame_dot(xp, fdev, fdev) / st.npix
        else:
            msum = xp.maximum(xp.sum(mask, axis=(-2, -1), dtype=np.float64), 1.0)
            err = ops.frame_dot(xp, mask * fdev, fdev) / msum
        out[0] = xp.sum(err)
        renorm = self._renormalisation(err)
        if renorm is not None:
            fdev *= renorm.astype(fdev.dtype)[:, None, None]
            fdev += fmag
            amp += 1e-10
            fdev /= amp
            if not full:
                fdev *= mask
                fdev += 1 - mask  # the modulus factor fm
            comb *= fdev[:, None, None]
            if b != 1:
                comb *= b
            if a == -1:
                comb -= fpo
            elif a != 0:
                comb += a * fpo
            if a + b != 0:
                comb -= (a + b) * spec
            delta = comb
        else:
            delta = fpo - spec
            delta *= a + b * c
        spec += delta
        out[2] = ops.vdot_real(xp, delta, delta) / st.npix
        blk["exit"] = op.backpropagate(spec)
        return out

    def _fourier_cpu(self, blk, fpo, spec):
        """:meth:`_fourier_block`'s update with the numba kernel (one mode, no mask): one
        pass over the views, frame by frame (``engines/cpu_kernels.py``)."""
        frames = blk["data"].shape
        sums = cpu_kernels.dm_fourier(
            fpo.reshape(frames),
            spec.reshape(frames),
            blk["data"],
            self._abc,
            self._pbound,
            self.params.compute_log_likelihood,
        )
        blk["exit"] = self._state.operator.backpropagate(spec)
        return sums

    def _fourier_fused(self, blk, fpo, spec, fmag, out):
        """:meth:`_fourier_block`'s update with the fused CUDA kernels (one object and one
        probe mode, no mask: ``engines/kernels.py``), three passes over the views."""
        st, xp = self._state, self.backend.xp
        f, s, m = (x.reshape(-1, *x.shape[-2:]) for x in (fpo, spec, fmag))  # views
        err = kernels.dm_errors(xp, f, s, m, self._abc[2]) / st.npix
        out[0] = xp.sum(err)
        renorm = self._renormalisation(err)
        renormed = renorm is not None
        renorm = (renorm if renormed else xp.ones_like(err)).astype(m.dtype)
        out[2] = kernels.dm_exit_change(xp, f, s, m, renorm, self._abc, renormed) / st.npix
        kernels.dm_update(xp, f, s, m, renorm, self._abc, renormed)  # spec += Δ, in place
        blk["exit"] = st.operator.backpropagate(spec)
        return out

    def _renormalisation(self, err):
        """Per view ``sqrt(pbound / err)`` where the modulus error ``err`` (B,) is over the
        power bound, 1 elsewhere; None when no view of the block is over it."""
        xp = self.backend.xp
        outside = err > self._pbound
        if not bool(xp.any(outside)):
            return None
        return xp.where(outside, xp.sqrt(self._pbound / xp.maximum(err, 1e-300)), 1.0)

    # --- overlap update ---------------------------------------------------------------

    def _overlap_update(self):
        p = self.params
        do_probe = p.probe_update_start <= self.curiter
        for inner in range(p.overlap_max_iterations):
            if p.update_object_first or inner > 0 or not do_probe:
                self._object_update()
            if not do_probe:
                break
            if self._probe_update() < p.overlap_converge_factor:
                break

    def _object_update(self):
        st, bk, p = self._state, self.backend, self.params
        xp, obj = bk.xp, st.object
        cfact = p.object_inertia * st.mean_power
        num = xp.zeros_like(obj)
        den = xp.zeros(obj.shape[-2:], dtype=bk.real_dtype)
        if self.comm.rank == 0:
            src = (
                obj if p.obj_smooth_std is None else ops.gaussian_smooth(bk, obj, p.obj_smooth_std)
            )
            num += cfact * src
            den += cfact

        def add(blk, acc):
            off = st.offsets(blk.vs, blk.sl)
            if self._fused_cpu(blk.vs):
                cpu_kernels.object_sums(blk["exit"][:, 0, 0], st.probe[0], off, acc[0][0], acc[1])
                return
            st.operator.adjoint_object(blk["exit"], st.probe, off, acc[0])
            st.operator.object_norm(st.probe, off, acc[1])

        self.map_blocks(add, read=("exit",), accumulate=(num, den))
        ops.allreduce(bk, self.comm, num)
        ops.allreduce(bk, self.comm, den)
        empty = den == 0
        if cfact == 0 and bool(xp.any(empty)):  # never illuminated: keep the old values
            num[:, empty] = obj[:, empty]
            den[empty] = 1
        num *= xp.reciprocal(den)  # complex ÷ real would be a complex division
        if p.clip_object is not None:
            ops.clip_amplitude(xp, num, *p.clip_object)
        st.object = num

    def _probe_update(self) -> float:
        st, bk, p = self._state, self.backend, self.params
        xp = bk.xp
        cfact = p.probe_inertia * st.n_views_total * st.object_modes
        num = xp.zeros_like(st.probe)
        den = xp.zeros(st.frame, dtype=bk.real_dtype)
        if self.comm.rank == 0:
            num += cfact * st.probe
            den += cfact

        def add(blk, acc):
            if self._fused_cpu(blk.vs):
                off = st.offsets(blk.vs, blk.sl)
                cpu_kernels.probe_sums(blk["exit"][:, 0, 0], st.object[0], off, acc[0][0], acc[1])
                return
            ov = st.operator.views(st.object, st.offsets(blk.vs, blk.sl))
            st.operator.adjoint_probe(blk["exit"], ov, acc[0])
            st.operator.probe_norm(ov, acc[1])

        self.map_blocks(add, read=("exit",), accumulate=(num, den))
        ops.allreduce(bk, self.comm, num)
        ops.allreduce(bk, self.comm, den)
        num *= xp.reciprocal(xp.where(den > 0, den, 1))
        support = self.support()
        if support is not None:
            num *= support
        diff = num - self._probe_buf
        norm = ops.vdot_real(xp, num, num)
        change = ops.vdot_real(xp, diff, diff) / norm if norm > 0 else 0.0
        self._probe_buf = num.copy()
        st.probe = num
        return float(np.sqrt(change))


def _inverse_variance(backend, data, mask):
    """``mask / (I + 1)``: the weights of the 'photons' error (per view, or per block)."""
    return (mask / (data + 1)).astype(backend.real_dtype)
