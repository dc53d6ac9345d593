"""The ptychography forward operator and its adjoint, shared by every engine.

For a block of B views at top-left object pixels ``offsets`` (B, 2), an object
``O`` (M, oy, ox) and a probe ``P`` (K, sy, sx), the forward model is

    views    v[b, m]       = O[m, y_b : y_b + sy, x_b : x_b + sx]        (B, M, sy, sx)
    exit     ψ[b, m, k]    = v[b, m] · P[k]                               (B, M, K, sy, sx)
    far      F[b, m, k]    = fw(ψ[b, m, k])                               (FFT order)

with ``fw``/``bw`` the propagator's transforms (:mod:`ptyscan.propagation`,
far or near field; ``bw`` is the adjoint of ``fw``). The model is linear in
``O`` for a fixed ``P`` and in ``P`` for a fixed ``O``; the adjoints of those
two maps, applied to waves ``w`` (B, M, K, sy, sx) in the sample plane, are

    adjoint_object:  Σ_k conj(P[k]) · w[b, m, k], scatter-added at the views   (M, oy, ox)
    adjoint_probe:   Σ_{b, m} conj(v[b, m]) · w[b, m, k]                        (K, sy, sx)

(a far-field ``w`` goes through ``bw`` first: :meth:`Operator.adjoint`). The
normalisers of the projection engines are the same adjoints applied to ``P``
and ``v`` themselves: :meth:`Operator.object_norm` (Σ_k |P|² at every view)
and :meth:`Operator.probe_norm` (Σ_{b,m} |v|²). ``tests/engines/test_eng_operator.py``
checks ``<A x, y> = <x, A* y>`` for both maps, far and near field, with modes,
on NumPy and the CuPy stand-in.

Sub-pixel positions
-------------------
Integer ``offsets`` cut the views exactly as above. Float ``offsets`` (the state
gives them when ``subpixel: linear``) are views at fractional pixels: with
``n = floor(offset)`` and ``f = offset - n`` in [0, 1), a view is the bilinear
interpolation ``v = Σ w_ij O[n + (i, j) + r]`` of the (sy + 1, sx + 1) window at
``n``, ``w = ((1 - fy)(1 - fx), (1 - fy) fx, fy (1 - fx), fy fx)``; the adjoints
scatter with the same weights (so they stay exact adjoints), and
:meth:`Operator.object_norm` spreads ``Σ_k |P|²`` with them. ``f = 0`` gives the
integer views' values.

With ``interpolation='fourier'`` (``subpixel: fourier``) a view is instead the
(sy, sx) window at ``n`` moved by ``f`` with the Fourier phase ramp,
``v = IFFT[FFT(O[n + r]) · exp(2πi k·f)]``: exact for an object band-limited to the
frame's frequencies, where bilinear weights damp the high frequencies differently at
every fraction (a reconstruction then over-sharpens the object to make up for it).
The shift is circular within the window, so it suits probes that vanish towards the
frame edge (electron probes). Its adjoint moves back by ``-f`` before the scatter (the
shift is unitary); :meth:`Operator.object_norm` keeps the bilinear spread (positive).

An engine gets its operator from the state (``state.operator``) and its blocks
of views from ``state.blocks(...)``, which hides where the data live.
"""

from __future__ import annotations

import numpy as np

from . import ops

__all__ = ["Operator"]

_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))
"""Offsets of the four bilinear neighbours, in the order of the weights."""


