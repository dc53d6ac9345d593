"""Synthetic illumination functions (probes) in the sample plane.

Conventions
-----------
Frames are centred on pixel ``(ny // 2, nx // 2)`` (the ``numpy.fft.fftshift``
convention). The far field of a sample-plane probe ``p`` is
``fftshift(fft2(ifftshift(p), norm="ortho"))`` and a pupil ``P`` defined in
the far field (detector plane, centred) is brought to the sample plane with
``fftshift(ifft2(ifftshift(P), norm="ortho"))``; both are unitary, so the
photon count ``sum(|p|**2)`` is the same in both planes.

Probes are ``complex64`` and normalised so that ``sum(|p|**2)`` equals the
number of photons per exposure.
"""

from __future__ import annotations

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.geometry import centred_coordinates_px, frame_shape

__all__ = [
    "aperture_probe",
    "check_number",
    "circular_pupil",
    "focused_probe",
    "normalize_photons",
    "smooth_step",
    "soft_disc",
]


def check_number(name, value, *, minimum=0.0, strict=True, hint=""):
    """Return ``value`` as a float after checking it is finite and above ``minimum``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    bad = not np.isfinite(number) or (number <= minimum if strict else number < minimum)
    if bad or isinstance(value, bool):
        relation = ">" if strict else ">="
        raise ParameterError(
            f"{name}: got {value!r}; expected a finite number {relation} {minimum:g}. {hint}"
        )
    return number


def smooth_step(distance, *, width):
    """Raised-cosine step from 0 to 1, centred on ``distance = 0``.

    ``0`` for ``distance <= -width / 2``, ``1`` for ``distance >= width / 2``
    and ``(1 + sin(pi * distance / width)) / 2`` in between, so the step has
    compact support (useful for band limits) and a continuous first
    derivative. ``width = 0`` gives a hard step (``0.5`` exactly at 0).

    Parameters
    ----------
    distance : array_like of float
        Signed distance, in pixels, positive on the side that should be 1
        (inside a shape).
    width : float
        Full width of the transition in the same unit as ``distance``, >= 0.

    Returns
    -------
    ndarray of float64
        Values in ``[0, 1]``, shape of ``distance``.
    """
    width = check_number("width", width, strict=False, hint="The edge width in pixels.")
    d = np.asarray(distance, dtype=np.float64)
    if width == 0.0:
        return np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
    t = np.clip(d / width, -0.5, 0.5)
    return 0.5 * (1.0 + np.sin(np.pi * t))


def soft_disc(shape, *, radius_px, edge_px, center_px=(0.0, 0.0)):
    """A disc of 1 with a raised-cosine edge, on a centred pixel grid.

    Parameters
    ----------
    shape : int or (int, int)
        Frame shape ``(ny, nx)`` in pixels.
    radius_px : float
        Radius in pixels where the value is 0.5, >= 0.
    edge_px : float
        Full width of the edge in pixels, >= 0; the disc is exactly 0 beyond
        ``radius_px + edge_px / 2``.
    center_px : (float, float)
        Offset ``(y, x)`` of the disc centre from the frame centre
        ``(ny // 2, nx // 2)``, in pixels.

    Returns
    -------
    (ny, nx) ndarray of float64
        Values in ``[0, 1]``.
    """
    radius = check_number("radius_px", radius_px, strict=False, hint="A radius in pixels.")
    y, x = centred_coordinates_px(shape)
    r = np.hypot(y - center_px[0], x - center_px[1])
    return smooth_step(radius - r, width=edge_px)


def normalize_photons(probe, photons):
    """Scale a probe so that its total intensity equals ``photons``.

    Parameters
    ----------
    probe : (ny, nx) or (n_modes, ny, nx) array_like of complex
        Probe, or a stack of incoherent probe modes; for a stack the sum runs
        over all modes together, so the modes keep their relative power.
    photons : float
        Photons per exposure, > 0.

    Returns
    -------
    ndarray
        A new array, same shape and dtype as ``probe`` (complex64 for real
        input), with ``sum(|probe|**2) == photons``.
    """
    photons = check_number(
        "photons", photons, hint="The number of photons per exposure, e.g. 1e8."
    )
    arr = np.asarray(probe)
    if arr.ndim not in (2, 3):
        raise ParameterError(
            f"probe: got an array of shape {arr.shape}; expected (ny, nx) or (n_modes, ny, nx)."
        )
    if not np.iscomplexobj(arr):
        arr = arr.astype(np.complex64)
    power = float(np.sum(np.abs(arr.astype(np.complex128)) ** 2))
    if not np.isfinite(power) or power == 0.0:
        raise ParameterError(
            f"probe: got total intensity {power!r}; expected a finite, non-zero probe. "
            "Hint: check the pupil or aperture is not empty (radius too small?)."
        )
    return (arr * np.sqrt(photons / power)).astype(arr.dtype)


def focused_probe(shape, *, pupil_fraction=0.5, edge_px=4.0, defocus_rad=None, photons=1e8):
    """A defocused probe formed by a soft circular pupil, in the sample plane.

    The pupil (:func:`circular_pupil`) is a disc in the far-field (detector) plane, centred on
    ``(ny // 2, nx // 2)``, of diameter ``pupil_fraction * min(ny, nx)``
    detector pixels with a raised-cosine edge of ``edge_px``, carrying a
    defocus phase ``defocus_rad * (rho / rho_edge)**2``. It is propagated to
    the sample plane with the centred inverse FFT (see the module notes), so
    the far field of the returned probe is exactly the pupil (up to
    rounding) and is zero beyond ``rho_edge + edge_px / 2``.

    Geometrically the defocused spot is a disc of radius about
    ``2 * defocus_rad / (pi * pupil_fraction)`` sample pixels (stationary
    phase), filled with Fresnel fringes. The default defocus makes that
    radius ``min(ny, nx) / (3 * sqrt(2))``, so the probe is a structured blob
    whose intensity-weighted RMS diameter is about a third of the frame
    (about 42 pixels and 23.7 rad for 128 x 128), while its far field fills
    only the central ``pupil_fraction`` of the detector.

    Parameters
    ----------
    shape : int or (int, int)
        Frame shape ``(ny, nx)`` in pixels.
    pupil_fraction : float
        Pupil diameter as a fraction of ``min(ny, nx)``, in (0, 1].
    edge_px : float
        Full width of the pupil's soft edge in detector pixels, >= 0.
    defocus_rad : float or None
        Defocus phase at the pupil edge in radians (0 gives a focused Airy
        spot; the sign flips the side of focus). None (default) picks
        ``pi * pupil_fraction * min(ny, nx) / (6 * sqrt(2))``, the value
        giving an RMS probe diameter of about a third of the frame.
    photons : float
        Photons per exposure, ``sum(|probe|**2)``, > 0.

    Returns
    -------
    (ny, nx) ndarray of complex64
        Probe in the sample plane, centred on ``(ny // 2, nx // 2)``.
    """
    ny, nx = frame_shape(shape)
    if defocus_rad is None:
        fraction = _check_fraction(pupil_fraction)
        defocus_rad = np.pi * fraction * min(ny, nx) / (6.0 * np.sqrt(2.0))
    pupil = circular_pupil(
        (ny, nx), pupil_fraction=pupil_fraction, edge_px=edge_px, defocus_rad=defocus_rad
    )
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil), norm="ortho"))
    return normalize_photons(probe.astype(np.complex64), photons)


def _check_fraction(pupil_fraction):
    fraction = check_number(
        "pupil_fraction", pupil_fraction, hint="A fraction of the frame in (0, 1], e.g. 0.5."
    )
    if fraction > 1.0:
        raise ParameterError(
            f"pupil_fraction: got {pupil_fraction!r}; expected a value in (0, 1]. "
            "Hint: a pupil wider than the detector would wrap around."
        )
    return fraction


def circular_pupil(shape, *, pupil_fraction=0.5, edge_px=4.0, defocus_rad=0.0):
    """A soft circular pupil with a defocus phase, in the far-field plane.

    Parameters
    ----------
    shape : int or (int, int)
        Frame shape ``(ny, nx)`` in detector pixels.
    pupil_fraction : float
        Pupil diameter as a fraction of ``min(ny, nx)``, in (0, 1].
    edge_px : float
        Full width of the raised-cosine edge in pixels, >= 0.
    defocus_rad : float
        Phase ``defocus_rad * (rho / rho_edge)**2`` in radians, with
        ``rho_edge = pupil_fraction * min(ny, nx) / 2``.

    Returns
    -------
    (ny, nx) ndarray of complex128
        Pupil centred on ``(ny // 2, nx // 2)`` (zero frequency of the
        ``fftshift`` convention); exactly 0 beyond ``rho_edge + edge_px / 2``.
    """
    ny, nx = frame_shape(shape)
    fraction = _check_fraction(pupil_fraction)
    edge = check_number("edge_px", edge_px, strict=False, hint="Edge width in pixels.")
    defocus = check_number(
        "defocus_rad", defocus_rad, minimum=-np.inf, hint="Phase at the pupil edge in rad."
    )
    rho_edge = 0.5 * fraction * min(ny, nx)
    y, x = centred_coordinates_px((ny, nx))
    rho = np.hypot(y, x)
    return smooth_step(rho_edge - rho, width=edge) * np.exp(1j * defocus * (rho / rho_edge) ** 2)


def aperture_probe(shape, *, radius_px, edge_px=2.0, photons=1e8):
    """A flat-phase soft circular aperture in the sample plane.

    Parameters
    ----------
    shape : int or (int, int)
        Frame shape ``(ny, nx)`` in pixels.
    radius_px : float
        Aperture radius in sample pixels (where the amplitude is 0.5), > 0.
    edge_px : float
        Full width of the raised-cosine edge in pixels, >= 0.
    photons : float
        Photons per exposure, ``sum(|probe|**2)``, > 0.

    Returns
    -------
    (ny, nx) ndarray of complex64
        Probe centred on ``(ny // 2, nx // 2)``.
    """
    frame = frame_shape(shape)
    check_number("radius_px", radius_px, hint="The aperture radius in pixels, e.g. 20.")
    disc = soft_disc(frame, radius_px=radius_px, edge_px=edge_px)
    return normalize_photons(disc.astype(np.complex64), photons)
