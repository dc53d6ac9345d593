"""Fused CPU kernels for DM's passes (numba, optional: ``pip install ptyscan[fast]``).

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
  denominators of a block (the scatter-add and the probe's reduction).

They cover the common case: one object mode, one probe mode, integer positions, a
plain (not multislice) operator, and no mask for :func:`dm_fourier`; DM runs its
array code (the reference, ``engines/dm.py``) otherwise, where numba is missing, or
with the environment variable ``PTYSCAN_NUMBA=0``. Compiled code is cached on disk
(numba's ``cache=True``), so only the first process compiles. Sums are accumulated
in float64; ``tests/engines/test_eng_cpu_kernels.py`` checks each kernel against the
array code and DM's iterations with and without them.
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = ["dm_fourier", "enabled", "exit_waves", "object_sums", "probe_sums"]


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


def _jit(fn):
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


@_jit
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
    _exit_waves(obj, probe, _offsets(offsets), out)
    return out


@_jit
def _dm_fourier(fpo, spec, fmag, data, ivar, coef, pbound, loglik, sums):
    # fpo, spec: the complex arrays' real views (B, sy, 2 sx): re, im interleaved
    nb, sy, sx = fmag.shape
    npix = sy * sx
    a, b, c, one, tiny = coef[0], coef[1], coef[2], coef[3], coef[4]
    d = one - c
    ab = a + b
    within = a + b * c
    for k in range(nb):
        err = 0.0
        photons = 0.0
        for i in range(sy):
            fr, sr, mr = fpo[k, i], spec[k, i], fmag[k, i]
            for j in range(sx):
                re = fr[2 * j] * c + sr[2 * j] * d
                im = fr[2 * j + 1] * c + sr[2 * j + 1] * d
                dev = np.sqrt(re * re + im * im) - mr[j]
                err += dev * dev
            if loglik:
                dr, vr = data[k, i], ivar[k, i]
                for j in range(sx):
                    model = fr[2 * j] * fr[2 * j] + fr[2 * j + 1] * fr[2 * j + 1] - dr[j]
                    photons += model * model * vr[j]
        err /= npix
        sums[0] += err
        sums[1] += photons / npix
        change = 0.0
        if err > pbound:
            coef[5] = np.sqrt(pbound / err)  # in the data's precision
            r = coef[5]
            for i in range(sy):
                fr, sr, mr = fpo[k, i], spec[k, i], fmag[k, i]
                for j in range(sx):
                    fre, fim, sre, sim = fr[2 * j], fr[2 * j + 1], sr[2 * j], sr[2 * j + 1]
                    re = fre * c + sre * d
                    im = fim * c + sim * d
                    amp = np.sqrt(re * re + im * im)
                    fm = b * (mr[j] + (amp - mr[j]) * r) / (amp + tiny)
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


def dm_fourier(fpo, spec, fmag, data, ivar, abc, pbound):
    """DM's Fourier update of one block, ``spec`` (B, sy, sx) updated in place.

    ``fpo`` = fw(P·O), ``spec`` = Ψ, ``fmag`` = sqrt(I), ``data`` = I and ``ivar`` =
    1 / (I + 1) (or None: no 'photons' error), all (B, sy, sx); ``abc`` ptypy's
    coefficients, ``pbound`` the power bound. Returns the (3,) float64 sums over the
    block's views of the 'fourier', 'photons' and 'exit' errors (``engines/dm.py``).
    A view within the power bound takes ``Δψ = (a + b c)(fpo - spec)``, as ptypy.
    """
    coef = np.array([*abc, 1.0, 1e-10, 0.0], dtype=fmag.dtype)  # a, b, c, 1, tiny, r
    sums = np.zeros(3)
    loglik = ivar is not None
    if not loglik:
        data = ivar = fmag
    nb, sy, sx = fmag.shape
    freal, sreal = (x.view(fmag.dtype).reshape(nb, sy, 2 * sx) for x in (fpo, spec))
    _dm_fourier(freal, sreal, fmag, data, ivar, coef, float(pbound), loglik, sums)
    return sums


@_jit
def _overlap_sums(waves, lit, off, num, den, into_object):
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
                drow[j] += p.real * p.real + p.imag * p.imag


def object_sums(waves, probe, offsets, num, den):
    """Add ``conj(P) · ψ_b`` into ``num`` (oy, ox) and ``|P|²`` into ``den`` (oy, ox)
    at every view: ``waves`` (B, sy, sx), ``probe`` (sy, sx), ``offsets`` (B, 2)."""
    _overlap_sums(waves, probe, _offsets(offsets), num, den, True)


def probe_sums(waves, obj, offsets, num, den):
    """Add ``conj(O[view b]) · ψ_b`` into ``num`` (sy, sx) and ``|O[view b]|²`` into
    ``den`` (sy, sx) over the views: ``waves`` (B, sy, sx), ``obj`` (oy, ox)."""
    _overlap_sums(waves, obj, _offsets(offsets), num, den, False)


def _offsets(offsets):
    return np.ascontiguousarray(offsets, dtype=np.int64)
