"""PtyRAD's measurement steps for 4D-STEM, one small pure step each.

Every step has one interface: ``step(frames, weights, meta) -> (frames, weights, meta)``
with ``frames`` ``(n, ky, kx)`` float32 diffraction patterns, ``weights`` ``(n, ky, kx)``
float32 (``> 0`` valid) and ``meta`` a :class:`FrameMeta`. Options and whole-scan numbers
(the minimum, the normalisation constant, a padding background) are bound with keyword
arguments beforehand (``functools.partial``), so a chunk is transformed alone with the same
numbers as the whole scan. :func:`apply_steps` runs a list of them. The order, PtyRAD's
``init_params``: flipT, crop, remove negative values, normalisation, pad, resample, source
size, detector blur, Poisson noise, then a final clip at 0 (the scan-axis steps, permute, reshape and the
scan crop, select frames and live in the scan class).

Whole-scan numbers come from :mod:`.electron_stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

__all__ = [
    "NEG_MODES",
    "NORM_MODES",
    "FrameMeta",
    "apply_steps",
    "clip_negative",
    "crop_k",
    "detector_blur",
    "flip_transpose",
    "normalize",
    "pad_background",
    "poisson_noise",
    "remove_negative",
    "remove_negative_needed",
    "resample",
    "source_blur",
]

NEG_MODES = ("clip_neg", "subtract_min", "subtract_value", "clip_value")
"""``meas_remove_neg_values.mode`` values (PtyRAD's)."""
NORM_MODES = ("max_at_one", "mean_at_one", "sum_to_one", "divide_const")
"""``meas_normalization.mode`` values (PtyRAD's)."""


@dataclass(frozen=True)
class FrameMeta:
    """What the steps know besides the frames.

    Attributes
    ----------
    indices : (n,) int64
        Scan index of each frame (seeds per-frame noise, so chunking changes nothing).
    dk_per_angstrom : float or None
        Detector pixel in reciprocal space, 1/Å (None before calibration).
    """

    indices: np.ndarray
    dk_per_angstrom: float | None = None


def apply_steps(steps, frames, weights, meta):
    """Run ``steps`` in order and return ``(frames, weights, meta)``."""
    for step in steps:
        frames, weights, meta = step(frames, weights, meta)
    return frames, weights, meta


def flip_transpose(frames, weights, meta, *, flipT):
    """PtyRAD's ``meas_flipT`` ``[flipud, fliplr, transpose]`` on the detector axes."""
    for flag, op in zip(flipT, (_flipud, _fliplr, _transpose), strict=True):
        if flag:
            frames, weights = op(frames), op(weights)
    return frames, weights, meta


def _flipud(a):
    return a[:, ::-1, :]


def _fliplr(a):
    return a[:, :, ::-1]


def _transpose(a):
    return a.transpose(0, 2, 1)


def crop_k(frames, weights, meta, *, ky, kx):
    """The k-space part of ``meas_crop``: ``frames[:, ky0:ky1, kx0:kx1]`` (None keeps an axis)."""
    sel = (slice(None), slice(*(ky or (None, None))), slice(*(kx or (None, None))))
    return np.ascontiguousarray(frames[sel]), weights[sel], meta


def remove_negative_needed(global_min, *, force):
    """PtyRAD skips the negative-value step when no value of the scan is negative."""
    return bool(force) or global_min < 0


def remove_negative(frames, weights, meta, *, mode, value=None, global_min=0.0, apply=True):
    """``meas_remove_neg_values``: PtyRAD's four modes, then a clip of what is still < 0.

    ``global_min`` is the scan's minimum (``subtract_min``); ``apply`` is
    :func:`remove_negative_needed` of the whole scan.
    """
    if not apply:
        return frames, weights, meta
    frames = np.array(frames, np.float32)
    if mode == "subtract_min":
        frames -= np.float32(global_min)
    elif mode == "subtract_value":
        frames -= np.float32(value)
    elif mode == "clip_value":
        frames[frames < value] = 0
    np.maximum(frames, 0, out=frames)
    return frames, weights, meta


def normalize(frames, weights, meta, *, constant):
    """``meas_normalization``: divide by the scan's normalisation constant."""
    return (frames / np.float32(constant)).astype(np.float32, copy=False), weights, meta


def pad_background(frames, weights, meta, *, background, box):
    """``meas_pad``: put each frame into ``box`` of a copy of the fitted ``background``.

    ``background`` ``(N, N)`` float32 is zero inside ``box`` (:func:`.electron_stats.
    pad_background_pattern`); the padded pixels are valid (weight 1), as in PtyRAD. Weights
    that broadcast one mask (stride 0) stay one mask.
    """
    rows, cols = box
    out = np.broadcast_to(background, (len(frames), *background.shape)).astype(np.float32)
    out[:, rows, cols] = frames

    def pad(w):
        padded = np.ones((len(w), *background.shape), np.float32)
        padded[:, rows, cols] = w
        return padded

    return out, _per_mask(pad, weights, len(out)), meta


def _per_mask(op, weights, n):
    """``op`` on (n, ky, kx) weights, or once on the mask they broadcast (stride 0)."""
    if len(weights) and weights.strides[0] == 0:
        mask = op(np.asarray(weights[:1]))
        return np.broadcast_to(mask, (n, *mask.shape[1:]))
    return op(weights)


def resample(frames, weights, meta, *, factor):
    """``meas_resample``: bilinear zoom of each frame by ``factor`` (``scipy.ndimage.zoom``,
    ``order=1``, as PtyRAD); weights by nearest neighbour; the detector pixel ``dk`` / factor."""
    zoom = (1.0, factor, factor)
    frames = ndimage.zoom(frames, zoom, order=1).astype(np.float32, copy=False)
    weights = _per_mask(
        lambda w: ndimage.zoom(w, zoom, order=0).astype(np.float32), weights, len(frames)
    )
    dk = None if meta.dk_per_angstrom is None else meta.dk_per_angstrom / factor
    return frames, weights, replace(meta, dk_per_angstrom=dk)


def source_blur(frames, weights, meta, *, n_fast, sigma_px):
    """``meas_add_source_size``: Gaussian blur of std ``sigma_px`` (scan steps) along both
    scan axes of whole scan rows ``(rows·n_fast, ky, kx)`` (reflecting edges, PtyRAD's
    ``gaussian_filter``). Exact for the rows farther than ``int(4σ + 0.5)`` from a cut
    edge: a caller blurring part of a scan passes that many extra rows on each side."""
    grid = frames.reshape(-1, n_fast, *frames.shape[1:])
    blurred = ndimage.gaussian_filter(grid, sigma=(sigma_px, sigma_px, 0, 0))
    return blurred.reshape(frames.shape).astype(np.float32, copy=False), weights, meta


def detector_blur(frames, weights, meta, *, sigma_px):
    """``meas_add_detector_blur``: Gaussian blur of std ``sigma_px`` along ky, kx."""
    blurred = ndimage.gaussian_filter(frames, sigma=(0, sigma_px, sigma_px))
    return blurred.astype(np.float32, copy=False), weights, meta


def poisson_noise(frames, weights, meta, *, total_electrons, constant, seed):
    """``meas_add_poisson_noise``: frames / constant × electrons → Poisson → back to scale.

    ``constant`` is the scan's mean pattern sum (PtyRAD's ``meas.sum() / N``); each frame
    draws from its own generator ``(seed, index)``, so chunks and ranks change nothing.
    """
    scale = float(total_electrons) / float(constant)
    out = np.empty_like(frames, dtype=np.float32)
    for row, index in enumerate(meta.indices):
        rng = np.random.default_rng([int(seed), int(index)])
        lam = np.maximum(frames[row].astype(np.float64) * scale, 0)
        out[row] = rng.poisson(lam) / scale
    return out, weights, meta


def clip_negative(frames, weights, meta):
    """The final guard: values below 0 become 0."""
    return np.maximum(frames, 0).astype(np.float32, copy=False), weights, meta
