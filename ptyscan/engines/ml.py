"""Maximum likelihood refinement (Thibault & Guizar-Sicairos, New J. Phys. 14, 063004 (2012)).

Minimises the negative log-likelihood ``L(O, P)`` of the data, summed over the
pixels of every frame of every rank, by nonlinear conjugate gradients
(Polak–Ribière, restarted when the coefficient is negative) with an exact
polynomial line search, as ptypy 0.9's ML. With ``q = c |fw(P·O_view)|²`` the
model intensity (``c`` = 1, or the per-frame factor of ``floating_intensities``),
``R`` = ``intensity_renormalization`` and ``m`` the mask:

- 'gaussian': ``Σ w (q - I)²`` with ``w = R m / (1/R + I)`` (variance ``I + 1``);
- 'poisson': ``Σ m (Rq - RI log(Rq) + log Γ(RI + 1))``;
- 'euclid': ``Σ m (sqrt(Rq + ε²) - sqrt(RI))²`` (amplitudes).

``ε = 1e-6`` (ptypy's) keeps the Poisson and Euclid terms finite where the model
intensity vanishes (Poisson uses ``Rq + ε``).

Gradients are Wirtinger derivatives ``∂L/∂O*``, ``∂L/∂P*``, summed over ranks.
Options as ptypy: ``reg_del2`` (squared-gradient prior, amplitude rescaled by
ptypy's Poisson argument), ``smooth_gradient`` (Gaussian preconditioner of the
object gradient, sigma shrinking by ``1 - smooth_gradient_decay`` per iteration),
``scale_precond`` (probe/object gradient balance with memory 0.9), probe
support applied to the probe gradient, probe fixed before
``probe_update_start``. The preconditioners enter a proper preconditioned
Polak–Ribière step (ptypy applies the smoothing filter a second time when it
forms the direction; here it is applied once).

Line search along ``(hO, hP)``: the model intensity is exactly quartic in the
step ``t``. 'quadratic' (ptypy's default) takes the Newton step of the
second-order Taylor expansion of ``L``; 'all' minimises the exact ``L(t)``: a
degree-8 polynomial for 'gaussian' (minimised over its real critical points),
safeguarded Newton steps on the exact objective for 'poisson' and 'euclid'
(also their fallback when the Taylor curvature is not positive, where ptypy's
step would go uphill).

Multislice objects (``object_slices`` > 1, :mod:`.multislice`): the gradients go
back through the slices, and the line search uses the exit wave's second-order
expansion in the step (exact for one slice).

Device memory: for a view set on the device the engine keeps ``sqrt(I)``, the
Gaussian weights and (``cache_farfield``) each iteration's far fields and
back-propagated gradients. A streamed view set ('host' residency) keeps nothing
on the device: those arrays are recomputed per block with the same operations
(two FFTs per view and mode more in the quadratic line search), so the results
are the same as with 'device'.
"""

from __future__ import annotations

import logging

import numpy as np

from . import ops
from .base import Engine
from .likelihood import (
    argmin,
    compose,
    gaussian_weights,
    lgamma_sums,
    line_values,
    noise_model,
    re_dot,
    safeguarded_newton,
    taylor_terms,
)
from .ml_cpu import MLCpuKernels
from .ops import frame_sum, mode_sum
from .params import MLParams

__all__ = ["ML", "MLParams"]

log = logging.getLogger(__name__)


