"""Far- and near-field propagators: exact forward/adjoint pairs for any array module.

Both propagators act on the last two axes of a complex array ``(..., ny, nx)``
and keep its dtype (complex64 stays complex64). They are shared by
:mod:`ptyscan.simulate` and :mod:`ptyscan.engines`, so neither imports the other.

:class:`FarField`
    The unitary 2-D FFT (``norm='ortho'``) with the zero frequency at
    ``center`` (default ``(ny // 2, nx // 2)``, numpy's ``fftshift`` convention,
    which is where :class:`~ptyscan.chunk.ScanMeta` puts the optical axis).
    Unitary, so ``adjoint`` is also the exact inverse and Parseval holds.
:class:`NearField`
    Angular-spectrum (Fresnel, non-paraxial) propagation over ``distance_m``
    with a precomputed transfer function. Unitary while no spatial frequency
    is evanescent (always the case for pixels much larger than the
    wavelength); ``adjoint`` is exact in every case.

Array modules
-------------
``backend=None`` dispatches on the array passed in
(:func:`ptyscan.backend.namespace_of`): NumPy arrays use ``scipy.fft`` (with
``workers`` from :func:`ptyscan.parallel.thread_count`), CuPy arrays
``cupyx.scipy.fft``. A backend object (such as
:class:`ptyscan.backend.Backend`) with attributes ``xp`` (the array
module) and ``fft`` (an object with unitary ``fft2(x, overwrite_x=...)`` and
``ifft2``) pins both. Precomputed arrays are built once in float64 and cached
per array module and dtype.

Engine interface
----------------
Besides ``forward``/``adjoint`` (detector order), each propagator has
``fw``/``bw``, the same transforms in the propagator's internal frequency order,
and ``fft_order(frames)``, which brings measured frames into that order. Engines
reorder their data once and then save a roll per transform:
``fw(x) == fft_order(forward(x))`` and ``bw(fft_order(y)) == adjoint(y)``.
"""

from __future__ import annotations

import numpy as np

from .backend import namespace_of
from .errors import ParameterError
from .geometry import frame_shape

__all__ = ["FarField", "NearField", "propagator_for"]


def _complex_dtype(xp, arr):
    dtype = xp.result_type(arr.dtype, xp.complex64)
    return dtype


class _Propagator:
    """Shared plumbing: dtype handling and per-(module, dtype) caches of constant arrays."""

    def __init__(self, shape, backend):
        self.shape = frame_shape(shape)
        self.backend = backend
        self._cache = {}

    def _check(self, wave, xp):
        if wave.ndim < 2 or tuple(wave.shape[-2:]) != self.shape:
            raise ParameterError(
                f"{type(self).__name__}: got an array of shape {tuple(wave.shape)}; expected "
                f"(..., {self.shape[0]}, {self.shape[1]}) (the propagator's frame shape)"
            )
        dtype = _complex_dtype(xp, wave)
        return wave if wave.dtype == dtype else wave.astype(dtype)

    def _constant(self, name, xp, dtype, build):
        """A constant array (built in NumPy complex128 by ``build``) in ``xp`` and ``dtype``."""
        key = (name, xp.__name__, np.dtype(dtype).str)
        if key not in self._cache:
            self._cache[key] = xp.asarray(build().astype(dtype))
        return self._cache[key]

    # subclasses: fw, bw, fft_order, detector_order

    def forward(self, wave):
        """Propagate ``wave`` (..., ny, nx) from the sample to the detector plane."""
        return self.detector_order(self.fw(wave))

    def adjoint(self, wave):
        """Exact adjoint of :meth:`forward` (its inverse when unitary)."""
        xp, _ = namespace_of(wave, self.backend)
        return self.bw(self.fft_order(self._check(wave, xp)))


