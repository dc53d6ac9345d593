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

The drawing is evaluated in ``float32``, strip by strip (a few tens of
thousands of pixels at a time, so temporaries stay in cache), and only
inside the disc that can hold each feature; the rest is background. The
two maps are drawn straight into the real and imaginary halves of the
returned ``complex64`` array, so the only full-size allocation is the
result.
"""

from __future__ import annotations

import math

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.geometry import frame_shape

__all__ = ["moonflower_object", "noise_screen"]

_EDGE_PX = 2.5  # full width of every soft edge, in pixels
_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))  # rad, spreads craters evenly
_STRIP_PX = 1 << 15  # pixels per strip: a few float32 temporaries fit in L2 cache
_FLOWER_RADIUS = 0.9  # reach of the outer petals, in units of min(ny, nx) / 2
_MOON_RADIUS = 0.8  # radius of the moon disc, same unit


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


def _step(distance, width):
    """Raised-cosine step of full ``width`` pixels, computed in place on ``distance``.

    The curve of :func:`ptyscan.simulate.probes.smooth_step` (0 below
    ``-width / 2``, 1 above ``width / 2``, ``(1 + sin(pi * d / width)) / 2``
    between), for a float32 array ``distance`` in pixels, which is returned.
    """
    half = 0.5 * width
    np.clip(distance, -half, half, out=distance)
    distance *= math.pi / width
    np.sin(distance, out=distance)
    distance *= 0.5
    distance += 0.5
    return distance


def _span(coords, centre, reach):
    """Slice of the unit-spaced increasing 1-D ``coords`` within ``centre +- reach``, or None."""
    first = float(coords[0])
    start = max(0, math.ceil(centre - reach - first))
    stop = min(len(coords), math.floor(centre + reach - first) + 1)
    return slice(start, stop) if start < stop else None


def _chord(y, x, radius):
    """Slice of the 1-D ``x`` that the disc ``hypot(y, x) <= radius`` reaches on rows ``y``."""
    top, bottom = float(y[0]), float(y[-1])
    near = 0.0 if top <= 0.0 <= bottom else min(abs(top), abs(bottom))
    if near > radius:
        return None
    return _span(x, 0.0, math.sqrt(radius * radius - near * near))


def _petals(r, theta, scale, *, count, base, length, turn=0.0):
    """Soft mask of ``count`` petals with edge ``base + length * (1 - s**2)``.

    ``s = (1 - cos(count * (theta + turn))) / 2`` is 0 at a petal tip and 1
    between petals; ``1 - s**2`` makes round, smooth (cusp-free) lobes.
    ``r`` and the edge are in units of ``scale`` pixels. The distance to the
    edge is the radial gap divided by the gradient norm, a first-order
    signed distance, so the soft edge keeps its width where the edge runs
    nearly radially (between petals).
    """
    angle = theta + turn
    angle *= count
    s = np.cos(angle)
    np.sin(angle, out=angle)
    s *= -0.5
    s += 0.5
    angle *= s  # d(edge)/d(theta) = -length * count * s * sin(angle)
    angle /= np.maximum(r, 1e-3)
    angle *= length * count
    angle *= angle
    angle += 1.0
    np.sqrt(angle, out=angle)  # gradient norm, in units of the radial one
    s *= s
    s *= -length
    s += base + length
    s -= r
    s *= scale
    s /= angle
    return _step(s, _EDGE_PX)


def _cosine_texture(coords, period):
    """``(1 + cos(2 pi coords / period)) / 2``: a single spatial frequency in [0, 1]."""
    texture = np.cos(coords * (2.0 * math.pi / period))
    texture *= 0.5
    texture += 0.5
    return texture


def _add_heart(petals, y, x, r_px, scale):
    """Blend the flower's heart, a disc of 0.13 with a 5-pixel stipple, into ``petals``."""
    cols = _chord(y[:, 0], x[0], 0.13 * scale + _EDGE_PX)
    if cols is None:
        return
    heart = _step(0.13 * scale - r_px[:, cols], _EDGE_PX)
    stipple = _cosine_texture(y, 5.0) * _cosine_texture(x[:, cols], 5.0)
    stipple *= 0.45
    stipple += 0.55
    stipple -= petals[:, cols]
    stipple *= heart
    petals[:, cols] += stipple


