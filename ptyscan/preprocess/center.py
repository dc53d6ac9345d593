"""Centre of the diffraction pattern: named conventions, given pairs, centre of mass."""

from __future__ import annotations

import difflib

import numpy as np

from ..errors import ParameterError
from .checks import as_center, check_real, dims, fmt

__all__ = ["CENTER_NAMES", "center_of_mass", "geometric_center", "resolve_center"]

#: Named centre conventions accepted by :func:`resolve_center`.
CENTER_NAMES = ("fftshift", "geometric", "fft")


def geometric_center(shape):
    """Geometric middle of a frame.

    Parameters
    ----------
    shape : sequence of int
        A frame or stack shape ``(..., ny, nx)``; the last two entries are used.

    Returns
    -------
    center : (2,) float64 ndarray
        ``(ny / 2 - 0.5, nx / 2 - 0.5)``: the middle pixel for odd sides, the corner shared
        by the four middle pixels for even sides.
    """
    ny, nx = dims(shape, "geometric_center")
    return np.array([ny / 2 - 0.5, nx / 2 - 0.5])


def resolve_center(spec, shape):
    """Turn the ``center`` parameter into a pixel position.

    Parameters
    ----------
    spec : None, str or (2,) array_like of float
        ``'fftshift'`` gives ``(ny // 2, nx // 2)``, where ``np.fft.fftshift`` puts the zero
        frequency; ``'geometric'`` gives :func:`geometric_center`; ``'fft'`` gives
        ``(0, 0)``, the unshifted FFT origin; a pair ``(cy, cx)`` is taken as given and must
        lie inside the frame, ``0 <= cy <= ny - 1`` and ``0 <= cx <= nx - 1``; None (find
        it from the data later, e.g. with :func:`center_of_mass`) returns None.
    shape : sequence of int
        The frame (or stack) shape ``(..., ny, nx)`` the centre refers to.

    Returns
    -------
    center : (2,) float64 ndarray or None

    Raises
    ------
    ParameterError
        An unknown name, a malformed pair, or a pair outside the frame.
    """
    ny, nx = dims(shape, "resolve_center")
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec == "fftshift":
            return np.array([ny // 2, nx // 2], dtype=np.float64)
        if spec == "geometric":
            return geometric_center((ny, nx))
        if spec == "fft":
            return np.zeros(2)
        close = difflib.get_close_matches(spec, CENTER_NAMES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "or give a pair (cy, cx) in pixels"
        raise ParameterError(
            f"resolve_center: center {spec!r} is not a known name; expected one of "
            f"{', '.join(map(repr, CENTER_NAMES))}, a pair (cy, cx) or None; {hint}"
        )
    c = as_center(spec, "resolve_center")
    if not (0 <= c[0] <= ny - 1 and 0 <= c[1] <= nx - 1):
        raise ParameterError(
            f"resolve_center: center {fmt(c)} lies outside the frame of shape {(ny, nx)}; "
            f"expected 0 <= cy <= {ny - 1} and 0 <= cx <= {nx - 1}; give the centre in pixels "
            f"(row, column) of the raw frame, or 'fftshift', 'geometric' or 'fft'"
        )
    return c


def center_of_mass(image, *, weights=None):
    """Intensity-weighted centre of a 2-D image.

    Parameters
    ----------
    image : (ny, nx) array of real numbers
        For a stack, pass its sum, e.g. ``frames.sum(axis=0)``.
    weights : (ny, nx) array, optional
        Pixels where ``weights <= 0`` (or NaN) are left out; the others count with their
        plain intensity (weights are a mask here, not multipliers).

    Returns
    -------
    center : (2,) float64 ndarray
        ``(cy, cx)``; accumulated in float64 whatever the input dtype.

    Raises
    ------
    ParameterError
        Not 2-D, mismatched ``weights``, or a total intensity that is not positive and finite
        (empty or fully masked image, NaN pixels left unmasked).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ParameterError(
            f"center_of_mass: image has shape {image.shape}; expected a 2-D image (ny, nx); "
            f"sum a stack first, e.g. frames.sum(axis=0)"
        )
    check_real(image, "center_of_mass", "image")
    mass = image.astype(np.float64)
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != image.shape:
            raise ParameterError(
                f"center_of_mass: weights have shape {weights.shape}; expected the image "
                f"shape {image.shape}; orient and crop the mask like the frames"
            )
        mass[~(weights > 0)] = 0.0
    total = mass.sum()
    if not (np.isfinite(total) and total > 0):
        raise ParameterError(
            f"center_of_mass: image has total intensity {float(total)} over its valid pixels; "
            f"expected a positive finite total (NaN pixels must be masked by weights); all "
            f"frames are empty or masked; set center explicitly, e.g. 'fftshift' or (cy, cx)"
        )
    cy = mass.sum(axis=1) @ np.arange(image.shape[0], dtype=np.float64) / total
    cx = mass.sum(axis=0) @ np.arange(image.shape[1], dtype=np.float64) / total
    return np.array([cy, cx])
