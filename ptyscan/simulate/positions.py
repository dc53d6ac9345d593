"""Transforms of scan positions: jitter, drift, scale, PtyRAD affine and flips.

Positions are ``(N, 2)`` float64 metres, columns ``(y, x)`` (slow, fast).
A 2x2 matrix ``M`` acts on each position as a column vector: ``p' = M @ p``.

PtyRAD/PtychoShelves affine: ``M = scale * A(asymmetry) @ R(rotation) @ S(shear)``::

    A = [[1 + asym/2, 0], [0, 1 - asym/2]]
    R = [[cos r, sin r], [-sin r, cos r]]
    S = [[1, 0], [tan s, 1]]

with ``r`` and ``s`` in degrees. ``flipT = [flipud, fliplr, transpose]``
negates y, negates x, then swaps the columns (positions are centred, so a
flip is a sign change).
"""

from __future__ import annotations

import math

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.simulate.patterns import positions_from_array

__all__ = [
    "add_jitter",
    "affine_matrix",
    "apply_affine",
    "decompose_affine",
    "flip_transpose",
    "reported_positions",
]


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ParameterError(f"rng: got {rng!r}; expected a numpy.random.Generator or an int seed.")


def _pair(name, value):
    arr = np.asarray(value, dtype=np.float64)
    arr = np.array([arr, arr]) if arr.ndim == 0 else arr
    if arr.shape != (2,) or not np.all(np.isfinite(arr)) or isinstance(value, bool):
        raise ParameterError(f"{name}: got {value!r}; expected a finite number or a pair (y, x).")
    return arr


def add_jitter(positions, *, std_m, rng):
    """Add independent Gaussian errors of standard deviation ``std_m`` (per axis) to positions.

    Returns a new ``(N, 2)`` array; ``std_m`` is a float or a pair ``(y, x)``, >= 0.
    """
    pos = positions_from_array(positions)
    std = _pair("std_m", std_m)
    if np.any(std < 0):
        raise ParameterError(f"std_m: got {std_m!r}; expected values >= 0.")
    return pos + _rng(rng).standard_normal(pos.shape) * std


def reported_positions(true_positions, *, noise_m=0.0, scale=0.0, drift_m=0.0, rng=None):
    """Positions as an instrument would report them, from the true ones.

    ``reported[i] = (1 + scale) * true[i] + i * drift_m + N(0, noise_m**2)``.

    Parameters
    ----------
    true_positions : (N, 2) array_like of float
        True positions in metres.
    noise_m : float or (float, float)
        Standard deviation of the random error per axis, metres, >= 0.
    scale : float or (float, float)
        Relative scale error per axis (0.01: reported 1 % too large), > -1.
    drift_m : float or (float, float)
        Drift per frame in metres (frame ``i`` is off by ``i * drift_m``).
    rng : numpy.random.Generator or int, optional
        Needed when ``noise_m`` is not 0.

    Returns
    -------
    (N, 2) ndarray of float64
    """
    pos = positions_from_array(true_positions)
    scale_pair = _pair("scale", scale)
    if np.any(scale_pair <= -1):
        raise ParameterError(f"scale: got {scale!r}; expected values > -1.")
    out = pos * (1.0 + scale_pair) + np.arange(len(pos))[:, None] * _pair("drift_m", drift_m)
    noise = _pair("noise_m", noise_m)
    if np.any(noise < 0):
        raise ParameterError(f"noise_m: got {noise_m!r}; expected values >= 0.")
    if np.any(noise > 0):
        if rng is None:
            raise ParameterError("rng: noise_m > 0 is random; pass rng (a Generator or a seed).")
        out += _rng(rng).standard_normal(pos.shape) * noise
    return out


