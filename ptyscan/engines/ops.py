"""Array operations shared by the engines, written once against a :class:`Backend`.

Views of the object are addressed by integer top-left offsets ``(n, 2)``
(host int64). Three implementations of gather/scatter exist: slice loops (fast
on NumPy, where a loop over views costs microseconds), flat-index
``take``/``add.at`` (any array module: the reference, and what a CuPy stand-in
runs) and the fused kernels of :mod:`ptyscan.engines.kernels` (used on CuPy);
the tests check they agree.
"""

from __future__ import annotations

import numpy as np

from ptyscan.engines import cpu_kernels, kernels

__all__ = [
    "abs2",
    "add_scaled",
    "allreduce",
    "broadcast",
    "clip_amplitude",
    "del2_coeffs",
    "del2_grad",
    "frame_dot",
    "frame_sum",
    "gather",
    "gaussian_smooth",
    "mode_sum",
    "scatter_add",
    "vdot_real",
]


def abs2(xp, x):
    """``|x|²`` as a real array (float32 for complex64)."""
    out = xp.abs(x)
    xp.square(out, out=out)
    return out


_RUN = 1 << 16
"""Elements per run of the NumPy loops of :func:`vdot_real` and :func:`add_scaled`."""


def vdot_real(xp, a, b) -> float:
    """``Re <a, b>`` (sum over all elements) as a Python float.

    NumPy: ``einsum`` sums of products over blocks of 64 Ki numbers (complex arrays as
    their interleaved real views), the block results summed in float64 (a block that
    overflows float32 is redone in float64); elsewhere a float64 reduction. Not BLAS:
    a threaded BLAS dot (OpenBLAS) on a busy machine, or called from the engines' block
    threads, was measured 50x slower than one thread (threads spinning for cores).
    """
    if xp is np and a.dtype == b.dtype and a.shape == b.shape:
        fa = np.ascontiguousarray(a).reshape(-1)
        fb = np.ascontiguousarray(b).reshape(-1)
        if np.iscomplexobj(fa):
            fa, fb = fa.view(fa.real.dtype), fb.view(fb.real.dtype)
        total = 0.0
        for i in range(0, fa.size, _RUN):
            part = float(np.einsum("i,i->", fa[i : i + _RUN], fb[i : i + _RUN]))
            if not np.isfinite(part):  # float32 overflow: redo this block in float64
                block = fa[i : i + _RUN].astype(float)
                part = float(np.einsum("i,i->", block, fb[i : i + _RUN].astype(float)))
            total += part
        return total
    if xp.iscomplexobj(a) or xp.iscomplexobj(b):
        val = xp.sum(a.real * b.real, dtype=np.float64) + xp.sum(a.imag * b.imag, dtype=np.float64)
    else:
        val = xp.sum(a * b, dtype=np.float64)
    return float(val)


def add_scaled(xp, y, a, x):
    """``y += a * x`` in place (``a`` a scalar); returns ``y``. NumPy: in runs of 64 Ki
    elements, without an array-sized temporary to allocate and fault in. ``a`` is taken
    as a Python number, which keeps ``x``'s precision (a NumPy float64 would make the
    products of a complex64 ``x`` complex128: measured 4x slower)."""
    a = complex(a) if np.iscomplexobj(a) else float(a)
    if xp is np and y.flags.c_contiguous and x.shape == y.shape:
        fy, fx = y.reshape(-1), np.ascontiguousarray(x).reshape(-1)
        for i in range(0, fy.size, _RUN):
            fy[i : i + _RUN] += a * fx[i : i + _RUN]
    else:
        y += a * x
    return y


def mode_sum(x, axis=(1, 2)):
    """Sum over mode axes, without a copy when they all have length 1."""
    axes = (axis,) if isinstance(axis, int) else axis
    if all(x.shape[i] == 1 for i in axes):
        return x.reshape([n for i, n in enumerate(x.shape) if i not in axes])
    return x.sum(axis=axis)


def frame_dot(xp, a, b):
    """Per-frame ``Σ a·b`` over the last two axes of real (B, sy, sx) arrays, as float64 (B,).

    NumPy: ``einsum`` (no product array); elsewhere a product and one reduction in float64
    (CuPy's ``einsum`` for this is a cuBLAS matrix-vector product per frame, measured
    1.65 ms for 1000 frames of 256² on an H200, against about 0.2 ms for the two passes)."""
    if xp is np:
        return np.einsum("bij,bij->b", a, b).astype(np.float64)
    return xp.sum(a * b, axis=(-2, -1), dtype=np.float64)


