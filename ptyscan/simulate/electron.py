"""Electron (4D-STEM) probes: a condenser aperture with an aberration phase.

The probe in the sample plane is ``IFFT[A(k) exp(-1j chi(k))]`` (Kirkland,
abTEM): ``A`` is a disc of semi-angle ``alpha_max`` in the scattering-angle
plane (``alpha = lambda * |k|``) with a raised-cosine edge, and ``chi`` the
aberration phase of :mod:`ptyscan.simulate.aberrations` (``C10 = -defocus``).
The spatial-frequency grid is the one conjugate to the sample grid:
``k = (j - n // 2) / (n * pixel)`` per axis, zero frequency at ``n // 2``.
"""

from __future__ import annotations

import math

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.geometry import electron_wavelength_m, frame_shape
from ptyscan.simulate.aberrations import aberration_phase_rad, normalize_aberrations
from ptyscan.simulate.probes import check_number, normalize_photons, smooth_step

__all__ = ["ANGSTROM_M", "electron_probe", "frequency_grid", "scale_aberration_lengths"]

ANGSTROM_M = 1e-10
"""One ångström in metres."""


def _pixel_pair(name, value):
    pair = np.asarray(value, dtype=float)
    pair = np.array([pair, pair]) if pair.ndim == 0 else pair
    if pair.shape != (2,) or not np.all(np.isfinite(pair)) or not np.all(pair > 0):
        raise ParameterError(
            f"{name}: got {value!r}; expected a positive pixel size in metres or a pair (y, x)."
        )
    return pair


def frequency_grid(shape, pixel_m):
    """Spatial frequencies of a centred grid, in 1/m.

    Parameters
    ----------
    shape : int or (int, int)
        Grid shape ``(ny, nx)``.
    pixel_m : float or (float, float)
        Sample-plane pixel size in metres.

    Returns
    -------
    ky : (ny, 1) ndarray of float64
    kx : (1, nx) ndarray of float64
        Frequencies, zero at index ``n // 2``.
    """
    ny, nx = frame_shape(shape)
    py, px = _pixel_pair("pixel_m", pixel_m)
    ky = (np.arange(ny) - ny // 2)[:, None] / (ny * py)
    kx = (np.arange(nx) - nx // 2)[None, :] / (nx * px)
    return ky, kx


def scale_aberration_lengths(aberrations, factor):
    """Multiply the lengths of normalised aberrations by ``factor`` (angles unchanged)."""
    normalized = normalize_aberrations(aberrations)
    return {k: (v * factor if k.startswith("C") else v) for k, v in normalized.items()}


def electron_probe(
    shape,
    *,
    energy_kev,
    semi_angle_mrad,
    sample_pixel_m,
    aberrations_angstrom=None,
    edge_px=1.0,
    electrons=1e6,
):
    """A 4D-STEM probe from the accelerating voltage, aperture and aberrations.

    Parameters
    ----------
    shape : int or (int, int)
        Probe shape ``(ny, nx)`` in pixels.
    energy_kev : float
        Electron kinetic energy in keV (the accelerating voltage in kV).
    semi_angle_mrad : float
        Convergence semi-angle of the condenser aperture in mrad, > 0.
    sample_pixel_m : float or (float, float)
        Sample-plane pixel size in metres; the aperture must lie inside the
        Nyquist frequency ``1 / (2 * pixel)``.
    aberrations_angstrom : mapping of str to float, optional
        Aberrations in any notation of :mod:`ptyscan.simulate.aberrations`,
        lengths in ångström (as PtyRAD), angles in degrees; e.g.
        ``{"defocus": 200, "Cs": 1e4}`` or ``{"C10": -200, "A1": 5, "A1phi": 30}``.
    edge_px : float
        Full width of the aperture's raised-cosine edge in frequency pixels, >= 0.
    electrons : float
        Electrons per probe position, ``sum(|probe|**2)``, > 0.

    Returns
    -------
    (ny, nx) ndarray of complex64
        The probe, centred on ``(ny // 2, nx // 2)``.
    """
    ny, nx = frame_shape(shape)
    wavelength = float(electron_wavelength_m(energy_kev))
    alpha_max = 1e-3 * check_number(
        "semi_angle_mrad", semi_angle_mrad, hint="The convergence semi-angle, e.g. 20 mrad."
    )
    edge = check_number("edge_px", edge_px, strict=False, hint="Edge width in pixels.")
    pixel = _pixel_pair("sample_pixel_m", sample_pixel_m)
    check_number("electrons", electrons, hint="Electrons per probe position, e.g. 1e6.")
    nyquist = wavelength / (2.0 * pixel.max())
    if alpha_max >= nyquist:
        raise ParameterError(
            f"semi_angle_mrad: got {semi_angle_mrad!r}; the aperture reaches beyond the Nyquist "
            f"angle {1e3 * nyquist:.3g} mrad of this sampling. Hint: use a sample pixel smaller "
            f"than {wavelength / (2 * alpha_max):.3g} m."
        )
    ky, kx = frequency_grid((ny, nx), pixel)
    alpha_y, alpha_x = wavelength * ky, wavelength * kx
    # distance to the aperture edge in frequency pixels (the finer axis sets the pixel)
    k_pixel = 1.0 / (np.array([ny, nx]) * pixel).max()
    inside = (alpha_max - np.hypot(alpha_y, alpha_x)) / (wavelength * k_pixel)
    aperture = smooth_step(inside, width=edge)
    aberrations = scale_aberration_lengths(aberrations_angstrom or {}, ANGSTROM_M)
    chi = aberration_phase_rad(alpha_y, alpha_x, wavelength_m=wavelength, aberrations=aberrations)
    pupil = aperture * np.exp(-1j * chi)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil), norm="ortho"))
    if not math.isfinite(float(np.abs(probe).max())):
        raise ParameterError("aberrations_angstrom: the probe is not finite; check the values.")
    return normalize_photons(probe.astype(np.complex64), electrons)
