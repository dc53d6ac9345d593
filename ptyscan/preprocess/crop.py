"""Crop and/or pad frames so that a given centre pixel lands mid-frame."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from .checks import as_center, dims, fmt, frame_shape

__all__ = ["crop_is_identity", "crop_pad", "crop_pad_slices", "round_half_up"]


def round_half_up(c):
    """Nearest integer pixel, halves rounded up, as int64.

    Computed from the exact fraction ``c - floor(c)`` rather than as ``floor(c + 0.5)``,
    which rounds 0.49999999999999994 up.
    """
    base = np.floor(c)
    return (base + (c - base >= 0.5)).astype(np.int64)


def _crop_pad_plan(in_shape, shape, center, func):
    """Shared planning of crop/pad: validated output shape, offset and slices."""
    in_ny, in_nx = in_shape
    out_shape = dims(shape, func, allow_int=True)
    c = as_center(center, func)
    offset = np.array(out_shape) // 2 - round_half_up(c)
    src, dst = [], []
    for n_in, n_out, d in zip((in_ny, in_nx), out_shape, offset.tolist(), strict=True):
        lo, hi = max(0, d), min(n_out, n_in + d)
        if hi <= lo:
            raise ParameterError(
                f"{func}: center {fmt(c)} is so far from the frame of shape "
                f"{(in_ny, in_nx)} that an output of shape {out_shape} around it holds none "
                f"of its pixels; expected a centre on or near the frame, e.g. "
                f"resolve_center('fftshift', shape)"
            )
        dst.append(slice(lo, hi))
        src.append(slice(lo - d, hi - d))
    return out_shape, c + offset, tuple(src), tuple(dst)


def crop_pad_slices(in_shape, *, shape, center):
    """Where :func:`crop_pad` copies from and to, for reading only what is kept.

    Parameters
    ----------
    in_shape : sequence of int
        Input frame or stack shape ``(..., ny, nx)``; the last two entries are used.
    shape : int or (2,) sequence of int
        Output frame shape ``(ny, nx)``; an int means a square.
    center : (2,) array_like of float
        Pixel position ``(cy, cx)`` in the input; see :func:`crop_pad` for the rounding.

    Returns
    -------
    src : tuple of 2 slice
        Rows and columns of the input that are kept.
    dst : tuple of 2 slice
        Where they go in the output; everything else in the output is padding. Both have
        steps of 1, non-negative bounds and equal lengths, so::

            out = np.full((n, *shape), fill, dtype)
            out[(..., *dst)] = dataset[(..., *src)]   # e.g. an h5py dataset

        equals ``crop_pad(frames, shape=shape, center=center, fill=fill)[0]``.
    """
    in_dims = dims(in_shape, "crop_pad_slices", name="in_shape")
    _, _, src, dst = _crop_pad_plan(in_dims, shape, center, "crop_pad_slices")
    return src, dst


def _check_fill(fill, dtype):
    """Return ``fill`` as a scalar of ``dtype``, raising if it cannot be represented."""
    value = np.asarray(fill)
    ok = value.ndim == 0 and value.dtype.kind in "biufc"
    if ok and value.dtype.kind == "c" and dtype.kind != "c":
        ok = False
    if ok and dtype.kind in "biu":
        lo, hi = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
        integral = value.dtype.kind in "biu" or (
            value.dtype.kind == "f" and bool(np.isfinite(value)) and float(value).is_integer()
        )
        ok = integral and lo <= int(value) <= hi
    elif ok and np.isfinite(value):
        with np.errstate(over="ignore"):
            ok = bool(np.isfinite(value.astype(dtype)))
    if not ok:
        raise ParameterError(
            f"crop_pad: fill {fill!r} cannot be stored in frames of dtype {dtype}; expected a "
            f"real scalar in range (and a whole number for integer frames), e.g. 0"
        )
    return value.astype(dtype)[()]


def crop_pad(frames, *, shape, center, fill=0):
    """Crop and/or pad the last two axes so that the centre pixel lands mid-frame.

    The pixel ``round(center)`` of the input lands at ``(ny // 2, nx // 2)`` of the output,
    the ``'fftshift'`` centre. Rounding is half up (2.5 -> 3, 3.5 -> 4, -0.5 -> 0), not
    NumPy's half-to-even: it commutes with integer shifts, so calling ``crop_pad`` again
    with the returned centre and the same shape changes nothing. Each axis is cropped or
    padded independently, so one axis may be cropped while the other is padded; odd and
    rectangular shapes work.

    Parameters
    ----------
    frames : (n_frames, ny, nx) or (ny, nx) array
        Any array with at least two axes; leading axes are kept.
    shape : int or (2,) sequence of int
        Output frame shape ``(ny_out, nx_out)``; an int means a square.
    center : (2,) array_like of float
        Pixel position ``(cy, cx)`` in ``frames``.
    fill : scalar, default 0
        Value of padded pixels; must be exactly representable in ``frames.dtype``.

    Returns
    -------
    frames : (..., ny_out, nx_out) ndarray, same dtype
        A new C-contiguous array (allocated once; only the overlap is copied).
    center : (2,) float64 ndarray
        ``center + (shape // 2 - round(center))``: the same point in the output, sub-pixel
        offset kept.

    See Also
    --------
    crop_pad_slices : the same plan as slices, to read only the kept region from disk.
    """
    frames = np.asarray(frames)
    in_dims = frame_shape(frames, "crop_pad")
    out_shape, new_center, src, dst = _crop_pad_plan(in_dims, shape, center, "crop_pad")
    value = _check_fill(fill, frames.dtype)
    out = np.empty((*frames.shape[:-2], *out_shape), dtype=frames.dtype)
    out[(..., *dst)] = frames[(..., *src)]
    rows, cols = dst
    out[..., : rows.start, :] = value
    out[..., rows.stop :, :] = value
    out[..., rows, : cols.start] = value
    out[..., rows, cols.stop :] = value
    return out, new_center


def crop_is_identity(in_shape, shape, center) -> bool:
    """True when :func:`crop_pad` would return frames of ``in_shape`` unchanged
    (same shape, centre on the middle pixel)."""
    centred = np.floor(np.asarray(center, np.float64) + 0.5) == np.asarray(shape) // 2
    return tuple(in_shape[-2:]) == tuple(shape) and bool(centred.all())