def frame_sum(xp, x):
    """Per-frame sums (B,) of (B, sy, sx) float32 (pairwise) as float64."""
    return xp.sum(x, axis=(-2, -1)).astype(np.float64)


# --- views of the object ---------------------------------------------------------------


def _flat_index(xp, offsets, frame, width):
    """(B, sy, sx) flat indices into an (oy, ox=width) plane of the views at ``offsets``."""
    off = xp.asarray(offsets, dtype=xp.int64)
    iy = xp.arange(frame[0], dtype=xp.int64)[None, :, None]
    ix = xp.arange(frame[1], dtype=xp.int64)[None, None, :]
    return (off[:, 0, None, None] + iy) * width + off[:, 1, None, None] + ix


def _method(xp, method):
    """``method``, or the fastest for ``xp``: slice loops on NumPy, the fused kernels on
    CuPy, flat indices elsewhere (a CuPy stand-in)."""
    if method:
        return method
    if xp is np:
        return "loop"
    return "kernel" if kernels.available(xp) else "index"


def gather(backend, obj, offsets, frame, *, method=None):
    """Views of ``obj`` (M, oy, ox) at top-left ``offsets`` (B, 2) → (B, M, sy, sx) copy.

    ``method``: 'loop', 'index' or 'kernel' (module notes); default the fastest."""
    xp = backend.xp
    method = _method(xp, method)
    offsets = np.asarray(offsets)
    sy, sx = frame
    if method == "kernel":
        return kernels.gather(xp, obj, offsets, frame)
    if method == "loop":
        out = xp.empty((len(offsets), obj.shape[0], sy, sx), dtype=obj.dtype)
        for i, (y, x) in enumerate(offsets.tolist()):
            out[i] = obj[:, y : y + sy, x : x + sx]
        return out
    idx = _flat_index(xp, offsets, frame, obj.shape[-1])
    flat = obj.reshape(obj.shape[0], -1)
    return xp.moveaxis(xp.take(flat, idx, axis=1), 0, 1)


def scatter_add(backend, target, values, offsets, *, method=None):
    """Add ``values`` into ``target`` at the views ``offsets``, overlaps summed.

    Parameters
    ----------
    target : (M, oy, ox) or (oy, ox) array, complex or real; updated in place.
    values : (B, M, sy, sx), (B, sy, sx) or (sy, sx) (the same for every view).
    offsets : (B, 2) int top-left pixels of the views.
    method : 'loop', 'index' or 'kernel' (module notes); default the fastest.
    """
    xp = backend.xp
    method = _method(xp, method)
    offsets = np.asarray(offsets)
    if len(offsets) == 0:
        return target
    if method == "kernel" and target.flags.c_contiguous:
        return kernels.scatter_add(xp, target, values, offsets)
    sy, sx = values.shape[-2:]
    shared = values.ndim == target.ndim  # one array for every view
    if method == "loop":
        for i, (y, x) in enumerate(offsets.tolist()):
            target[..., y : y + sy, x : x + sx] += values if shared else values[i]
        return target
    if shared:
        values = xp.broadcast_to(values, (len(offsets), *values.shape))
    lead = target.shape[:-2]
    idx = _flat_index(xp, offsets, (sy, sx), target.shape[-1])
    flat = target.reshape(*lead, -1)
    vals = values if not lead else xp.moveaxis(values, 1, 0)  # (M, B, sy, sx)
    if xp.iscomplexobj(target):
        # add.at on the interleaved real view: atomics exist for real types everywhere
        real = flat.view(flat.real.dtype)
        for part, shift in ((vals.real, 0), (vals.imag, 1)):
            _add_at(xp, real, 2 * idx + shift, part, lead)
    else:
        _add_at(xp, flat, idx, vals, lead)
    return target


def _add_at(xp, flat, idx, vals, lead):
    vals = xp.ascontiguousarray(vals)
    if lead:
        for m in range(lead[0]):
            xp.add.at(flat[m], idx, vals[m])
    else:
        xp.add.at(flat, idx, vals)


# --- MPI -------------------------------------------------------------------------------------


