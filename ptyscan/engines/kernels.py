"""Fused CUDA kernels for the views of the object (CuPy only).

``ops.gather`` and ``ops.scatter_add`` have three implementations: slice loops
(NumPy), flat-index ``take``/``add.at`` (any array module; the reference) and the
kernels here, which CuPy uses. The flat-index version builds an int64 index array
as large as the views themselves (for 1000 views of 256², 0.5 GB) on every call,
and the complex scatter builds two more and runs two ``add.at`` passes; the kernels
compute each pixel's place in the object from the view's offset instead, in one
pass: the gather reads each view pixel once and writes it once, the scatter adds
the real and imaginary parts with ``atomicAdd`` (float and double atomics exist on
every GPU CuPy supports). Overlapping views are summed in whatever order the
threads run, so results agree with the reference to rounding, not bit for bit,
exactly as ``add.at`` does.

``tests/engines/test_eng_kernels.py`` checks both against the flat-index version on
random inputs of every supported layout (real and complex targets, one or several
modes, one value array shared by every view).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["available", "gather", "scatter_add"]

_GATHER = r"""
long long j = i % sx;
long long t = i / sx;
long long r = t % sy;
t /= sy;
long long m = t % modes;
long long b = t / modes;
out = obj[(m * oy + off[2 * b] + r) * ox + off[2 * b + 1] + j];
"""

# ``tgt`` is the target's real view (two numbers per complex pixel); ``vals`` holds
# one value per (view, mode, y, x), or one per (mode, y, x) shared by every view
# (``vmod`` is then modes * sy * sx, else the number of values).
_SCATTER_COMPLEX = r"""
long long j = i % sx;
long long t = i / sx;
long long r = t % sy;
t /= sy;
long long m = t % modes;
long long b = t / modes;
long long k = (m * oy + off[2 * b] + r) * ox + off[2 * b + 1] + j;
T v = vals[i % vmod];
atomicAdd(&tgt[2 * k], v.real());
atomicAdd(&tgt[2 * k + 1], v.imag());
"""

_SCATTER_REAL = r"""
long long j = i % sx;
long long t = i / sx;
long long r = t % sy;
t /= sy;
long long m = t % modes;
long long b = t / modes;
long long k = (m * oy + off[2 * b] + r) * ox + off[2 * b + 1] + j;
atomicAdd(&tgt[k], (R)vals[i % vmod]);
"""

_SIZES = "int64 modes, int64 oy, int64 ox, int64 sy, int64 sx"


def available(xp) -> bool:
    """True for the real CuPy (it can compile kernels); False for NumPy and stand-ins."""
    return getattr(xp, "__name__", "") == "cupy" and hasattr(xp, "ElementwiseKernel")


@functools.cache
def _kernels(xp):
    gather = xp.ElementwiseKernel(
        f"raw T obj, raw int64 off, {_SIZES}", "T out", _GATHER, "ptyscan_gather_views"
    )
    complex_add = xp.ElementwiseKernel(
        f"raw T vals, raw int64 off, {_SIZES}, int64 vmod",
        "raw R tgt",
        _SCATTER_COMPLEX,
        "ptyscan_scatter_add_complex",
    )
    real_add = xp.ElementwiseKernel(
        f"raw T vals, raw int64 off, {_SIZES}, int64 vmod",
        "raw R tgt",
        _SCATTER_REAL,
        "ptyscan_scatter_add_real",
    )
    return gather, complex_add, real_add


def _offsets(xp, offsets):
    return xp.asarray(np.ascontiguousarray(offsets, dtype=np.int64))


def gather(xp, obj, offsets, frame):
    """(B, M, sy, sx) copies of ``obj`` (M, oy, ox) at host ``offsets`` (B, 2)."""
    obj = xp.ascontiguousarray(obj)
    modes, oy, ox = obj.shape
    sy, sx = frame
    out = xp.empty((len(offsets), modes, sy, sx), dtype=obj.dtype)
    if out.size:
        _kernels(xp)[0](obj, _offsets(xp, offsets), modes, oy, ox, sy, sx, out)
    return out


def scatter_add(xp, target, values, offsets):
    """Add ``values`` into contiguous ``target`` ((M, oy, ox) or (oy, ox)) at the views
    ``offsets`` (B, 2); ``values`` is (B, M, sy, sx), (B, sy, sx), or one array of the
    target's rank shared by every view. Returns ``target``."""
    if not target.flags.c_contiguous:
        raise ValueError("scatter_add kernel: the target must be C-contiguous")
    sy, sx = values.shape[-2:]
    modes = target.shape[0] if target.ndim == 3 else 1
    oy, ox = target.shape[-2:]
    shared = values.ndim == target.ndim
    values = xp.ascontiguousarray(values, dtype=target.dtype)
    size = len(offsets) * modes * sy * sx
    vmod = modes * sy * sx if shared else size
    if size == 0:
        return target
    _, complex_add, real_add = _kernels(xp)
    if xp.iscomplexobj(target):
        real_view = target.view(target.real.dtype)
        complex_add(
            values, _offsets(xp, offsets), modes, oy, ox, sy, sx, vmod, real_view, size=size
        )
    else:
        real_add(values, _offsets(xp, offsets), modes, oy, ox, sy, sx, vmod, target, size=size)
    return target
