"""Multislice forward operator: the object as S thin slices with propagation between them.

With ``object_slices`` S > 1 the object is (M, S, oy, ox) (a slice axis after the
modes) and a view ``v[b, m, s]`` (B, M, S, sy, sx) is cut from every slice at the
same pixels (slices counted from 0 here). For probe mode ``k`` the wave entering slice 0 is the probe; each
slice multiplies the wave entering it and the product propagates ``slice_thickness``
to the next slice with the angular-spectrum propagator ``D`` of the scan's
wavelength and the sample pixel (:class:`~ptyscan.propagation.NearField`):

    φ[0] = P[k],   ψ[s] = v[b, m, s] · φ[s],   φ[s + 1] = D ψ[s],   exit = ψ[S - 1]

and the exit wave goes to the detector as in the one-slice model
(:class:`~.operator.Operator`, which this class extends). The model is linear in
each slice and in the probe (the others fixed); :meth:`MultisliceOperator.adjoint_sample`
applies the adjoints of those maps to a sample-plane wave ``w`` (the gradient
``∂L/∂exit*``) by going back through the slices,

    g ← w;  for s = S-1 … 0:  ∂v[s] += Σ_k conj(φ[s]) · g,  g ← conj(v[s]) · g,
                               g ← D* g (s > 0);   ∂P += Σ_{b, m} g,

which is the chain rule of the Wirtinger gradients. :meth:`MultisliceOperator.taylor`
carries the first- and second-order terms of the exit wave along a direction
(``v + t hv``, ``P + t hP``) through the slices (ML's quadratic line search; for
one slice they are ``hv·P + v·hP`` and ``hv·hP``, exact, where S slices make the
exit wave a polynomial of degree S + 1 in ``t``: with slices ML's quadratic step is
the Newton step of that second-order expansion, and ``poly_line_coeffs: all`` is
refused; the Poisson/Euclid fallback of ML, where the quadratic model is not convex,
minimises the objective of that expansion instead of the exact one).

Only ML uses it: the projection engines' overlap updates (DM, RAAR) and ePIE's
view updates are one-slice algorithms and refuse ``object_slices`` > 1. With S = 1
the state keeps the plain :class:`~.operator.Operator` and an (M, oy, ox) object.
"""

from __future__ import annotations

from ..errors import ParameterError
from ..io.results import projected_object
from ..propagation import NearField
from . import ops
from .operator import Operator

__all__ = ["MultisliceOperator", "make_operator", "with_slices"]


def make_operator(
    backend,
    propagator,
    frame,
    *,
    slices=1,
    thickness_m=None,
    wavelength_m=None,
    pixel_m=None,
    interpolation="linear",
):
    """The state's operator: :class:`~.operator.Operator` for one slice, else a
    :class:`MultisliceOperator` with slices ``thickness_m`` apart; ``interpolation``
    of views at fractional positions, 'linear' or 'fourier'."""
    if slices <= 1:
        return Operator(backend, propagator, frame, interpolation)
    between = NearField(
        frame, distance_m=thickness_m, wavelength_m=wavelength_m, psize_m=pixel_m, backend=backend
    )
    return MultisliceOperator(
        backend, propagator, frame, slices=slices, between=between, interpolation=interpolation
    )


def with_slices(obj, slices, xp):
    """``obj`` with ``slices`` slices: (M, oy, ox) for 1 (the product of the slices),
    else (M, S, oy, ox) with the projected object in slice 1 and ones in the others
    (an object that has ``slices`` slices already is returned as it is)."""
    if slices <= 1:
        return projected_object(obj)
    if obj.ndim == 4 and obj.shape[1] == slices:
        return obj
    flat = projected_object(obj)
    out = xp.ones((flat.shape[0], slices, *flat.shape[1:]), dtype=flat.dtype)
    out[:, 0] = flat
    return out


