"""A simulated 4D-STEM scan written as an EMPAD-1 ``.raw`` file, block by block.

The probe is :func:`ptyscan.simulate.electron.electron_probe` (kV, convergence angle,
aberrations in Å); the sample a weak phase object (a smooth random phase of at most
``phase_rad``); frames ``|FFT(probe · object[view])|²`` (zero frequency in the middle) on
a raster of ``step_angstrom``, snapped to whole pixels of ``dx_angstrom``. Each frame is
written as float32 followed by the ``gap_bytes`` of metadata EMPAD-1 stores (2 rows of
128 float32: 1024 bytes), so memory is bounded by ``block`` frames, whatever the scan.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from ptyscan.errors import ParameterError
from ptyscan.simulate.electron import ANGSTROM_M, electron_probe

__all__ = ["EMPAD_NPIX", "simulate_stem_raw", "weak_phase_object"]

EMPAD_NPIX = 128
"""EMPAD-1 frames are 128 × 128 pixels."""


def weak_phase_object(shape, *, phase_rad, feature_px, rng):
    """``exp(i φ)`` with φ a smooth random field in [0, ``phase_rad``], complex64."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), feature_px, mode="wrap")
    field -= field.min()
    field *= phase_rad / max(field.max(), 1e-30)
    return np.exp(1j * field).astype(np.complex64)


def simulate_stem_raw(
    path,
    *,
    n_slow,
    n_fast,
    energy_kev=300.0,
    conv_angle_mrad=20.0,
    dx_angstrom=0.2,
    step_angstrom=0.8,
    aberrations_angstrom=None,
    npix=EMPAD_NPIX,
    gap_bytes=1024,
    electrons=1e5,
    phase_rad=0.3,
    seed=0,
    block=256,
):
    """Write an ``n_slow × n_fast`` scan of ``npix²`` float32 frames to ``path``.

    Returns
    -------
    dict
        ``positions_angstrom`` (N, 2) of the views (y, x, centred), ``probe``, ``object``.
    """
    if gap_bytes % 4:
        raise ParameterError(f"gap_bytes: got {gap_bytes}; expected a multiple of 4")
    rng = np.random.default_rng(seed)
    probe = electron_probe(
        (npix, npix),
        energy_kev=energy_kev,
        semi_angle_mrad=conv_angle_mrad,
        sample_pixel_m=dx_angstrom * ANGSTROM_M,
        aberrations_angstrom=aberrations_angstrom,
        electrons=electrons,
    )
    step_px = step_angstrom / dx_angstrom
    iy, ix = np.meshgrid(np.arange(n_slow), np.arange(n_fast), indexing="ij")
    corners = np.rint(np.stack([iy.ravel(), ix.ravel()], axis=1) * step_px).astype(np.int64)
    extent = corners.max(axis=0) + npix
    obj = weak_phase_object(tuple(extent), phase_rad=phase_rad, feature_px=2.0, rng=rng)
    meta = np.zeros(gap_bytes // 4, np.float32)
    with open(os.fspath(path), "wb") as f:
        for start in range(0, len(corners), block):
            views = corners[start : start + block]
            exit_waves = np.stack([obj[y : y + npix, x : x + npix] for y, x in views]) * probe
            far = np.fft.fftshift(np.fft.fft2(exit_waves, norm="ortho"), axes=(-2, -1))
            frames = (np.abs(far) ** 2).astype("<f4")
            for k, frame in enumerate(frames):
                meta[:1] = start + k
                f.write(frame.tobytes())
                f.write(meta.tobytes())
    centre = (corners.max(axis=0) + corners.min(axis=0)) / 2
    positions = (corners - centre) * dx_angstrom
    return {"positions_angstrom": positions, "probe": probe, "object": obj}
