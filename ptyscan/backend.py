"""Array backends: NumPy (+ scipy.fft) or CuPy (+ cupyx.scipy.fft), and their FFTs.

An engine is written once against ``backend.xp`` (the array module) and
``backend.fft`` (unitary 2-D FFTs of the last two axes); the propagators
(:mod:`ptyscan.propagation`) take the same FFTs, pinned by a backend or chosen
by :func:`namespace_of` from the array's type. This module sits below both, so
the FFT wrappers exist once. CuPy is imported only inside functions here, so
``import ptyscan`` works without it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BackendError
from .parallel import thread_count

__all__ = ["Backend", "CupyFFT", "ScipyFFT", "get_backend", "namespace_of"]

log = logging.getLogger(__name__)

_GPU_HINT = "install the GPU extra with: pip install 'ptyscan[gpu]'"
_PRECISIONS = {
    "single": (np.complex64, np.float32),
    "double": (np.complex128, np.float64),
}


class ScipyFFT:
    """Unitary ``fft2``/``ifft2`` of the last two axes with scipy.fft and ``workers`` threads.

    ``workers=None``: :func:`ptyscan.parallel.thread_count`. :meth:`limited` lowers the
    count for the calling thread only (block passes that already run one thread per core).
    """

    def __init__(self, workers: int | None = None):
        import scipy.fft

        self._fft = scipy.fft
        self._workers = int(workers) if workers else thread_count()
        self._local = threading.local()

    @property
    def workers(self) -> int:
        return getattr(self._local, "workers", self._workers)

    @workers.setter
    def workers(self, value: int):
        self._workers = int(value)

    @contextlib.contextmanager
    def limited(self, workers: int = 1):
        """Within the block, FFTs called from this thread use at most ``workers`` threads."""
        self._local.workers = min(int(workers), self._workers)
        try:
            yield self
        finally:
            del self._local.workers

    def __repr__(self):
        return f"scipy.fft(workers={self.workers})"

    def fft2(self, x, *, overwrite_x=False):
        return self._fft.fft2(x, norm="ortho", overwrite_x=overwrite_x, workers=self.workers)

    def ifft2(self, x, *, overwrite_x=False):
        return self._fft.ifft2(x, norm="ortho", overwrite_x=overwrite_x, workers=self.workers)

    def fft(self, x, *, n=None, axis=-1, overwrite_x=False):
        """Unitary 1-D FFT along ``axis`` (zero-padded or cut to ``n``)."""
        kw = dict(n=n, axis=axis, norm="ortho", overwrite_x=overwrite_x, workers=self.workers)
        return self._fft.fft(x, **kw)

    def ifft(self, x, *, n=None, axis=-1, overwrite_x=False):
        kw = dict(n=n, axis=axis, norm="ortho", overwrite_x=overwrite_x, workers=self.workers)
        return self._fft.ifft(x, **kw)


class CupyFFT:
    """Unitary ``fft2``/``ifft2`` with cupyx.scipy.fft; cuFFT plans come from CuPy's plan cache."""

    def __init__(self, cupyx_fft=None):
        if cupyx_fft is None:
            import cupyx.scipy.fft as cupyx_fft
        self._fft = cupyx_fft

    def __repr__(self):
        return "cupyx.scipy.fft"

    def fft2(self, x, *, overwrite_x=False):
        return self._fft.fft2(x, norm="ortho", overwrite_x=overwrite_x)

    def ifft2(self, x, *, overwrite_x=False):
        return self._fft.ifft2(x, norm="ortho", overwrite_x=overwrite_x)

    def fft(self, x, *, n=None, axis=-1, overwrite_x=False):
        """Unitary 1-D FFT along ``axis`` (zero-padded or cut to ``n``)."""
        return self._fft.fft(x, n=n, axis=axis, norm="ortho", overwrite_x=overwrite_x)

    def ifft(self, x, *, n=None, axis=-1, overwrite_x=False):
        return self._fft.ifft(x, n=n, axis=axis, norm="ortho", overwrite_x=overwrite_x)


@dataclass(frozen=True)
class Backend:
    """An array module, its FFT and the working precision.

    Attributes
    ----------
    name : str
        'numpy' or 'cupy'.
    xp : module
        ``numpy`` or ``cupy``.
    fft : object
        Unitary 2-D FFTs of the last two axes: ``fft.fft2(x, overwrite_x=False)``
        and ``fft.ifft2(x, overwrite_x=False)`` (``norm='ortho'``).
    complex_dtype, real_dtype : numpy dtype
        complex64/float32 ('single', default) or complex128/float64 ('double').
    threads : int or None
        FFT threads (NumPy); None for CuPy.
    device : int or None
        The CUDA device (CuPy); None for NumPy.
    """

    name: str
    xp: Any = field(repr=False)
    fft: Any
    complex_dtype: Any = np.complex64
    real_dtype: Any = np.float32
    threads: int | None = None
    device: int | None = None

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def to_device(self, arr, dtype=None):
        """``arr`` as an array of this backend (a copy only where needed)."""
        if dtype is None:
            return self.xp.asarray(arr)
        return self.xp.asarray(arr, dtype=dtype)

    def to_host(self, arr) -> np.ndarray:
        """``arr`` as a NumPy array (a device-to-host copy for CuPy)."""
        if self.name == "cupy" and not isinstance(arr, np.ndarray):
            return arr.get()
        return np.asarray(arr)

    def empty_pinned(self, shape, dtype) -> np.ndarray:
        """An uninitialised host array for streaming: page-locked (pinned) memory on
        CuPy, so that copies to and from the device run asynchronously; an ordinary
        NumPy array on NumPy."""
        if self.name == "cupy":
            import cupyx

            return cupyx.empty_pinned(shape, dtype=dtype)
        return np.empty(shape, dtype=dtype)

    def free_device_bytes(self) -> int | None:
        """Device memory a reconstruction can still take: free memory plus what CuPy's
        memory pool holds unused; None on NumPy."""
        if self.name != "cupy":
            return None
        free, _total = self.xp.cuda.runtime.memGetInfo()
        return int(free) + int(self.xp.get_default_memory_pool().free_bytes())

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on NumPy); use before timing."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