class Operator:
    """Forward model ``O, P → fw(P · view(O))`` and its adjoints on one backend.

    Parameters
    ----------
    backend : Backend
        Array module and FFT (``backend.xp``).
    propagator : FarField or NearField
        Its ``fw``/``bw`` (FFT order) propagate exit waves to the detector and back.
    frame : (int, int)
        View shape (sy, sx).

    All arrays are device arrays of the backend; ``offsets`` are host int64
    top-left pixels (B, 2) in the object array.
    """

    def __init__(self, backend, propagator, frame, interpolation="linear"):
        self.backend = backend
        self.propagator = propagator
        self.frame = (int(frame[0]), int(frame[1]))
        self.interpolation = interpolation

    # --- forward -----------------------------------------------------------------------

    def views(self, obj, offsets):
        """(B, M, sy, sx) copies of ``obj`` (M, oy, ox) at ``offsets`` (B, 2): integer
        top-left pixels, or float ones (bilinear or Fourier interpolation, module notes)."""
        whole, weights = self._split(offsets)
        if weights is None:
            return ops.gather(self.backend, obj, whole, self.frame)
        if self.interpolation == "fourier":
            window = ops.gather(self.backend, obj, whole, self.frame)
            return self._fourier_shift(window, offsets, sign=1)
        sy, sx = self.frame
        window = ops.gather(self.backend, obj, whole, (sy + 1, sx + 1))
        out = None
        for (i, j), w in zip(_CORNERS, weights, strict=True):
            part = window[..., i : i + sy, j : j + sx] * w[:, None, None, None]
            out = part if out is None else out + part
        return out

    def _scatter(self, out, values, offsets, *, bilinear=False):
        """Add ``values`` ((B, M, sy, sx), (B, sy, sx) or one (sy, sx)) into ``out`` at the
        views ``offsets``: the adjoint of :meth:`views` (and of ``ops.gather``);
        ``bilinear`` spreads with the bilinear weights whatever the interpolation."""
        whole, weights = self._split(offsets)
        if weights is None:
            return ops.scatter_add(self.backend, out, values, whole)
        xp, (sy, sx) = self.backend.xp, self.frame
        if values.ndim == out.ndim:  # one array for every view
            values = xp.broadcast_to(values, (len(whole), *values.shape))
        if self.interpolation == "fourier" and not bilinear:
            moved = self._fourier_shift(values, offsets, sign=-1)
            return ops.scatter_add(self.backend, out, moved, whole)
        lead = values.shape[:-2]
        padded = xp.zeros((*lead, sy + 1, sx + 1), dtype=values.dtype)
        shape = (-1,) + (1,) * (values.ndim - 1)
        for (i, j), w in zip(_CORNERS, weights, strict=True):
            padded[..., i : i + sy, j : j + sx] += values * w.reshape(shape)
        return ops.scatter_add(self.backend, out, padded, whole)

    def _split(self, offsets):
        """Integer top-left pixels (B, 2) and, for float offsets, the four bilinear
        weights (each (B,) on the device), else None."""
        offsets = np.asarray(offsets)
        if np.issubdtype(offsets.dtype, np.integer):
            return offsets, None
        whole = np.floor(offsets)
        fy, fx = (offsets - whole).T
        weights = ((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx)
        bk = self.backend
        weights = [bk.xp.asarray(w.astype(bk.real_dtype)) for w in weights]
        return whole.astype(np.int64), weights

    def _fourier_shift(self, windows, offsets, *, sign):
        """``windows`` (B, ..., sy, sx) moved by ``sign × frac`` of ``offsets``: the content
        at ``r`` becomes the content at ``r + sign·f`` (circularly)."""
        xp, bk = self.backend.xp, self.backend
        offsets = np.asarray(offsets, np.float64)
        frac = offsets - np.floor(offsets)
        ky = np.fft.fftfreq(self.frame[0])
        kx = np.fft.fftfreq(self.frame[1])
        ramp_y = np.exp(2j * np.pi * sign * frac[:, :1] * ky[None, :])  # (B, sy)
        ramp_x = np.exp(2j * np.pi * sign * frac[:, 1:] * kx[None, :])  # (B, sx)
        ramp = ramp_y[:, :, None] * ramp_x[:, None, :]
        ramp = xp.asarray(ramp.astype(bk.complex_dtype))
        shape = (len(offsets),) + (1,) * (windows.ndim - 3) + self.frame
        spectrum = bk.fft.fft2(windows.astype(bk.complex_dtype))
        spectrum *= ramp.reshape(shape)
        return bk.fft.ifft2(spectrum, overwrite_x=True)

    @staticmethod
    def product(views, probe):
        """Exit waves ``views · probe``: (B, M, sy, sx) × (K, sy, sx) → (B, M, K, sy, sx)."""
        return views[:, :, None] * probe[None, None]

    def exit_waves(self, obj, probe, offsets):
        """(B, M, K, sy, sx) exit waves ``P · view(O)`` of the views at ``offsets``."""
        return self.product(self.views(obj, offsets), probe)

    def propagate(self, waves, *, overwrite=False):
        """``fw`` of sample-plane waves (..., sy, sx): far fields in FFT order."""
        return self.propagator.fw(waves, overwrite=overwrite)

    def backpropagate(self, far, *, overwrite=False):
        """``bw`` (the adjoint of :meth:`propagate`) of far fields (..., sy, sx)."""
        return self.propagator.bw(far, overwrite=overwrite)

    def forward(self, obj, probe, offsets):
        """(B, M, K, sy, sx) far fields ``fw(P · view(O))`` in FFT order."""
        return self.propagate(self.exit_waves(obj, probe, offsets), overwrite=True)

    # --- adjoints ------------------------------------------------------------------------

    def adjoint_object(self, waves, probe, offsets, out):
        """Add ``Σ_k conj(P[k]) · waves[:, :, k]`` into ``out`` (M, oy, ox) at ``offsets``.

        ``waves`` (B, M, K, sy, sx) are sample-plane waves; returns ``out``.
        """
        xp = self.backend.xp
        values = ops.mode_sum(waves * xp.conj(probe)[None, None], axis=2)
        return self._scatter(out, values, offsets)

    def adjoint_probe(self, waves, views, out=None):
        """``Σ_{b, m} conj(views[b, m]) · waves[b, m]`` (K, sy, sx), added into ``out`` if given.

        ``views`` (B, M, sy, sx) are the object views the waves belong to.
        """
        xp = self.backend.xp
        total = (xp.conj(views)[:, :, None] * waves).sum(axis=(0, 1))
        if out is None:
            return total
        out += total
        return out

    def adjoint(self, far, probe, views, offsets, obj_out, probe_out):
        """Back-propagate ``far`` (B, M, K, sy, sx) and add both adjoints into
        ``obj_out`` (M, oy, ox) and ``probe_out`` (K, sy, sx); returns the sample-plane
        waves. ``far`` may be overwritten."""
        waves = self.backpropagate(far, overwrite=True)
        self.adjoint_sample(waves, views, probe, offsets, obj_out, probe_out)
        return waves

    def adjoint_sample(self, waves, views, probe, offsets, obj_out, probe_out):
        """Add both adjoints of sample-plane ``waves`` (B, M, K, sy, sx) of the
        ``views`` at ``offsets`` into ``obj_out`` and ``probe_out``."""
        self.adjoint_object(waves, probe, offsets, obj_out)
        self.adjoint_probe(waves, views, probe_out)
        return obj_out, probe_out

    def taylor(self, views, hviews, probe, hprobe):
        """First- and second-order terms ``(hv·P + v·hP, hv·hP)`` (B, M, K, sy, sx) of the
        exit waves of ``views + t hviews`` lit by ``probe + t hprobe`` (exact: the exit
        wave is quadratic in t; :mod:`.multislice` has the general case)."""
        first = self.product(hviews, probe)
        first += self.product(views, hprobe)
        return first, self.product(hviews, hprobe)

    # --- normalisers ---------------------------------------------------------------------

    def object_norm(self, probe, offsets, out):
        """Add ``Σ_k |P[k]|²`` into ``out`` (oy, ox) at every view of ``offsets``."""
        power = ops.abs2(self.backend.xp, probe).sum(axis=0)
        return self._scatter(out, power, offsets, bilinear=True)

    def probe_norm(self, views, out=None):
        """``Σ_{b, m} |views[b, m]|²`` (sy, sx), added into ``out`` if given."""
        total = ops.abs2(self.backend.xp, views).sum(axis=(0, 1))
        if out is None:
            return total
        out += total
        return out
