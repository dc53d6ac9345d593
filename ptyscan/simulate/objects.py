"""Synthetic sample transmission functions.

:func:`moonflower_object` draws, from closed-form expressions only (no image
files, no randomness), the complex test object of ptypy's MoonFlowerScan: a
flower in the amplitude and a moon in the phase. Every edge is a
raised-cosine step 2.5 pixels wide, so the images are close to
band-limited while still holding detail at several length scales: petals
and the moon scale with the frame, while a few textures (the flower's
seed stipple and petal grooves, the smallest craters) have fixed sizes of a
few pixels, so larger objects have both coarse and fine features.

Pixel coordinates are offsets from the centre pixel ``(ny // 2, nx // 2)``;
lengths are in units of ``min(ny, nx) / 2`` so the drawing stays round on
rectangular frames (the long axis shows more background).
"""

from __future__ import annotations

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.geometry import centred_coordinates_px, frame_shape
from ptyscan.simulate.probes import smooth_step

__all__ = ["moonflower_object", "noise_screen"]

_EDGE_PX = 2.5  # full width of every soft edge, in pixels
_GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))  # rad, spreads craters evenly


def _range(name, value, *, minimum=-np.inf):
    """Validate a ``(low, high)`` pair of finite floats with ``minimum <= low <= high``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (np.isfinite(low) and np.isfinite(high) and minimum <= low <= high):
        floor = "" if minimum == -np.inf else f" and low >= {minimum:g}"
        raise ParameterError(
            f"{name}: got {value!r}; expected a pair (low, high) of finite numbers with "
            f"low <= high{floor}. Hint: e.g. {name}=(0.6, 1.0)."
        )
    return low, high


def _non_negative(name, value):
    """Return ``value`` as a float after checking it is finite and >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not (np.isfinite(number) and number >= 0):
        raise ParameterError(
            f"{name}: got {value!r}; expected a finite number >= 0. Hint: e.g. {name}=2.0."
        )
    return number


def _to_range(image, low, high):
    """Map ``image`` linearly so its minimum is ``low`` and its maximum ``high``."""
    span = float(image.max() - image.min())
    unit = (image - image.min()) / span if span > 0 else np.zeros_like(image)
    return low + (high - low) * unit


def _petals(r, theta, scale, *, count, base, length, turn=0.0):
    """Soft mask of ``count`` petals with edge ``base + length * (1 - s**2)``.

    ``s = (1 - cos(count * (theta + turn))) / 2`` is 0 at a petal tip and 1
    between petals; ``1 - s**2`` makes round, smooth (cusp-free) lobes.
    ``r`` and the edge are in units of ``scale`` pixels. The distance to the
    edge is the radial gap divided by the gradient norm, a first-order
    signed distance, so the soft edge keeps its width where the edge runs
    nearly radially (between petals).
    """
    phase = count * (theta + turn)
    s = 0.5 * (1.0 - np.cos(phase))
    edge = base + length * (1.0 - s**2)
    slope = -length * s * count * np.sin(phase)  # d(edge)/d(theta)
    distance_px = (edge - r) * scale / np.sqrt(1.0 + (slope / np.maximum(r, 1e-3)) ** 2)
    return smooth_step(distance_px, width=_EDGE_PX)


def _flower(y, x, scale):
    """Flower absorption in [0, 1]: 7 outer and 5 inner petals, a stippled heart."""
    r_px = np.hypot(y, x)
    r = r_px / scale
    theta = np.arctan2(y, x)
    outer = _petals(r, theta, scale, count=7, base=0.2, length=0.7)
    inner = _petals(r, theta, scale, count=5, base=0.12, length=0.36, turn=0.31)
    heart = smooth_step((0.13 - r) * scale, width=_EDGE_PX)
    # fixed-size textures, a few pixels across, all single spatial frequencies
    grooves = 0.5 + 0.5 * np.cos(2.0 * np.pi * r_px / 7.0)
    veins = 0.5 + 0.5 * np.cos(34.0 * theta) * smooth_step((r - 0.3) * scale, width=8.0)
    stipple = (0.5 + 0.5 * np.cos(2.0 * np.pi * y / 5.0)) * (
        0.5 + 0.5 * np.cos(2.0 * np.pi * x / 5.0)
    )
    petals = outer * (0.45 + 0.15 * grooves * veins) + inner * (0.25 - 0.1 * grooves)
    return np.clip(petals * (1.0 - heart) + heart * (0.55 + 0.45 * stipple), 0.0, 1.0)


