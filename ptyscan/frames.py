"""Pure operations on detector frames: orientation, centre, crop/pad and rebinning.

Every function works on NumPy arrays and has no side effects. A stack of frames is
``(n_frames, ny, nx)``; wherever it is natural a single ``(ny, nx)`` frame (or any array
whose last two axes are the frame) is accepted too, and the operation acts on the last two
axes.

Centres are ``(cy, cx)`` pixel coordinates, row then column, as float64, with the centre of
pixel ``i`` at coordinate ``i``: the geometric middle of a frame of ``n`` pixels is therefore
``n / 2 - 0.5`` and the ``'fftshift'`` centre is ``n // 2``.

The preparation pipeline applies these steps in this order::

    frames, center = orient(frames, orientation=o, center=center)
    frames, center = crop_pad(frames, shape=shape, center=center)
    frames = rebin(frames, factor)
    weights = rebin_weights(weights, factor)
    center = rebin_center(center, factor)
"""

from __future__ import annotations

import difflib
from numbers import Integral

import numpy as np

from ptyscan.errors import ParameterError

__all__ = [
    "CENTER_NAMES",
    "center_of_mass",
    "crop_pad",
    "crop_pad_slices",
    "geometric_center",
    "orient",
    "orientation_flags",
    "rebin",
    "rebin_center",
    "rebin_weights",
    "resolve_center",
]

#: Named centre conventions accepted by :func:`resolve_center`.
CENTER_NAMES = ("fftshift", "geometric", "fft")

_MAX_FACTOR = 32


# --------------------------------------------------------------------------- helpers


def _fmt(values):
    """Format a small array as a tuple of Python numbers for error messages."""
    return tuple(np.asarray(values).tolist())


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _frame_shape(frames, func, name="frames"):
    """Return ``(ny, nx)`` of an array with at least two axes, else raise."""
    if frames.ndim < 2:
        raise ParameterError(
            f"{func}: {name} has shape {frames.shape}; expected a frame (ny, nx) or a stack "
            f"(n_frames, ny, nx); reshape 1-D data to 2-D first"
        )
    return frames.shape[-2], frames.shape[-1]


def _dims(shape, func, name="shape", *, allow_int=False):
    """Validate a shape: a sequence of positive ints (its last two are used), or one int."""
    if allow_int and _is_int(shape):
        shape = (shape, shape)
    try:
        items = tuple(shape)
    except TypeError:
        items = None
    if items is None or len(items) < 2 or not all(_is_int(n) and n > 0 for n in items):
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


def _as_center(center, func, name="center"):
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


def _round_half_up(c):
    """Nearest integer pixel, halves rounded up, as int64.

    Computed from the exact fraction ``c - floor(c)`` rather than as ``floor(c + 0.5)``,
    which rounds 0.49999999999999994 up.
    """
    base = np.floor(c)
    return (base + (c - base >= 0.5)).astype(np.int64)


def _check_factor(factor, frame_shape, func):
    """Validate a rebin factor (int in 1..32 dividing both sides of ``frame_shape``)."""
    if not _is_int(factor):
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


def _blocks(frames, factor):
    """View ``(..., ny, nx)`` as ``(..., ny/f, f, nx/f, f)``."""
    ny, nx = frames.shape[-2:]
    return frames.reshape((*frames.shape[:-2], ny // factor, factor, nx // factor, factor))


def _check_real(array, func, name):
    if array.dtype.kind not in "biuf":
        raise ParameterError(
            f"{func}: {name} has dtype {array.dtype}; expected real numbers (bool, integer or "
            f"float); take the modulus squared of complex data first"
        )


# ------------------------------------------------------------------------ orientation


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
    if _is_int(orientation):
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
    _frame_shape(frames, "orient")
    transpose, flipud, fliplr = orientation_flags(orientation)
    c = None if center is None else _as_center(center, "orient")
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


# ----------------------------------------------------------------------------- centre


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
    ny, nx = _dims(shape, "geometric_center")
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
    ny, nx = _dims(shape, "resolve_center")
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
    c = _as_center(spec, "resolve_center")
    if not (0 <= c[0] <= ny - 1 and 0 <= c[1] <= nx - 1):
        raise ParameterError(
            f"resolve_center: center {_fmt(c)} lies outside the frame of shape {(ny, nx)}; "
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
    _check_real(image, "center_of_mass", "image")
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


# -------------------------------------------------------------------------- crop, pad


def _crop_pad_plan(in_shape, shape, center, func):
    """Shared planning of crop/pad: validated output shape, offset and slices."""
    in_ny, in_nx = in_shape
    out_shape = _dims(shape, func, allow_int=True)
    c = _as_center(center, func)
    offset = np.array(out_shape) // 2 - _round_half_up(c)
    src, dst = [], []
    for n_in, n_out, d in zip((in_ny, in_nx), out_shape, offset.tolist(), strict=True):
        lo, hi = max(0, d), min(n_out, n_in + d)
        if hi <= lo:
            raise ParameterError(
                f"{func}: center {_fmt(c)} is so far from the frame of shape "
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
    in_dims = _dims(in_shape, "crop_pad_slices", name="in_shape")
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
    in_dims = _frame_shape(frames, "crop_pad")
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


# ------------------------------------------------------------------------------ rebin


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
    dims = _frame_shape(frames, "rebin")
    _check_real(frames, "rebin", "frames")
    factor = _check_factor(factor, dims, "rebin")
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
    dims = _frame_shape(weights, "rebin_weights", name="weights")
    _check_real(weights, "rebin_weights", "weights")
    factor = _check_factor(factor, dims, "rebin_weights")
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
    c = _as_center(center, "rebin_center")
    factor = _check_factor(factor, None, "rebin_center")
    return c / factor
