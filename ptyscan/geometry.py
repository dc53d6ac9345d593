"""Wavelengths, pixel sizes and position conversions.

Every number with a unit carries it in its name: ``energy_kev`` in keV,
``distance_m``, ``psize_m`` and ``wavelength_m`` in metres. Arrays of
positions are ``(N, 2)`` with column 0 the slow (vertical, y) axis and
column 1 the fast (horizontal, x) axis, as in ptypy.

The constants are the exact SI values (h, c, e) and the CODATA 2018
electron rest energy.
"""

from __future__ import annotations

import numpy as np

from ptyscan.errors import ParameterError

__all__ = [
    "ELECTRON_REST_ENERGY_KEV",
    "ELEMENTARY_CHARGE_C",
    "HC_KEV_M",
    "PLANCK_J_S",
    "SPEED_OF_LIGHT_M_S",
    "STEM_CALIBRATION_MODES",
    "centred_coordinates_px",
    "check_object_extent",
    "check_sample_pixel",
    "electron_energy_kev",
    "electron_wavelength_m",
    "farfield_sample_pixel_m",
    "frame_shape",
    "photon_energy_kev",
    "positions_to_pixels",
    "sample_pixel_m",
    "stem_calibration",
    "view_pixels",
    "xray_wavelength_m",
]

PLANCK_J_S = 6.62607015e-34
"""Planck constant h in J s (exact, SI 2019)."""

SPEED_OF_LIGHT_M_S = 299792458.0
"""Speed of light in vacuum c in m/s (exact)."""

ELEMENTARY_CHARGE_C = 1.602176634e-19
"""Elementary charge e in C (exact, SI 2019)."""

ELECTRON_REST_ENERGY_KEV = 510.99895000
"""Electron rest energy m0 c^2 in keV (CODATA 2018)."""

HC_KEV_M = PLANCK_J_S * SPEED_OF_LIGHT_M_S / ELEMENTARY_CHARGE_C / 1e3
"""h c in keV m (about 1.23984e-9), so that lambda_m = HC_KEV_M / energy_kev."""