def allreduce(backend, comm, arr, op="sum"):
    """Sum (or max/min) ``arr`` over the ranks of ``comm`` in place; returns ``arr``.

    NumPy arrays are reduced directly (made contiguous first if needed); CuPy
    arrays travel through host memory. With one rank this does nothing.
    """
    if comm is None or comm.size <= 1:
        return arr
    if isinstance(arr, np.ndarray) and arr.flags.c_contiguous:
        comm.Allreduce(arr, op)
        return arr
    host = np.ascontiguousarray(backend.to_host(arr))
    comm.Allreduce(host, op)
    arr[...] = backend.to_device(host)
    return arr


def broadcast(backend, comm, arr, root=0):
    """Overwrite ``arr`` (any backend array, a view included) on every rank with root's
    values; returns ``arr``. CuPy arrays travel through host memory; one rank: nothing."""
    if comm is None or comm.size <= 1:
        return arr
    host = comm.bcast_array(np.ascontiguousarray(backend.to_host(arr)), root=root)
    if comm.rank != root:
        arr[...] = backend.to_device(host)
    return arr


# --- filters and regularisers ----------------------------------------------------------


def _gauss_kernel_ft(n_padded, sigma, truncate, radius):
    """FFT (length n_padded) of scipy.ndimage's normalised, truncated 1-D Gaussian."""
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    full = np.zeros(n_padded)
    full[x % n_padded] = k
    return np.fft.fft(full)


def smooth_length(n: int) -> int:
    """The smallest ``2^a 3^b 5^c 7^d >= n``: FFT lengths that pocketFFT and cuFFT
    transform fastest (others use slower radices or Bluestein's algorithm, and on
    cuFFT each new length costs a new plan)."""
    m = max(int(n), 1)
    while True:
        rest = m
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


def gaussian_smooth(backend, arr, sigma, *, truncate=4.0, split=None):
    """Gaussian filter of the last two axes, equal to ``scipy.ndimage.gaussian_filter``.

    The same kernel (sampled, normalised, cut at ``int(truncate * sigma + 0.5)``), the
    same 'reflect' boundary and, like ndimage, one axis after the other: along each
    axis a 1-D FFT convolution of a reflect-padded copy, so large sigmas cost no more
    than small ones. The copy is reflected further, out to a :func:`smooth_length`
    (exact: the kept pixels reach no further than the first reflected border), so the
    FFT lengths are fast ones and, as sigma decays, few distinct ones; it is transformed
    in place. Axis by axis transforms
    (ny + 2r)·nx + ny·(nx + 2r) points where one 2-D FFT of the padded array would
    transform 2 (ny + 2r)(nx + 2r). Complex input is filtered as is (real and imaginary
    parts alike). ``sigma <= 0`` returns ``arr`` unchanged. ``split(n, fn)`` (an
    engine's :meth:`.BlockPool.split`) runs each pass in bands of columns, then of rows,
    on the CPU threads; by default one band.
    """
    if sigma <= 0:
        return arr
    xp = backend.xp
    radius = int(truncate * float(sigma) + 0.5)
    if radius == 0:
        return arr.copy()
    split = split or _whole
    dtype = np.result_type(arr.dtype, np.complex64)
    (ny, nx), lead = arr.shape[-2:], arr.shape[:-2]
    my, mx = smooth_length(ny + 2 * radius), smooth_length(nx + 2 * radius)
    ky, kx = (_gauss_kernel_ft(m, sigma, truncate, radius).real for m in (my, mx))
    wide = xp.empty((*lead, ny, mx), dtype)  # the y pass's result, padded for the x pass
    out = xp.empty(arr.shape, dtype)
    r = radius

    def columns(lo, hi):  # along y, each band of columns on its own
        work = xp.empty((*lead, my, hi - lo), dtype)
        work[..., r : r + ny, :] = arr[..., lo:hi]
        smooth = _filter(backend, _reflect(xp, work, r, ny, -2), ky, -2)
        wide[..., r + lo : r + hi] = smooth[..., r : r + ny, :]

    def rows(lo, hi):  # along x, each band of rows on its own
        smooth = _filter(backend, _reflect(xp, wide[..., lo:hi, :], r, nx, -1), kx, -1)
        out[..., lo:hi, :] = smooth[..., r : r + nx]

    split(nx, columns)
    split(ny, rows)
    if not xp.iscomplexobj(arr):
        return xp.ascontiguousarray(out.real.astype(arr.dtype))
    return out


def _whole(n, fn):
    """The serial ``split``: ``fn`` over the whole range."""
    return [fn(0, n)]


