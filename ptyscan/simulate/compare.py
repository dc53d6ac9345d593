"""How close a reconstructed phase is to a known one: correlation after registration.

A reconstruction is fixed only up to a constant phase and a shift of the whole field
(ptychography's ambiguities), so :func:`phase_correlation` compares the two phase maps
over a region (the scanned area) after removing both: it moves the reconstruction by the
sub-pixel shift that maximises the Pearson correlation there (Pearson's correlation
ignores a constant) and returns that correlation and the shift.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from ptyscan.errors import ParameterError

__all__ = ["fourier_shift", "phase_correlation"]


def fourier_shift(image, shift_px):
    """``image`` (2-D, real) moved by ``shift_px`` (dy, dx) pixels: ``out(r) = image(r - s)``.

    The shift is the Fourier phase ramp, applied to the image mirrored at its edges (so the
    edges do not ring into the middle); exact for a band-limited periodic image.
    """
    image = np.asarray(image, np.float64)
    ny, nx = image.shape
    padded = np.pad(image, ((ny // 2, ny // 2), (nx // 2, nx // 2)), mode="symmetric")
    ky = np.fft.fftfreq(padded.shape[0])[:, None]
    kx = np.fft.fftfreq(padded.shape[1])[None, :]
    ramp = np.exp(-2j * np.pi * (ky * shift_px[0] + kx * shift_px[1]))
    moved = np.fft.ifft2(np.fft.fft2(padded) * ramp).real
    return moved[ny // 2 : ny // 2 + ny, nx // 2 : nx // 2 + nx]


def _pearson(a, b):
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else 0.0


def phase_correlation(phase, truth, region=None, *, max_shift_px=4.0):
    """Correlation of ``phase`` with ``truth`` over ``region`` after the best shift.

    Parameters
    ----------
    phase, truth : (ny, nx) array_like of float
        The reconstructed and the true phase (radians) on the same pixel grid.
    region : (ny, nx) bool array, tuple of slices, or None
        Where to compare (the scanned area); None: everywhere.
    max_shift_px : float
        Largest shift (pixels, per axis) searched.

    Returns
    -------
    correlation : float
        Pearson correlation over ``region`` of ``phase`` moved by ``shift`` and ``truth``:
        1 for a shifted copy plus a constant.
    shift : (2,) ndarray of float
        The shift (dy, dx) applied to ``phase``, pixels.
    """
    phase = np.asarray(phase, np.float64)
    truth = np.asarray(truth, np.float64)
    if phase.ndim != 2 or phase.shape != truth.shape:
        raise ParameterError(
            f"phase_correlation: got phase {phase.shape} and truth {truth.shape}; expected two "
            "2-D maps of the same shape. Hint: put the truth on the reconstruction's grid."
        )
    mask = np.ones(phase.shape, bool) if region is None else np.zeros(phase.shape, bool)
    if region is not None:
        mask[region] = True
    if mask.sum() < 4:
        raise ParameterError(
            f"phase_correlation: region holds {int(mask.sum())} pixels; expected at least 4"
        )

    def loss(shift):
        return -_pearson(fourier_shift(phase, shift)[mask], truth[mask])

    # the whole-pixel shift first (a coarse grid), then the sub-pixel refinement
    span = int(np.ceil(max_shift_px))
    grid = [(dy, dx) for dy in range(-span, span + 1) for dx in range(-span, span + 1)]
    start = min(grid, key=loss)
    best = optimize.minimize(
        loss,
        np.asarray(start, np.float64),
        method="Nelder-Mead",
        options={"xatol": 1e-3, "fatol": 1e-7},
    )
    shift = np.clip(best.x, -max_shift_px, max_shift_px)
    return -float(loss(shift)), shift