def affine_matrix(scale=1.0, asymmetry=0.0, rotation_deg=0.0, shear_deg=0.0):
    """The PtyRAD/PtychoShelves affine matrix (see the module notes), (2, 2) float64."""
    values = (scale, asymmetry, rotation_deg, shear_deg)
    if not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in values):
        raise ParameterError(
            f"affine: got {values!r}; expected four finite numbers "
            "[scale, asymmetry, rotation_deg, shear_deg]."
        )
    r, s = math.radians(rotation_deg), math.radians(shear_deg)
    a = np.diag([1.0 + asymmetry / 2.0, 1.0 - asymmetry / 2.0])
    rot = np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
    shear = np.array([[1.0, 0.0], [math.tan(s), 1.0]])
    return float(scale) * a @ rot @ shear


def decompose_affine(matrix):
    """Inverse of :func:`affine_matrix`: ``(scale, asymmetry, rotation_deg, shear_deg)``.

    ``M @ S(shear)**-1`` must have orthogonal rows (``scale * A @ R``); the
    shear solving that (a quadratic, the root of smallest size) gives the
    rest. Needs ``scale > 0``, ``|asymmetry| < 2`` and no reflection.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 2) or not np.all(np.isfinite(m)) or np.linalg.det(m) <= 0:
        raise ParameterError(
            f"matrix: got {matrix!r}; expected a finite 2x2 matrix with positive determinant."
        )
    (m00, m01), (m10, m11) = m
    # rows (m00 - t m01, m01) and (m10 - t m11, m11) orthogonal:
    coeffs = [m01 * m11, -(m00 * m11 + m01 * m10), m00 * m10 + m01 * m11]
    roots = np.roots(coeffs) if abs(coeffs[0]) > 1e-15 else np.array([-coeffs[2] / coeffs[1]])
    t = min((r.real for r in np.atleast_1d(roots) if abs(r.imag) < 1e-9), key=abs)
    row0 = np.array([m00 - t * m01, m01])
    row1 = np.array([m10 - t * m11, m11])
    p, q = np.linalg.norm(row0), np.linalg.norm(row1)
    rotation = math.degrees(math.atan2(row0[1], row0[0]))
    scale = (p + q) / 2.0
    return float(scale), float((p - q) / scale), rotation, math.degrees(math.atan(t))


def apply_affine(positions, affine):
    """Apply an affine transform to positions about the origin.

    Parameters
    ----------
    positions : (N, 2) array_like of float
        Positions ``(y, x)`` in metres.
    affine : (2, 2) array_like or sequence of 4 floats
        A matrix, or ``[scale, asymmetry, rotation_deg, shear_deg]`` (PtyRAD's ``scan_affine``).

    Returns
    -------
    (N, 2) ndarray of float64
    """
    pos = positions_from_array(positions)
    arr = np.asarray(affine, dtype=np.float64)
    matrix = affine_matrix(*arr.tolist()) if arr.shape == (4,) else arr
    if matrix.shape != (2, 2):
        raise ParameterError(
            f"affine: got {affine!r}; expected a 2x2 matrix or [scale, asymmetry, rotation, shear]."
        )
    return pos @ matrix  # row vectors, as PtyRAD (and StemScan's pos_scan_affine)


def flip_transpose(positions, flip_t):
    """PtyRAD's ``flipT = [flipud, fliplr, transpose]`` on centred positions.

    Parameters
    ----------
    positions : (N, 2) array_like of float
    flip_t : sequence of 3 bools or 0/1
        Negate y, negate x, then swap the columns.

    Returns
    -------
    (N, 2) ndarray of float64
    """
    pos = positions_from_array(positions)
    flags = list(np.ravel(flip_t)) if flip_t is not None else []
    if len(flags) != 3 or any(f not in (0, 1, True, False) for f in flags):
        raise ParameterError(
            f"flipT: got {flip_t!r}; expected three flags [flipud, fliplr, transpose] (0 or 1)."
        )
    if flags[0]:
        pos[:, 0] *= -1
    if flags[1]:
        pos[:, 1] *= -1
    if flags[2]:
        pos = pos[:, ::-1].copy()
    return pos
