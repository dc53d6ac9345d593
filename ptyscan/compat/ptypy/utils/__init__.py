"""``ptypy.utils`` as ptypy loaders use it: Param, expect2/3, unit helpers, log, parallel."""

from __future__ import annotations

import numpy as np

from ....geometry import electron_wavelength_m, photon_energy_kev, xray_wavelength_m
from . import array_utils, parallel, parameters, verbose
from .parameters import Param, asParam
from .verbose import log, logger

__all__ = [
    "Param",
    "array_utils",
    "asParam",
    "electron_wavelength",
    "expect2",
    "expect3",
    "keV2m",
    "log",
    "logger",
    "m2keV",
    "parallel",
    "parameters",
    "verbose",
]


def expect2(a):
    """(2,) array from a scalar (repeated) or the first two entries of a sequence."""
    a = np.atleast_1d(np.asarray(a))
    return np.array([a.flat[0], a.flat[0]]) if a.size == 1 else np.array([a.flat[0], a.flat[1]])


def expect3(a):
    """(3,) array from a scalar (repeated), a pair (last entry repeated) or a sequence."""
    a = np.atleast_1d(np.asarray(a))
    if a.size == 1:
        return np.array([a.flat[0]] * 3)
    if a.size == 2:
        return np.array([a.flat[0], a.flat[1], a.flat[1]])
    return np.array([a.flat[0], a.flat[1], a.flat[2]])


def keV2m(energy_kev):
    """X-ray wavelength in metres of a photon energy in keV."""
    return xray_wavelength_m(energy_kev)


def m2keV(wavelength_m):
    """Photon energy in keV of an X-ray wavelength in metres."""
    return photon_energy_kev(wavelength_m)


def electron_wavelength(energy_kev):
    """Relativistic electron wavelength in metres at an accelerating voltage in kV."""
    return electron_wavelength_m(energy_kev)