def _positive(name, value, *, hint):
    """Return ``value`` as float64 (scalar or array) after checking it is > 0 and finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name}: got {value!r}; expected a positive finite number. {hint}"
        ) from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ParameterError(f"{name}: got {value!r}; expected a positive finite number. {hint}")
    return float(arr) if arr.ndim == 0 else arr


def _pair(name, value, *, hint):
    """Return ``value`` (a scalar or a length-2 sequence) as a float64 pair (y, x)."""
    arr = _positive(name, value, hint=hint)
    arr = np.broadcast_to(np.asarray(arr, dtype=np.float64), (2,)) if np.ndim(arr) == 0 else arr
    if arr.shape != (2,):
        raise ParameterError(f"{name}: got {value!r}; expected a scalar or a pair (y, x). {hint}")
    return np.array(arr, dtype=np.float64)


def xray_wavelength_m(energy_kev):
    """Photon wavelength from photon energy, ``lambda = h c / E``.

    Parameters
    ----------
    energy_kev : float or array_like of float
        Photon energy in keV, > 0.

    Returns
    -------
    float or ndarray of float64
        Wavelength in metres, same shape as ``energy_kev``
        (8.04778 keV, Cu K-alpha, gives 1.5406e-10 m).
    """
    energy = _positive("energy_kev", energy_kev, hint="Photon energy in keV, e.g. 8.7.")
    return HC_KEV_M / energy


def photon_energy_kev(wavelength_m):
    """Photon energy from wavelength, the inverse of :func:`xray_wavelength_m`.

    Parameters
    ----------
    wavelength_m : float or array_like of float
        Wavelength in metres, > 0.

    Returns
    -------
    float or ndarray of float64
        Photon energy in keV.
    """
    wavelength = _positive(
        "wavelength_m", wavelength_m, hint="Wavelength in metres, e.g. 1.5406e-10."
    )
    return HC_KEV_M / wavelength


def electron_wavelength_m(energy_kev):
    """Relativistic electron wavelength for an accelerating voltage.

    ``lambda = h c / sqrt((2 m0 c^2 + E) E)`` with ``E`` the kinetic energy.

    Parameters
    ----------
    energy_kev : float or array_like of float
        Kinetic energy in keV (the accelerating voltage in kV), > 0.

    Returns
    -------
    float or ndarray of float64
        Wavelength in metres (300 keV gives 1.9687e-12 m = 0.01969 Angstrom).
    """
    energy = _positive(
        "energy_kev", energy_kev, hint="Electron kinetic energy in keV, e.g. 300 for 300 kV."
    )
    return HC_KEV_M / np.sqrt((2.0 * ELECTRON_REST_ENERGY_KEV + energy) * energy)


def electron_energy_kev(wavelength_m):
    """Electron kinetic energy (keV, the accelerating voltage in kV) of a wavelength:
    the inverse of :func:`electron_wavelength_m`, ``sqrt((hc/λ)² + (m0c²)²) - m0c²``."""
    wavelength = _positive("wavelength_m", wavelength_m, hint="Wavelength in metres.")
    momentum_kev = HC_KEV_M / wavelength
    rest = ELECTRON_REST_ENERGY_KEV
    return momentum_kev**2 / (np.sqrt(momentum_kev**2 + rest**2) + rest)


def farfield_sample_pixel_m(*, energy_kev=None, distance_m, shape, psize_m, wavelength_m=None):
    """Sample-plane pixel size of a far-field (Fraunhofer) geometry.

    ``lambda z / (N psize)`` per axis: ptypy's ``resolution``.

    Parameters
    ----------
    energy_kev : float, optional
        Photon energy in keV; the wavelength is ``h c / E``. Give exactly one
        of ``energy_kev`` and ``wavelength_m``.
    distance_m : float
        Sample-detector distance in metres.
    shape : int or (int, int)
        Frame shape ``N`` or ``(ny, nx)`` in detector pixels.
    psize_m : float or (float, float)
        Detector pixel size in metres, scalar or ``(y, x)``.
    wavelength_m : float, optional
        Wavelength in metres (for electrons, see :func:`electron_wavelength_m`).

    Returns
    -------
    (2,) ndarray of float64
        Sample-plane pixel size ``(y, x)`` in metres.
    """
    if (energy_kev is None) == (wavelength_m is None):
        raise ParameterError(
            f"energy_kev/wavelength_m: got energy_kev={energy_kev!r}, "
            f"wavelength_m={wavelength_m!r}; expected exactly one of them. "
            "Hint: pass energy_kev for X-rays, or "
            "wavelength_m=electron_wavelength_m(energy_kev) for electrons."
        )
    if wavelength_m is None:
        wavelength = xray_wavelength_m(energy_kev)
    else:
        wavelength = _positive("wavelength_m", wavelength_m, hint="Wavelength in metres.")
    if np.ndim(wavelength) != 0:
        raise ParameterError(
            f"energy_kev/wavelength_m: got an array {wavelength!r}; expected a scalar."
        )
    distance = _positive("distance_m", distance_m, hint="Sample-detector distance in metres.")
    if np.ndim(distance) != 0:
        raise ParameterError(f"distance_m: got {distance_m!r}; expected a scalar in metres.")
    npix = np.array(frame_shape(shape), dtype=np.float64)
    psize = _pair("psize_m", psize_m, hint="Detector pixel size in metres, e.g. 172e-6.")
    return wavelength * distance / (npix * psize)


MAX_SIMULATION_PIXELS = 2**31
"""Largest simulated object (pixels): 16 GB of complex64, beyond any synthetic scan."""


def check_sample_pixel(sample_pixel_m, *, scan):
    """Refuse a simulation's sample pixel no experiment has (outside [1e-14, 0.1] m, set
    by energy, distance, psize and shape) with a ParameterError, before any allocation."""
    pixel = np.asarray(sample_pixel_m, dtype=np.float64)
    if not (np.all(np.isfinite(pixel)) and np.all(pixel >= 1e-14) and np.all(pixel <= 0.1)):
        raise ParameterError(
            f"{scan}: the sample pixel would be {_fmt_pair(pixel)} m; expected between 1e-14 and "
            "0.1 m: check energy, distance, psize and shape"
        )


def check_object_extent(extent_px, *, scan):
    """Refuse a simulated object of more than :data:`MAX_SIMULATION_PIXELS` pixels with a
    ParameterError naming its size and the keys that set it, before it is allocated."""
    extent = np.asarray(extent_px, dtype=np.float64)
    if float(np.prod(extent)) > MAX_SIMULATION_PIXELS:
        raise ParameterError(
            f"{scan}: the simulated object would be {int(extent[0])}×{int(extent[1])} pixels; "
            f"expected at most {MAX_SIMULATION_PIXELS:.2g}: fewer frames, a smaller step, or a "
            "larger sample pixel (energy, distance, psize)"
        )


def _fmt_pair(arr):
    values = np.atleast_1d(arr)
    return " × ".join(f"{v:.3g}" for v in values)


def positions_to_pixels(positions_m, sample_pixel_m):
    """Convert scan positions from metres to (fractional) sample-plane pixels.

    Parameters
    ----------
    positions_m : (N, 2) array_like of float
        Positions ``(y, x)`` in metres.
    sample_pixel_m : float or (float, float)
        Sample-plane pixel size in metres, scalar or ``(y, x)``
        (see :func:`farfield_sample_pixel_m`).

    Returns
    -------
    (N, 2) ndarray of float64
        Positions ``(y, x)`` in pixels; not rounded.
    """
    pos = np.asarray(positions_m, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ParameterError(
            f"positions_m: got an array of shape {pos.shape}; expected (N, 2) with columns (y, x)."
        )
    if not np.all(np.isfinite(pos)):
        raise ParameterError(
            "positions_m: got non-finite values (NaN or inf); expected finite positions in metres."
        )
    pixel = _pair("sample_pixel_m", sample_pixel_m, hint="Sample-plane pixel size in metres.")
    return pos / pixel


def frame_shape(shape, *, name="shape"):
    """Validate a frame shape and return it as ``(ny, nx)``.

    Parameters
    ----------
    shape : int or (int, int)
        ``N`` (a square ``N x N`` frame) or ``(ny, nx)``, in pixels, each >= 1.
    name : str
        Argument name used in the error message.

    Returns
    -------
    (int, int)
        ``(ny, nx)``.
    """
    values = (shape, shape) if np.ndim(shape) == 0 else tuple(np.ravel(shape))
    ok = len(values) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values
    )
    if not ok:
        raise ParameterError(
            f"{name}: got {shape!r}; expected a positive int N or a pair of positive ints "
            "(ny, nx). Hint: frame sizes are whole pixels, e.g. 128 or (128, 256)."
        )
    return int(values[0]), int(values[1])


def centred_coordinates_px(shape):
    """Pixel offsets from the centre pixel ``(ny // 2, nx // 2)``.

    This is the ``numpy.fft.fftshift`` convention: the zero frequency of a
    shifted spectrum, and the centre of every centred probe or object, sits
    at index ``(ny // 2, nx // 2)``.

    Parameters
    ----------
    shape : int or (int, int)
        Frame shape in pixels.

    Returns
    -------
    y : (ny, 1) ndarray of float64
        Vertical offsets in pixels.
    x : (1, nx) ndarray of float64
        Horizontal offsets in pixels; ``y`` and ``x`` broadcast to ``(ny, nx)``.
    """
    ny, nx = frame_shape(shape)
    y = (np.arange(ny, dtype=np.float64) - ny // 2)[:, None]
    x = (np.arange(nx, dtype=np.float64) - nx // 2)[None, :]
    return y, x


STEM_CALIBRATION_MODES = ("dx", "dk", "kMax", "da", "angleMax", "n_alpha", "RBF", "fitRBF")
"""PtyRAD's ``meas_calibration`` modes: units Å, 1/Å, 1/Å, mrad, mrad, 1, px, (fitted) px."""


def stem_calibration(mode, value, *, npix, energy_kev, conv_angle_mrad):
    """A 4D-STEM detector calibration in every unit PtyRAD knows (its ``meas_calibration``).

    Parameters
    ----------
    mode : str
        One of :data:`STEM_CALIBRATION_MODES`: ``dx`` sample pixel (Å), ``dk`` detector pixel
        (1/Å), ``kMax`` half the detector width (1/Å), ``da`` detector pixel (mrad),
        ``angleMax`` half the detector width (mrad), ``n_alpha`` ``angleMax`` in units of the
        convergence angle, ``RBF`` or ``fitRBF`` the bright-field disk radius (px).
    value : float
        The value in that unit, > 0.
    npix : int
        Detector pixels across (the width ``value`` refers to).
    energy_kev : float
        Electron energy in keV (kV).
    conv_angle_mrad : float
        Convergence semi-angle in mrad.

    Returns
    -------
    dict
        ``dk_per_angstrom``, ``dx_angstrom``, ``kmax_per_angstrom``, ``angle_max_mrad``,
        ``da_mrad``, ``rbf_px``, ``wavelength_angstrom``, ``nyquist_angstrom`` (2·dx, the
        finest period the sample grid holds) and ``rayleigh_angstrom`` (0.61 λ / α, the
        incoherent STEM limit of the aperture).
    """
    value = _positive(f"meas_calibration.value ({mode})", value, hint="The value in its unit.")
    lam = float(electron_wavelength_m(energy_kev)) * 1e10
    alpha = 1e-3 * _positive("probe_conv_angle", conv_angle_mrad, hint="In mrad, e.g. 20.")
    dk_of = {
        "dx": lambda v: 1.0 / (npix * v),
        "dk": lambda v: v,
        "kMax": lambda v: 2.0 * v / npix,
        "da": lambda v: 1e-3 * v / lam,
        "angleMax": lambda v: 2e-3 * v / (lam * npix),
        "n_alpha": lambda v: 2.0 * v * alpha / (lam * npix),
        "RBF": lambda v: alpha / (lam * v),
        "fitRBF": lambda v: alpha / (lam * v),
    }
    if mode not in dk_of:
        raise ParameterError(
            f"meas_calibration.mode: got {mode!r}; expected one of {', '.join(dk_of)}"
        )
    dk = float(dk_of[mode](value))
    dx = 1.0 / (npix * dk)
    return {
        "dk_per_angstrom": dk,
        "dx_angstrom": dx,
        "kmax_per_angstrom": dk * npix / 2.0,
        "angle_max_mrad": 1e3 * lam * dk * npix / 2.0,
        "da_mrad": 1e3 * lam * dk,
        "rbf_px": alpha / (lam * dk),
        "wavelength_angstrom": lam,
        "nyquist_angstrom": 2.0 * dx,
        "rayleigh_angstrom": 0.61 * lam / alpha,
    }


def sample_pixel_m(meta, *, wavelength_m=None) -> np.ndarray:
    """(2,) sample-plane pixel size in metres of a :class:`~ptyscan.chunk.ScanMeta`:
    ``λ z / (N psize)`` far field (``λ`` from ``meta.energy`` unless ``wavelength_m`` is
    given), ``psize`` near field. One definition for the engines, the plausibility
    check and the pictures."""
    if meta.propagation == "nearfield":
        return np.broadcast_to(np.asarray(meta.psize, np.float64), (2,)).copy()
    energy = None if wavelength_m is not None else meta.energy
    return farfield_sample_pixel_m(
        energy_kev=energy,
        wavelength_m=wavelength_m,
        distance_m=meta.distance,
        shape=meta.shape,
        psize_m=meta.psize,
    )


def view_pixels(positions_m, pixel_m, frame, subpixel=False):
    """Global top-left object pixels of views at ``positions_m`` (n, 2) metres (y, x).

    A view's centre is at ``position / pixel_m``; its top-left corner is that minus
    ``(sy // 2, sx // 2)``. Returns ``(pos_px, frac)``: without ``subpixel`` the
    corners of the rounded centres (int64) and None; with it, the pixels below the
    exact corners (floor, int64) and the fractional parts (n, 2) float64 in [0, 1)
    (within 1e-9 of a whole pixel counts as that pixel, so integer positions stay exact).
    """
    pos = np.asarray(positions_m, np.float64).reshape(-1, 2)
    half = np.array([frame[0] // 2, frame[1] // 2], np.int64)
    if not subpixel:
        return np.round(pos / pixel_m).astype(np.int64) - half, None
    corners = pos / pixel_m - half
    whole = np.round(corners)
    corners = np.where(np.abs(corners - whole) < 1e-9, whole, corners)
    floor = np.floor(corners)
    return floor.astype(np.int64), corners - floor
