"""Scan patterns: where the probe visits the sample.

Positions are ``(N, 2)`` float64 arrays in metres, column 0 the slow
(vertical, y) axis and column 1 the fast (horizontal, x) axis, as in ptypy.
Every pattern is deterministic and centred on ``(0, 0)``. Count-based
generators (:func:`round_positions`, :func:`raster_positions`,
:func:`spiral_positions`) serve the MoonFlower scans; extent-based ones
(:func:`raster_grid`, :func:`round_within`, :func:`spiral_within`) and
:func:`positions_from_pars` follow ptypy's ``xy`` parameters (model,
spacing, steps, extent, offset, count, override). Errors and distortions
(jitter, drift, scale, affine, flips) are in
:mod:`ptyscan.simulate.positions`.
"""

from __future__ import annotations

import math

import numpy as np

from ptyscan.errors import ParameterError

__all__ = [
    "GOLDEN_ANGLE_RAD",
    "SCAN_MODELS",
    "positions_by_model",
    "positions_from_array",
    "positions_from_pars",
    "raster_grid",
    "raster_positions",
    "round_positions",
    "round_within",
    "spiral_positions",
    "spiral_within",
]

SCAN_MODELS = ("round", "raster", "spiral")
"""Names accepted by :func:`positions_by_model`."""


def _check_count(count):
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ParameterError(
            f"count: got {count!r}; expected a positive int (the number of scan points). "
            "Hint: e.g. count=100."
        )
    return int(count)


def _check_spacing(spacing_m):
    try:
        spacing = float(spacing_m)
    except (TypeError, ValueError):
        spacing = float("nan")
    if isinstance(spacing_m, bool) or not (math.isfinite(spacing) and spacing > 0):
        raise ParameterError(
            f"spacing_m: got {spacing_m!r}; expected a positive finite step in metres. "
            "Hint: e.g. spacing_m=1e-6 for a 1 um step."
        )
    return spacing


def round_positions(count, *, spacing_m):
    """Concentric shells, like ptypy's round scan.

    Shell ``k`` (radius ``k * spacing_m``) holds ``round(2 * pi * k)`` points
    at angles ``2 * pi * j / n_k`` (``j = 0 .. n_k - 1``, measured from the
    +x axis towards +y), so neighbours on a shell are about ``spacing_m``
    apart; shell 0 is the single centre point. Shells are filled in order
    and the last one is truncated so that exactly ``count`` points are
    returned.

    Parameters
    ----------
    count : int
        Number of positions, >= 1.
    spacing_m : float
        Radial step between shells (and about the step along a shell), in
        metres, > 0.

    Returns
    -------
    (count, 2) ndarray of float64
        Positions ``(y, x)`` in metres; the first is ``(0, 0)``.
    """
    count = _check_count(count)
    spacing = _check_spacing(spacing_m)
    shells = [np.zeros((1, 2))]
    total, k = 1, 0
    while total < count:
        k += 1
        n_k = round(2.0 * math.pi * k)
        angles = 2.0 * math.pi * np.arange(n_k) / n_k
        shells.append(k * spacing * np.stack([np.sin(angles), np.cos(angles)], axis=1))
        total += n_k
    return np.concatenate(shells)[:count]


def raster_positions(count, *, spacing_m):
    """A square-ish grid, row by row, centred on the origin.

    The grid has ``ceil(sqrt(count))`` columns and as many rows as needed;
    points are taken row by row (y slow, x fast, both increasing) and the
    first ``count`` are returned. The full grid, not the truncated set, is
    centred on ``(0, 0)``, so the bounding box of the points is centred too.

    Parameters
    ----------
    count : int
        Number of positions, >= 1.
    spacing_m : float
        Grid step in metres along both axes, > 0.

    Returns
    -------
    (count, 2) ndarray of float64
        Positions ``(y, x)`` in metres.
    """
    count = _check_count(count)
    spacing = _check_spacing(spacing_m)
    n_cols = math.ceil(math.sqrt(count))
    n_rows = math.ceil(count / n_cols)
    rows, cols = np.divmod(np.arange(count), n_cols)
    y = (rows - (n_rows - 1) / 2.0) * spacing
    x = (cols - (n_cols - 1) / 2.0) * spacing
    return np.stack([y, x], axis=1).astype(np.float64)


