"""Fused CPU kernels for DM's and ML's passes (numba, optional: ``pip install ptyscan[fast]``).

On NumPy an engine's block pass is a few dozen array operations per block; each is
short (tens of microseconds for a block of 1 MB), and between two of them the
calling thread takes Python's GIL back. With the block threads of
:mod:`.blockpool` that hand-over of the GIL, not the arithmetic, decided the speed:
measured on 2 cores (DM, 100 frames of 128²), the engine's threads held the GIL
about 40 % of the wall time and two threads ran DM only 1.1-1.3x faster than one,
where two processes ran 2x. The kernels here do a block's work in one call each,
without the GIL (``nogil``), and read each view pixel once:

* :func:`exit_waves`: ``P · view(O)`` of a block of views (the gather and the product);
* :func:`dm_fourier`: DM's (RAAR's) Fourier update of a block's far-field exit waves
  in place, with the three errors, frame by frame while the frame is in cache;
* :func:`object_sums` and :func:`probe_sums`: the overlap update's numerators and
  denominators of a block (the scatter-add and the probe's reduction);
* ML's kernels are in :mod:`.ml_kernels` (with :func:`jit` and :func:`checked_offsets`
  from here);
* :func:`del2_grad`, :func:`del2_coeffs`: ML's squared-gradient regulariser in one pass
  over the object (``ops.del2_grad`` and ``ops.del2_coeffs`` call them).

They cover the common case: one object mode, one probe mode, integer positions, a
plain (not multislice) operator, no mask, and for ML the Gaussian model without
floating intensities and the quadratic line search; the engines run their array code
(the reference) otherwise, where numba is missing, or with the environment variable
``PTYSCAN_NUMBA=0``. Compiled code is cached on disk (numba's ``cache=True``), so only
the first process compiles. Sums are accumulated in float64;
``tests/engines/test_eng_cpu_kernels.py`` checks each kernel against the array code
and DM's, RAAR's and ML's iterations with and without them.
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = [
    "checked_offsets",
    "del2_coeffs",
    "del2_grad",
    "dm_fourier",
    "enabled",
    "exit_waves",
    "jit",
    "object_sums",
    "probe_sums",
]


@functools.cache
def _numba():
    try:
        import numba
    except ImportError:
        return None
    return numba


def enabled() -> bool:
    """True where numba imports and ``PTYSCAN_NUMBA`` is not ``0``."""
    return os.environ.get("PTYSCAN_NUMBA", "1") != "0" and _numba() is not None


_FASTMATH = {"reassoc", "contract"}
"""Sums may be reordered (vectorised); no approximate division or square root. With
``error_model="numpy"`` a division by zero gives inf or nan instead of a check per element
(which kept the loops from being vectorised: 6x slower)."""


def jit(fn):
    """``fn`` compiled with numba (no GIL, cached on disk) at its first call."""
    compiled = None

    @functools.wraps(fn)
    def call(*args):
        nonlocal compiled
        if compiled is None:
            compiled = _numba().njit(
                nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy"
            )(fn)
        return compiled(*args)

    call.py_func = fn
    return call


@jit
def _exit_waves(obj, probe, off, out):
    sy, sx = probe.shape
    for b in range(off.shape[0]):
        y, x = off[b, 0], off[b, 1]
        for i in range(sy):
            orow = obj[y + i, x : x + sx]
            prow = probe[i]
            dst = out[b, i]
            for j in range(sx):
                o, p = orow[j], prow[j]
                dst[j] = complex(
                    o.real * p.real - o.imag * p.imag, o.real * p.imag + o.imag * p.real
                )


def exit_waves(obj, probe, offsets, out):
    """``out[b] = P · O[view b]``: ``obj`` (oy, ox), ``probe`` (sy, sx), ``offsets``
    (B, 2) integer top-left pixels, ``out`` (B, sy, sx) contiguous; returns ``out``."""
    _exit_waves(obj, probe, checked_offsets(offsets, probe.shape, obj.shape), out)
    return out


@jit
def _dm_fourier(fpo, spec, data, coef, pbound, loglik, sums):
    # fpo, spec: the complex arrays' real views (B, sy, 2 sx): re, im interleaved;
    # sqrt(I) and 1 / (I + 1) are computed from I (fewer arrays to read than to compute)
    nb, sy, sx = data.shape
    npix = sy * sx
    a, b, c, one, tiny = coef[0], coef[1], coef[2], coef[3], coef[4]
    d = one - c
    ab = a + b
    within = a + b * c
    for k in range(nb):
        err = 0.0
        photons = 0.0
        for i in range(sy):
            fr, sr, dr = fpo[k, i], spec[k, i], data[k, i]
            for j in range(sx):
                re = fr[2 * j] * c + sr[2 * j] * d
                im = fr[2 * j + 1] * c + sr[2 * j + 1] * d
                dev = np.sqrt(re * re + im * im) - np.sqrt(dr[j])
                err += dev * dev
            if loglik:
                for j in range(sx):
                    model = fr[2 * j] * fr[2 * j] + fr[2 * j + 1] * fr[2 * j + 1] - dr[j]
                    photons += model * model / (dr[j] + one)
        err /= npix
        sums[0] += err
        sums[1] += photons / npix
        change = 0.0
        if err > pbound:
            coef[5] = np.sqrt(pbound / err)  # in the data's precision
            r = coef[5]
            for i in range(sy):
                fr, sr, dr = fpo[k, i], spec[k, i], data[k, i]
                for j in range(sx):
                    fre, fim, sre, sim = fr[2 * j], fr[2 * j + 1], sr[2 * j], sr[2 * j + 1]
                    re = fre * c + sre * d
                    im = fim * c + sim * d
                    amp = np.sqrt(re * re + im * im)
                    mag = np.sqrt(dr[j])
                    fm = b * (mag + (amp - mag) * r) / (amp + tiny)
                    dre = re * fm + fre * a - sre * ab
                    dim = im * fm + fim * a - sim * ab
                    sr[2 * j] = sre + dre
                    sr[2 * j + 1] = sim + dim
                    change += dre * dre + dim * dim
        else:
            for i in range(sy):
                fr, sr = fpo[k, i], spec[k, i]
                for j in range(2 * sx):
                    delta = (fr[j] - sr[j]) * within
                    sr[j] += delta
                    change += delta * delta
        sums[2] += change / npix


def dm_fourier(fpo, spec, data, abc, pbound, photons=True):
    """DM's Fourier update of one block, ``spec`` (B, sy, sx) updated in place.

    ``fpo`` = fw(P·O), ``spec`` = Ψ and ``data`` = I, all (B, sy, sx), no mask (the
    modulus is ``sqrt(I)``, the 'photons' weights ``1 / (I + 1)``); ``abc`` ptypy's
    coefficients, ``pbound`` the power bound. Returns the (3,) float64 sums over the
    block's views of the 'fourier', 'photons' (0 unless ``photons``) and 'exit' errors
    (``engines/dm.py``). A view within the power bound takes ``Δψ = (a + b c)(fpo -
    spec)``, as ptypy.
    """
    real = data.dtype
    coef = np.array([*abc, 1.0, 1e-10, 0.0], dtype=real)  # a, b, c, 1, tiny, r
    sums = np.zeros(3)
    nb, sy, sx = data.shape
    freal, sreal = (x.view(real).reshape(nb, sy, 2 * sx) for x in (fpo, spec))
    _dm_fourier(freal, sreal, data, coef, float(pbound), bool(photons), sums)
    return sums


@jit
def _overlap_sums(waves, lit, off, num, den, into_object, norm):
    # into_object: lit = the probe, num/den object-sized; else lit = the object, probe-sized
    sy, sx = waves.shape[1:]
    for bv in range(off.shape[0]):
        y, x = off[bv, 0], off[bv, 1]
        for i in range(sy):
            if into_object:
                arow, nrow, drow = lit[i], num[y + i, x : x + sx], den[y + i, x : x + sx]
            else:
                arow, nrow, drow = lit[y + i, x : x + sx], num[i], den[i]
            wrow = waves[bv, i]
            for j in range(sx):
                p, w = arow[j], wrow[j]
                nrow[j] += complex(
                    p.real * w.real + p.imag * w.imag, p.real * w.imag - p.imag * w.real
                )
                if norm:
                    drow[j] += p.real * p.real + p.imag * p.imag


def object_sums(waves, probe, offsets, num, den=None):
    """Add ``conj(P) · ψ_b`` into ``num`` (oy, ox) and ``|P|²`` into ``den`` (oy, ox; None:
    not wanted) at every view: ``waves`` (B, sy, sx), ``probe`` (sy, sx), ``offsets`` (B, 2)."""
    _sums(waves, probe, offsets, num, den, True)


def probe_sums(waves, obj, offsets, num, den=None):
    """Add ``conj(O[view b]) · ψ_b`` into ``num`` (sy, sx) and ``|O[view b]|²`` into
    ``den`` (sy, sx; None: not wanted) over the views: ``waves`` (B, sy, sx), ``obj``
    (oy, ox)."""
    _sums(waves, obj, offsets, num, den, False)


def _sums(waves, lit, offsets, num, den, into_object):
    """:func:`_overlap_sums` with checked offsets; ``den`` None: no denominator (the
    kernel gets ``num``'s real view in its place and leaves it alone)."""
    frame, plane = (lit.shape, num.shape) if into_object else (num.shape, lit.shape)
    norm = den is not None
    den = den if norm else num.real
    _overlap_sums(waves, lit, checked_offsets(offsets, frame, plane), num, den, into_object, norm)


def checked_offsets(offsets, frame, plane):
    """``offsets`` as contiguous int64, checked to put every (sy, sx) view inside the
    (oy, ox) plane: the kernels do not check their indices (a view outside would read
    and write outside the arrays)."""
    off = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(off):
        low = off.min(axis=0)
        high = off.max(axis=0) + np.asarray(frame[-2:])
        if (low < 0).any() or (high > np.asarray(plane[-2:])).any():
            raise ValueError(
                f"cpu_kernels: views of {tuple(frame[-2:])} at offsets {low.tolist()}.."
                f"{(high - np.asarray(frame[-2:])).tolist()} reach outside the "
                f"{tuple(plane[-2:])} object"
            )
    return off


# --- ML's squared-gradient regulariser (ops.del2_grad, ops.del2_coeffs) -----------------


@jit
def _del2(obj, h, grad, c, with_grad, sums):
    # sums: Σ|∂O|², Σ Re(∂O conj ∂h), Σ|∂h|² over the forward differences in y and x;
    # grad (with_grad): += c × Σ of the backward minus the forward differences at a pixel
    nm, ny, nx = obj.shape
    s0 = s1 = s2 = 0.0
    for m in range(nm):
        for i in range(ny):
            orow, hrow = obj[m, i], h[m, i]
            for j in range(nx - 1):
                d = orow[j + 1] - orow[j]
                e = hrow[j + 1] - hrow[j]
                s0 += d.real * d.real + d.imag * d.imag
                s1 += d.real * e.real + d.imag * e.imag
                s2 += e.real * e.real + e.imag * e.imag
            if i + 1 < ny:
                onext, hnext = obj[m, i + 1], h[m, i + 1]
                for j in range(nx):
                    d = onext[j] - orow[j]
                    e = hnext[j] - hrow[j]
                    s0 += d.real * d.real + d.imag * d.imag
                    s1 += d.real * e.real + d.imag * e.imag
                    s2 += e.real * e.real + e.imag * e.imag
            if not with_grad:
                continue
            # the gradient, times c = 2 × amplitude, added into grad
            grow = grad[m, i]
            if nx > 1:
                grow[0] += c * (orow[0] - orow[1])
                grow[nx - 1] += c * (orow[nx - 1] - orow[nx - 2])
            for j in range(1, nx - 1):
                grow[j] += c * (orow[j] + orow[j] - orow[j - 1] - orow[j + 1])
            if i + 1 < ny:
                onext = obj[m, i + 1]
                for j in range(nx):
                    grow[j] += c * (orow[j] - onext[j])
            if i > 0:
                oprev = obj[m, i - 1]
                for j in range(nx):
                    grow[j] += c * (orow[j] - oprev[j])
    sums[0] += s0
    sums[1] += s1
    sums[2] += s2


def del2_grad(obj, amplitude, out=None):
    """``(dR/d(obj*), R)`` of the squared-gradient regulariser (as ``ops.del2_grad``);
    with ``out`` (obj's shape, contiguous) the gradient is added into it."""
    grad = np.zeros_like(obj) if out is None else out
    sums = np.zeros(3)
    flat = obj.reshape(-1, *obj.shape[-2:])  # modes (and slices) as one axis
    c = obj.real.dtype.type(2.0 * amplitude)
    _del2(flat, flat, grad.reshape(flat.shape), c, True, sums)
    return grad, 2.0 * amplitude * sums[0]


def del2_coeffs(obj, h, amplitude):
    """``(c0, c1, c2)`` of ``R(obj + t h)`` (as ``ops.del2_coeffs``)."""
    sums = np.zeros(3)
    flat = obj.reshape(-1, *obj.shape[-2:])
    _del2(flat, h.reshape(flat.shape), flat, obj.real.dtype.type(0), False, sums)
    a = 2.0 * amplitude
    return np.array([a * sums[0], 2.0 * a * sums[1], a * sums[2]])
