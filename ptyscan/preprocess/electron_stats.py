"""Whole-scan numbers for the 4D-STEM steps, from one streaming pass (pure functions).

A pass feeds blocks of frames to :meth:`ScanStats.add`; blocks from other ranks are summed
with :meth:`ScanStats.arrays` / :meth:`ScanStats.from_arrays` (an MPI Allreduce of three
arrays). The numbers the steps need then follow without another look at the data:

- the minimum (``subtract_min`` and whether the negative-value step runs at all),
- the mean pattern after that step (``frames`` or ``max(frames − v, 0)`` summed per pixel),
- the normalisation constant (max, mean or sum of that mean pattern, PtyRAD's),
- the padding background fitted to its amplitude (:func:`pad_background_pattern`),
- the bright-field disk radius of the mean pattern (:func:`bright_field_radius_px`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .electron import remove_negative, remove_negative_needed

__all__ = [
    "PAD_TYPES",
    "ScanStats",
    "bright_field_radius_px",
    "normalization_constant",
    "pad_background_pattern",
    "pad_box",
    "source_blur_weights",
]

PAD_TYPES = ("constant", "edge", "linear_ramp", "exp", "power")
"""``meas_pad.padding_type`` values (PtyRAD's)."""


@dataclass
class ScanStats:
    """Running sums of a pass: minimum, frame count and per-pixel sums (float64).

    ``sums[0]`` sums the frames as they are, ``sums[1]`` after the negative-value step
    with its mode and value applied (both are kept because whether the step runs depends
    on the minimum of the whole scan); ``sums[2:]`` the same with a weight per frame
    (:func:`source_blur_weights`: the mean after a blur along the scan).
    """

    mode: str
    value: float | None
    minimum: float = np.inf
    count: int = 0
    sums: np.ndarray | None = None

    def add(self, frames, weights=None):
        """Add a block ``(n, ky, kx)`` of frames, with ``(n,)`` frame weights (default 1)."""
        if len(frames) == 0:
            return
        frames = np.asarray(frames, np.float32)
        w = np.ones(len(frames)) if weights is None else np.asarray(weights, np.float64)
        self.minimum = min(self.minimum, float(frames.min()))
        self.count += len(frames)
        removed, _, _ = remove_negative(frames, frames, None, mode=self.mode, value=self.value)
        if self.sums is None:
            self.sums = np.zeros((4, *frames.shape[1:]), np.float64)
        self.sums[0] += frames.sum(axis=0, dtype=np.float64)
        self.sums[1] += removed.sum(axis=0, dtype=np.float64)
        self.sums[2] += np.tensordot(w, frames, axes=1)
        self.sums[3] += np.tensordot(w, removed, axes=1)

    def arrays(self, shape):
        """``(minimum, count, sums)`` as arrays to reduce over ranks (sum; min for minimum)."""
        sums = np.zeros((4, *shape), np.float64) if self.sums is None else self.sums
        return np.array([self.minimum]), np.array([float(self.count)]), sums

    @classmethod
    def from_arrays(cls, minimum, count, sums, *, mode, value):
        """The stats of the whole scan from reduced :meth:`arrays`."""
        return cls(mode, value, float(minimum[0]), int(count[0]), sums)

    def removal_applies(self, *, force):
        return remove_negative_needed(self.minimum, force=force)

    def mean_after_removal(self, *, force, weighted=False) -> np.ndarray:
        """Mean pattern (ky, kx) float64 after the negative-value step of the whole scan
        (``weighted``: with the frame weights, which average to 1)."""
        raw, removed = self.sums[2:] if weighted else self.sums[:2]
        if self.count == 0:
            return np.zeros_like(raw)
        if not self.removal_applies(force=force):
            return raw / self.count
        if self.mode == "subtract_min":  # affine, and nothing is negative after it
            return raw / self.count - self.minimum
        return removed / self.count


def source_blur_weights(grid, sigma_px) -> np.ndarray:
    """(slow·fast,) weight of each frame in the mean after a Gaussian blur of std
    ``sigma_px`` along both scan axes (``scipy.ndimage.gaussian_filter``, reflecting
    edges): the column sums of the blur, which average to 1."""
    a, b = (ndimage.gaussian_filter1d(np.eye(n), sigma_px, axis=0).sum(axis=0) for n in grid)
    return np.outer(a, b).ravel()


def normalization_constant(mean_pattern, *, mode, value=None) -> float:
    """PtyRAD's ``meas_normalization`` constant from the mean pattern (ky, kx)."""
    mean32 = np.asarray(mean_pattern, np.float32)
    if mode == "max_at_one":
        return float(mean32.max())
    if mode == "mean_at_one":
        return float(mean32.mean())
    if mode == "sum_to_one":
        return float(mean32.sum(dtype=np.float64))
    return float(value)


def pad_box(shape, target_npix):
    """Where a (ky, kx) pattern sits in the padded (N, N) one: (rows, cols) slices."""
    pad_y, pad_x = max(0, target_npix - shape[0]), max(0, target_npix - shape[1])
    y0, x0 = pad_y // 2, pad_x // 2
    return slice(y0, y0 + shape[0]), slice(x0, x0 + shape[1])


def pad_background_pattern(mean_pattern, *, padding_type, target_npix, value=0.0, threshold=70):
    """The (N, N) float32 intensity padded around every frame (zero inside the frame).

    The amplitude ``sqrt(mean)`` is padded with ``constant`` / ``edge`` / ``linear_ramp``
    (``value`` the constant or the ramp's end), or replaced outside by an ``exp``
    ``a·exp(−b·r)`` or ``power`` ``a·r^−b`` fit of its pixels below the ``threshold``
    percentile (r in pixels from the pattern centre); then squared (PtyRAD's ``meas_pad``).
    """
    amp = np.sqrt(np.maximum(np.asarray(mean_pattern, np.float64), 0))
    h, w = amp.shape
    rows, cols = pad_box((h, w), target_npix)
    widths = ((rows.start, target_npix - rows.stop), (cols.start, target_npix - cols.stop))
    if padding_type == "constant":
        padded = np.pad(amp, widths, mode="constant", constant_values=value)
    elif padding_type == "edge":
        padded = np.pad(amp, widths, mode="edge")
    elif padding_type == "linear_ramp":
        padded = np.pad(amp, widths, mode="linear_ramp", end_values=value)
    else:
        y, x = np.ogrid[:target_npix, :target_npix]
        r = np.hypot(y - (h // 2 + rows.start), x - (w // 2 + cols.start)) + 1e-10
        a, b = _fit_background(amp, threshold=threshold, kind=padding_type)
        padded = a * np.exp(-b * r) if padding_type == "exp" else a * r ** (-b)
    background = np.square(padded).astype(np.float32)
    background[rows, cols] = 0
    return background


def _fit_background(amp, *, threshold, kind):
    """(a, b) of ``a·exp(−b r)`` or ``a·r^−b`` by least squares of log(amp) over the pixels
    below the ``threshold`` percentile (the dark outskirts)."""
    h, w = amp.shape
    y, x = np.ogrid[:h, :w]
    r = np.hypot(y - h // 2, x - w // 2) + 1e-10
    mask = (amp <= np.percentile(amp, threshold)) & (amp > 0) & (r >= 1)
    if np.count_nonzero(mask) < 2:
        return 0.0, 0.0
    t = r[mask] if kind == "exp" else np.log(r[mask])
    slope, intercept = np.polyfit(t, np.log(amp[mask]), 1)
    return float(np.exp(intercept)), float(-slope)


def bright_field_radius_px(mean_pattern, *, thresh=0.5) -> float:
    """Radius (pixels) of the disk of pixels above ``thresh`` × max of the mean pattern:
    ``sqrt(area / π)``, PtyRAD's ``fitRBF``."""
    pattern = np.asarray(mean_pattern, np.float64)
    area = np.count_nonzero(pattern > thresh * pattern.max()) if pattern.max() > 0 else 0
    return float(np.sqrt(area / np.pi))
