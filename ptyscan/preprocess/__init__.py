"""Pure, small frame operations: orientation, centre, crop/pad and rebinning, one step per module.

Every function works on NumPy arrays and has no side effects. A stack of frames is
``(n_frames, ny, nx)``; wherever it is natural a single ``(ny, nx)`` frame (or any array
whose last two axes are the frame) is accepted too, and the operation acts on the last two
axes.

Centres are ``(cy, cx)`` pixel coordinates, row then column, as float64, with the centre of
pixel ``i`` at coordinate ``i``: the geometric middle of a frame of ``n`` pixels is therefore
``n / 2 - 0.5`` and the ``'fftshift'`` centre is ``n // 2``.

The preparation pipeline applies these steps in this order::

    frames, center = orient(frames, orientation=o, center=center)
    frames, center = crop_pad(frames, shape=shape, center=center)
    frames = rebin(frames, factor)
    weights = rebin_weights(weights, factor)
    center = rebin_center(center, factor)

Modules: :mod:`.orient`, :mod:`.center`, :mod:`.crop`, :mod:`.rebin`,
:mod:`.distortion` (detector distortion correction, imported on its own) and
:mod:`.checks` (the argument checks they share).
"""

from __future__ import annotations

from .center import CENTER_NAMES, center_of_mass, geometric_center, resolve_center
from .crop import crop_is_identity, crop_pad, crop_pad_slices, round_half_up
from .orient import orient, orientation_flags
from .rebin import rebin, rebin_center, rebin_weights

__all__ = [
    "CENTER_NAMES",
    "center_of_mass",
    "crop_is_identity",
    "crop_pad",
    "crop_pad_slices",
    "geometric_center",
    "orient",
    "orientation_flags",
    "rebin",
    "rebin_center",
    "rebin_weights",
    "resolve_center",
    "round_half_up",
]
