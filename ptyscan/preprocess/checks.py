"""Argument checks shared by the frame operations of :mod:`ptyscan.preprocess`.

Each raises :class:`~ptyscan.errors.ParameterError` naming the calling function, the
argument and what was expected.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from ..errors import ParameterError

__all__ = [
    "as_center",
    "check_factor",
    "check_real",
    "dims",
    "fmt",
    "frame_shape",
    "is_int",
]

_MAX_FACTOR = 32


def fmt(values):
    """Format a small array as a tuple of Python numbers for error messages."""
    return tuple(np.asarray(values).tolist())


def is_int(value):
    """Return True for an integer (Python or NumPy), False for a bool or anything else."""
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def frame_shape(frames, func, name="frames"):
    """Return ``(ny, nx)`` of an array with at least two axes, else raise."""
    if frames.ndim < 2:
        raise ParameterError(
            f"{func}: {name} has shape {frames.shape}; expected a frame (ny, nx) or a stack "
            f"(n_frames, ny, nx); reshape 1-D data to 2-D first"
        )
    return frames.shape[-2], frames.shape[-1]


def dims(shape, func, name="shape", *, allow_int=False):
    """Validate a shape: a sequence of positive ints (its last two are used), or one int."""
    if allow_int and is_int(shape):
        shape = (shape, shape)
    try:
        items = tuple(shape)
    except TypeError:
        items = None
    if items is None or len(items) < 2 or not all(is_int(n) and n > 0 for n in items):
        want = "an int or a pair (ny, nx)" if allow_int else "a sequence (..., ny, nx)"
        raise ParameterError(
            f"{func}: {name} {shape!r} is not a valid frame shape; expected {want} of "
            f"positive integers, e.g. (128, 128)"
        )
    if allow_int and len(items) != 2:
        raise ParameterError(
            f"{func}: {name} {shape!r} has {len(items)} entries; expected 2 (ny, nx), "
            f"e.g. (128, 128)"
        )
    return int(items[-2]), int(items[-1])


def as_center(center, func, name="center"):
    """Return a centre as a finite float64 array of shape (2,), else raise."""
    try:
        c = np.array(center, dtype=np.float64)
    except (TypeError, ValueError):
        c = None
    if c is None or c.shape != (2,) or not np.all(np.isfinite(c)):
        raise ParameterError(
            f"{func}: {name} {center!r} is not a pixel position; expected a pair of finite "
            f"numbers (cy, cx), row then column, e.g. (63.5, 64.0)"
        )
    return c


def check_real(array, func, name):
    """Raise unless ``array`` holds real numbers (a bool, integer or float dtype)."""
    if array.dtype.kind not in "biuf":
        raise ParameterError(
            f"{func}: {name} has dtype {array.dtype}; expected real numbers (bool, integer or "
            f"float); take the modulus squared of complex data first"
        )


def check_factor(factor, frame_shape, func):
    """Validate a rebin factor (int in 1..32 dividing both sides of ``frame_shape``)."""
    if not is_int(factor):
        raise ParameterError(
            f"{func}: factor {factor!r} is not an integer; expected an integer from 1 to "
            f"{_MAX_FACTOR}, e.g. 2"
        )
    if not 1 <= factor <= _MAX_FACTOR:
        raise ParameterError(
            f"{func}: factor {factor} is outside 1..{_MAX_FACTOR}; expected an integer from 1 "
            f"(no binning) to {_MAX_FACTOR}, e.g. 2"
        )
    if frame_shape is not None and any(n % factor for n in frame_shape):
        ny, nx = frame_shape
        divisors = [d for d in range(2, _MAX_FACTOR + 1) if ny % d == 0 and nx % d == 0]
        if divisors:
            hint = f"choose a divisor of both sides, e.g. {' or '.join(map(str, divisors[:2]))}"
        else:
            hint = f"crop_pad to a shape divisible by {factor} first"
        raise ParameterError(
            f"{func}: factor {factor} does not divide frame shape {(ny, nx)}; {hint}"
        )
    return int(factor)
