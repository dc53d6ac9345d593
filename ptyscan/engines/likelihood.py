"""Noise models and line-search helpers of the ML engine (pure functions of arrays).

``q`` are model intensities (B, sy, sx), ``data`` the counts, ``mask`` 0/1 and
``R`` the intensity renormalisation; see :mod:`ptyscan.engines.ml` for the models.
"""

from __future__ import annotations

from itertools import combinations_with_replacement
from math import factorial

import numpy as np

from .ops import frame_sum, mode_sum

__all__ = [
    "argmin",
    "compose",
    "gaussian_weights",
    "lgamma_sums",
    "line_values",
    "noise_model",
    "re_dot",
    "safeguarded_newton",
    "taylor_terms",
]

EPS = 1e-6  # added to model intensities/amplitudes before dividing (ptypy's value)


def re_dot(a, b):
    """Re(a conj(b)) summed over the mode axes (1, 2): (B, sy, sx)."""
    out = a.real * b.real
    out += a.imag * b.imag
    return mode_sum(out)


def noise_model(xp, kind, q, data, mask, R, weights=None, curvature=False):
    """Per-pixel ``dL/dq``, per-frame ``L`` (float64) and, if asked, ``½ d²L/dq²``.

    ``q`` (B, sy, sx) are model intensities; ``weights`` the Gaussian weights if
    precomputed. Inputs are not modified.
    """
    curv = None
    if kind == "gaussian":
        w = R * mask / (1.0 / R + data) if weights is None else weights
        diff = q - data
        grad = w * diff
        loglik = frame_sum(xp, grad * diff)
        grad *= 2
        if curvature:
            curv = xp.broadcast_to(w, q.shape)
        return grad, loglik, curv
    if kind == "poisson":
        qe = R * q + EPS
        ratio = R * data / qe
        loglik = frame_sum(xp, mask * (qe - R * data * xp.log(qe)))
        if curvature:
            curv = 0.5 * mask * R * ratio * (R / qe)
        return mask * R * (1 - ratio), loglik, curv
    amp_model = xp.sqrt(R * q + EPS**2)
    amp_data = xp.sqrt(R * data)
    loglik = frame_sum(xp, mask * (amp_model - amp_data) ** 2)
    ratio = amp_data / amp_model
    if curvature:
        curv = 0.25 * mask * R * ratio * (R / amp_model**2)
    return mask * R * (1 - ratio), loglik, curv


def taylor_terms(xp, kind, q0, data, mask, R):
    """Per-pixel Taylor coefficients [g0, g1, g2] of the noise model at intensity q0.

    Exact for 'gaussian' (a quadratic in q).
    """
    if kind == "gaussian":
        w = R * mask / (1.0 / R + data)
        diff = q0 - data
        return [w * diff**2, 2 * w * diff, w]
    if kind == "poisson":
        q = R * q0 + EPS
        ratio = R * data / q
        return [
            mask * (q - R * data * xp.log(q)),
            mask * R * (1 - ratio),
            0.5 * mask * R * ratio * (R / q),
        ]
    s = xp.sqrt(R * q0 + EPS**2)
    a = xp.sqrt(R * data)
    return [mask * (s - a) ** 2, mask * R * (1 - a / s), 0.25 * mask * R * (a / s) * (R / s**2)]


def compose(xp, derivs, A, degree):
    """Σ_pixels Σ_k g_k δ(t)^k truncated at ``degree``, δ = Σ_j A_j t^j (j ≥ 1)."""
    out = xp.zeros(degree + 1, dtype=np.float64)
    out[0] = xp.sum(derivs[0], dtype=np.float64)
    powers = range(1, len(A) + 1)
    for k in range(1, len(derivs)):
        for combo in combinations_with_replacement(powers, k):
            j = sum(combo)
            if j > degree:
                continue
            prod = derivs[k]
            for p in combo:
                prod = prod * A[p - 1]
            out[j] += _multinomial(combo) * xp.sum(prod, dtype=np.float64)
    return out