def _reflect(xp, buf, r, n, axis):
    """Fill ``buf`` (the data at ``[r, r + n)`` along ``axis``) before and after the data
    with its reflections, as ``numpy.pad``'s 'symmetric' (ndimage's 'reflect'); returns
    ``buf``. The pixels kept after filtering reach no further than the first reflection,
    so what lies past it does not matter."""
    tail = buf.shape[axis] - n - r

    def cut(a, b):
        index = [slice(None)] * buf.ndim
        index[axis] = slice(a, b)
        return tuple(index)

    if r <= n and tail <= n:
        buf[cut(0, r)] = xp.flip(buf[cut(r, 2 * r)], axis)
        buf[cut(r + n, r + n + tail)] = xp.flip(buf[cut(r + n - tail, r + n)], axis)
    else:  # reflected more than once (a radius longer than the array)
        pad = [(0, 0)] * buf.ndim
        pad[axis] = (r, tail)
        buf[...] = xp.pad(buf[cut(r, r + n)].copy(), pad, mode="symmetric")
    return buf


def _filter(backend, buf, kernel, axis):
    """``buf`` convolved along ``axis`` with the real, even kernel whose DFT is
    ``kernel`` (the unitary FFT pair: it multiplies as is); ``buf`` is overwritten, the
    result (possibly ``buf`` itself) returned."""
    xp = backend.xp
    spec = backend.fft.fft(buf, axis=axis, overwrite_x=True)
    kernel = kernel.astype(spec.real.dtype)
    if axis in (-1, spec.ndim - 1):  # on the interleaved real view: each value twice
        factor = np.repeat(kernel, 2)
    else:
        factor = kernel.reshape([-1] + [1] * (spec.ndim - 1 - axis % spec.ndim))
    spec.view(kernel.dtype)[...] *= xp.asarray(factor)
    return backend.fft.ifft(spec, axis=axis, overwrite_x=True)


def clip_amplitude(xp, obj, lo, hi):
    """Clip ``|obj|`` into ``[lo, hi]`` keeping the phase (in place); returns ``obj``."""
    amp = xp.abs(obj)
    scale = xp.clip(amp, lo, hi)
    nonzero = amp > 0
    scale = xp.where(nonzero, scale / xp.where(nonzero, amp, 1), 0)
    obj *= scale
    if lo > 0:  # zero amplitude has no phase: take phase 0
        obj[~nonzero] = lo
    return obj


def _diffs(xp, x):
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def del2_grad(xp, obj, amplitude, out=None):
    """Gradient ``dR/d(obj*)`` and value ``R`` of ptypy's squared-gradient regulariser.

    ``R = 2 a (||∂y obj||² + ||∂x obj||²)`` (ptypy counts forward and backward
    differences, each once), with the forward differences inside the array. With
    ``out`` (obj's shape) the gradient is added into it and ``(out, R)`` returned. NumPy
    with numba: one pass (:func:`.cpu_kernels.del2_grad`).
    """
    if xp is np and cpu_kernels.enabled() and (out is None or out.flags.c_contiguous):
        return cpu_kernels.del2_grad(obj, amplitude, out)
    dy, dx = _diffs(xp, obj)
    grad = xp.zeros_like(obj)
    grad[..., 1:, :] += dy
    grad[..., :-1, :] -= dy
    grad[..., :, 1:] += dx
    grad[..., :, :-1] -= dx
    grad *= 2.0 * amplitude
    value = 2.0 * amplitude * (vdot_real(xp, dy, dy) + vdot_real(xp, dx, dx))
    if out is not None:
        out += grad
        grad = out
    return grad, value


def del2_coeffs(xp, obj, h, amplitude):
    """Coefficients (c0, c1, c2) of ``R(obj + t h) = c0 + c1 t + c2 t²`` (NumPy with
    numba: one pass, :func:`.cpu_kernels.del2_coeffs`)."""
    if xp is np and cpu_kernels.enabled():
        return cpu_kernels.del2_coeffs(obj, h, amplitude)
    oy, ox = _diffs(xp, obj)
    hy, hx = _diffs(xp, h)
    a = 2.0 * amplitude
    c0 = a * (vdot_real(xp, oy, oy) + vdot_real(xp, ox, ox))
    c1 = 2.0 * a * (vdot_real(xp, oy, hy) + vdot_real(xp, ox, hx))
    c2 = a * (vdot_real(xp, hy, hy) + vdot_real(xp, hx, hx))
    return np.array([c0, c1, c2])
