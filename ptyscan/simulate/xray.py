"""X-ray probes: apertures, focused beams and Fresnel zone plates.

A focused beam is formed by an aperture of diameter ``D`` at a thin lens of
focal length ``f``. On a sample grid of ``n`` pixels of size ``dx`` the
aperture plane is sampled at ``du = wavelength * f / (n * dx)`` (the grid
conjugate to the sample grid), so the focal-plane field is exactly (paraxial
Fresnel, aperture at the lens)::

    focus(x) = exp(1j pi |x|**2 / (wavelength f)) * FFT[aperture](x)

and the probe at ``defocus_m`` from the focus is that field propagated with
the angular spectrum method (:class:`ptyscan.propagation.NearField`). A Fresnel zone plate is such a lens with
``f = 2 Rn dRn / wavelength`` (outermost zone width ``dRn``, radius ``Rn``),
an annular aperture (diameter ``D_FZP``, central stop ``D_H``) and the sample
at ``Ls`` after the focus. The focal spot of a circular aperture is an Airy
pattern with its first zero at ``1.21967 * wavelength * f / D``.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.geometry import centred_coordinates_px, frame_shape
from ptyscan.propagation import NearField
from ptyscan.simulate.probes import check_number, normalize_photons, smooth_step
from ptyscan.simulate.samples import noise_transmission, noise_transmission_kwargs

__all__ = [
    "AIRY_FIRST_ZERO",
    "aperture",
    "focused_beam",
    "fzp_focal_length_m",
    "fzp_probe",
]

log = logging.getLogger(__name__)

AIRY_FIRST_ZERO = 1.2196698912665045
"""First zero of the Airy pattern in units of wavelength / D (j_1,1 / pi)."""

_FORMS = ("circ", "rect")


def _pair(name, value, *, positive=True):
    arr = np.asarray(value, dtype=float) if value is not None else None
    if arr is not None and arr.ndim == 0:
        arr = np.array([float(arr), float(arr)])
    bad = arr is None or arr.shape != (2,) or not np.all(np.isfinite(arr))
    if bad or (positive and not np.all(arr > 0)):
        what = "positive number" if positive else "number"
        raise ParameterError(f"{name}: got {value!r}; expected a {what} or a pair (y, x).")
    return arr


def _diffuser(shape, diffuser, rng):
    noise = noise_transmission_kwargs(diffuser, name="diffuser")
    if rng is None:
        raise ParameterError("rng: a diffuser is random; pass rng (a Generator or an int seed).")
    return noise_transmission(shape, rng=rng, **noise)


def aperture(
    shape,
    *,
    form="circ",
    size_px=None,
    edge_px=2.0,
    central_stop=None,
    offset_px=0.0,
    rotate_rad=0.0,
    diffuser=None,
    rng=None,
):
    """A soft-edged aperture (ptypy's ``illumination.aperture`` parameters).

    Parameters
    ----------
    shape : int or (int, int)
        Grid shape ``(ny, nx)`` in pixels.
    form : {'circ', 'rect'} or None
        Elliptical/circular or rectangular opening; None: no opening (ones).
    size_px : float or (float, float), optional
        Diameter (circ) or full width (rect) in pixels, ``(y, x)`` for an
        asymmetric opening; None: a third of the grid (ptypy's default).
    edge_px : float
        Full width of the raised-cosine edge in pixels, >= 0.
    central_stop : float, optional
        Diameter of a central stop as a fraction of ``size_px`` in (0, 1).
    offset_px : float or (float, float)
        Offset ``(y, x)`` of the opening from the grid centre in pixels.
    rotate_rad : float
        Rotation of the opening in radians (ptypy's ``rotate``).
    diffuser : tuple, optional
        ``(phase_rms, mfs)`` or ``(phase_rms, mfs, modulus_rms, modulus_mfs)``:
        random phase (rad) and modulus noise with minimum feature sizes in
        pixels (see :func:`ptyscan.simulate.samples.noise_transmission`).
    rng : numpy.random.Generator or int, optional
        Random source of the diffuser.

    Returns
    -------
    (ny, nx) ndarray of complex128
    """
    ny, nx = frame_shape(shape)
    out = np.ones((ny, nx), dtype=np.complex128)
    if diffuser is not None:
        out *= _diffuser((ny, nx), diffuser, rng)
    if form is None:
        return out
    if form not in _FORMS:
        raise ParameterError(f"form: got {form!r}; expected 'circ', 'rect' or None.")
    size = _pair("size_px", size_px) if size_px is not None else np.array([ny, nx]) / 3.0
    edge = check_number("edge_px", edge_px, strict=False, hint="Edge width in pixels.")
    y, x = centred_coordinates_px((ny, nx))
    oy, ox = _pair("offset_px", offset_px, positive=False)
    y, x = y - oy, x - ox
    cos, sin = math.cos(rotate_rad), math.sin(rotate_rad)
    y, x = y * cos - x * sin, y * sin + x * cos
    out *= _opening(form, y, x, size / 2.0, edge)
    if central_stop is not None:
        fraction = check_number("central_stop", central_stop, hint="A fraction in (0, 1).")
        if fraction >= 1:
            raise ParameterError(
                f"central_stop: got {central_stop!r}; expected a value in (0, 1)."
            )
        out *= 1.0 - _opening(form, y, x, fraction * size / 2.0, edge)
    return out


def _opening(form, y, x, half, edge):
    """Soft opening of half-widths ``half`` (y, x) on rotated coordinates."""
    if form == "rect":
        return smooth_step(half[0] - np.abs(y), width=edge) * smooth_step(
            half[1] - np.abs(x), width=edge
        )
    rho = np.hypot(y / half[0], x / half[1])  # 1 on the ellipse
    r = np.hypot(y, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where(rho > 0, r / rho - r, np.inf)  # along the ray to the ellipse
    return smooth_step(np.minimum(distance, 1e9), width=edge)


def _aperture_diameter(diameter_m, spot_size_m, form, wavelength, focal):
    if diameter_m is not None and spot_size_m is not None:
        raise ParameterError(
            f"diameter_m/spot_size_m: got both ({diameter_m!r}, {spot_size_m!r}); "
            "give one: the aperture diameter or the focal spot size it should produce."
        )
    if spot_size_m is None:
        return None if diameter_m is None else _pair("diameter_m", diameter_m)
    spot = _pair("spot_size_m", spot_size_m)
    factor = 2.0 * AIRY_FIRST_ZERO if form == "circ" else 2.0
    return factor * wavelength * focal / spot


def focused_beam(
    shape,
    *,
    wavelength_m,
    sample_pixel_m,
    focal_length_m,
    diameter_m=None,
    spot_size_m=None,
    form="circ",
    edge_px=2.0,
    central_stop=None,
    offset_m=0.0,
    rotate_rad=0.0,
    diffuser=None,
    rng=None,
    defocus_m=0.0,
    antialiasing=1,
    photons=1e8,
):
    """A beam focused by an aperture at a lens, at ``defocus_m`` from the focus.

    Parameters
    ----------
    shape : int or (int, int)
        Probe shape ``(ny, nx)`` in sample pixels.
    wavelength_m : float
        Wavelength in metres.
    sample_pixel_m : float or (float, float)
        Sample-plane pixel size in metres.
    focal_length_m : float
        Distance from the aperture/lens to the focus in metres, > 0.
    diameter_m, spot_size_m : float or (float, float), optional
        Aperture diameter (full width for 'rect'), or the focal spot size
        (Airy diameter to the first zero for 'circ', ``2 wavelength f / D``
        for 'rect') that sets it; at most one; neither: a third of the pupil grid.
    form, edge_px, central_stop, rotate_rad, diffuser, rng
        As :func:`aperture`; ``edge_px`` in aperture-plane pixels.
    offset_m : float or (float, float)
        Aperture offset ``(y, x)`` from the optical axis in metres.
    defocus_m : float
        Distance from the focus to the sample plane in metres (positive:
        downstream of the focus).
    antialiasing : int
        Compute on a grid ``antialiasing`` times finer and average blocks, >= 1.
    photons : float
        Photons per exposure, ``sum(|probe|**2)``.

    Returns
    -------
    (ny, nx) ndarray of complex64
    """
    ny, nx = frame_shape(shape)
    wavelength = check_number("wavelength_m", wavelength_m, hint="e.g. 1.5e-10.")
    focal = check_number("focal_length_m", focal_length_m, hint="e.g. 0.1 for 10 cm.")
    if isinstance(antialiasing, bool) or int(antialiasing) != antialiasing or antialiasing < 1:
        raise ParameterError(f"antialiasing: got {antialiasing!r}; expected an int >= 1.")
    a = int(antialiasing)
    pixel = _pair("sample_pixel_m", sample_pixel_m) / a
    grid = np.array([a * ny, a * nx])
    du = wavelength * focal / (grid * pixel)  # aperture-plane pixel (y, x)
    diameter = _aperture_diameter(diameter_m, spot_size_m, form, wavelength, focal)
    size_px = None if diameter is None else diameter / du
    if size_px is not None and np.any(size_px > grid):
        raise ParameterError(
            f"diameter_m: the aperture ({np.round(diameter, 12).tolist()} m) does not fit the "
            f"pupil grid ({(grid * du).tolist()} m wide). Hint: use a sample pixel smaller than "
            f"{wavelength * focal / float(np.max(diameter)):.3g} m."
        )
    offset_px = _pair("offset_m", offset_m, positive=False) / du
    pupil = aperture(
        tuple(grid),
        form=form,
        size_px=size_px,
        edge_px=edge_px,
        central_stop=central_stop,
        offset_px=offset_px,
        rotate_rad=rotate_rad,
        diffuser=diffuser,
        rng=rng,
    )
    field = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(pupil), norm="ortho"))
    y, x = centred_coordinates_px(tuple(grid))
    field *= np.exp(
        1j * math.pi * ((y * pixel[0]) ** 2 + (x * pixel[1]) ** 2) / (wavelength * focal)
    )
    if defocus_m:
        near = NearField(field.shape, distance_m=defocus_m, wavelength_m=wavelength, psize_m=pixel)
        field = near.forward(field)
    if a > 1:
        field = field.reshape(ny, a, nx, a).mean(axis=(1, 3))
    return normalize_photons(field.astype(np.complex64), photons)


def fzp_focal_length_m(*, outer_zone_width_m, radius_m, wavelength_m):
    """Focal length of a Fresnel zone plate, ``f = 2 Rn dRn / wavelength`` (m)."""
    d_rn = check_number("outer_zone_width_m", outer_zone_width_m, hint="dRn, e.g. 50e-9.")
    r_n = check_number("radius_m", radius_m, hint="Rn, e.g. 90e-6.")
    wavelength = check_number("wavelength_m", wavelength_m, hint="e.g. 1.5e-10.")
    return 2.0 * r_n * d_rn / wavelength


def fzp_probe(
    shape,
    *,
    wavelength_m,
    sample_pixel_m,
    outer_zone_width_m,
    radius_m,
    diameter_m,
    central_stop_m=0.0,
    focus_to_sample_m=0.0,
    edge_px=1.0,
    antialiasing=1,
    photons=1e8,
):
    """The probe of a Fresnel zone plate at ``focus_to_sample_m`` after its focus.

    Parameters
    ----------
    shape : int or (int, int)
        Probe shape in sample pixels.
    wavelength_m : float
        Wavelength in metres.
    sample_pixel_m : float or (float, float)
        Sample-plane pixel size in metres.
    outer_zone_width_m : float
        Outermost zone width ``dRn`` in metres.
    radius_m : float
        Zone-plate radius ``Rn`` in metres; ``f = 2 Rn dRn / wavelength``.
    diameter_m : float
        Diameter ``D_FZP`` of the zone plate's circular aperture (usually ``2 Rn``).
    central_stop_m : float
        Diameter ``D_H`` of the central stop in metres (0: none).
    focus_to_sample_m : float
        Distance ``Ls`` from the focal plane to the sample in metres.
    edge_px, antialiasing, photons
        As :func:`focused_beam`.

    Returns
    -------
    (ny, nx) ndarray of complex64
    """
    focal = fzp_focal_length_m(
        outer_zone_width_m=outer_zone_width_m, radius_m=radius_m, wavelength_m=wavelength_m
    )
    diameter = check_number("diameter_m", diameter_m, hint="D_FZP, e.g. 180e-6.")
    stop = check_number("central_stop_m", central_stop_m, strict=False, hint="D_H, e.g. 60e-6.")
    if stop >= diameter:
        raise ParameterError(
            f"central_stop_m: got {central_stop_m!r}; expected less than diameter_m={diameter_m!r}."
        )
    return focused_beam(
        shape,
        wavelength_m=wavelength_m,
        sample_pixel_m=sample_pixel_m,
        focal_length_m=focal,
        diameter_m=diameter,
        edge_px=edge_px,
        central_stop=stop / diameter if stop > 0 else None,
        defocus_m=focus_to_sample_m,
        antialiasing=antialiasing,
        photons=photons,
    )