def _multinomial(combo):
    counts = {}
    for p in combo:
        counts[p] = counts.get(p, 0) + 1
    result = factorial(len(combo))
    for c in counts.values():
        result //= factorial(c)
    return result


def line_values(xp, kind, terms, t, data, mask, R):
    """(L, dL/dt, d²L/dt²) (device, float64) of the data term at step ``t`` of a block."""
    q = terms[4] * t + terms[3]
    dq = 4 * terms[4] * t + 3 * terms[3]
    ddq = 12 * terms[4] * t + 6 * terms[3]
    for j in (2, 1):
        q = q * t + terms[j]
        if j == 2:
            dq = dq * t + 2 * terms[2]
            ddq = ddq * t + 2 * terms[2]
        else:
            dq = dq * t + terms[1]
    q = q * t + terms[0]
    q = xp.maximum(q, 0)  # |f + t a + t² b|² ≥ 0 (rounding)
    if kind == "poisson":
        Q = R * q + EPS
        rd = R * data
        g = mask * (Q - rd * xp.log(Q))
        g1 = mask * R * (1 - rd / Q)
        g2 = mask * R * R * rd / Q**2
    else:
        sq = xp.sqrt(R * q + EPS**2)
        a = xp.sqrt(R * data)
        g = mask * (sq - a) ** 2
        g1 = mask * R * (1 - a / sq)
        g2 = mask * R * R * a / (2 * sq**3)
    out = xp.zeros(3, dtype=np.float64)
    out[0] = xp.sum(g)
    out[1] = xp.sum(g1 * dq)
    out[2] = xp.sum(g2 * dq * dq + g1 * ddq)
    return out


def safeguarded_newton(phi, guess, *, steps=12):
    """Minimise a smooth 1-D function given (value, slope, curvature) = phi(t).

    Newton steps where the curvature is positive, otherwise a doubling step downhill;
    every accepted step lowers the value (halving when it would not).
    """
    t, (value, slope, curv) = 0.0, phi(0.0)
    # first downhill trial without curvature: the quadratic guess, else the step whose
    # linear decrease would be a tenth of the objective
    scale = abs(guess) if np.isfinite(guess) and guess != 0 else 0.1 * abs(value / slope)
    for _ in range(steps):
        if slope == 0:
            break
        step = -slope / curv if curv > 0 else -np.sign(slope) * (2 * abs(t) if t else scale)
        for _ in range(40):
            trial = phi(t + step)
            if np.isfinite(trial[0]) and trial[0] <= value:
                break
            step *= 0.5
        else:
            break
        t += step
        value, slope, curv = trial
        if abs(step) <= 1e-6 * abs(t):
            break
    return t


def argmin(coeffs, kind):
    """The step t minimising the polynomial ``coeffs`` (ascending powers)."""
    c = np.asarray(coeffs, np.float64)
    quadratic = float(-0.5 * c[1] / c[2]) if c[2] > 0 else np.nan
    if kind == "quadratic" or len(c) == 3:
        return quadratic
    deriv = np.polynomial.polynomial.polyder(c)
    second = np.polynomial.polynomial.polyder(deriv)
    roots = np.polynomial.polynomial.polyroots(deriv)
    real = roots[np.abs(roots.imag) <= 1e-8 * np.maximum(1.0, np.abs(roots.real))].real
    real = real[np.polynomial.polynomial.polyval(real, second) > 0]
    if len(real) == 0:
        return quadratic
    values = np.polynomial.polynomial.polyval(real, c)
    return float(real[np.argmin(values)])


def gaussian_weights(backend, data, mask, R):
    """``R m / (1/R + I)``: the Gaussian model's weights (per view, or per block)."""
    return (R * mask / (1.0 / R + data)).astype(backend.real_dtype)


def lgamma_sums(backend, vs, R):
    """Σ m log Γ(R I + 1) per frame (host float64), the data-only Poisson term."""
    from scipy.special import gammaln

    data = backend.to_host(vs.data).astype(np.float64)
    mask = backend.to_host(vs.mask).astype(np.float64)
    return (mask * gammaln(R * data + 1)).sum(axis=(-2, -1))
