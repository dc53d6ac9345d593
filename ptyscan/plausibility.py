"""Is this geometry physically possible? Unit slips caught before anything is allocated.

:func:`check_geometry` looks at a scan's energy, distance, pixel sizes and
positions, as the scan will hand them to the engines, and

- raises :class:`~ptyscan.errors.ParameterError` (one line: the key, the value,
  the plausible range and the likely unit slip) for an energy, a distance or a
  detector pixel no instrument has (run by every scan's ``initialize``);
- warns for a scan step below 0.05 sample pixels (positions in the wrong unit?)
  or above the frame (no overlap, no ptychography).

:func:`check_object_memory` refuses, before a reconstruction allocates it, an
object that would not fit in the memory there is (positions in Å read as m).

:func:`describe_geometry` is the start-up summary of the same numbers (SI
units; Å, mrad-free kV and Å/pixel for electrons).

Ranges are wide on purpose: they catch factors of 1000 (eV for keV, mm for m,
µm for m), not unusual experiments.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .geometry import (
    electron_energy_kev,
    electron_wavelength_m,
    sample_pixel_m,
    xray_wavelength_m,
)

__all__ = [
    "Geometry",
    "available_memory_bytes",
    "check_geometry",
    "check_object_memory",
    "describe_geometry",
    "make_geometry",
]

log = logging.getLogger(__name__)

RANGES = {
    # key: (low, high, unit, {factor: unit the value was probably given in})
    "energy_xray": (0.1, 100.0, "keV", {1e-3: "eV", 1e3: "MeV"}),
    "energy_electron": (1.0, 1000.0, "kV", {1e-3: "V (eV)", 1e3: "MV"}),
    "energy_visible": (1e-3, 0.01, "keV", {1e-3: "eV"}),
    "distance_farfield": (1e-3, 100.0, "m", {1e-3: "mm", 1e-2: "cm", 1e-6: "µm"}),
    "distance_nearfield": (1e-7, 100.0, "m", {1e-3: "mm", 1e-2: "cm", 1e-6: "µm"}),
    "psize_farfield": (1e-7, 1e-2, "m", {1e-6: "µm", 1e-3: "mm"}),
    "psize_nearfield": (1e-11, 1e-3, "m", {1e-6: "µm", 1e-9: "nm", 1e-3: "mm"}),
}
"""Plausible ranges per key, and the unit slips that bring a value into them."""

LABELS = {
    "energy_xray": "X-rays",
    "energy_electron": "electrons",
    "energy_visible": "visible or UV light",
    "distance_farfield": "a far-field sample-detector distance",
    "distance_nearfield": "a near-field propagation distance",
    "psize_farfield": "a detector pixel",
    "psize_nearfield": "a near-field (sample-plane) pixel",
}

MIN_STEP_PX = 0.05
"""Smaller median steps between neighbouring positions, in sample pixels, get a warning."""


@dataclass(frozen=True)
class Geometry:
    """What a scan's numbers imply (all SI)."""

    radiation: str
    """'xray', 'electron' or 'visible' (optics-laboratory light)."""
    energy_kev: float
    """Photon energy (X-rays) or electron kinetic energy (kV), as the user gives it."""
    wavelength_m: float
    distance_m: float
    psize_m: tuple
    sample_pixel_m: tuple
    shape: tuple
    propagation: str
    step_px: float | None
    """Median distance to the nearest neighbouring position, in sample pixels."""
    object_px: tuple | None
    """Object extent (ny, nx) in pixels that the positions and the frame imply."""

    @property
    def object_bytes(self) -> int:
        """Bytes of one complex64 object mode of :attr:`object_px`."""
        return 0 if self.object_px is None else 8 * int(np.prod(self.object_px, dtype=float))


def _slip(value, low, high, slips) -> str:
    """' (was it given in X?)' when a unit factor brings ``value`` into [low, high]."""
    for factor, unit in slips.items():
        if low <= value * factor <= high:
            return f"; was it given in {unit}?"
    return ""


def _check_range(key, value, kind, problems):
    low, high, unit, slips = RANGES[kind]
    if not np.isfinite(value) or not low <= value <= high:
        problems.append(
            f"{key}: {value:.6g} {unit} is outside {low:g}–{high:g} {unit} for {LABELS[kind]}"
            f"{_slip(value, low, high, slips)}"
        )


