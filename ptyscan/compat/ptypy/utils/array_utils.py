"""The array helpers that ptypy loaders import from ``ptypy.utils.array_utils``."""

from __future__ import annotations

import numpy as np

__all__ = ["translate_to_pix"]


def translate_to_pix(shape, center):
    """Pixel position (cy, cx) of ``center`` in a frame of ``shape``.

    Parameters
    ----------
    shape : (ny, nx) int
    center : 'fftshift', 'geometric', 'fft' or a pair of pixels (taken modulo ``shape``)

    Returns
    -------
    (2,) ndarray
    """
    sh = np.array(shape)
    if not isinstance(center, str):
        return np.asarray(center) % sh
    named = {"fftshift": sh // 2.0, "geometric": sh / 2.0 - 0.5, "fft": sh * 0.0}
    if center not in named:
        raise TypeError(
            f"center: must be 'fftshift', 'geometric', 'fft' or a pair of pixels, got {center!r}"
        )
    return named[center]


_translate_to_pix = translate_to_pix  # the name ptypy loaders import
