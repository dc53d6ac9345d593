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

DM's Fourier update (one object and one probe mode, no mask) has three more:
:func:`dm_errors` (each view's modulus error), :func:`dm_exit_change` (``Σ|Δψ|²``)
and :func:`dm_update` (the new far-field exit waves, in place): three passes over
the views instead of about twenty array passes of the NumPy-style code, which stays
the reference (the same formulas, ``engines/dm.py``). Unlike the view kernels these
have not yet run on a GPU, so before their first use in a process
:func:`dm_fourier_usable` compiles them and compares them with :func:`dm_reference`
on a small random case; where that fails DM keeps its array code (with a warning).
"""

from __future__ import annotations

import functools
import logging

import numpy as np

__all__ = [
    "available",
    "dm_errors",
    "dm_exit_change",
    "dm_fourier_usable",
    "dm_reference",
    "dm_update",
    "gather",
    "scatter_add",
]

log = logging.getLogger(__name__)

# Element ``i`` of the views (B, modes, sy, sx) is pixel ``k`` of the object (modes, oy, ox).
_VIEW_PIXEL = r"""
long long j = i % sx;
long long t = i / sx;
long long r = t % sy;
t /= sy;
long long m = t % modes;
long long b = t / modes;
long long k = (m * oy + off[2 * b] + r) * ox + off[2 * b + 1] + j;
"""

_GATHER = _VIEW_PIXEL + "out = obj[k];\n"

# ``tgt`` is the target's real view (two numbers per complex pixel); ``vals`` holds
# one value per (view, mode, y, x), or one per (mode, y, x) shared by every view
# (``vmod`` is then modes * sy * sx, else the number of values).
_SCATTER_COMPLEX = (
    _VIEW_PIXEL
    + r"""
T v = vals[i % vmod];
atomicAdd(&tgt[2 * k], v.real());
atomicAdd(&tgt[2 * k + 1], v.imag());
"""
)

_SCATTER_REAL = (
    _VIEW_PIXEL
    + r"""
atomicAdd(&tgt[k], (R)vals[i % vmod]);
"""
)

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


# --- DM's Fourier update (one mode, full mask) -------------------------------------------
# fpo = fw(P·O), spec = Ψ (the exit waves' far fields), fmag = sqrt(I), all (B, sy, sx);
# (aa, bb, cc) = ptypy's (a, b, c); r = the per-view renormalisation (1 inside the power
# bound), ``renormed`` = 1 when any view of the block is outside it (as engines/dm.py).

_DM_PREAMBLE = r"""
template <typename T, typename F>
__device__ T ptyscan_dm_delta(T fpo, T spec, F fmag, F r, F aa, F bb, F cc, int renormed) {
    if (!renormed) {
        return (fpo - spec) * (aa + bb * cc);
    }
    T comb = fpo * cc + spec * (F(1) - cc);
    F amp = abs(comb);
    F fm = (fmag + (amp - fmag) * r) / (amp + F(1e-10));
    return comb * (fm * bb) + fpo * aa - spec * (aa + bb);
}

template <typename T>
__device__ double ptyscan_abs2(T z) {
    double re = z.real(), im = z.imag();
    return re * re + im * im;
}
"""


@functools.cache
def _dm_kernels(xp):
    errors = xp.ReductionKernel(
        "T fpo, T spec, F fmag, F cc",
        "float64 err",
        "(double)((abs(fpo * cc + spec * (F(1) - cc)) - fmag) "
        "* (abs(fpo * cc + spec * (F(1) - cc)) - fmag))",
        "a + b",
        "err = a",
        "0",
        "ptyscan_dm_errors",
    )
    change = xp.ReductionKernel(
        "T fpo, T spec, F fmag, F r, F aa, F bb, F cc, int32 renormed",
        "float64 total",
        "ptyscan_abs2(ptyscan_dm_delta(fpo, spec, fmag, r, aa, bb, cc, renormed))",
        "a + b",
        "total = a",
        "0",
        "ptyscan_dm_exit_change",
        preamble=_DM_PREAMBLE,
    )
    update = xp.ElementwiseKernel(
        "T fpo, F fmag, F r, F aa, F bb, F cc, int32 renormed",
        "T spec",
        "spec = spec + ptyscan_dm_delta(fpo, spec, fmag, r, aa, bb, cc, renormed)",
        "ptyscan_dm_update",
        preamble=_DM_PREAMBLE,
    )
    return errors, change, update


def _real(fmag, value):
    return fmag.dtype.type(value)


def dm_errors(xp, fpo, spec, fmag, c):
    """(B,) float64 ``Σ (|c·fpo + (1-c)·spec| - fmag)²`` per view."""
    return _dm_kernels(xp)[0](fpo, spec, fmag, _real(fmag, c), axis=(1, 2))


def dm_exit_change(xp, fpo, spec, fmag, renorm, abc, renormed):
    """``Σ |Δψ|²`` (a Python float) of the update :func:`dm_update` will make."""
    a, b, c = (_real(fmag, v) for v in abc)
    total = _dm_kernels(xp)[1](fpo, spec, fmag, renorm[:, None, None], a, b, c, np.int32(renormed))
    return float(total)


def dm_update(xp, fpo, spec, fmag, renorm, abc, renormed):
    """``spec += Δψ`` in place (DM's update of the exit waves' far fields)."""
    a, b, c = (_real(fmag, v) for v in abc)
    _dm_kernels(xp)[2](fpo, fmag, renorm[:, None, None], a, b, c, np.int32(renormed), spec)
    return spec


def dm_reference(xp, fpo, spec, fmag, renorm, abc, renormed):
    """The array-code version of :func:`dm_errors` (at ``renorm`` = 1), :func:`dm_exit_change`
    and :func:`dm_update`: ``(errors, change, new spec)``, ``spec`` untouched."""
    a, b, c = abc
    comb = c * fpo + (1 - c) * spec
    amp = xp.abs(comb)
    errors = xp.sum((amp - fmag).astype(np.float64) ** 2, axis=(1, 2))
    if renormed:
        fm = (fmag + (amp - fmag) * renorm[:, None, None]) / (amp + 1e-10)
        delta = b * fm * comb + a * fpo - (a + b) * spec
    else:
        delta = (a + b * c) * (fpo - spec)
    change = float(xp.sum(xp.abs(delta).astype(np.float64) ** 2))
    return errors, change, spec + delta


_usable: dict = {}


def dm_fourier_usable(xp, dtype) -> bool:
    """True when the DM kernels compile here and agree with :func:`dm_reference` on a small
    random case (checked once per array module and dtype); False, with a warning, when
    not, and False for anything but the real CuPy."""
    if not available(xp):
        return False
    key = (id(xp), np.dtype(dtype).str)
    if key not in _usable:
        try:
            _usable[key] = _dm_self_check(xp, np.dtype(dtype))
        except Exception as exc:  # compile or launch errors: keep the array code
            log.warning(
                "DM's fused CUDA kernels cannot be used (%s: %s); DM keeps its array code",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            _usable[key] = False
    return _usable[key]


def _dm_self_check(xp, dtype) -> bool:
    rng = np.random.default_rng(7)
    shape = (3, 16, 24)
    real = np.finfo(dtype).dtype
    tol = 1e-4 if real == np.float32 else 1e-10
    fpo, spec = (
        xp.asarray((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype))
        for _ in range(2)
    )
    fmag = xp.asarray(rng.random(shape).astype(real))
    renorm = xp.asarray(np.array([0.5, 1.0, 0.8], real))
    for abc, renormed in (((-1.0, 1.0, 2.0), 1), ((-0.7, 1.0, 1.7), 1), ((-1.0, 1.0, 2.0), 0)):
        errors, change, new = dm_reference(xp, fpo, spec, fmag, renorm, abc, renormed)
        got_errors = dm_errors(xp, fpo, spec, fmag, abc[2])
        got_change = dm_exit_change(xp, fpo, spec, fmag, renorm, abc, renormed)
        got_new = dm_update(xp, fpo, spec.copy(), fmag, renorm, abc, renormed)
        rel = max(
            float(xp.max(xp.abs(got_errors - errors)) / xp.max(xp.abs(errors))),
            abs(got_change - change) / change,
            float(xp.max(xp.abs(got_new - new)) / xp.max(xp.abs(new))),
        )
        if not rel < tol:
            log.warning(
                "DM's fused CUDA kernels differ from the array code by %.2g (abc %s); "
                "DM keeps its array code",
                rel,
                abc,
            )
            return False
    return True
