"""A strict CPU stand-in for CuPy, so that the engines' CuPy path runs in CI.

No GPU is needed: device arrays are NumPy arrays behind a wrapper type that keeps
CuPy's rules about host and device memory, the rules a GPU run breaks on first:

- a device array never turns into a NumPy array implicitly: ``np.asarray(d)``,
  h5py, matplotlib or MPI given a device array raise CuPy's ``TypeError``
  ("Implicit conversion to a NumPy array is not allowed"); ``d.get()`` and
  ``cupy.asnumpy(d)`` copy to the host;
- arithmetic, ufuncs and array functions that mix a device array with a NumPy
  array (other than a 0-d one) raise ``TypeError`` as CuPy does;
- ``cupy.asarray(host)`` copies (later host writes do not reach the device);
- reductions return 0-d device arrays, not NumPy scalars;
- NumPy functions called on device arrays dispatch to the device, as CuPy's
  ``__array_ufunc__`` / ``__array_function__`` make them do;
- ``cudaMemcpyAsync`` (``cupy.cuda.runtime.memcpyAsync``) checks that its
  pointers lie on the side of the copy direction it was given;
- ``cupy.add.at`` takes only the types CUDA's atomicAdd has (no complex);
- a device array has no ``ctypes``, buffer or DLPack interface, so mpi4py refuses
  it as a non-CUDA-aware MPI would.

What it cannot show: speed, CUDA-specific dtype limits of atomics, kernels
CuPy lacks, and asynchrony (everything runs at once). The ``gpu``-marked tests
run the same checks against the real CuPy where a CUDA device exists.

Use :func:`install` (a pytest fixture does it through ``monkeypatch``) to put
``cupy``, ``cupyx``, ``cupyx.scipy`` and ``cupyx.scipy.fft`` into
``sys.modules``.
"""

from __future__ import annotations

import ctypes
import numbers
import types
import weakref

import numpy as np
import scipy.fft
from numpy.lib.mixins import NDArrayOperatorsMixin

IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)
_DENIED = frozenset(
    {"ctypes", "__array_interface__", "__array_struct__", "__buffer__", "tofile", "dump"}
)


def _host_array(x):
    return isinstance(x, np.ndarray) and x.ndim > 0


def _check(args, where):
    """Refuse NumPy arrays (other than 0-d) among ``args`` (nested lists/tuples/dicts)."""
    stack = list(args)
    while stack:
        x = stack.pop()
        if _host_array(x):
            raise TypeError(f"Unsupported type {type(x)} in {where} (a host array given to CuPy)")
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())


def _unwrap(x):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return ndarray(x)
    if isinstance(x, np.generic):  # CuPy reductions give 0-d device arrays
        return ndarray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


# --- device memory registry (for the memcpy direction check) -------------------------------

_device_ranges: dict[int, int] = {}  # start pointer -> end pointer of device buffers seen


def _register(a):
    base = a
    while isinstance(base.base, np.ndarray):
        base = base.base
    start = base.__array_interface__["data"][0]
    if start not in _device_ranges:
        _device_ranges[start] = start + base.nbytes
        weakref.finalize(base, _device_ranges.pop, start, None)


def _on_device(ptr, nbytes):
    return any(s <= ptr and ptr + nbytes <= e for s, e in _device_ranges.items())


class _Memory:
    __slots__ = ("ptr",)

    def __init__(self, ptr):
        self.ptr = ptr


# --- the array type ----------------------------------------------------------------------