def _add_crater(phase, y, x, scale, *, centre, radius, weight):
    """Add one crater (a bowl of depth ``weight`` with a raised rim) to ``phase`` in place.

    Only a window around the crater is touched: beyond it the rim has
    decayed below ``exp(-16)``.
    """
    cy, cx = centre[0] * scale, centre[1] * scale
    r_px = max(radius * scale, 1.5)
    rim_px = 0.25 * r_px + 1.0
    reach = r_px + 4.0 * rim_px
    rows = (y[:, 0] >= cy - reach) & (y[:, 0] <= cy + reach)
    cols = (x[0, :] >= cx - reach) & (x[0, :] <= cx + reach)
    if not rows.any() or not cols.any():
        return
    window = np.ix_(rows, cols)
    d_px = np.hypot(y[window] - cy, x[window] - cx)
    bowl = smooth_step(r_px - d_px, width=max(_EDGE_PX, 0.3 * r_px))
    rim = np.exp(-(((d_px - r_px) / rim_px) ** 2))
    phase[window] += weight * (0.6 * rim - bowl)


def _moon(y, x, scale, *, n_craters=24):
    """Moon phase: a shaded disc, a brighter crescent and craters of many sizes."""
    radius = 0.8
    r = np.hypot(y, x) / scale
    disc = smooth_step((radius - r) * scale, width=_EDGE_PX)
    shadow_r = np.hypot(y / scale + 0.18, x / scale - 0.32)
    crescent = disc * (1.0 - smooth_step((0.78 - shadow_r) * scale, width=3 * _EDGE_PX))
    dome = np.sqrt(np.clip(1.0 - (r / radius) ** 2, 0.0, 1.0))
    craters = np.zeros_like(r)
    smallest = min(2.5 / scale, 0.05)  # 2.5 px radius, or less on small frames
    for i in range(n_craters):
        rho = 0.72 * radius * np.sqrt((i + 0.5) / n_craters)
        angle = i * _GOLDEN_ANGLE
        size = 0.16 * (smallest / 0.16) ** (i / (n_craters - 1))
        centre = (rho * np.sin(angle), rho * np.cos(angle))
        _add_crater(craters, y, x, scale, centre=centre, radius=size, weight=0.12)
    return disc * (0.35 + 0.25 * dome + craters) + 0.4 * crescent


def moonflower_object(shape, *, amplitude_range=(0.6, 1.0), phase_range=(-1.0, 1.0)):
    """A deterministic, structured complex transmission function.

    Amplitude: a flower (two rings of petals with grooves and veins, a
    stippled heart) absorbing on a transparent background. Phase: a moon
    (a shaded disc with a bright crescent and craters from a sixth of the
    frame down to a few pixels). Each map is scaled linearly onto its range.

    Parameters
    ----------
    shape : int or (int, int)
        Object shape ``(ny, nx)`` in pixels; rectangular shapes are allowed.
    amplitude_range : (float, float)
        ``(low, high)`` transmission amplitude, ``0 <= low <= high``; the
        background is ``high`` and the darkest petal ``low``. Equal values
        give a pure phase object.
    phase_range : (float, float)
        ``(low, high)`` phase in radians; the background is ``low``.

    Returns
    -------
    (ny, nx) ndarray of complex64
        ``amplitude * exp(1j * phase)``; the same for every call.
    """
    ny, nx = frame_shape(shape)
    amp_low, amp_high = _range("amplitude_range", amplitude_range, minimum=0.0)
    ph_low, ph_high = _range("phase_range", phase_range)
    y, x = centred_coordinates_px((ny, nx))
    y, x = np.broadcast_arrays(y, x)
    scale = max(min(ny, nx) / 2.0, 1.0)
    amplitude = _to_range(-_flower(y, x, scale), amp_low, amp_high)
    phase = _to_range(_moon(y, x, scale), ph_low, ph_high)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def noise_screen(shape, *, rng, correlation_px=4.0, amplitude=1.0):
    """A random, smooth, periodic real screen (for phase or thickness noise).

    White Gaussian noise filtered by a Gaussian of standard deviation
    ``correlation_px`` (applied in Fourier space, so the screen tiles
    periodically), then shifted and scaled to zero mean and standard
    deviation ``amplitude``.

    Parameters
    ----------
    shape : int or (int, int)
        Screen shape ``(ny, nx)`` in pixels.
    rng : numpy.random.Generator or int
        Random generator, or an int seed for ``numpy.random.default_rng``.
    correlation_px : float
        Correlation length (Gaussian sigma) in pixels, >= 0; 0 gives white noise.
    amplitude : float
        Standard deviation of the screen, >= 0 (in the caller's unit, e.g. rad).

    Returns
    -------
    (ny, nx) ndarray of float32
        The screen.
    """
    ny, nx = frame_shape(shape)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise ParameterError(
            f"rng: got {rng!r}; expected a numpy.random.Generator or an int seed. "
            "Hint: rng=np.random.default_rng(0)."
        )
    sigma = _non_negative("correlation_px", correlation_px)
    amplitude = _non_negative("amplitude", amplitude)
    white = rng.standard_normal((ny, nx))
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    screen = np.fft.ifft2(np.fft.fft2(white) * kernel).real
    screen -= screen.mean()
    std = screen.std()
    screen = screen * (amplitude / std) if std > 0 else screen
    return screen.astype(np.float32)
