"""ePIE (Maiden & Rodenburg, Ultramicroscopy 109, 1256 (2009)) and its rPIE variant
(Maiden, Johnson & Li, Optica 4, 736 (2017)), as ptypy 0.9's EPIE.

One iteration visits every view once, in a random order (``random_order``, drawn
from ``(seed, iteration)``), and updates the object and the probe after each:

1. ``ψ = P · view(O)`` and ``F = fw(ψ)``; the modulus constraint (no power bound)
   ``F' = F · (m sqrt(I) / (|F| + 1e-10) + 1 - m)`` with ``|F|² = Σ_modes |F|²``
   and the mask ``m``; ``Δψ = bw(F') - ψ``.
2. Object: ``O += alpha Σ_k conj(P_k) Δψ_k / D_P`` with
   ``D_P = (1 - γ) Σ_k|P_k|² + γ max Σ_k|P_k|²`` (``γ = rpie_alpha``; 1: ePIE).
3. Probe (from ``probe_update_start`` on): ``P += beta Σ_m conj(O_m) Δψ_m / D_O``
   with the updated object view and ``D_O`` likewise from ``Σ_m |O_m|²`` (its
   maximum over the whole object when ``object_norm_is_global``); then the support.

MPI: ptypy's stochastic engines refuse MPI. Here the ranks run the serial algorithm
together: every rank knows the global visiting order (frame indices and the seed);
each run of consecutive views held by one rank is updated there, and that rank then
broadcasts the object region the run touched and the probe. One or many ranks give
the same result up to rounding, at the cost of one broadcast per run of views.

Errors per view (ptypy's triple): ``fourier`` the masked mean ``(|F| - sqrt(I))²``,
``photons`` ``Σ m (|F|² - I)² / (I + 1) / npix`` from the same far field (before the
view's update; ptypy computes it after, with one more FFT), ``exit`` ``Σ |Δψ|² / npix``.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .base import Engine
from .params import EPIEParams

__all__ = ["EPIE", "EPIEParams"]


class EPIE(Engine):
    """ePIE/rPIE engine; see the module documentation.

    ``EPIE(params=None, *, backend=None, comm=None, state=None, **kwargs)``.
    """

    Params = EPIEParams

    def __init__(self, params=None, *, backend=None, comm=None, state=None, **kwargs):
        super().__init__(params, backend=backend, comm=comm, state=state, **kwargs)
        self._table = []  # (frame index, rank, view set number, row, global top-left pixel)

    def _device_bytes_per_view(self, frame, per_frame_mask) -> int:
        real = np.dtype(self.backend.real_dtype).itemsize
        return super()._device_bytes_per_view(frame, per_frame_mask) + real * frame[0] * frame[1]

    def _on_new_views(self):
        st = self._state
        mine = [
            (int(index), k, row, vs.pos_px[row].tolist())
            for k, vs in enumerate(st.viewsets)
            for row, index in enumerate(vs.indices)
        ]
        tables = self.comm.allgather(mine)
        self._table = sorted(
            (index, rank, k, row, tuple(pos))
            for rank, table in enumerate(tables)
            for index, k, row, pos in table
        )

    def _iterate_once(self) -> dict:
        st, bk, p = self._state, self.backend, self.params
        order = np.arange(len(self._table))
        if p.random_order:
            order = np.random.default_rng((p.seed, self.curiter)).permutation(order)
        sums = bk.xp.zeros(3, dtype=np.float64)
        for run in _runs([self._table[i] for i in order]):
            owner = run[0][1]
            if owner == self.comm.rank:
                for _, _, k, row, _ in run:
                    sums += self._update_view(st.viewsets[k], slice(row, row + 1))
            self._share(run, owner)
        if p.clip_object is not None:
            ops.clip_amplitude(bk.xp, st.object, *p.clip_object)
        errs = self._global_means(bk.to_host(sums), st.n_views)
        return {"fourier": float(errs[0]), "photons": float(errs[1]), "exit": float(errs[2])}

    def _share(self, run, owner):
        """Give every rank the owner's object region touched by ``run`` (one pixel more for
        sub-pixel views) and its probe."""
        if self.comm.size <= 1:
            return
        st = self._state
        pos = np.array([entry[4] for entry in run]) - st.origin_px
        (y0, x0), (y1, x1) = pos.min(axis=0), pos.max(axis=0) + np.array(st.frame) + 1
        ops.broadcast(self.backend, self.comm, st.object[:, y0:y1, x0:x1], root=owner)
        ops.broadcast(self.backend, self.comm, st.probe, root=owner)

    def _update_view(self, vs, sl):
        """Update object and probe from one view; (3,) error sums of that view."""
        st, bk, p = self._state, self.backend, self.params
        xp, op = bk.xp, st.operator
        off = st.offsets(vs, sl)
        rows = st.rows(vs, sl)
        data, mask = rows["data"], rows["mask"]
        fmag = vs.derived("fmag", sl, rows, lambda d, m: xp.sqrt(d))
        psi = op.exit_waves(st.object, st.probe, off)
        far = op.propagate(psi)
        intensity = ops.mode_sum(ops.abs2(xp, far))
        out = xp.zeros(3, dtype=np.float64)
        if p.compute_log_likelihood:
            dev = intensity - data
            dev *= dev
            out[1] = ops.vdot_real(xp, dev, mask / (data + 1)) / st.npix
        amp = xp.sqrt(intensity)
        fdev = amp - fmag
        out[0] = ops.vdot_real(xp, fdev * mask, fdev) / xp.maximum(
            xp.sum(mask, dtype=np.float64), 1
        )
        amp += 1e-10
        factor = mask * fmag / amp + (1 - mask)
        far *= factor[:, None, None]
        dpsi = op.backpropagate(far, overwrite=True)
        dpsi -= psi
        out[2] = ops.vdot_real(xp, dpsi, dpsi) / st.npix
        gamma = p.rpie_alpha
        power = ops.abs2(xp, st.probe).sum(axis=0)
        den = _rpie_norm(power, power.max(), gamma)
        op.adjoint_object(dpsi * (p.alpha / den), st.probe, off, st.object)
        if self.curiter >= p.probe_update_start:
            views = op.views(st.object, off)
            power = op.probe_norm(views)
            peak = ops.abs2(xp, st.object).sum(axis=0).max() if p.object_norm_is_global else None
            den = _rpie_norm(power, power.max() if peak is None else peak, gamma)
            op.adjoint_probe(dpsi * (p.beta / den), views, st.probe)
            support = self.support()
            if support is not None:
                st.probe *= support
        return out


def _rpie_norm(power, peak, gamma):
    """rPIE's denominator ``(1 - γ) power + γ peak`` (ePIE: γ = 1, the peak alone)."""
    if gamma == 1.0:
        return peak
    return (1.0 - gamma) * power + gamma * peak


def _runs(entries):
    """Split the visiting order into maximal runs of views held by one rank."""
    runs = []
    for entry in entries:
        if runs and runs[-1][0][1] == entry[1]:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs
