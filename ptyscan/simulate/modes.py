"""Mixed-state (multi-mode) probes: orthogonal modes with prescribed powers.

A partially coherent probe is a set of mutually orthogonal modes whose
intensities add (``I = sum_k |P_k|**2``). :func:`mixed_state_probe` keeps the
given probe's shape as mode 0, derives further modes from it (Hermite-Gauss
polynomial factors, or random phase screens as ptypy's ``diversity.noise``),
Gram-Schmidt orthogonalises them in order and scales every mode to its
power. Powers are given as in PtyRAD's documentation (each extra mode's
fraction of the total intensity, the main mode holding the rest) or, with
``relative_to='main'``, as ptypy's ``diversity.power`` (relative to mode 0).
:func:`orthogonalize_modes` is the usual eigen-decomposition of a set of
modes (ptypy, PtyRAD): the same incoherent sum, orthogonal modes sorted by power.
"""

from __future__ import annotations

import math

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.simulate.samples import noise_transmission, noise_transmission_kwargs

__all__ = ["mixed_state_probe", "mode_fractions", "orthogonalize_modes"]


def mode_fractions(n_modes, powers, *, relative_to="total"):
    """Fraction of the total intensity in each mode.

    Parameters
    ----------
    n_modes : int
        Number of modes K, >= 1.
    powers : float or sequence of float
        Power of modes 1..K-1 (a shorter list repeats its last value).
    relative_to : {'total', 'main'}
        'total': each value is that mode's fraction of the total (PtyRAD's
        ``pmode_init_pows``; their sum must be < 1, mode 0 holds the rest);
        'main': each value is relative to mode 0 (ptypy's ``diversity.power``).

    Returns
    -------
    (K,) ndarray of float64
        Fractions summing to 1.
    """
    if isinstance(n_modes, bool) or not isinstance(n_modes, (int, np.integer)) or n_modes < 1:
        raise ParameterError(f"n_modes: got {n_modes!r}; expected an int >= 1.")
    values = np.atleast_1d(np.asarray(powers, dtype=float)) if n_modes > 1 else np.zeros(0)
    if n_modes > 1:
        if values.ndim != 1 or values.size == 0:
            raise ParameterError(f"powers: got {powers!r}; expected a number or a list.")
        values = np.concatenate([values, np.repeat(values[-1], max(0, n_modes - 1 - values.size))])
        values = values[: n_modes - 1]
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ParameterError(f"powers: got {powers!r}; expected positive finite values.")
    if relative_to == "total":
        if values.sum() >= 1.0:
            raise ParameterError(
                f"powers: got {powers!r} summing to {values.sum():.3g} for {n_modes - 1} extra "
                "modes; expected a sum < 1 (each is a fraction of the total intensity)."
            )
        return np.concatenate([[1.0 - values.sum()], values])
    if relative_to == "main":
        weights = np.concatenate([[1.0], values])
        return weights / weights.sum()
    raise ParameterError(f"relative_to: got {relative_to!r}; expected 'total' or 'main'.")


def _hermite(order, t):
    """Physicists' Hermite polynomial H_order(t)."""
    previous, current = np.ones_like(t), 2.0 * t
    if order == 0:
        return previous
    for k in range(1, order):
        previous, current = current, 2.0 * t * current - 2.0 * k * previous
    return current


def _hermite_orders(count):
    """(i, j) pairs by total degree: (0, 1), (1, 0), (1, 1), (0, 2), (2, 0), ..."""
    orders, degree = [], 1
    while len(orders) < count:
        for i in range(degree + 1):
            j = degree - i
            if len(orders) < count and (i, j) != (0, 0):
                orders.append((i, j) if degree % 2 else (j, i))
        degree += 1
    return orders


def _hermite_factors(probe, count):
    intensity = np.abs(probe) ** 2
    total = intensity.sum()
    y, x = np.indices(probe.shape, dtype=np.float64)
    cy, cx = (intensity * y).sum() / total, (intensity * x).sum() / total
    wy = math.sqrt(max((intensity * (y - cy) ** 2).sum() / total, 1e-12))
    wx = math.sqrt(max((intensity * (x - cx) ** 2).sum() / total, 1e-12))
    ty, tx = (y - cy) / wy, (x - cx) / wx
    return [_hermite(i, ty) * _hermite(j, tx) for i, j in _hermite_orders(count)]


def _shifted(field, shift_px):
    """Shift a field by (dy, dx) pixels with a Fourier phase ramp (periodic)."""
    ny, nx = field.shape
    ramp = np.exp(
        -2j
        * math.pi
        * (np.fft.fftfreq(ny)[:, None] * shift_px[0] + np.fft.fftfreq(nx)[None, :] * shift_px[1])
    )
    return np.fft.ifft2(np.fft.fft2(field) * ramp)


def mixed_state_probe(
    probe,
    *,
    n_modes,
    powers=0.02,
    relative_to="total",
    method="hermite",
    noise=(0.5, 1.0),
    shift_px=None,
    rng=None,
):
    """K orthogonal probe modes with the given powers, mode 0 shaped like ``probe``.

    Parameters
    ----------
    probe : (ny, nx) array_like of complex
        Main mode; the modes together keep its total intensity ``sum(|probe|**2)``.
    n_modes : int
        Number of modes K, >= 1.
    powers : float or sequence of float
        Powers of modes 1..K-1, see :func:`mode_fractions`.
    relative_to : {'total', 'main'}
        How ``powers`` are read, see :func:`mode_fractions`.
    method : {'hermite', 'noise'}
        Extra modes from the main mode times Hermite-Gauss polynomials (of its
        RMS widths, deterministic), or times random phase/modulus screens
        ``noise = (phase_rms, mfs[, modulus_rms, modulus_mfs])`` (ptypy).
    noise : tuple
        Screens of the 'noise' method (mfs in pixels).
    shift_px : float or (float, float), optional
        Mode k is shifted by ``k * shift_px`` pixels before orthogonalisation.
    rng : numpy.random.Generator or int, optional
        Random source of the 'noise' method.

    Returns
    -------
    (K, ny, nx) ndarray of complex64
        Orthogonal modes (``<P_j, P_k> = 0``) with ``sum(|P_k|**2) = f_k * total``.
    """
    main = np.asarray(probe, dtype=np.complex128)
    if main.ndim != 2:
        raise ParameterError(f"probe: got shape {main.shape}; expected (ny, nx).")
    total = float(np.sum(np.abs(main) ** 2))
    if not (math.isfinite(total) and total > 0):
        raise ParameterError("probe: expected a finite, non-zero probe.")
    fractions = mode_fractions(n_modes, powers, relative_to=relative_to)
    if method == "hermite":
        factors = _hermite_factors(main, n_modes - 1)
    elif method == "noise":
        if rng is None:
            raise ParameterError("rng: method='noise' is random; pass rng (a Generator or seed).")
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        kwargs = noise_transmission_kwargs(noise, expected="(rms, mfs[, rms_mod, mfs_mod])")
        factors = [noise_transmission(main.shape, rng=rng, **kwargs) for _ in range(n_modes - 1)]
    else:
        raise ParameterError(f"method: got {method!r}; expected 'hermite' or 'noise'.")
    shift = None if shift_px is None else np.broadcast_to(np.asarray(shift_px, float), (2,))
    modes = [main / math.sqrt(total)]
    for k, factor in enumerate(factors, start=1):
        candidate = main * factor
        if shift is not None:
            candidate = _shifted(candidate, k * shift)
        for previous in modes:
            candidate = candidate - np.vdot(previous, candidate) * previous
        norm = math.sqrt(float(np.sum(np.abs(candidate) ** 2)))
        if not norm > 1e-9 * math.sqrt(total):
            raise ParameterError(
                f"n_modes: mode {k} is not independent of the previous ones; use fewer modes "
                "or method='noise'."
            )
        modes.append(candidate / norm)
    out = np.stack(modes) * np.sqrt(fractions * total)[:, None, None]
    return out.astype(np.complex64)


def orthogonalize_modes(modes):
    """Orthogonal modes with the same incoherent sum, sorted by decreasing power.

    The eigen-decomposition of the modes' Gram matrix: for modes ``P_k`` the
    returned ``Q_j`` satisfy ``sum_j |Q_j><Q_j| = sum_k |P_k><P_k|`` (so the
    intensity ``sum |.|**2`` is unchanged pixel by pixel) and
    ``<Q_i, Q_j> = 0`` for ``i != j``.

    Parameters
    ----------
    modes : (K, ny, nx) array_like of complex

    Returns
    -------
    (K, ny, nx) ndarray, the input's complex dtype (complex64 for real input)
    """
    arr = np.asarray(modes)
    if arr.ndim != 3:
        raise ParameterError(f"modes: got shape {arr.shape}; expected (K, ny, nx).")
    dtype = arr.dtype if np.iscomplexobj(arr) else np.complex64
    flat = arr.reshape(arr.shape[0], -1).astype(np.complex128)
    gram = flat.conj() @ flat.T  # gram[i, j] = <P_i, P_j>
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    out = vectors[:, order].T @ flat  # Q_j = sum_k v_kj P_k
    return out.reshape(arr.shape).astype(dtype)