def available_memory_bytes() -> int | None:
    """Memory the system can still give (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _step_px(positions_m, sample_pixel_m):
    """Median nearest-neighbour distance of the positions, in sample pixels (None if < 2)."""
    if positions_m is None or len(positions_m) < 2:
        return None
    from scipy.spatial import cKDTree

    px = np.asarray(positions_m, np.float64) / np.asarray(sample_pixel_m, np.float64)
    distances, _ = cKDTree(px).query(px, k=2)
    return float(np.median(distances[:, 1]))


def make_geometry(meta, positions_m, *, radiation="xray", energy_kev=None) -> Geometry:
    """The :class:`Geometry` of a scan's ``meta`` (a :class:`~ptyscan.chunk.ScanMeta`) and
    positions. ``radiation``: 'xray', 'electron' or 'visible'. ``energy_kev``: the
    energy as the user gives it (electrons: kV); default: from ``meta.energy`` (a
    photon energy, the engines' convention)."""
    electron = radiation == "electron"
    wavelength = float(xray_wavelength_m(meta.energy))
    if energy_kev is None:
        energy_kev = float(electron_energy_kev(wavelength)) if electron else float(meta.energy)
    elif electron:
        wavelength = float(electron_wavelength_m(energy_kev))
    psize = tuple(float(v) for v in np.broadcast_to(meta.psize, (2,)))
    shape = tuple(int(s) for s in meta.shape)
    sample = psize  # the far-field pixel needs the frame shape (unknown before the data)
    if all(shape):
        sample = tuple(float(v) for v in sample_pixel_m(meta, wavelength_m=wavelength))
    step = extent = None
    if positions_m is not None and len(positions_m) and all(shape):
        pos = np.asarray(positions_m, np.float64)
        span = (pos.max(axis=0) - pos.min(axis=0)) / np.asarray(sample)
        extent = tuple(int(np.ceil(s)) + n for s, n in zip(span, shape, strict=True))
        step = _step_px(pos, sample)
    return Geometry(
        radiation=radiation,
        energy_kev=float(energy_kev),
        wavelength_m=wavelength,
        distance_m=float(meta.distance),
        psize_m=psize,
        sample_pixel_m=sample,
        shape=shape,
        propagation=meta.propagation,
        step_px=step,
        object_px=extent,
    )


def check_geometry(geometry: Geometry, *, prefix="scan") -> list[str]:
    """Raise a ParameterError naming every implausible number; return the warnings.

    Energy, distance and detector pixel outside :data:`RANGES` are errors (with
    the likely unit slip); a scan step below :data:`MIN_STEP_PX` or above the
    frame is a warning (logged, and returned).
    """
    g, problems, warnings = geometry, [], []
    field = "nearfield" if g.propagation == "nearfield" else "farfield"
    _check_range(f"{prefix}.energy", g.energy_kev, f"energy_{g.radiation}", problems)
    _check_range(f"{prefix}.distance", g.distance_m, f"distance_{field}", problems)
    for psize in sorted(set(g.psize_m)):
        _check_range(f"{prefix}.psize", psize, f"psize_{field}", problems)
    if problems:
        raise ParameterError("; ".join(problems))
    if g.step_px is not None and g.step_px < MIN_STEP_PX:
        warnings.append(
            f"{prefix}: neighbouring positions are {g.step_px:.3g} sample pixels apart "
            f"(below {MIN_STEP_PX}): are the positions in metres?"
        )
    if g.step_px is not None and g.step_px > max(g.shape):
        warnings.append(
            f"{prefix}: neighbouring positions are {g.step_px:.3g} sample pixels apart, more "
            f"than the {max(g.shape)}-pixel frame: the views do not overlap"
        )
    for text in warnings:
        log.warning(text)
    return warnings


def check_object_memory(geometry: Geometry, *, modes=1, prefix="scan", memory_bytes=None):
    """Raise a ParameterError when ``modes`` complex64 object modes of the extent the
    positions imply would not fit in the memory available (default
    :func:`available_memory_bytes`), before a reconstruction allocates them."""
    g = geometry
    memory = available_memory_bytes() if memory_bytes is None else memory_bytes
    need = modes * g.object_bytes
    if g.object_px is not None and memory is not None and need > memory:
        raise ParameterError(
            f"{prefix}: the object would be {g.object_px[0]}×{g.object_px[1]} pixels "
            f"({need / 2**30:.3g} GiB) with a sample pixel of {_length(min(g.sample_pixel_m))}, "
            f"more than the {memory / 2**30:.3g} GiB available; are the positions in metres "
            "(a multiplier missing?), and energy, distance and psize in keV, m and m?"
        )


def _length(metres: float) -> str:
    """A length with a readable unit (m, mm, µm, nm, Å)."""
    for unit, scale in (("m", 1.0), ("mm", 1e-3), ("µm", 1e-6), ("nm", 1e-9)):
        if abs(metres) >= scale:
            return f"{metres / scale:.4g} {unit}"
    return f"{metres / 1e-10:.4g} Å"


def describe_geometry(geometry: Geometry) -> str:
    """The geometry block of the start-up log: one line per quantity."""
    g = geometry
    radiation = LABELS[f"energy_{g.radiation}"]
    electron = g.radiation == "electron"
    energy = f"{g.energy_kev:.6g} kV" if electron else f"{g.energy_kev:.6g} keV"
    pixel = " × ".join(_length(v) for v in g.sample_pixel_m)
    lines = [
        f"geometry ({radiation}, {g.propagation})",
        f"  energy        {energy} (wavelength {_length(g.wavelength_m)})",
        f"  distance      {_length(g.distance_m)}",
        f"  detector      {g.shape[0]} × {g.shape[1]} pixels of "
        + " × ".join(_length(v) for v in g.psize_m),
        f"  sample pixel  {pixel}",
    ]
    if g.step_px is not None:
        lines.append(
            f"  scan step     {g.step_px:.3g} sample pixels (median to nearest neighbour)"
        )
    if g.object_px is not None:
        lines.append(
            f"  object        {g.object_px[0]} × {g.object_px[1]} pixels "
            f"({g.object_bytes / 2**20:.4g} MiB per complex64 mode)"
        )
    return "\n".join(lines)
