"""Samples: transmission functions from images, thickness maps and noise.

Sign convention: a wave ``exp(1j (k z - w t))`` crossing a thickness ``t`` of
refractive index ``n = 1 - delta + 1j beta`` is multiplied, relative to
vacuum, by ``T = exp(-1j k delta t) * exp(-k beta t)`` with
``k = 2 pi / wavelength`` (ptypy's ``exp(1j k t (-delta + 1j beta))``).

"Minimum feature size" (mfs) is a Gaussian FWHM in pixels, as in ptypy
(sigma = mfs / 2.3548). Everything random takes an ``rng``
(``numpy.random.Generator`` or int seed).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.geometry import frame_shape
from ptyscan.simulate.objects import noise_screen

__all__ = [
    "FWHM_PER_SIGMA",
    "load_image",
    "noise_transmission",
    "noise_transmission_kwargs",
    "object_from_image",
    "place_on_canvas",
    "smooth",
    "thickness_from_image",
    "transmission_from_thickness",
    "zoom",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""FWHM of a Gaussian in units of its standard deviation (2.3548)."""

_PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".cxi")


def _number(name, value, *, minimum=0.0):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not (math.isfinite(number) and number >= minimum):
        raise ParameterError(f"{name}: got {value!r}; expected a finite number >= {minimum:g}.")
    return number


def noise_transmission(
    shape, *, rng, phase_rms, phase_mfs_px, amplitude_rms=0.0, amplitude_mfs_px=0.0
):
    """A random complex screen ``(1 + a) * exp(1j * p)`` (diffusers, sample noise, modes).

    Parameters
    ----------
    shape : int or (int, int)
        Screen shape in pixels.
    rng : numpy.random.Generator or int
        Random source; the phase screen is drawn first, then the amplitude one.
    phase_rms : float
        Standard deviation of the phase ``p`` in radians, >= 0.
    phase_mfs_px : float
        Minimum feature size (Gaussian FWHM) of the phase screen in pixels, >= 0.
    amplitude_rms, amplitude_mfs_px : float
        The same for the relative amplitude ``a`` (clipped so ``1 + a >= 0``).

    Returns
    -------
    (ny, nx) ndarray of complex128
    """
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    sigma_p = _number("phase_mfs_px", phase_mfs_px) / FWHM_PER_SIGMA
    phase = noise_screen(
        shape, rng=rng, correlation_px=sigma_p, amplitude=_number("phase_rms", phase_rms)
    )
    out = np.exp(1j * phase.astype(np.float64))
    amp_rms = _number("amplitude_rms", amplitude_rms)
    sigma_a = _number("amplitude_mfs_px", amplitude_mfs_px) / FWHM_PER_SIGMA
    if amp_rms > 0:
        amp = noise_screen(shape, rng=rng, correlation_px=sigma_a, amplitude=amp_rms)
        out *= np.maximum(1.0 + amp.astype(np.float64), 0.0)
    return out


def noise_transmission_kwargs(
    spec,
    *,
    name="noise",
    expected="(phase_rms, mfs) or (phase_rms, mfs, modulus_rms, modulus_mfs), mfs in pixels",
):
    """The :func:`noise_transmission` arguments a noise tuple stands for.

    Parameters
    ----------
    spec : sequence of float
        ``(phase_rms, mfs)`` or ``(phase_rms, mfs, modulus_rms, modulus_mfs)``:
        rms in radians (phase) and relative units (modulus), minimum feature
        sizes in pixels; without the last two the modulus is not perturbed.
    name : str
        Parameter name that an error message starts with.
    expected : str
        What an error message says was expected.

    Returns
    -------
    dict
        ``phase_rms``, ``phase_mfs_px``, ``amplitude_rms`` and ``amplitude_mfs_px``
        (floats), to pass as ``noise_transmission(shape, rng=rng, **kwargs)``.
    """
    values = tuple(float(v) for v in np.ravel(spec))
    if len(values) not in (2, 4):
        raise ParameterError(f"{name}: got {spec!r}; expected {expected}.")
    amplitude = values[2:] if len(values) == 4 else (0.0, 0.0)
    return {
        "phase_rms": values[0],
        "phase_mfs_px": values[1],
        "amplitude_rms": amplitude[0],
        "amplitude_mfs_px": amplitude[1],
    }


