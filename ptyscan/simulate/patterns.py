"""Scan patterns: where the probe visits the sample.

Positions are ``(N, 2)`` float64 arrays in metres, column 0 the slow
(vertical, y) axis and column 1 the fast (horizontal, x) axis, as in ptypy.
Every pattern is deterministic and centred on ``(0, 0)``.
"""

from __future__ import annotations

import math

import numpy as np

from ptyscan.errors import ParameterError

__all__ = ["SCAN_MODELS", "positions_by_model", "raster_positions", "round_positions"]

SCAN_MODELS = ("round", "raster")
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
        One of :data:`SCAN_MODELS`: ``'round'`` (:func:`round_positions`) or
        ``'raster'`` (:func:`raster_positions`).
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
    raise ParameterError(
        f"model: got {model!r}; expected one of {', '.join(repr(m) for m in SCAN_MODELS)}. "
        "Hint: 'round' gives concentric shells, 'raster' a square grid."
    )
