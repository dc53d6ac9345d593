"""Orientation: transpose and flip frames the way ptypy's ``orientation`` does."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from .checks import as_center, frame_shape, is_int

__all__ = ["orient", "orientation_flags"]


def orientation_flags(orientation):
    """Decode an orientation into ``(transpose, flipud, fliplr)``.

    Parameters
    ----------
    orientation : None, int or sequence of 3 bool
        ``None`` means no change. An int from 0 to 7 is read as ptypy does, through its
        3-digit binary representation: bit 4 = transpose, bit 2 = flipud, bit 1 = fliplr
        (so 5 = transpose then fliplr). A sequence gives the three flags directly; its items
        may be bools or the integers 0 and 1.

    Returns
    -------
    flags : tuple of 3 bool
        ``(transpose, flipud, fliplr)``.

    Raises
    ------
    ParameterError
        For anything else (a bool, an int outside 0..7, a string, a sequence of the wrong
        length or with items other than bools / 0 / 1).
    """
    if orientation is None:
        return (False, False, False)
    expected = "expected None, an int from 0 to 7, or 3 bools (transpose, flipud, fliplr)"
    if isinstance(orientation, (bool, np.bool_)):
        raise ParameterError(
            f"orientation_flags: orientation {orientation!r} is a single bool; {expected}; "
            f"e.g. 4 or (True, False, False) to transpose"
        )
    if is_int(orientation):
        if not 0 <= orientation <= 7:
            raise ParameterError(
                f"orientation_flags: orientation {orientation} is outside 0..7; {expected}; "
                f"bits: 4 = transpose, 2 = flipud, 1 = fliplr"
            )
        bits = np.base_repr(int(orientation), 2).zfill(3)
        return tuple(bit == "1" for bit in bits)
    items = None
    if not isinstance(orientation, (str, bytes)):
        try:
            items = list(orientation)
        except TypeError:
            items = None
    ok_item = (bool, np.bool_, int, np.integer)
    if (
        items is None
        or len(items) != 3
        or not all(isinstance(i, ok_item) and i in (0, 1) for i in items)
    ):
        raise ParameterError(
            f"orientation_flags: orientation {orientation!r} is not understood; {expected}; "
            f"e.g. 6 or (True, True, False) to transpose then flip up-down"
        )
    return tuple(bool(i) for i in items)


def orient(frames, *, orientation, center=None):
    """Transpose and flip the last two axes of frames, carrying a centre along.

    The operations are applied in ptypy's order: transpose, then flipud, then fliplr.

    Parameters
    ----------
    frames : (n_frames, ny, nx) or (ny, nx) array, any dtype
        Frames; any array with at least two axes is accepted.
    orientation : None, int or sequence of 3 bool
        See :func:`orientation_flags`.
    center : (2,) array_like of float, optional
        A pixel position ``(cy, cx)`` in the input frames.

    Returns
    -------
    frames : ndarray, same dtype, last two axes ``(nx, ny)`` if transposed
        C-contiguous. When any operation is applied this is a new array that shares no
        memory with the input; when the orientation is a no-op the input is returned as is
        (copied only if it was not C-contiguous).
    center : (2,) float64 ndarray or None
        The same physical point in the output frames: a transpose swaps ``(cy, cx)``, a
        flipud maps ``cy -> ny - 1 - cy`` (``ny`` after the transpose) and a fliplr maps
        ``cx -> nx - 1 - cx``. None when ``center`` is None.
    """
    frames = np.asarray(frames)
    frame_shape(frames, "orient")
    transpose, flipud, fliplr = orientation_flags(orientation)
    c = None if center is None else as_center(center, "orient")
    out = frames
    if transpose:
        out = np.swapaxes(out, -1, -2)
        c = None if c is None else c[::-1].copy()
    if flipud:
        out = out[..., ::-1, :]
        if c is not None:
            c[0] = out.shape[-2] - 1 - c[0]
    if fliplr:
        out = out[..., ::-1]
        if c is not None:
            c[1] = out.shape[-1] - 1 - c[1]
    if transpose or flipud or fliplr:
        out = np.array(out, order="C", copy=True)
    else:
        out = np.ascontiguousarray(out)
    return out, c
