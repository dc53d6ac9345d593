"""ML's numba kernels (the Gaussian noise model, no mask, no floating intensities).

The block passes of :mod:`.ml_cpu` call them; each does one block's work in one call
without the GIL, reading each array once (:mod:`.cpu_kernels` says why, and holds the
compiler settings and the offset check they share):

* :func:`ml_gaussian`: the gradient field ``xi = far · dL/dq`` with the objective and
  the 'fourier' error;
* :func:`ml_adjoint`: both gradient sums of a block, ``Σ conj(P) · xi_b`` into the
  object's gradient and ``Σ conj(O_b) · xi_b`` into the probe's, in one pass over ``xi``
  (the object and probe sums of :mod:`.cpu_kernels` would read it twice);
* :func:`ml_taylor`, :func:`ml_curvature`: the line search's curvature terms.

The product kernels work on the complex arrays' interleaved real views (real and
imaginary parts as neighbours in memory): numba vectorises the real arithmetic, where
its complex products were measured 1.5-2x slower. Sums are accumulated in float64 (a
row of products in the arrays' precision first where noted).
``tests/engines/test_eng_cpu_kernels.py`` compares each with the array code.
"""

from __future__ import annotations

import numpy as np

from .cpu_kernels import checked_offsets, jit

__all__ = ["ml_adjoint", "ml_curvature", "ml_gaussian", "ml_taylor"]


def _real(a):
    """A complex array's interleaved real view: (..., n) complex as (..., 2 n) real."""
    return a.view(a.real.dtype)


@jit
def _ml_gaussian(far, data, coef, xi, sums):
    # coef: R, 1/R, 2 in the data's precision; weights R / (1/R + I), modulus sqrt(I)
    nb, sy, sx = data.shape
    rr, rinv, two = coef[0], coef[1], coef[2]
    for k in range(nb):
        loglik = 0.0
        fourier = 0.0
        for i in range(sy):
            frow, xrow, drow = far[k, i], xi[k, i], data[k, i]
            for j in range(sx):
                f = frow[j]
                w = rr / (rinv + drow[j])
                q = f.real * f.real + f.imag * f.imag
                diff = q - drow[j]
                loglik += w * diff * diff
                dev = np.sqrt(q) - np.sqrt(drow[j])
                fourier += dev * dev
                g = two * w * diff
                xrow[j] = complex(f.real * g, f.imag * g)
        sums[0] += loglik
        sums[1] += fourier / (sy * sx)


def _ml_coef(data, R):
    return np.array([R, 1.0 / R, 2.0], dtype=data.dtype)


def ml_gaussian(far, data, R, xi):
    """The Gaussian model's gradient field of a block: ``xi = far · dL/dq`` with
    ``dL/dq = 2 w (|far|² - I)``, ``w = R / (1/R + I)`` (no mask; ``xi`` (B, sy, sx)
    written), and the (2,) float64 sums over its views of ``L = Σ w (|far|² - I)²`` and
    of the 'fourier' error ``mean (|far| - sqrt(I))²`` (``engines/ml.py``)."""
    sums = np.zeros(2)
    _ml_gaussian(far, data, _ml_coef(data, R), xi, sums)
    return sums


@jit
def _ml_adjoint(xi, obj, probe, off, g_o, g_p):
    # all real views: (.., 2 sx) with re, im interleaved
    sy, sx = probe.shape[0], probe.shape[1] // 2
    for bv in range(off.shape[0]):
        y, x = off[bv, 0], 2 * off[bv, 1]
        for i in range(sy):
            orow, grow = obj[y + i, x : x + 2 * sx], g_o[y + i, x : x + 2 * sx]
            prow, qrow, wrow = probe[i], g_p[i], xi[bv, i]
            for j in range(sx):
                wre, wim = wrow[2 * j], wrow[2 * j + 1]
                pre, pim, ore, oim = prow[2 * j], prow[2 * j + 1], orow[2 * j], orow[2 * j + 1]
                grow[2 * j] += pre * wre + pim * wim
                grow[2 * j + 1] += pre * wim - pim * wre
                qrow[2 * j] += ore * wre + oim * wim
                qrow[2 * j + 1] += ore * wim - oim * wre