def load_image(path, *, key=None):
    """Read a 2-D image from ``.npy``, HDF5 (with ``key``), PNG/TIFF/JPEG or EDF/CBF.

    Colour images are averaged over their channels. HDF5 datasets with more
    than two dimensions are an error (select one frame in a file of your own).

    Parameters
    ----------
    path : str or os.PathLike
        Image file.
    key : str, optional
        Dataset path inside an HDF5 file (required for HDF5).

    Returns
    -------
    ndarray
        The image (real or complex), 2-D.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if not os.path.exists(path):
        raise ParameterError(f"image: file {path!r} does not exist.")
    if suffix == ".npy":
        image = np.load(path, allow_pickle=False)
    elif suffix in _HDF5_SUFFIXES:
        image = _read_hdf5(path, key)
    elif suffix in _PIL_SUFFIXES:
        image = _read_pil(path)
    elif suffix in (".edf", ".cbf"):
        try:
            import fabio
        except ImportError:
            raise ParameterError(
                f"image: reading {suffix} files needs fabio; pip install 'ptyscan[io]'."
            ) from None
        image = fabio.open(path).data
    else:
        raise ParameterError(
            f"image: got {path!r}; expected a .npy, HDF5 ({', '.join(_HDF5_SUFFIXES)}), "
            f"image ({', '.join(_PIL_SUFFIXES)}), .edf or .cbf file."
        )
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2 or image.size == 0:
        raise ParameterError(f"image: {path!r} holds shape {image.shape}; expected a 2-D image.")
    return image


def _read_hdf5(path, key):
    import h5py

    if key is None:
        raise ParameterError(f"image: {path!r} is HDF5; give the dataset key too.")
    with h5py.File(path, "r") as f:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise ParameterError(f"image: no dataset {key!r} in {path!r}.")
        return f[key][()]


def _read_pil(path):
    try:
        from PIL import Image
    except ImportError:
        raise ParameterError(
            "image: reading PNG/TIFF/JPEG files needs Pillow; pip install pillow "
            "(it comes with ptyscan[plot])."
        ) from None
    with Image.open(path) as img:
        return np.asarray(img, dtype=np.float64 if img.mode in ("I", "F", "I;16") else None)


def _unit_range(image):
    """Real image scaled to [0, 1] (a flat image gives zeros)."""
    image = np.asarray(image, dtype=np.float64)
    if np.iscomplexobj(image) or not np.all(np.isfinite(image)):
        raise ParameterError("image: expected a finite real image.")
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _range(name, value):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ParameterError(f"{name}: got {value!r}; expected a pair (low, high), low <= high.")
    return low, high


def object_from_image(image, *, amplitude_range=(0.8, 1.0), phase_range=(0.0, 1.0)):
    """Map a real image onto a transmission: linear in amplitude and in phase.

    The image minimum maps to the low end of both ranges, its maximum to the
    high ends: ``T = A * exp(1j * P)``.

    Parameters
    ----------
    image : (ny, nx) array_like of float
    amplitude_range : (float, float)
        ``(low, high)`` amplitude, ``0 <= low <= high``; equal values give a
        pure phase object.
    phase_range : (float, float)
        ``(low, high)`` phase in radians.

    Returns
    -------
    (ny, nx) ndarray of complex64
    """
    unit = _unit_range(image)
    a_low, a_high = _range("amplitude_range", amplitude_range)
    if a_low < 0:
        raise ParameterError(f"amplitude_range: got {amplitude_range!r}; expected low >= 0.")
    p_low, p_high = _range("phase_range", phase_range)
    amplitude = a_low + (a_high - a_low) * unit
    phase = p_low + (p_high - p_low) * unit
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def thickness_from_image(image, *, max_thickness_m):
    """A thickness map from a real image: its range mapped onto ``[0, max_thickness_m]``."""
    return _unit_range(image) * _number("max_thickness_m", max_thickness_m)


def transmission_from_thickness(thickness_m, *, delta, beta, wavelength_m):
    """Transmission ``exp(-1j k delta t - k beta t)`` of a thickness map.

    Parameters
    ----------
    thickness_m : array_like of float
        Thickness in metres.
    delta, beta : float
        Refractive-index decrement and absorption index (``n = 1 - delta + 1j beta``), >= 0.
    wavelength_m : float
        Wavelength in metres.

    Returns
    -------
    ndarray of complex64
    """
    k = 2.0 * math.pi / _number("wavelength_m", wavelength_m, minimum=1e-300)
    t = np.asarray(thickness_m, dtype=np.float64)
    d, b = _number("delta", delta), _number("beta", beta)
    return np.exp(-1j * k * d * t - k * b * t).astype(np.complex64)


def smooth(array, *, fwhm_px):
    """Gaussian smoothing with a FWHM in pixels (real and imaginary parts separately)."""
    from scipy.ndimage import gaussian_filter

    sigma = _number("fwhm_px", fwhm_px) / FWHM_PER_SIGMA
    arr = np.asarray(array)
    if sigma == 0:
        return arr.copy()
    if np.iscomplexobj(arr):
        return gaussian_filter(arr.real, sigma) + 1j * gaussian_filter(arr.imag, sigma)
    return gaussian_filter(arr.astype(np.float64), sigma)


def zoom(array, factor):
    """Resample by ``factor`` (scalar or (y, x)) with cubic splines (complex allowed)."""
    from scipy.ndimage import zoom as _zoom

    factors = np.broadcast_to(np.asarray(factor, dtype=float), (2,))
    if not np.all(np.isfinite(factors)) or not np.all(factors > 0):
        raise ParameterError(f"zoom: got {factor!r}; expected a positive factor or a pair.")
    arr = np.asarray(array)
    if np.iscomplexobj(arr):
        return _zoom(arr.real, factors) + 1j * _zoom(arr.imag, factors)
    return _zoom(arr.astype(np.float64), factors)


def place_on_canvas(array, shape, *, offset_px=(0, 0), fill=1.0):
    """Centre ``array`` on a canvas of ``shape`` (cropping or padding with ``fill``).

    Parameters
    ----------
    array : (h, w) array_like
    shape : int or (int, int)
        Canvas shape ``(ny, nx)``.
    offset_px : (int, int)
        Shift ``(y, x)`` of the array's centre from the canvas centre, pixels.
    fill : complex
        Value of the canvas where the array does not reach.

    Returns
    -------
    (ny, nx) ndarray, complex64
    """
    ny, nx = frame_shape(shape)
    arr = np.asarray(array)
    out = np.full((ny, nx), fill, dtype=np.complex64)
    oy, ox = (round(float(v)) for v in np.broadcast_to(offset_px, (2,)))
    top = ny // 2 - arr.shape[0] // 2 + oy
    left = nx // 2 - arr.shape[1] // 2 + ox
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + arr.shape[0], ny), min(left + arr.shape[1], nx)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = arr[y0 - top : y1 - top, x0 - left : x1 - left]
    return out
