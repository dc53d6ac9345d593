"""Shared helpers of the engine tests: small MoonFlower scans and error metrics."""

from __future__ import annotations

import numpy as np

from ptyscan.parallel import SerialComm
from ptyscan.scans.moonflower import MoonFlowerScan
from ptyscan.simulate import focused_probe


def moonflower(num_frames=100, shape=64, *, comm=None, noise=False, density=0.2, seed=1):
    """An initialised MoonFlowerScan (noise-free by default)."""
    scan = MoonFlowerScan(
        num_frames=num_frames,
        shape=shape,
        density=density,
        add_poisson_noise=noise,
        seed=seed,
        comm=comm if comm is not None else SerialComm(),
    )
    scan.initialize()
    return scan


def model_probe(shape, *, defocus_scale=1.3, edge_px=2.0):
    """A probe 'model' as a user would make it from the optics: MoonFlower's focused beam
    with the defocus off by ``defocus_scale`` and another pupil edge (not the truth)."""
    default = np.pi * 0.5 * shape / (6 * np.sqrt(2))
    return focused_probe(shape, defocus_rad=defocus_scale * default, edge_px=edge_px)


def _all_offsets(scan, state):
    """Top-left pixels in the state's object of every frame of the scan (all ranks)."""
    return state._pixels(scan.positions) - state.origin_px


def aligned_true_object(scan, state):
    """The true object resampled onto the state's object grid (NaN outside it)."""
    shift = _all_offsets(scan, state)[0] - scan.true_positions_px[0]
    truth = scan.true_object
    oy, ox = state.object.shape[-2:]
    out = np.full((oy, ox), np.nan, np.complex128)
    ys, xs = np.mgrid[0:oy, 0:ox]
    ty, tx = ys - shift[0], xs - shift[1]
    ok = (ty >= 0) & (ty < truth.shape[0]) & (tx >= 0) & (tx < truth.shape[1])
    out[ok] = truth[ty[ok], tx[ok]]
    return out


def coverage(scan, state, probe=None):
    """Σ over all frames of |P|² on the state's object grid (illumination of the scan)."""
    probe = scan.true_probe if probe is None else probe
    power = np.abs(probe) ** 2
    cov = np.zeros(state.object.shape[-2:])
    sy, sx = power.shape
    for y, x in _all_offsets(scan, state):
        cov[y : y + sy, x : x + sx] += power
    return cov


def object_error(scan, state, obj=None, *, fraction=0.1):
    """Normalised error of the object where the illumination exceeds ``fraction`` of its max.

    See :func:`error_against_truth`; the truth is placed on the state's grid through the
    views' corners.
    """
    obj = state.object_host[0] if obj is None else obj
    truth = aligned_true_object(scan, state)
    cov = coverage(scan, state)
    return error_against_truth(obj, truth, cov > fraction * cov.max())


def error_against_truth(obj, truth, region):
    """||a·O·ramp - T||² / ||T||² over ``region`` (and where ``truth`` is finite).

    Removes the ambiguities ptychography cannot fix: a global complex factor ``a`` and a
    linear phase ramp (compensated by the probe).
    """
    region = region & np.isfinite(truth)
    ratio = np.where(region, obj * np.conj(np.nan_to_num(truth)), 0)
    gy = np.angle(np.sum(ratio[1:] * np.conj(ratio[:-1])))
    gx = np.angle(np.sum(ratio[:, 1:] * np.conj(ratio[:, :-1])))
    ys, xs = np.mgrid[0 : obj.shape[0], 0 : obj.shape[1]]
    flat = obj * np.exp(-1j * (gy * ys + gx * xs))
    o, t = flat[region], truth[region]
    scale = np.vdot(o, t) / np.vdot(o, o)
    return float(np.sum(np.abs(scale * o - t) ** 2) / np.sum(np.abs(t) ** 2))


def misplaced_moonflower(num_frames=50, shape=32, *, error_px=1.5, comm=None, seed=3):
    """A noise-free MoonFlower scan whose positions (``positions_theory``) are off by a
    known Gaussian error of ``error_px`` RMS sample pixels (its data are at the true ones).
    Returns ``(scan, true_positions_m, sample_pixel_m)``."""
    exact = moonflower(num_frames, shape, density=0.25)
    true = np.asarray(exact.positions, np.float64)
    pixel = exact.sample_pixel_m
    error = np.random.default_rng(seed).normal(0, error_px / np.sqrt(2), true.shape) * pixel
    scan = MoonFlowerScan(
        num_frames=num_frames,
        shape=shape,
        density=0.25,
        seed=1,
        positions_theory=true + error,
        comm=comm if comm is not None else SerialComm(),
    )
    scan.initialize()
    return scan, true, pixel


def position_error_px(engine, true_m, pixel_m):
    """RMS distance (sample pixels) of the engine's positions from ``true_m``."""
    indices, positions = engine.positions
    d = (positions - true_m[indices]) / pixel_m
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1))))