class MultisliceOperator(Operator):
    """Forward model through ``slices`` object slices (module notes) and its adjoints.

    Parameters
    ----------
    backend, propagator, frame
        As :class:`~.operator.Operator` (``propagator`` takes the exit wave to the detector).
    slices : int
        S > 1.
    between : NearField
        Propagator from one slice to the next (``fw``/``bw``).

    ``obj`` arrays are (M, S, oy, ox); views (B, M, S, sy, sx).
    """

    def __init__(self, backend, propagator, frame, *, slices, between, interpolation="linear"):
        super().__init__(backend, propagator, frame, interpolation)
        self.slices = int(slices)
        self.between = between

    # --- forward -------------------------------------------------------------------------

    def views(self, obj, offsets):
        """(B, M, S, sy, sx) views of every slice of ``obj`` (M, S, oy, ox)."""
        m, s = obj.shape[:2]
        flat = super().views(obj.reshape(m * s, *obj.shape[2:]), offsets)
        return flat.reshape(len(flat), m, s, *flat.shape[-2:])

    def _scatter(self, out, values, offsets):
        """Add (B, M, S, sy, sx) ``values`` into ``out`` (M, S, oy, ox) at the views."""
        m, s = out.shape[:2]
        flat = out.reshape(m * s, *out.shape[2:])
        super()._scatter(flat, values.reshape(len(values), m * s, *values.shape[-2:]), offsets)
        return out

    def incoming(self, views, probe):
        """The waves entering each slice, ``[φ[1], …, φ[S-1]]`` (each (B, M, K, sy, sx)),
        and the exit waves."""
        waves = []
        psi = Operator.product(views[:, :, 0], probe)
        for s in range(1, self.slices):
            phi = self.between.fw(psi, overwrite=True)
            waves.append(phi)
            psi = phi * views[:, :, s, None]
        return waves, psi

    def product(self, views, probe):
        """Exit waves (B, M, K, sy, sx) of views (B, M, S, sy, sx) lit by ``probe``."""
        return self.incoming(views, probe)[1]

    # --- adjoints ------------------------------------------------------------------------

    def adjoint_sample(self, waves, views, probe, offsets, obj_out, probe_out):
        """Add the slices' and the probe's adjoints of sample-plane ``waves``
        (B, M, K, sy, sx) into ``obj_out`` (M, S, oy, ox) and ``probe_out`` (K, sy, sx)."""
        xp = self.backend.xp
        phis, _ = self.incoming(views, probe)
        grads = xp.empty_like(views)
        g = waves
        for s in range(self.slices - 1, -1, -1):
            phi = phis[s - 1] if s else probe[None, None]
            grads[:, :, s] = ops.mode_sum(xp.conj(phi) * g, axis=2)
            g = xp.conj(views[:, :, s, None]) * g
            if s:
                g = self.between.bw(g, overwrite=True)
        self._scatter(obj_out, grads, offsets)
        probe_out += g.sum(axis=(0, 1))
        return obj_out, probe_out

    def adjoint_object(self, waves, probe, offsets, out):
        raise ParameterError(_ONE_SLICE)

    def adjoint_probe(self, waves, views, out=None):
        raise ParameterError(_ONE_SLICE)

    def object_norm(self, probe, offsets, out):
        raise ParameterError(_ONE_SLICE)

    def probe_norm(self, views, out=None):
        raise ParameterError(_ONE_SLICE)

    def adjoint(self, far, probe, views, offsets, obj_out, probe_out):
        """Back-propagate ``far`` to the sample and apply :meth:`adjoint_sample`."""
        waves = self.backpropagate(far, overwrite=True)
        self.adjoint_sample(waves, views, probe, offsets, obj_out, probe_out)
        return waves

    # --- line search ---------------------------------------------------------------------

    def taylor(self, views, hviews, probe, hprobe):
        """First- and second-order terms (a, b) of the exit waves of ``views + t hviews``
        lit by ``probe + t hprobe`` (module notes), each (B, M, K, sy, sx)."""
        c0 = Operator.product(views[:, :, 0], probe)
        c1 = Operator.product(hviews[:, :, 0], probe)
        c1 += Operator.product(views[:, :, 0], hprobe)
        c2 = Operator.product(hviews[:, :, 0], hprobe)
        for s in range(1, self.slices):
            d0, d1, d2 = (self.between.fw(c, overwrite=True) for c in (c0, c1, c2))
            v, h = views[:, :, s, None], hviews[:, :, s, None]
            c2 = d2 * v
            c2 += d1 * h
            c1 = d1 * v
            c1 += d0 * h
            c0 = d0 * v
        return c1, c2


_ONE_SLICE = (
    "object_slices > 1: the one-slice adjoints and normalisers (DM, RAAR, ePIE) do not "
    "apply to a multislice object; use ML, or object_slices 1"
)