class ML(MLCpuKernels, Engine):
    """Maximum likelihood engine; see the module documentation.

    ``ML(params=None, *, backend=None, comm=None, state=None, **kwargs)``; pass
    ``state=dm.state`` to refine a DM result in place.
    """

    Params = MLParams

    def __init__(self, params=None, *, backend=None, comm=None, state=None, **kwargs):
        super().__init__(params, backend=backend, comm=comm, state=state, **kwargs)
        self._sigma = float(self.params.smooth_gradient)
        self._scale_p_o = None
        self._reset_cg()
        self._reg_amp = 0.0

    def _reset_cg(self):
        self._h = None  # (h_O, h_P)
        self._g = None  # previous (g_O, g_P)
        self._zg = None  # previous Re<z, g>

    def _device_bytes_per_view(self, frame, per_frame_mask) -> int:
        npix, real = frame[0] * frame[1], np.dtype(self.backend.real_dtype).itemsize
        extra = 2 * real * npix  # sqrt(I), weights
        if self.params.cache_farfield:  # far field, back-propagated gradient, dL/dq, curvature
            extra += 2 * self._wave_bytes(frame) + 2 * real * npix
        return super()._device_bytes_per_view(frame, per_frame_mask) + extra

    def _on_new_views(self):
        st, p, bk = self._state, self.params, self.backend
        self._reset_cg()
        R = p.intensity_renormalization
        if p.reg_del2:
            measured = st.n_views_total * st.npix
            photons = R * st.tot_power
            npix_obj = st.object.size
            self._reg_amp = p.reg_del2_amplitude * measured * photons / (8.0 * npix_obj**2)
        for vs in st.viewsets:  # new view sets have no caches yet
            if p.ML_type == "poisson" and "lgamma" not in vs.cache:
                vs.cache["lgamma"] = lgamma_sums(bk, vs, R)

    # --- one iteration ------------------------------------------------------------------

    def _iterate_once(self) -> dict:
        st, bk, p = self._state, self.backend, self.params
        xp = bk.xp
        g_o, g_p, errors, loglik = self._gradient()
        support = self.support()
        if self.curiter < p.probe_update_start:
            g_p[...] = 0
        elif support is not None:
            g_p *= support
        z_o = g_o
        if self._sigma > 0:
            self._sigma *= 1.0 - p.smooth_gradient_decay
            z_o = ops.gaussian_smooth(bk, g_o, self._sigma, split=self._pool.split)
        scale = self._probe_scale(z_o, g_p)
        zg = ops.vdot_real(xp, z_o, g_o) + scale * ops.vdot_real(xp, g_p, g_p)
        beta = 0.0
        if self._h is not None and self._zg:
            prev_o, prev_p = self._g
            num = zg - ops.vdot_real(xp, z_o, prev_o) - scale * ops.vdot_real(xp, g_p, prev_p)
            beta = max(0.0, num / self._zg)
        if beta == 0.0:
            h_o, h_p = -z_o, -scale * g_p
        else:
            h_o, h_p = self._h
            h_o *= beta
            h_o -= z_o
            h_p *= beta
            h_p -= scale * g_p
        self._h, self._g, self._zg = (h_o, h_p), (g_o, g_p), zg
        slope = 2.0 * (ops.vdot_real(xp, g_o, h_o) + ops.vdot_real(xp, g_p, h_p))
        coeffs = self._line_coeffs(h_o, h_p, loglik, slope)
        t = argmin(coeffs, p.poly_line_coeffs)
        if p.ML_type != "gaussian" and (p.poly_line_coeffs == "all" or not coeffs[2] > 0):
            t = self._exact_step(h_o, h_p, loglik, slope, t)
        elif not coeffs[2] > 0 and len(coeffs) == 3:
            # Gaussian: the Taylor curvature is not positive, but the exact objective
            # (degree 8 in t) still has a minimum along the line: take it
            t = argmin(self._line_coeffs(h_o, h_p, loglik, slope, exact=True), "all")
        if not np.isfinite(t):
            log.warning("ML: line search gave %r; restarting the conjugate gradient", t)
            self._reset_cg()
            t = 0.0
        ops.add_scaled(xp, st.object, t, h_o)
        ops.add_scaled(xp, st.probe, t, h_p)
        errors["step"] = float(t)
        return errors

    def _probe_scale(self, z_o, g_p):
        p, xp = self.params, self.backend.xp
        if not p.scale_precond:
            return p.scale_probe_object
        norm_p = ops.vdot_real(xp, g_p, g_p)
        new = p.scale_probe_object
        if norm_p > 1e-5:
            new = p.scale_probe_object * ops.vdot_real(xp, z_o, z_o) / norm_p
        if self._scale_p_o is None:
            self._scale_p_o = new
        else:
            self._scale_p_o = self._scale_p_o**0.9 * new**0.1
        return self._scale_p_o

    @property
    def _fast_line(self) -> bool:
        """Quadratic line search from cached far fields and back-propagated gradients."""
        return self.params.cache_farfield and self.params.poly_line_coeffs == "quadratic"

    # --- gradient -------------------------------------------------------------------------

    def _gradient(self):
        """Allreduced (g_O, g_P), the error dict and the total objective L."""
        st, bk = self._state, self.backend
        xp = bk.xp
        g_o = xp.zeros_like(st.object)
        g_p = xp.zeros_like(st.probe)
        sums = xp.zeros(2, dtype=np.float64)  # data objective, Fourier error (frame sums)
        for part in self.map_blocks(
            lambda blk, acc: self._gradient_block(blk, *acc),
            read=("data", "mask"),
            accumulate=(g_o, g_p),
        ):
            sums += part
        sums = bk.to_host(sums)
        if self.params.ML_type == "poisson":
            sums[0] += sum(float(vs.cache["lgamma"].sum()) for vs in st.viewsets)
        ops.allreduce(bk, self.comm, g_o)
        ops.allreduce(bk, self.comm, g_p)
        means = self._global_means(sums, st.n_views)
        loglik = means[0] * st.n_views_total  # global sum of the data term
        if self.params.reg_del2:
            loglik += ops.del2_grad(xp, st.object, self._reg_amp, out=g_o)[1]
        errors = {
            "fourier": float(means[1]),
            "photons": float(means[0] / st.npix),
            "exit": 0.0,
            "loglik": float(loglik / (st.n_views_total * st.npix)),
        }
        return g_o, g_p, errors, float(loglik)

    def _block_fields(self, blk):
        """Far fields and noise-model terms of a block at the current state.

        Returns a dict: ``off`` (B, 2) offsets, ``ov`` (B, M, sy, sx) object views,
        ``far`` (B, M, K, sy, sx) far fields, ``q`` model intensities, ``scale``
        floating-intensity factors or None, ``dldq`` and ``curv`` (dL/dq and ½ d²L/dq²
        with the factors applied; ``curv`` None unless the fast line search is on),
        ``loglik`` (B,) and ``xi = bw(far · dL/dq)``. The fast line search takes them
        from the gradient pass (device-resident views) or recomputes them (streamed).
        """
        st, bk, p = self._state, self.backend, self.params
        xp, op = bk.xp, st.operator
        off = st.offsets(blk.vs, blk.sl)
        ov = op.views(st.object, off)
        far = op.propagate(op.product(ov, st.probe), overwrite=True)
        model = mode_sum(ops.abs2(xp, far))  # (B, sy, sx)
        data, mask = blk["data"], blk["mask"]
        scale = self._floating(model, data, mask)
        q = model if scale is None else model * scale[:, None, None]
        dldq, loglik, curv = noise_model(
            xp,
            p.ML_type,
            q,
            data,
            mask,
            p.intensity_renormalization,
            self._weights(blk),
            self._fast_line,
        )
        if scale is not None:
            dldq *= scale[:, None, None]
            if curv is not None:
                curv = curv * (scale**2)[:, None, None]
        xi = op.backpropagate(far * dldq[:, None, None], overwrite=True)
        return {
            "off": off,
            "ov": ov,
            "far": far,
            "q": q,
            "scale": scale,
            "dldq": dldq,
            "curv": curv,
            "loglik": loglik,
            "xi": xi,
        }

    def _weights(self, blk):
        """Gaussian weights of a block: cached (device-resident views) or computed."""
        if self.params.ML_type != "gaussian":
            return None
        R = self.params.intensity_renormalization
        return blk.vs.derived(
            "w", blk.sl, blk, lambda d, m: gaussian_weights(self.backend, d, m, R)
        )

    def _gradient_block(self, blk, g_o, g_p):
        st, bk, p = self._state, self.backend, self.params
        if self._fused_ml(blk):  # numba kernels (engines/ml_cpu.py)
            return self._gradient_cpu(blk, g_o, g_p)
        xp = bk.xp
        vs, sl = blk.vs, blk.sl
        f = self._block_fields(blk)
        mask = blk["mask"]
        fdev = xp.sqrt(f["q"])
        fdev -= vs.derived("fmag", sl, blk, lambda d, m: xp.sqrt(d))
        fdev *= fdev
        if mask.shape[0] > 1 or not bool(xp.all(mask)):
            fdev *= mask
        msum = xp.maximum(frame_sum(xp, mask), 1.0)
        xi, off = f["xi"], f["off"]
        st.operator.adjoint_sample(xi, f["ov"], st.probe, off, g_o, g_p)
        if p.cache_farfield and not vs.streamed:
            keep = ("far", "xi", "dldq", "curv", "scale")
            vs.cache.setdefault("blocks", {})[sl.start] = {k: f[k] for k in keep}
        out = xp.zeros(2, dtype=np.float64)
        out[0] = xp.sum(f["loglik"])
        out[1] = xp.sum(frame_sum(xp, fdev) / msum)
        return out

    def _floating(self, model, data, mask):
        """Per-frame intensity factors (B,) for floating intensities, else None."""
        if not self.params.floating_intensities:
            return None
        xp, kind = self.backend.xp, self.params.ML_type
        R = self.params.intensity_renormalization
        if kind == "gaussian":
            w = R * mask / (1.0 / R + data)
            num = frame_sum(xp, w * model * data)
            den = frame_sum(xp, w * model * model)
        elif kind == "poisson":
            num = frame_sum(xp, mask * data)
            den = frame_sum(xp, mask * model)
        else:
            num = frame_sum(xp, mask * xp.sqrt(model * data))
            den = frame_sum(xp, mask * model)
        scale = xp.where(den > 0, num / xp.where(den > 0, den, 1), 1.0)
        if kind == "euclid":
            scale = scale**2
        return scale.astype(model.dtype)

    # --- line search ---------------------------------------------------------------------

    def _line_coeffs(self, h_o, h_p, loglik, slope, *, exact=False) -> np.ndarray:
        """Coefficients (ascending powers of t) of L(O + t hO, P + t hP), allreduced.

        ``loglik`` and ``slope`` are L and dL/dt at t = 0 (from the gradient): the
        quadratic search then needs only the curvature, one FFT per view and mode.
        ``exact`` asks for the whole degree-8 polynomial of the Gaussian objective.
        """
        st, bk, p = self._state, self.backend, self.params
        xp = bk.xp
        if self._fast_line and not exact:
            total = xp.zeros(1, dtype=np.float64)
            for part in self.map_blocks(
                lambda blk, _: self._curvature_block(blk, h_o, h_p), read=("data", "mask")
            ):
                total += part
            curvature = bk.to_host(total).astype(np.float64)
            ops.allreduce(bk, self.comm, curvature)
            if p.reg_del2:
                curvature += ops.del2_coeffs(xp, st.object, h_o, self._reg_amp)[2]
            return np.array([loglik, slope, curvature[0]])
        degree = 8 if (exact or p.poly_line_coeffs == "all") and p.ML_type == "gaussian" else 2
        total = xp.zeros(degree + 1, dtype=np.float64)
        for part in self.map_blocks(
            lambda blk, _: self._line_block(blk, h_o, h_p, degree), read=("data", "mask")
        ):
            total += part
        coeffs = bk.to_host(total).astype(np.float64)
        ops.allreduce(bk, self.comm, coeffs)
        if p.reg_del2:
            coeffs[:3] += ops.del2_coeffs(xp, st.object, h_o, self._reg_amp)
        return coeffs

    def _curvature_block(self, blk, h_o, h_p):
        """The t² coefficient of the data term over a block (fast quadratic search).

        With M(t) = Σ|f + t a + t² b|², L ≈ L0 + L'·M1 t + (L'·M2 + L''/2·M1²) t², and
        Σ L'·2Re(f b*) = 2 Re<xi, b_s> by Parseval (xi = bw(L'·f); b_s = bw(b), hO·hP for
        one slice), so b needs no FFT.
        """
        if self._fused_ml(blk):
            return self._curvature_cpu(blk, h_o, h_p)
        st, bk = self._state, self.backend
        xp, op = bk.xp, st.operator
        vs, sl = blk.vs, blk.sl
        cached = vs.cache["blocks"][sl.start] if not vs.streamed else self._block_fields(blk)
        off = st.offsets(vs, sl)
        ov, hv = op.views(st.object, off), op.views(h_o, off)
        a, b = op.taylor(ov, hv, st.probe, h_p)
        cross = 2.0 * ops.vdot_real(xp, cached["xi"], b)
        del b
        a = op.propagate(a, overwrite=True)
        m1 = 2 * re_dot(cached["far"], a).astype(np.float64)  # float64: L'' can be huge
        total = cross + ops.vdot_real(xp, cached["dldq"], mode_sum(ops.abs2(xp, a)))
        m1 *= m1
        return total + ops.vdot_real(xp, cached["curv"].astype(np.float64), m1)

    def _line_terms(self, blk, h_o, h_p, degree):
        """M0..M_degree (float64, (B, sy, sx), × the floating factor): the model intensity
        along the line is Σ_j M_j t^j, exactly quartic in t."""
        st, bk, p = self._state, self.backend, self.params
        xp, op = bk.xp, st.operator
        vs, sl = blk.vs, blk.sl
        off = st.offsets(vs, sl)
        ov, hv = op.views(st.object, off), op.views(h_o, off)
        probe = st.probe
        cached = vs.cache.get("blocks", {}).get(sl.start)
        far = cached["far"] if cached else op.propagate(op.product(ov, probe), overwrite=True)
        a, b = op.taylor(ov, hv, probe, h_p)  # exact for one slice (multislice notes)
        a, b = op.propagate(a, overwrite=True), op.propagate(b, overwrite=True)
        del ov, hv
        terms = [
            mode_sum(ops.abs2(xp, far)),
            2 * re_dot(far, a),
            2 * re_dot(far, b) + mode_sum(ops.abs2(xp, a)),
        ]
        if degree > 2:
            terms += [2 * re_dot(a, b), mode_sum(ops.abs2(xp, b))]
        terms = [t.astype(np.float64) for t in terms]  # powers up to 8 overflow float32
        if p.floating_intensities:
            scale = self._floating(terms[0], blk["data"], blk["mask"])[:, None, None]
            terms = [t * scale for t in terms]
        return terms

    def _line_block(self, blk, h_o, h_p, degree):
        p = self.params
        terms = self._line_terms(blk, h_o, h_p, 4 if degree > 2 else 2)
        data, mask = blk["data"], blk["mask"]
        derivs = taylor_terms(
            self.backend.xp, p.ML_type, terms[0], data, mask, p.intensity_renormalization
        )
        return compose(self.backend.xp, derivs, terms[1:], degree)

    def _exact_step(self, h_o, h_p, loglik, slope, guess):
        """Minimise the exact L(t) (Poisson, Euclid) by safeguarded Newton steps.

        Used for 'all', and for 'quadratic' when the Taylor curvature is not positive
        (the objective is not convex along the line where the model intensity
        nearly vanishes). Costs two FFTs per view and mode plus a few passes over
        the stored intensity coefficients per trial step; streamed views recompute
        their coefficients at every trial step instead of keeping them on the device.
        """
        st, bk, p = self._state, self.backend, self.params
        read = ("data", "mask")
        resident = [vs for vs in st.viewsets if not vs.streamed]
        stored = {
            (id(blk.vs), blk.sl.start): self._line_terms(blk, h_o, h_p, 4)
            for blk in st.blocks(self.block_size, read=read, viewsets=resident)
        }
        R = p.intensity_renormalization

        def phi(t):
            out = np.zeros(3)
            for blk in st.blocks(self.block_size, read=read):
                terms = stored.get((id(blk.vs), blk.sl.start))
                if terms is None:
                    terms = self._line_terms(blk, h_o, h_p, 4)
                data, mask = blk["data"], blk["mask"]
                out += bk.to_host(line_values(bk.xp, p.ML_type, terms, t, data, mask, R))
            ops.allreduce(bk, self.comm, out)
            if p.reg_del2:
                c = ops.del2_coeffs(bk.xp, st.object, h_o, self._reg_amp)
                out += [c[0] + c[1] * t + c[2] * t * t, c[1] + 2 * c[2] * t, 2 * c[2]]
            return out

        return safeguarded_newton(phi, guess)