def ml_adjoint(xi, obj, probe, offsets, g_o, g_p):
    """Add ``conj(P) · xi_b`` into ``g_o`` (oy, ox) at each view and ``conj(O[view b]) ·
    xi_b`` into ``g_p`` (sy, sx): ``xi`` (B, sy, sx), ``obj`` (oy, ox), ``probe`` (sy, sx),
    ``offsets`` (B, 2); all contiguous, of one precision."""
    off = checked_offsets(offsets, probe.shape, obj.shape)
    _ml_adjoint(*map(_real, (xi, obj, probe)), off, _real(g_o), _real(g_p))


@jit
def _ml_taylor(obj, hobj, probe, hprobe, off, xi, first, sums):
    # all real views; the cross term summed by rows in the arrays' precision
    sy, sx = probe.shape[0], probe.shape[1] // 2
    for bv in range(off.shape[0]):
        y, x = off[bv, 0], 2 * off[bv, 1]
        cross = 0.0
        for i in range(sy):
            orow, hrow = obj[y + i, x : x + 2 * sx], hobj[y + i, x : x + 2 * sx]
            prow, qrow, xrow, arow = probe[i], hprobe[i], xi[bv, i], first[bv, i]
            row = xrow[0] * 0
            for j in range(sx):
                ore, oim, hre, him = orow[2 * j], orow[2 * j + 1], hrow[2 * j], hrow[2 * j + 1]
                pre, pim, qre, qim = prow[2 * j], prow[2 * j + 1], qrow[2 * j], qrow[2 * j + 1]
                arow[2 * j] = hre * pre - him * pim + ore * qre - oim * qim
                arow[2 * j + 1] = hre * pim + him * pre + ore * qim + oim * qre
                sre, sim = hre * qre - him * qim, hre * qim + him * qre
                row += xrow[2 * j] * sre + xrow[2 * j + 1] * sim
            cross += row
        sums[0] += 2.0 * cross


def ml_taylor(obj, hobj, probe, hprobe, offsets, xi, first):
    """Along the line ``O + t hO``, ``P + t hP``: the exit waves' first-order term
    ``first = hO_b · P + O_b · hP`` (B, sy, sx, written) and ``2 Re<xi, hO_b · hP>`` summed
    over the views (the second-order term's share of the curvature, ``engines/ml.py``)."""
    sums = np.zeros(1)
    off = checked_offsets(offsets, probe.shape, obj.shape)
    _ml_taylor(*map(_real, (obj, hobj, probe, hprobe)), off, _real(xi), _real(first), sums)
    return sums[0]


@jit
def _ml_curvature(far, first, data, coef, sums):
    nb, sy, sx = data.shape
    rr, rinv = coef[0], coef[1]
    for k in range(nb):
        total = 0.0
        for i in range(sy):
            frow, arow, drow = far[k, i], first[k, i], data[k, i]
            for j in range(sx):
                f, a = frow[j], arow[j]
                w = rr / (rinv + drow[j])
                dldq = 2.0 * w * (f.real * f.real + f.imag * f.imag - drow[j])
                m1 = 2.0 * (f.real * a.real + f.imag * a.imag)
                total += dldq * (a.real * a.real + a.imag * a.imag) + w * m1 * m1
        sums[0] += total


def ml_curvature(far, first, data, R):
    """``Σ dL/dq |A|² + w (2 Re(far · conj A))²`` over a block (``A = fw(first)``, all
    (B, sy, sx); no mask): the first-order term's share of the Gaussian curvature along
    the line."""
    sums = np.zeros(1)
    _ml_curvature(far, first, data, _ml_coef(data, R), sums)
    return sums[0]
