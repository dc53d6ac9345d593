"""Initial object and probe models of a reconstruction (host NumPy arrays)."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..geometry import centred_coordinates_px
from ..propagation import FarField
from .multislice import with_slices

__all__ = ["initial_object", "initial_probe", "paste_start", "place_part"]


def initial_object(shape, dtype, slices=1):
    """Ones for mode 0; extra modes 0.1 with a weak deterministic phase pattern.

    ``shape`` (M, oy, ox); with ``slices`` > 1 the object is (M, S, oy, ox): slice 1 as
    above, the others ones (so the slices' product is the one-slice start).
    """
    obj = np.ones(shape, dtype=dtype)
    if shape[0] > 1:
        y = np.linspace(0, 1, shape[1])[:, None]
        x = np.linspace(0, 1, shape[2])[None, :]
        for m in range(1, shape[0]):
            obj[m] = 0.1 * np.exp(1j * np.pi * m * (y * y + x))
    return obj if slices <= 1 else with_slices(obj, slices, np)


def paste_start(obj, origin_px, start_object, pixel_m):
    """``obj`` (host (M, oy, ox) or (M, S, oy, ox), pixel (0, 0) at the global pixel
    ``origin_px``) with the overlap of ``start_object`` = (object, origin_px,
    sample_pixel_m) of an earlier result copied in, re-sliced to ``obj``'s slices
    (:func:`~.multislice.with_slices`); ``obj`` as it is when ``start_object`` is None."""
    if start_object is None:
        return obj
    start, start_origin, start_pixel = start_object
    if not np.allclose(start_pixel, pixel_m, rtol=1e-6):
        raise ParameterError(
            f"start_from: the earlier object has sample pixel {np.asarray(start_pixel)} m, "
            f"this scan {pixel_m} m; start from a result of the same geometry"
        )
    start = with_slices(np.asarray(start), obj.shape[1] if obj.ndim == 4 else 1, np)
    lo = np.maximum(origin_px, start_origin)
    hi = np.minimum(origin_px + obj.shape[-2:], start_origin + np.array(start.shape[-2:]))
    if np.any(hi <= lo):
        return obj
    modes = min(len(obj), len(start))
    (a0, a1), (b0, b1) = lo - origin_px, hi - origin_px
    (c0, c1), (d0, d1) = lo - start_origin, hi - start_origin
    obj[:modes, ..., a0:b0, a1:b1] = start[:modes, ..., c0:d0, c1:d1]
    return obj


def place_part(part, part_origin, whole, whole_origin):
    """``whole`` with ``part`` pasted at its place (both (M, oy, ox) or (M, S, oy, ox),
    origins in pixels);
    ``part`` itself when they match; None when ``part`` does not lie inside ``whole``."""
    part, whole = np.asarray(part), np.asarray(whole)
    offset = np.asarray(part_origin) - np.asarray(whole_origin)
    if part.shape == whole.shape and not offset.any():
        return part
    end = offset + part.shape[-2:]
    if part.shape[:-2] != whole.shape[:-2] or (offset < 0).any() or (end > whole.shape[-2:]).any():
        return None
    out = whole.copy()
    out[..., offset[0] : end[0], offset[1] : end[1]] = part
    return out


def _soft_disc(frame, radius):
    y, x = centred_coordinates_px(frame)
    r = np.hypot(y, x)
    t = np.clip((radius - r) / 2.0, -0.5, 0.5)  # raised-cosine edge, 2 px wide
    return 0.5 * (1.0 + np.sin(np.pi * t))


def initial_probe(
    frame,
    *,
    modes=1,
    model="aperture",
    size=0.5,
    given=None,
    photons=1.0,
    scale=True,
    mode_powers=None,
    mean_frame=None,
    farfield_phase=None,
    propagator=None,
):
    """The initial probe (K, sy, sx) complex128 (host).

    Mode 0 is ``given`` (its first mode), else:

    - 'aperture': a flat-phase disc of diameter ``size × min(sy, sx)`` with a
      2-pixel raised-cosine edge, centred on ``(sy // 2, sx // 2)``;
    - 'focused': the back-propagated square root of the mean frame
      (``propagator.bw(sqrt(mean_frame) · exp(i farfield_phase))``, ``mean_frame``
      in FFT order), a probe whose far-field intensity matches the data: a focus
      (flat phase) or, with a defocus phase, the beam that distance past it;
      in the far field it is centred on ``(sy // 2, sx // 2)``.

    Extra modes are mode 0 times low-order monomials (y, x, y², xy, x², ...),
    orthogonalised (Gram–Schmidt) against the others. With ``scale`` the
    modes get ``mode_powers × photons`` each (``Σ|P|²`` = photons, the mean
    frame power); otherwise a given probe keeps its own power.
    """
    frame = tuple(frame)
    given = None if given is None else np.asarray(given, np.complex128)
    if given is not None:
        given = given.reshape(-1, *given.shape[-2:])
        if given.shape[-2:] != frame:
            raise ParameterError(
                f"probe: got an array of shape {given.shape}; expected ({frame[0]}, "
                f"{frame[1]}) or (K, {frame[0]}, {frame[1]}) (the frame shape)"
            )
        first = given[0]
    elif model == "aperture":
        first = _soft_disc(frame, 0.5 * size * min(frame)).astype(np.complex128)
    elif model == "focused":
        amp = np.sqrt(np.maximum(mean_frame, 0)).astype(np.complex128)
        if farfield_phase is not None:
            amp = amp * np.exp(1j * farfield_phase)
        first = np.asarray(propagator.bw(amp), np.complex128)
        if isinstance(propagator, FarField):  # the far field fixes the probe up to a shift:
            first = np.roll(first, (frame[0] // 2, frame[1] // 2), axis=(0, 1))  # centre it
    else:
        raise ParameterError(f"probe_model: got {model!r}; expected 'aperture' or 'focused'")
    probe = np.empty((modes, *frame), np.complex128)
    probe[0] = first
    y, x = centred_coordinates_px(frame)
    y, x = y / max(frame), x / max(frame)
    monomials = [(1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (1, 2), (0, 3)]
    for k in range(1, modes):
        if given is not None and k < len(given):
            probe[k] = given[k]
            continue
        a, b = monomials[(k - 1) % len(monomials)]
        cand = first * (y**a) * (x**b) * (1 + (k - 1) // len(monomials))
        for j in range(k):  # Gram–Schmidt
            cand = cand - np.vdot(probe[j], cand) / np.vdot(probe[j], probe[j]) * probe[j]
        probe[k] = cand
    if not scale:
        return probe
    powers = np.ones(modes) if mode_powers is None else np.asarray(mode_powers, np.float64)
    if mode_powers is None and modes > 1:
        powers = np.full(modes, 0.05)
        powers[0] = 1.0 - 0.05 * (modes - 1)
    if powers.shape != (modes,) or np.any(powers <= 0):
        raise ParameterError(
            f"probe_mode_powers: got {mode_powers!r}; expected {modes} positive numbers"
        )
    powers = powers / powers.sum()
    for k in range(modes):
        norm = np.sum(np.abs(probe[k]) ** 2)
        if norm > 0:
            probe[k] *= np.sqrt(powers[k] * photons / norm)
    return probe