def positions_by_model(model, count, *, spacing_m):
    """Positions from a scan model name.

    Parameters
    ----------
    model : str
        One of :data:`SCAN_MODELS`: ``'round'`` (:func:`round_positions`),
        ``'raster'`` (:func:`raster_positions`) or ``'spiral'``
        (:func:`spiral_positions`).
    count : int
        Number of positions, >= 1.
    spacing_m : float
        Step in metres, > 0.

    Returns
    -------
    (count, 2) ndarray of float64
        Positions ``(y, x)`` in metres.
    """
    if model == "round":
        return round_positions(count, spacing_m=spacing_m)
    if model == "raster":
        return raster_positions(count, spacing_m=spacing_m)
    if model == "spiral":
        return spiral_positions(count, spacing_m=spacing_m)
    raise ParameterError(
        f"model: got {model!r}; expected one of {', '.join(repr(m) for m in SCAN_MODELS)}. "
        "Hint: 'round' gives concentric shells, 'raster' a square grid, 'spiral' a Fermat spiral."
    )


GOLDEN_ANGLE_RAD = math.pi * (3.0 - math.sqrt(5.0))
"""The golden angle (about 137.5 degrees), the turn between Fermat-spiral points."""

_SPIRAL_STEP = 1.68
"""Median nearest-neighbour distance of a Fermat spiral in units of its constant c
(measured for 300 to 10 000 points: the median within 1.5 %, 80 % of the distances within 4 %)."""


def spiral_positions(count, *, spacing_m):
    """A Fermat (sunflower) spiral: ``r_k = c sqrt(k)``, ``theta_k = k * golden angle``.

    Every point covers the same area ``pi c**2``, so the density is uniform;
    ``c = spacing_m / 1.68`` makes the median nearest-neighbour distance
    ``spacing_m``. Point 0 is the centre.

    Parameters
    ----------
    count : int
        Number of positions, >= 1.
    spacing_m : float
        Median distance between nearest neighbours in metres, > 0.

    Returns
    -------
    (count, 2) ndarray of float64
        Positions ``(y, x)`` in metres.
    """
    count = _check_count(count)
    c = _check_spacing(spacing_m) / _SPIRAL_STEP
    k = np.arange(count, dtype=np.float64)
    r, theta = c * np.sqrt(k), k * GOLDEN_ANGLE_RAD
    return np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)


def _pair(name, value, *, positive=True, integer=False):
    arr = np.asarray(value, dtype=np.float64) if value is not None else np.array(np.nan)
    arr = np.array([arr, arr]) if arr.ndim == 0 else arr
    bad = arr.shape != (2,) or not np.all(np.isfinite(arr))
    bad = bad or (positive and not np.all(arr > 0)) or (integer and np.any(arr != np.round(arr)))
    if bad or isinstance(value, bool):
        kind = "positive int" if integer else "positive number" if positive else "number"
        raise ParameterError(f"{name}: got {value!r}; expected a {kind} or a pair (y, x).")
    return arr.astype(np.int64) if integer else arr


def raster_grid(steps, *, spacing_m):
    """A centred ``steps[0] x steps[1]`` grid, row by row (y slow, x fast).

    Parameters
    ----------
    steps : int or (int, int)
        Points along y (slow) and x (fast).
    spacing_m : float or (float, float)
        Grid step in metres, ``(y, x)``.

    Returns
    -------
    (steps_y * steps_x, 2) ndarray of float64
    """
    ny, nx = _pair("steps", steps, integer=True)
    dy, dx = _pair("spacing_m", spacing_m)
    rows, cols = np.divmod(np.arange(ny * nx), nx)
    return np.stack([(rows - (ny - 1) / 2.0) * dy, (cols - (nx - 1) / 2.0) * dx], axis=1)


def round_within(radius_m, *, spacing_m):
    """Every complete shell of :func:`round_positions` with radius <= ``radius_m``."""
    spacing = _check_spacing(spacing_m)
    shells = math.floor(float(radius_m) / spacing + 1e-9) if radius_m > 0 else 0
    count = 1 + sum(round(2.0 * math.pi * k) for k in range(1, shells + 1))
    return round_positions(count, spacing_m=spacing)