class FarField(_Propagator):
    """Unitary far-field (Fraunhofer) propagator: a centred 2-D FFT.

    ``forward(x)[..., k] = X(k - center)`` with ``X = fft2(x, norm='ortho')``:
    the zero frequency lands at ``center``. An integer centre is an exact
    circular shift (a roll); a fractional part ``f`` is applied as the phase
    ramp ``exp(2πi f·r / n)`` (``r`` the pixel index) on the sample side,
    which shifts the spectrum by ``f`` pixels with band-limited (periodic sinc)
    interpolation. Both are unitary, so ``adjoint`` is the exact inverse.

    Parameters
    ----------
    shape : int or (int, int)
        Frame shape ``(ny, nx)`` in pixels.
    center : (float, float), optional
        Position ``(cy, cx)`` in detector pixels of the zero frequency;
        default ``(ny // 2, nx // 2)`` (the ``fftshift`` convention).
    backend : Backend, optional
        Array module and FFT to use; None dispatches on the input array type.
    """

    def __init__(self, shape, *, center=None, backend=None):
        super().__init__(shape, backend)
        ny, nx = self.shape
        if center is None:
            center = (ny // 2, nx // 2)
        c = np.asarray(center, dtype=np.float64)
        if c.shape != (2,) or not np.all(np.isfinite(c)):
            raise ParameterError(
                f"FarField: center must be a finite pair (cy, cx) in pixels, got {center!r}"
            )
        self.center = (float(c[0]), float(c[1]))
        whole = np.round(c)
        self._roll = (int(whole[0]), int(whole[1]))
        self._frac = c - whole
        self._has_ramp = bool(np.any(np.abs(self._frac) > 1e-12))

    def __repr__(self):
        return f"FarField(shape={self.shape}, center={self.center})"

    def _ramp(self, xp, dtype):
        def build():
            ny, nx = self.shape
            y = np.arange(ny)[:, None] * (self._frac[0] / ny)
            x = np.arange(nx)[None, :] * (self._frac[1] / nx)
            return np.exp(2j * np.pi * (y + x))

        return self._constant("ramp", xp, dtype, build)

    def fw(self, wave, *, overwrite=False):
        """:meth:`forward` without the final roll (spectrum in FFT order)."""
        xp, fft = namespace_of(wave, self.backend)
        wave = self._check(wave, xp)
        if self._has_ramp:
            wave = wave * self._ramp(xp, wave.dtype)
            overwrite = True
        return fft.fft2(wave, overwrite_x=overwrite)

    def bw(self, wave, *, overwrite=False):
        """Adjoint of :meth:`fw` (spectrum in FFT order back to the sample plane)."""
        xp, fft = namespace_of(wave, self.backend)
        wave = self._check(wave, xp)
        out = fft.ifft2(wave, overwrite_x=overwrite)
        if self._has_ramp:
            out *= xp.conj(self._ramp(xp, out.dtype))
        return out

    def fft_order(self, frames):
        """Detector-ordered ``frames`` (..., ny, nx), any dtype, rolled into FFT order."""
        xp, _ = namespace_of(frames, self.backend)
        if self._roll == (0, 0):
            return frames
        return xp.roll(frames, (-self._roll[0], -self._roll[1]), axis=(-2, -1))

    def detector_order(self, spectrum):
        """Inverse of :meth:`fft_order`."""
        xp, _ = namespace_of(spectrum, self.backend)
        if self._roll == (0, 0):
            return spectrum
        return xp.roll(spectrum, self._roll, axis=(-2, -1))


class NearField(_Propagator):
    """Angular-spectrum (near-field, Fresnel regime) propagator.

    ``forward(x) = ifft2(H · fft2(x))`` with the transfer function
    ``H(f) = exp(i k z (sqrt(1 - λ² |f|²) - 1))``, ``k = 2π/λ``, ``z`` the
    distance and ``f`` the spatial frequencies of the pixel grid
    (``fftfreq(n, psize)``). The constant phase ``exp(i k z)`` is left out.
    Evanescent frequencies (``λ|f| > 1``) decay as ``exp(-k z sqrt(λ²|f|² - 1))``;
    without them ``|H| = 1`` and the propagator is unitary. ``adjoint`` uses
    ``conj(H)``: exact in every case, and the inverse when unitary. The sample
    and detector planes share one pixel size (no magnification).

    Parameters
    ----------
    shape : int or (int, int)
        Frame shape ``(ny, nx)`` in pixels.
    distance_m : float
        Propagation distance in metres (0 is the identity; negative goes upstream).
    wavelength_m : float
        Wavelength in metres, > 0.
    psize_m : float or (float, float)
        Pixel size in metres, scalar or ``(y, x)``, > 0.
    backend : Backend, optional
        Array module and FFT to use; None dispatches on the input array type.
    """

    def __init__(self, shape, *, distance_m, wavelength_m, psize_m, backend=None):
        super().__init__(shape, backend)
        self.distance_m = _finite("distance_m", distance_m)
        self.wavelength_m = _finite("wavelength_m", wavelength_m, positive=True)
        psize = np.broadcast_to(np.asarray(psize_m, dtype=np.float64), (2,))
        if not np.all(np.isfinite(psize)) or not np.all(psize > 0):
            raise ParameterError(
                f"NearField: psize_m must be a positive pixel size in metres, scalar or (y, x), "
                f"got {psize_m!r}"
            )
        self.psize_m = (float(psize[0]), float(psize[1]))

    def __repr__(self):
        return (
            f"NearField(shape={self.shape}, distance_m={self.distance_m:g}, "
            f"wavelength_m={self.wavelength_m:g}, psize_m={self.psize_m})"
        )

    def transfer_function(self):
        """(ny, nx) complex128 NumPy transfer function ``H`` in FFT order."""
        ny, nx = self.shape
        lam = self.wavelength_m
        fy = np.fft.fftfreq(ny, d=self.psize_m[0])[:, None]
        fx = np.fft.fftfreq(nx, d=self.psize_m[1])[None, :]
        eps = (lam * fy) ** 2 + (lam * fx) ** 2  # (λ|f|)²
        root = np.sqrt((1.0 - eps).astype(np.complex128))
        # sqrt(1 - eps) - 1 written without cancellation for small eps
        delta = -eps / (1.0 + root)
        k = 2.0 * np.pi / lam
        return np.exp(1j * k * self.distance_m * delta)

    def _h(self, xp, dtype):
        return self._constant("H", xp, dtype, self.transfer_function)

    def fw(self, wave, *, overwrite=False):
        """Same as :meth:`forward` (the near field needs no reordering)."""
        xp, fft = namespace_of(wave, self.backend)
        wave = self._check(wave, xp)
        if self.distance_m == 0:
            return wave.copy() if not overwrite else wave
        spec = fft.fft2(wave, overwrite_x=overwrite)
        spec *= self._h(xp, spec.dtype)
        return fft.ifft2(spec, overwrite_x=True)

    def bw(self, wave, *, overwrite=False):
        """Same as :meth:`adjoint`."""
        xp, fft = namespace_of(wave, self.backend)
        wave = self._check(wave, xp)
        if self.distance_m == 0:
            return wave.copy() if not overwrite else wave
        spec = fft.fft2(wave, overwrite_x=overwrite)
        spec *= xp.conj(self._h(xp, spec.dtype))
        return fft.ifft2(spec, overwrite_x=True)

    def fft_order(self, frames):
        """Identity: near-field frames are used as measured."""
        return frames

    def detector_order(self, spectrum):
        """Identity."""
        return spectrum


def _finite(name, value, *, positive=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or (positive and number <= 0):
        kind = "a positive finite number" if positive else "a finite number"
        raise ParameterError(f"NearField: {name} must be {kind} in metres, got {value!r}")
    return number


def propagator_for(meta, *, backend=None):
    """The propagator described by a :class:`~ptyscan.chunk.ScanMeta`.

    ``meta.propagation == 'farfield'``: :class:`FarField` with ``meta.shape`` and
    ``meta.center`` (the optical axis; None means ``(ny // 2, nx // 2)``).
    ``'nearfield'``: :class:`NearField` with ``meta.distance``, the wavelength from
    ``meta.energy`` (keV) and ``meta.psize`` as the pixel size.
    """
    shape = tuple(int(s) for s in meta.shape)
    if meta.propagation == "farfield":
        return FarField(shape, center=meta.center, backend=backend)
    if meta.propagation == "nearfield":
        return NearField(
            shape,
            distance_m=meta.distance,
            wavelength_m=meta.wavelength_m,
            psize_m=meta.psize,
            backend=backend,
        )
    raise ParameterError(
        f"propagator_for: meta.propagation must be 'farfield' or 'nearfield', "
        f"got {meta.propagation!r}"
    )