class ndarray(NDArrayOperatorsMixin):  # noqa: N801 (CuPy's name)
    """A device array: a NumPy array that only device-side code may touch."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, a):
        self._a = a

    # conversions CuPy refuses or allows
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def get(self, stream=None, order="C", out=None):
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self._a.shape or arr.dtype != self._a.dtype:
            raise ValueError("Shape or dtype mismatch in ndarray.set")
        self._a[...] = arr

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return self._a.__index__()

    # dispatch of NumPy's functions to the device
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _check(inputs, f"numpy.{ufunc.__name__}")
        _check(kwargs.get("out", ()), f"numpy.{ufunc.__name__}(out=)")
        result = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        out = kwargs.get("out")
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        _check(args, f"numpy.{func.__name__}")
        _check(kwargs, f"numpy.{func.__name__}")
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # the array protocol of Python
    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        # CuPy accepts host arrays as values here (copied to the device)
        self._a[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for row in self._a:
            yield _wrap(row)

    def __repr__(self):
        return "device" + repr(self._a)

    __hash__ = None

    # attributes
    @property
    def data(self):
        _register(self._a)
        return _Memory(self._a.__array_interface__["data"][0])

    @property
    def real(self):
        return ndarray(self._a.real)

    @real.setter
    def real(self, value):
        self._a.real = _unwrap(value)

    @property
    def imag(self):
        return ndarray(self._a.imag)

    @imag.setter
    def imag(self, value):
        self._a.imag = _unwrap(value)

    @property
    def T(self):
        return ndarray(self._a.T)

    def __getattr__(self, name):
        if name in _DENIED or name.startswith("__"):  # no DLPack, CUDA or buffer interface
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            _check(args, f"ndarray.{name}")
            _check(kwargs, f"ndarray.{name}")
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))

        return method


ndarray.__module__ = "cupy"


# --- module-level functions ---------------------------------------------------------------


_ATOMIC_ADD_TYPES = "iILQefd"  # what cupy.add.at (cupyx.scatter_add) supports


class _Ufunc:
    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        _check(args, f"cupy.{self.__name__}")
        _check(kwargs, f"cupy.{self.__name__}")
        out = kwargs.get("out")
        result = self._uf(*_unwrap(args), **_unwrap(kwargs))
        return out if out is not None else _wrap(result)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError(f"cupy.{self.__name__}.at: a must be a cupy.ndarray")
        if self.__name__ == "add" and a.dtype.char not in _ATOMIC_ADD_TYPES:
            raise TypeError(f"cupy.add.at: dtype {a.dtype} has no CUDA atomicAdd")
        _check((indices, b), f"cupy.{self.__name__}.at")
        self._uf.at(a._a, _unwrap(indices), _unwrap(b))

    def reduce(self, *args, **kwargs):
        _check(args, f"cupy.{self.__name__}.reduce")
        return _wrap(self._uf.reduce(*_unwrap(args), **_unwrap(kwargs)))


def _function(name, fn):
    def call(*args, **kwargs):
        _check(args, f"cupy.{name}")
        _check(kwargs, f"cupy.{name}")
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))

    call.__name__ = name
    return call


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a
        return ndarray(a._a.astype(dtype))
    return ndarray(np.array(_unwrap(a), dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    return ndarray(np.array(_unwrap(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        _check((a,), "cupy.ascontiguousarray")
    return ndarray(np.ascontiguousarray(_unwrap(a), dtype=dtype))


def get_array_module(*args):
    return _cupy if any(isinstance(a, ndarray) for a in args) else np


# --- cupy.cuda -------------------------------------------------------------------------------


class _Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.recorded = False

    def record(self, stream=None):
        self.recorded = True

    def synchronize(self):
        pass  # the stand-in runs everything at once


class _Stream:
    _count = 0

    def __init__(self, null=False, non_blocking=False, ptds=False):
        _Stream._count += 1
        self.ptr = 0 if null else _Stream._count
        self.waited = 0

    def synchronize(self):
        pass  # the stand-in runs everything at once

    def wait_event(self, event):
        if not isinstance(event, _Event) or not event.recorded:
            raise ValueError("wait_event: an Event that was recorded is expected")
        self.waited += 1

    def record(self, event=None):
        event = event or _Event()
        event.record(self)
        return event

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL_STREAM = _Stream(null=True)
_H2D, _D2H, _D2D = 1, 2, 3


def _memcpy_async(dst, src, size, kind, stream):
    if not isinstance(dst, numbers.Integral) or not isinstance(src, numbers.Integral):
        raise TypeError("memcpyAsync takes integer pointers")
    if kind == _H2D and not (_on_device(dst, size) and not _on_device(src, size)):
        raise ValueError("memcpyAsync(HostToDevice): dst must be device memory, src host memory")
    if kind == _D2H and not (_on_device(src, size) and not _on_device(dst, size)):
        raise ValueError("memcpyAsync(DeviceToHost): src must be device memory, dst host memory")
    ctypes.memmove(dst, src, size)


class _MemoryPool:
    def free_bytes(self):
        return 0

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()
FREE_DEVICE_BYTES = 8 << 30  # what memGetInfo reports as free


def _module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


class _Devices:
    """How many CUDA devices the stand-in shows, and which one is current."""

    count = 1
    current = 0


class _Device:
    def __init__(self, device=None):
        self.id = _Devices.current if device is None else int(device)
        if not 0 <= self.id < _Devices.count:
            raise ValueError(f"cudaErrorInvalidDevice: device {self.id} of {_Devices.count}")

    def use(self):
        _Devices.current = self.id

    def synchronize(self):
        pass  # the stand-in runs everything at once

    def __enter__(self):
        self._previous = _Devices.current
        self.use()
        return self

    def __exit__(self, *exc):
        _Devices.current = self._previous
        return False


_runtime = _module(
    "cupy.cuda.runtime",
    getDeviceCount=lambda: _Devices.count,
    getDevice=lambda: _Devices.current,
    memGetInfo=lambda: (FREE_DEVICE_BYTES, 2 * FREE_DEVICE_BYTES),
    memcpyAsync=_memcpy_async,
    memcpyHostToDevice=_H2D,
    memcpyDeviceToHost=_D2H,
    memcpyDeviceToDevice=_D2D,
)
_cuda = _module(
    "cupy.cuda",
    runtime=_runtime,
    Stream=_Stream,
    Event=_Event,
    Device=_Device,
    get_current_stream=lambda: _NULL_STREAM,
)


class _CupyModule(types.ModuleType):
    """``cupy``: NumPy's names, wrapped to take and give device arrays."""

    def __getattr__(self, name):
        attr = getattr(np, name)  # AttributeError for names NumPy lacks
        if isinstance(attr, np.ufunc):
            value = _Ufunc(attr)
        elif isinstance(attr, type) or not callable(attr):
            value = attr  # dtypes, constants, newaxis
        else:
            value = _function(name, attr)
        setattr(self, name, value)
        return value


