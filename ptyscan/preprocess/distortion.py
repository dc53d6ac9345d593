"""Detector distortion correction by bilinear resampling (a pure frame operation).

Used by :class:`ptyscan.scans.id16a.ID16AScan` when distortion maps are given;
ptypy's equivalent was unused and broken.
"""

from __future__ import annotations

import numpy as np

from ..errors import ScanError

__all__ = ["BilinearMap", "undistort"]


class BilinearMap:
    """Precomputed bilinear resampling ``out[y, x] = frame(y − dv, x − dh)``."""

    def __init__(self, shape, dh, dv):
        ny, nx = shape
        dh = np.broadcast_to(np.asarray(dh, np.float64), shape)
        dv = np.broadcast_to(np.asarray(dv, np.float64), shape)
        if ny < 2 or nx < 2:
            raise ScanError(f"undistort: frames must be at least 2x2, got {shape}")
        sy = np.arange(ny, dtype=np.float64)[:, None] - dv
        sx = np.arange(nx, dtype=np.float64)[None, :] - dh
        inside = (sy >= 0) & (sy <= ny - 1) & (sx >= 0) & (sx <= nx - 1)
        sy, sx = sy[inside], sx[inside]
        y0 = np.minimum(np.floor(sy), ny - 2).astype(np.intp)
        x0 = np.minimum(np.floor(sx), nx - 2).astype(np.intp)
        fy, fx = sy - y0, sx - x0
        top = y0 * nx + x0
        bottom = top + nx
        self.shape = tuple(shape)
        self.inside = inside
        self.index = np.stack([top, top + 1, bottom, bottom + 1])
        self.weight = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx])

    def apply(self, frame, *, outside):
        frame = np.asarray(frame)
        dtype = np.result_type(frame.dtype, np.float32)
        flat = frame.reshape(-1)
        out = np.full(self.shape, outside, dtype=dtype)
        out[self.inside] = np.einsum("kn,kn->n", self.weight, flat[self.index])
        return out

    def apply_weights(self, weights):
        """Resampled weights; 0 outside the frame or next to an invalid (<= 0) pixel."""
        valid = self.apply(np.asarray(weights) > 0, outside=0)
        resampled = self.apply(weights, outside=0)
        return np.where(valid > 1 - 1e-6, resampled, 0).astype(np.float32)


def undistort(frame, delta):
    """Correct detector distortion by bilinear resampling.

    ``out[y, x] = frame(y − dv[y, x], x − dh[y, x])``, interpolated linearly
    between the four neighbouring pixels; points that fall outside the frame are
    set to the frame's mean (they carry no measurement: ID16AScan gives them
    weight 0).

    Parameters
    ----------
    frame : (ny, nx) array_like
    delta : (dh, dv)
        Horizontal (along x, columns) and vertical (along y, rows) displacements
        in pixels: scalars or (ny, nx) arrays.

    Returns
    -------
    (ny, nx) ndarray, float32 for float32 or integer frames (float64 for float64)
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ScanError(f"undistort: frame must be 2-D, got shape {frame.shape}")
    dh, dv = delta
    for name, d in (("dh", dh), ("dv", dv)):
        if np.ndim(d) and np.shape(d) != frame.shape:
            raise ScanError(
                f"undistort: {name} has shape {np.shape(d)}, expected the frame's {frame.shape}"
            )
    return BilinearMap(frame.shape, dh, dv).apply(frame, outside=frame.mean())
