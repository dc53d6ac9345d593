"""Centre-of-mass (DPC) diagnostics of 4D-STEM data: are scan and detector axes aligned?

For a weak phase object the centre of mass of each diffraction pattern moves with
the phase gradient at the probe position, so the field of centre-of-mass shifts
over the scan raster is curl-free when the detector axes are the scan axes. A
detector rotated by θ, or transposed (a reflection, which no rotation undoes),
leaves a curl. :func:`com_rotation_fit` finds the rotation, with and without a
transpose, that makes the field most nearly curl-free (py4DSTEM's criterion).
"""

from __future__ import annotations

import numpy as np

__all__ = ["axes_advice", "com_rotation_fit", "curl_ratio", "frame_centers_of_mass"]


def frame_centers_of_mass(frames) -> np.ndarray:
    """(n, 2) float64 centre of mass (ky, kx) in pixels of each (n, ky, kx) frame;
    NaN for a frame with no positive total."""
    frames = np.asarray(frames, np.float64)
    ky = np.arange(frames.shape[-2], dtype=np.float64)
    kx = np.arange(frames.shape[-1], dtype=np.float64)
    total = frames.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.einsum("nij,i->n", frames, ky) / total
        cx = np.einsum("nij,j->n", frames, kx) / total
    out = np.stack([cy, cx], axis=1)
    out[total <= 0] = np.nan
    return out


def curl_ratio(field, angle_rad, *, transpose=False) -> float:
    """Mean squared curl over mean squared size of a (ny, nx, 2) shift field after
    transposing its components (optional) and rotating it by ``angle_rad``."""
    u = field[..., ::-1] if transpose else field
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    uy = c * u[..., 0] - s * u[..., 1]
    ux = s * u[..., 0] + c * u[..., 1]
    curl = np.gradient(ux, axis=0) - np.gradient(uy, axis=1)
    size = np.nanmean(uy**2 + ux**2)
    return float(np.nanmean(curl**2) / size) if size > 0 else float("nan")


def com_rotation_fit(com, grid) -> dict:
    """The rotation (and transpose) of the detector that makes the centre-of-mass field
    most nearly curl-free.

    Parameters
    ----------
    com : (N, 2) centres of mass in pixels, frames in raster order
    grid : (n_slow, n_fast) raster shape, n_slow · n_fast = N

    Returns
    -------
    dict
        ``rotation_deg`` (in [-90, 90): a rotation and the same plus 180° fit alike),
        ``transpose`` (bool), ``curl`` (the best ratio, see :func:`curl_ratio`) and
        ``curl_other`` (the best ratio with the other transpose).
    """
    field = np.asarray(com, np.float64).reshape(*grid, 2)
    field = field - np.nanmean(field, axis=(0, 1))
    best = {}
    for transpose in (False, True):
        angles = np.radians(np.arange(-90.0, 90.0, 1.0))
        ratios = [curl_ratio(field, a, transpose=transpose) for a in angles]
        start = angles[int(np.nanargmin(ratios))]
        fine = start + np.radians(np.arange(-1.0, 1.0, 0.05))
        ratios = [curl_ratio(field, a, transpose=transpose) for a in fine]
        k = int(np.nanargmin(ratios))
        degrees = (np.degrees(fine[k]) + 90.0) % 180.0 - 90.0
        best[transpose] = (float(ratios[k]), float(degrees))
    transpose = best[True][0] < best[False][0]
    return {
        "rotation_deg": best[transpose][1],
        "transpose": bool(transpose),
        "curl": best[transpose][0],
        "curl_other": best[not transpose][0],
    }


def axes_advice(fit, flipT) -> tuple[str, bool]:
    """``(message, worrying)`` for the log from a :func:`com_rotation_fit` result and the
    recipe's ``meas_flipT`` ([flipup, fliplr, transpose] or None). A mirrored fit that is
    clearly better (curl ratio below half the other) recommends the flip that undoes it:
    the transpose (fit angle near 0) or the up-down flip (near ±90°)."""
    flips = [int(v) for v in (flipT if flipT is not None else (0, 0, 0))]
    text = (
        f"centre-of-mass field most nearly curl-free with the detector rotated by "
        f"{fit['rotation_deg']:.1f}° {'and transposed' if fit['transpose'] else 'as it is'} "
        f"(curl ratio {fit['curl']:.3g}; {fit['curl_other']:.3g} "
        f"{'without' if fit['transpose'] else 'with'} a transpose)"
    )
    if fit["transpose"] and fit["curl"] < 0.5 * fit["curl_other"]:
        # a reflection: about the diagonal (transpose, angle 0) or an axis (flip, ±90°)
        angle = abs(fit["rotation_deg"])
        if angle < 10:
            advice = [*flips[:2], 1 - flips[2]]
        elif angle > 80:
            advice = [1 - flips[0], *flips[1:]]
        else:
            return f"{text}: the detector looks reflected; check meas_flipT", True
        return f"{text}: the detector looks mirrored; try meas_flipT: {advice}", True
    if abs(fit["rotation_deg"]) > 10:
        return f"{text}: scan and detector axes differ by a rotation", True
    return text, False