def spiral_within(radius_m, *, spacing_m):
    """Every point of :func:`spiral_positions` with radius <= ``radius_m``."""
    c = _check_spacing(spacing_m) / _SPIRAL_STEP
    count = math.floor((max(float(radius_m), 0.0) / c) ** 2 + 1e-9) + 1
    return spiral_positions(count, spacing_m=spacing_m)


def positions_from_array(positions):
    """Validate arbitrary positions: an ``(N, 2)`` array of finite metres (y, x), a copy."""
    try:
        pos = np.array(positions, dtype=np.float64)
    except (TypeError, ValueError):
        pos = np.zeros((0,))
    if pos.ndim != 2 or pos.shape[1] != 2 or len(pos) == 0 or not np.all(np.isfinite(pos)):
        raise ParameterError(
            f"positions: got shape {pos.shape}; expected a non-empty (N, 2) array of finite "
            "positions in metres, columns (y, x)."
        )
    return pos


def _complete(extent, steps, spacing):
    """ptypy's rule: two of extent, steps, spacing give the third; steps and spacing win."""
    if steps is None and (extent is None or spacing is None):
        raise ParameterError(
            "xy: got steps=None with extent or spacing None; give two of extent, steps, spacing."
        )
    if spacing is None:
        if extent is None:
            raise ParameterError("xy: got spacing=None and extent=None; give one of them.")
        step_pair = _pair("steps", steps, integer=True)
        return _pair("extent", extent) / step_pair, step_pair
    spacing = _pair("spacing", spacing)
    if steps is None:
        return spacing, np.maximum(np.floor(_pair("extent", extent) / spacing + 1e-9), 1).astype(
            int
        )
    return spacing, _pair("steps", steps, integer=True)


def positions_from_pars(
    *, model, spacing=None, steps=None, extent=None, offset=0.0, count=None, override=None
):
    """Positions from ptypy-style ``xy`` parameters (all lengths in metres).

    Parameters
    ----------
    model : {'round', 'raster', 'spiral'} or (N, 2) array_like
        Pattern: 'raster' is a centred ``steps`` grid of ``spacing``; 'round'
        holds the complete shells (step ``spacing``) within a radius of
        ``steps * spacing / 2``; 'spiral' the Fermat-spiral points within that
        radius. An array is used as is.
    spacing : float or (float, float), optional
        Step in metres.
    steps : int or (int, int), optional
        Points per axis (raster) or the diameter in steps (round, spiral).
    extent : float or (float, float), optional
        Full width ``(y, x)`` in metres of a centred box: with only one of
        ``steps``/``spacing`` it sets the other; positions outside the box
        (before ``offset``) are dropped.
    offset : float or (float, float)
        Added to every position, metres.
    count : int, optional
        Keep the first ``count`` positions.
    override : (N, 2) array_like, optional
        Explicit positions; every other parameter is ignored.

    Returns
    -------
    (N, 2) ndarray of float64
    """
    if override is not None:
        return positions_from_array(override)
    if not isinstance(model, str):
        pos = positions_from_array(model)
    else:
        spacing_pair, step_pair = _complete(extent, steps, spacing)
        radius = float(np.min(step_pair * spacing_pair)) / 2.0
        if model == "raster":
            pos = raster_grid(tuple(step_pair), spacing_m=spacing_pair)
        elif model == "round":
            pos = round_within(radius, spacing_m=float(np.min(spacing_pair)))
        elif model == "spiral":
            pos = spiral_within(radius, spacing_m=float(np.min(spacing_pair)))
        else:
            raise ParameterError(
                f"xy.model: got {model!r}; expected 'round', 'raster', 'spiral' or an (N, 2) array."
            )
    if extent is not None:
        half = _pair("extent", extent) / 2.0 * (1 + 1e-9)
        pos = pos[np.all(np.abs(pos) <= half, axis=1)]
    pos = pos + _pair("offset", offset, positive=False)
    if count is not None:
        pos = pos[: _check_count(count)]
    if len(pos) == 0:
        raise ParameterError("xy: no positions left; check extent, offset and count.")
    return pos