_cupy = _CupyModule("cupy")
_cupy.__dict__.update(
    ndarray=ndarray,
    asarray=asarray,
    array=array,
    asnumpy=asnumpy,
    ascontiguousarray=ascontiguousarray,
    get_array_module=get_array_module,
    get_default_memory_pool=lambda: _POOL,
    get_default_pinned_memory_pool=lambda: _POOL,
    cuda=_cuda,
    __version__="stand-in",
    __file__=__file__,
    STANDIN=True,
)


def _fft(fn):
    def call(x, s=None, axes=(-2, -1), norm=None, overwrite_x=False, plan=None):
        if not isinstance(x, ndarray):
            raise TypeError(f"cupyx.scipy.fft: a cupy.ndarray is expected, got {type(x)}")
        return ndarray(fn(x._a, s=s, axes=axes, norm=norm, overwrite_x=overwrite_x))

    return call


def _fft1(fn):
    def call(x, n=None, axis=-1, norm=None, overwrite_x=False, plan=None):
        if not isinstance(x, ndarray):
            raise TypeError(f"cupyx.scipy.fft: a cupy.ndarray is expected, got {type(x)}")
        return ndarray(fn(x._a, n=n, axis=axis, norm=norm, overwrite_x=overwrite_x))

    return call


_fftmod = _module(
    "cupyx.scipy.fft",
    fft2=_fft(scipy.fft.fft2),
    ifft2=_fft(scipy.fft.ifft2),
    fft=_fft1(scipy.fft.fft),
    ifft=_fft1(scipy.fft.ifft),
)
_scipy = _module("cupyx.scipy", fft=_fftmod)
_cupyx = _module(
    "cupyx",
    scipy=_scipy,
    empty_pinned=lambda shape, dtype=float, order="C": np.empty(shape, dtype, order),
    zeros_pinned=lambda shape, dtype=float, order="C": np.zeros(shape, dtype, order),
)

MODULES = {
    "cupy": _cupy,
    "cupy.cuda": _cuda,
    "cupy.cuda.runtime": _runtime,
    "cupyx": _cupyx,
    "cupyx.scipy": _scipy,
    "cupyx.scipy.fft": _fftmod,
}


def set_devices(count, current=0):
    """Show ``count`` CUDA devices, ``current`` the one in use (tests of device choice)."""
    _Devices.count, _Devices.current = int(count), int(current)


def install(setitem=None):
    """Put the stand-in into ``sys.modules``, through ``setitem(sys.modules, name, module)``
    where given (``monkeypatch.setitem``, which undoes it after the test); returns it."""
    import sys

    set_devices(1)
    for name, mod in MODULES.items():
        if setitem is None:
            sys.modules[name] = mod
        else:
            setitem(sys.modules, name, mod)
    return _cupy