_checked: dict[tuple, str | None] = {}  # (module, device) -> None (works) or why not


def _smoke_test(cupy, fft, device):
    """None if CuPy computes on ``device`` (an elementwise kernel, cuFFT and a
    reduction: what fails when NVRTC, cuFFT or the driver do not match), else why not.
    Run once per device and process."""
    key = (id(cupy), device)
    if key not in _checked:
        try:
            x = cupy.ones((2, 8, 8), dtype=np.complex64) * 2  # unitary FFT: 2 DC terms of 16
            total = float(cupy.abs(fft.fft2(x, norm="ortho")).sum())
            _checked[key] = None if abs(total - 32.0) < 1e-3 else f"a test FFT gave {total}"
        except Exception as exc:  # CUDA, NVRTC or cuFFT errors all mean "not usable"
            _checked[key] = f"{type(exc).__name__}: {exc}".strip()
    return _checked[key]


def _cupy_usable():
    """True when CuPy imports, sees a CUDA device and computes on it; why not is logged."""
    try:
        import cupy
        import cupyx.scipy.fft

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False
    except Exception:  # ImportError, CUDARuntimeError, missing driver: all mean "no"
        return False
    problem = _smoke_test(cupy, cupyx.scipy.fft, cupy.cuda.runtime.getDevice())
    if problem:
        log.warning(
            "backend 'auto': CuPy sees a GPU but cannot compute on it (%s); using NumPy", problem
        )
    return problem is None


def _numpy_backend(precision, threads):
    cdt, rdt = _PRECISIONS[precision]
    fft = ScipyFFT(threads)
    return Backend("numpy", np, fft, np.dtype(cdt), np.dtype(rdt), fft.workers)


def _cupy_backend(precision, device):
    try:
        import cupy
        import cupyx.scipy.fft
    except ImportError as exc:
        raise BackendError(
            f"backend 'cupy': cupy cannot be imported ({exc}); {_GPU_HINT}, or use backend 'numpy'"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise BackendError(
            f"backend 'cupy': no usable CUDA device ({type(exc).__name__}: {exc}); check the "
            "NVIDIA driver and CUDA_VISIBLE_DEVICES, or use backend 'numpy'"
        ) from None
    if count < 1:
        raise BackendError(
            "backend 'cupy': cupy found 0 CUDA devices; check CUDA_VISIBLE_DEVICES, "
            "or use backend 'numpy'"
        )
    if device is not None:
        cupy.cuda.Device(int(device) % count).use()  # for this thread from now on
    current = int(cupy.cuda.runtime.getDevice())
    problem = _smoke_test(cupy, cupyx.scipy.fft, current)
    if problem:
        raise BackendError(
            f"backend 'cupy': CUDA device {current} is visible but CuPy cannot compute on it "
            f"({problem}); check that the CuPy package matches the CUDA driver "
            "(cupy-cuda13x needs a CUDA 13 driver), or use backend 'numpy'"
        )
    cdt, rdt = _PRECISIONS[precision]
    fft = CupyFFT(cupyx.scipy.fft)
    return Backend("cupy", cupy, fft, np.dtype(cdt), np.dtype(rdt), None, current)


def get_backend(
    name: str = "auto", *, precision: str = "single", threads=None, device=None
) -> Backend:
    """Return the array backend ``name``.

    Parameters
    ----------
    name : {'auto', 'numpy', 'cupy'}
        'auto' picks CuPy when it imports and sees a CUDA device, else NumPy.
    precision : {'single', 'double'}
        complex64/float32 (default) or complex128/float64 working arrays.
    threads : int, optional
        FFT threads for NumPy (default :func:`ptyscan.parallel.thread_count`).
    device : int, optional
        CuPy: use CUDA device ``device % count`` (the engines pass the node-local
        MPI rank, so that the ranks of a node share its GPUs out); None keeps
        CuPy's current device. CUDA_VISIBLE_DEVICES limits what is counted.

    Raises
    ------
    BackendError
        ``name`` is unknown, or 'cupy' was asked for and cannot be used (with
        the install hint ``pip install 'ptyscan[gpu]'``, or the reason a visible
        GPU fails a first computation).
    """
    if isinstance(name, Backend):
        return name
    if precision not in _PRECISIONS:
        raise BackendError(f"precision: got {precision!r}; expected 'single' or 'double'")
    key = str(name).lower()
    if key == "auto":
        key = "cupy" if _cupy_usable() else "numpy"
        log.debug("backend 'auto' resolved to %r", key)
    if key == "numpy":
        return _numpy_backend(precision, threads)
    if key == "cupy":
        return _cupy_backend(precision, device)
    raise BackendError(f"backend: got {name!r}; expected 'auto', 'numpy' or 'cupy'")


@functools.cache
def _default_fft(module: str):
    """One FFT object per array module, made on first use."""
    return CupyFFT() if module == "cupy" else ScipyFFT()


def namespace_of(arr, backend=None):
    """``(xp, fft)`` for ``arr``: the backend's, else by the array's type (NumPy or CuPy).

    Used by the propagators, which accept arrays of either module without a backend.
    """
    if backend is not None:
        return backend.xp, backend.fft
    if type(arr).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy, _default_fft("cupy")
    return np, _default_fft("numpy")
