"""Rebinning: sum ``factor x factor`` pixel blocks of frames, weights and the centre."""

from __future__ import annotations

import numpy as np

from .checks import as_center, check_factor, check_real, frame_shape

__all__ = ["rebin", "rebin_center", "rebin_weights"]


def _blocks(frames, factor):
    """View ``(..., ny, nx)`` as ``(..., ny/f, f, nx/f, f)``."""
    ny, nx = frames.shape[-2:]
    return frames.reshape((*frames.shape[:-2], ny // factor, factor, nx // factor, factor))


def rebin(frames, factor):
    """Sum ``factor x factor`` blocks of the last two axes (photon counts stay Poisson).

    Parameters
    ----------
    frames : (n_frames, ny, nx) or (ny, nx) array of real numbers
        ``ny`` and ``nx`` must both be multiples of ``factor``.
    factor : int
        Block side, 1 to 32. 1 returns ``frames`` unchanged (same object, same dtype).

    Returns
    -------
    frames : (..., ny / factor, nx / factor) ndarray
        float32 for floating input (summed in float64); int64 for bool and integer input
        (uint64 for uint64 input), so sums cannot overflow the input type.

    Raises
    ------
    ParameterError
        ``factor`` not an int in 1..32 or not dividing both sides; non-real dtype.
    """
    frames = np.asarray(frames)
    dims = frame_shape(frames, "rebin")
    check_real(frames, "rebin", "frames")
    factor = check_factor(factor, dims, "rebin")
    if factor == 1:
        return frames
    if frames.dtype.kind == "f":
        return _blocks(frames, factor).sum(axis=(-3, -1), dtype=np.float64).astype(np.float32)
    acc = np.uint64 if frames.dtype == np.uint64 else np.int64
    return _blocks(frames, factor).sum(axis=(-3, -1), dtype=acc)


def rebin_weights(weights, factor):
    """Rebin a weight map or mask: a binned pixel is valid only if all its pixels are.

    Parameters
    ----------
    weights : (n_frames, ny, nx) or (ny, nx) array of real numbers
        ``> 0`` means valid (NaN counts as invalid).
    factor : int
        Block side, 1 to 32, dividing both sides. 1 returns ``weights`` unchanged.

    Returns
    -------
    weights : (..., ny / factor, nx / factor) ndarray
        For bool input, a bool mask (True where all sub-pixels are True). Otherwise float32:
        the mean of the sub-pixel weights where all are ``> 0``, and 0 elsewhere.

    Raises
    ------
    ParameterError
        As :func:`rebin`.
    """
    weights = np.asarray(weights)
    dims = frame_shape(weights, "rebin_weights", name="weights")
    check_real(weights, "rebin_weights", "weights")
    factor = check_factor(factor, dims, "rebin_weights")
    if factor == 1:
        return weights
    blocks = _blocks(weights, factor)
    valid = (blocks > 0).all(axis=(-3, -1))
    if weights.dtype == bool:
        return valid
    mean = blocks.sum(axis=(-3, -1), dtype=np.float64) / factor**2
    return np.where(valid, mean, 0.0).astype(np.float32)


def rebin_center(center, factor):
    """Centre after :func:`rebin`: ``center / factor``, as ptypy does.

    This keeps the ``'fftshift'`` convention: a centre at ``n // 2`` becomes
    ``(n / factor) // 2`` whenever ``n / factor`` is even (e.g. 64 -> 32 for 128 pixels
    binned by 2). It is not the exact geometric image of the point, which would be
    ``(center - (factor - 1) / 2) / factor``; the difference, ``(factor - 1) / (2 factor)``
    pixel, is the convention ptypy and ``.ptyd`` files use.

    Parameters
    ----------
    center : (2,) array_like of float
        ``(cy, cx)`` before binning.
    factor : int
        Block side, 1 to 32.

    Returns
    -------
    center : (2,) float64 ndarray
    """
    c = as_center(center, "rebin_center")
    factor = check_factor(factor, None, "rebin_center")
    return c / factor