def _flower(y, x, scale):
    """Flower absorption in [0, 1]: 7 outer and 5 inner petals, a stippled heart.

    ``y`` (h, 1) and ``x`` (1, w) are float32 pixel offsets from the centre.
    """
    r_px = np.sqrt(y * y + x * x)
    theta = np.arctan2(y, x)
    r = r_px * (1.0 / scale)
    petals = _petals(r, theta, scale, count=7, base=0.2, length=0.7)
    # fixed-size textures, a few pixels across, all single spatial frequencies
    grooves = _cosine_texture(r_px, 7.0)
    veins = np.cos(theta * 34.0)
    veins *= _step(r_px - 0.3 * scale, 8.0)
    veins *= 0.5
    veins += 0.5
    veins *= grooves
    veins *= 0.15
    veins += 0.45
    petals *= veins
    cols = _chord(y[:, 0], x[0], 0.48 * scale + _EDGE_PX)  # the inner petals' reach
    if cols is not None:
        inner = _petals(
            r[:, cols], theta[:, cols], scale, count=5, base=0.12, length=0.36, turn=0.31
        )
        grooves = grooves[:, cols]
        grooves *= -0.1
        grooves += 0.25
        inner *= grooves
        petals[:, cols] += inner
    _add_heart(petals, y, x, r_px, scale)
    return petals


def _crater_list(scale, n_craters=24):
    """Craters ``(cy, cx, radius, rim, reach)``, all in pixels, largest first.

    Centres follow a sunflower (golden-angle) spiral inside the moon; radii
    fall geometrically from 0.16 (a sixth of the frame) to 2.5 px (at least
    1.5 px). Beyond ``reach`` the rim has decayed below ``exp(-16)``.
    """
    smallest = min(2.5 / scale, 0.05)  # 2.5 px radius, or less on small frames
    craters = []
    for i in range(n_craters):
        rho = 0.72 * _MOON_RADIUS * math.sqrt((i + 0.5) / n_craters) * scale
        angle = i * _GOLDEN_ANGLE
        radius_px = max(0.16 * (smallest / 0.16) ** (i / (n_craters - 1)) * scale, 1.5)
        rim_px = 0.25 * radius_px + 1.0
        centre = (rho * math.sin(angle), rho * math.cos(angle))
        craters.append((*centre, radius_px, rim_px, radius_px + 4.0 * rim_px))
    return craters


def _add_craters(value, y, x, craters, *, weight=0.12):
    """Add each crater (a bowl of depth ``weight`` with a raised rim) to ``value`` in place.

    Only the window of each crater's reach is touched.
    """
    for cy, cx, radius_px, rim_px, reach in craters:
        rows, cols = _span(y[:, 0], cy, reach), _span(x[0], cx, reach)
        if rows is None or cols is None:
            continue
        dy, dx = y[rows] - cy, x[:, cols] - cx
        d_px = np.sqrt(dy * dy + dx * dx)
        bowl = _step(radius_px - d_px, max(_EDGE_PX, 0.3 * radius_px))
        bowl *= weight
        d_px -= radius_px
        d_px *= 1.0 / rim_px
        d_px *= d_px
        np.negative(d_px, out=d_px)
        np.exp(d_px, out=d_px)  # the rim
        d_px *= 0.6 * weight
        d_px -= bowl
        value[rows, cols] += d_px


def _moon(y, x, scale, craters):
    """Moon phase: a shaded disc, a brighter crescent and craters of many sizes.

    ``y`` (h, 1) and ``x`` (1, w) are float32 pixel offsets from the centre;
    ``craters`` comes from :func:`_crater_list`.
    """
    radius_px = _MOON_RADIUS * scale
    value = y * y + x * x  # r**2, becomes the unmasked phase
    disc = _step(radius_px - np.sqrt(value), _EDGE_PX)
    value *= -1.0 / radius_px**2
    value += 1.0
    np.maximum(value, 0.0, out=value)
    np.sqrt(value, out=value)  # a dome
    value *= 0.25
    sy, sx = y + 0.18 * scale, x - 0.32 * scale  # the shadow disc's centre is (-0.18, 0.32)
    shadow = _step(0.78 * scale - np.sqrt(sy * sy + sx * sx), 3 * _EDGE_PX)
    shadow *= -0.4
    value += shadow
    value += 0.75  # 0.35 on the whole disc, 0.4 more on the lit crescent
    _add_craters(value, y, x, craters)
    value *= disc
    return value


def _draw(flower, moon, scale):
    """Draw flower absorption and moon phase into the zeroed 2-D views, strip by strip."""
    ny, nx = flower.shape
    y_all = np.arange(ny, dtype=np.float32) - np.float32(ny // 2)
    x_all = np.arange(nx, dtype=np.float32) - np.float32(nx // 2)
    craters = _crater_list(scale)
    flower_reach = _FLOWER_RADIUS * scale + _EDGE_PX
    moon_reach = _MOON_RADIUS * scale + _EDGE_PX
    drawn = _span(y_all, 0.0, max(flower_reach, moon_reach))
    height = max(1, _STRIP_PX // nx)
    for start in range(drawn.start, drawn.stop, height):
        rows = slice(start, min(start + height, drawn.stop))
        y = y_all[rows]
        cols = _chord(y, x_all, flower_reach)
        if cols is not None:
            flower[rows, cols] = _flower(y[:, None], x_all[None, cols], scale)
        cols = _chord(y, x_all, moon_reach)
        if cols is not None:
            moon[rows, cols] = _moon(y[:, None], x_all[None, cols], scale, craters)


def _linear_map(image, low, high, *, flip=False):
    """``(origin, gain)`` with ``low + gain * (image - origin)`` spanning ``[low, high]``.

    The minimum of ``image`` maps to ``low`` (the maximum with ``flip``); a
    flat image maps to ``low`` everywhere.
    """
    smallest, largest = float(image.min()), float(image.max())
    gain = (high - low) / (largest - smallest) if largest > smallest else 0.0
    return (largest, -gain) if flip else (smallest, gain)


def _compose(out, amplitude_map, phase_map):
    """Overwrite ``out`` with ``amplitude * exp(1j * phase)``, strip by strip.

    ``out.real`` holds the flower, ``out.imag`` the moon on entry; each map
    is ``(low, origin, gain)`` from :func:`_linear_map`.
    """
    ny, nx = out.shape
    height = max(1, _STRIP_PX // nx)
    (amp_low, amp_origin, amp_gain), (ph_low, ph_origin, ph_gain) = amplitude_map, phase_map
    for start in range(0, ny, height):
        rows = slice(start, start + height)
        amplitude = out.real[rows] - amp_origin
        amplitude *= amp_gain
        amplitude += amp_low
        phase = out.imag[rows] - ph_origin
        phase *= ph_gain
        phase += ph_low
        real = np.cos(phase)
        real *= amplitude
        np.sin(phase, out=phase)
        phase *= amplitude
        out.real[rows] = real
        out.imag[rows] = phase


def moonflower_object(shape, *, amplitude_range=(0.6, 1.0), phase_range=(-1.0, 1.0)):
    """A deterministic, structured complex transmission function.

    Amplitude: a flower (two rings of petals with grooves and veins, a
    stippled heart) absorbing on a transparent background. Phase: a moon
    (a shaded disc with a bright crescent and craters from a sixth of the
    frame down to a few pixels). Each map is scaled linearly onto its range.
    Drawn in float32 strip by strip, with no full-size temporaries: a
    2100 x 2100 object takes about 0.1 s on one core and at peak about
    1 MiB beyond its own 34 MiB.

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
    scale = max(min(ny, nx) / 2.0, 1.0)
    out = np.zeros((ny, nx), dtype=np.complex64)
    _draw(out.real, out.imag, scale)
    amplitude_map = (amp_low, *_linear_map(out.real, amp_low, amp_high, flip=True))
    phase_map = (ph_low, *_linear_map(out.imag, ph_low, ph_high))
    _compose(out, amplitude_map, phase_map)
    return out


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
