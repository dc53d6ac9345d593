"""Checks and small pure steps of the PtyScan lifecycle: what hooks return, frame
shapes, positions, recorded meta and the geometry; the collective ones agree on every
rank (through :func:`ptyscan.scan_support.collective`).
"""

from __future__ import annotations

import logging

import numpy as np

from .errors import ParameterError, ScanError
from .plausibility import check_geometry, describe_geometry, make_geometry
from .scan_support import collective

__all__ = [
    "agree_frame_shapes",
    "check_hook_output",
    "check_scan_geometry",
    "checked_access",
    "checked_recorded_meta",
    "geometry_value",
    "mean_frame",
    "positions_for",
    "scan_positions",
    "stack_frames",
]

log = logging.getLogger(__name__)


def checked_access(scan, chunksize, start):
    """``(frames accessible, end of scan, num_frames)`` from ``scan.check`` (rank 0).

    ``end_of_scan`` None is decided from ``num_frames`` (an error when that is unknown);
    the count is clipped to ``[0, chunksize]``; an aborted scan has ended.
    """
    if scan.abort:
        return 0, True
    accessible, eos = scan.check(chunksize, start)
    if eos is None:
        if scan.num_frames is None:
            raise ScanError(
                f"{type(scan).__name__}.check: end_of_scan is None but num_frames is "
                "unknown, so the end of the scan cannot be detected; return True/False "
                "as end_of_scan from check(), or set num_frames, or return positions "
                "from load_positions()"
            )
        eos = start + accessible >= scan.num_frames
    return int(min(max(accessible, 0), chunksize)), bool(eos), scan.num_frames


_EXPECTED = {
    "energy": "the photon energy in keV, e.g. energy: 8.7",
    "distance": "the sample-detector distance in metres, e.g. distance: 5.2",
    "psize": "the detector pixel size in metres, e.g. psize: 75.0e-6",
}


def geometry_value(scan, key):
    """``scan``'s energy, distance or psize: recorded by its hooks (from the files), else
    the parameter; a ParameterError naming the key when neither exists (real-data
    scans have no invented defaults)."""
    value = scan.recorded_meta.get(key, getattr(scan.info, key))
    if value is None:
        expected = _EXPECTED[key]
        if key == "energy" and getattr(scan.info, "electron_data", False):
            expected = "the electron energy in keV (kV), e.g. energy: 300"
        raise ParameterError(
            f"scan.{key}: not given in the recipe and not recorded in the files of "
            f"{type(scan).__name__}; expected {expected}"
        )
    return value


def check_scan_geometry(scan):
    """Check the geometry of an initialised ``scan`` before its frames are loaded
    (:func:`ptyscan.plausibility.check_geometry`; collective) and log it on rank 0.

    Returns the :class:`~ptyscan.plausibility.Geometry`.
    """

    def check():
        electron = getattr(scan.info, "electron_data", False)
        radiation = "electron" if electron else scan.RADIATION
        geometry = make_geometry(scan.meta, scan.positions, radiation=radiation)
        check_geometry(geometry)
        return geometry

    geometry = collective(scan.comm, check, root_only=True)
    geometry = scan.comm.bcast(geometry)
    if scan.comm.rank == 0:
        log.info("%s", describe_geometry(geometry))
    return geometry


def scan_positions(scan, positions, *, theory):
    """``(positions, num_frames)`` from what ``load_positions`` (or ``positions_theory``)
    gave: (N, 2) float64 metres cut to ``num_frames``, or (None, num_frames) for none.

    ``num_frames`` becomes N when it was None or the positions are theory, and is
    lowered (with a warning) when there are fewer positions than frames.
    """
    num_frames = scan.num_frames
    if positions is None or len(positions) == 0:
        return None, num_frames
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ScanError(
            f"{type(scan).__name__}.load_positions: must return an (N, 2) array in "
            f"metres (slow, fast), got shape {pos.shape}"
        )
    if num_frames is None or theory:
        num_frames = len(pos)
    elif len(pos) < num_frames:
        lowered = "only %d positions for num_frames=%d: num_frames lowered to %d"
        log.warning(lowered, len(pos), num_frames, len(pos))
        num_frames = len(pos)
    return pos[:num_frames], num_frames


_HOOK_OUTPUTS = {"load": ("raw", "positions", "weights"), "correct": ("data", "weights")}
_MISSING_HINTS = {"load": "; raw must have one 2-D array per index", "correct": ""}


def check_hook_output(scan, hook, out, indices):
    """The dicts that ``scan.load`` or ``scan.correct`` returned, checked.

    Parameters
    ----------
    scan : PtyScan
    hook : {'load', 'correct'}
    out : what the hook returned: a tuple of dicts keyed by frame index
    indices : (n,) int, the frames asked for; each must be in the first dict

    Returns
    -------
    tuple of dict
        (raw, positions, weights) or (data, weights); None becomes {}.
    """
    name, parts = f"{type(scan).__name__}.{hook}", _HOOK_OUTPUTS[hook]
    if not (isinstance(out, tuple | list) and len(out) == len(parts)):
        raise ScanError(f"{name}: must return ({', '.join(parts)}) dicts, got {out!r:.80}")
    dicts = tuple(dict(d or {}) for d in out)
    missing = [int(i) for i in indices if int(i) not in dicts[0]]
    if missing:
        raise ScanError(
            f"{name}: returned no frame for indices {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}{_MISSING_HINTS[hook]}"
        )
    return dicts


def positions_for(name, own, loaded, positions):
    """(n, 2) float64 positions of frames ``own``: from ``load``, else from ``positions``.

    Parameters
    ----------
    name : str, the scan class name for messages
    own : (n,) int, frame indices
    loaded : dict, positions ``load`` returned, keyed by frame index
    positions : (N, 2) array or None, from ``load_positions`` (or ``positions_theory``)
    """
    out = np.empty((len(own), 2), np.float64)
    for row, i in enumerate(own):
        value = loaded.get(int(i))
        if value is None and positions is not None and i < len(positions):
            value = positions[i]
        if value is None:
            raise ScanError(
                f"{name}: no position for frame {int(i)}; return positions "
                "from load_positions() or load(), or set positions_theory"
            )
        out[row] = value
    return out


META_SIZES = {"energy": (1,), "distance": (1,), "psize": (1, 2), "center": (2,)}
"""Sizes a recorded meta value may have: energy and distance one number, psize one or
(py, px), center (cy, cx)."""


def checked_recorded_meta(recorded, where):
    """``recorded`` meta with NumPy values made plain: a (1,) array becomes a scalar.

    Parameters
    ----------
    recorded : dict
        Meta values a hook recorded (energy keV, distance m, psize m, center px, ...).
    where : str
        The hook that ran last (``'NanomaxScan.load_positions'``), named in errors.

    Raises
    ------
    ScanError
        A value of the wrong size or not numeric, naming the hook and the key.
    """
    out = dict(recorded)
    for key, sizes in META_SIZES.items():
        value = out.get(key)
        if value is None or (key == "center" and isinstance(value, str)):
            continue
        arr = np.asarray(value)
        if arr.size not in sizes or not np.issubdtype(arr.dtype, np.number):
            wanted = " or ".join(str(n) for n in sizes)
            raise ScanError(
                f"{where}: recorded meta {key} must be {wanted} number(s), got shape "
                f"{arr.shape} {arr.dtype} ({value!r:.40}); record e.g. float(value[0])"
            )
        flat = arr.astype(np.float64).ravel()
        out[key] = float(flat[0]) if flat.size == 1 else tuple(float(v) for v in flat)
    return out


def agree_frame_shapes(comm, name, own, data, weights):
    """The frame shape all ranks agree on, and every per-frame weight shape (collective).

    Parameters
    ----------
    comm : Comm
    name : str, the scan class name for messages
    own : (n,) int, this rank's frames; data, weights : dicts keyed by frame index

    Returns
    -------
    shape : tuple or None
        The one 2-D shape of every rank's frames; None when no rank has a frame.
    weight_shapes : set of tuple
        Shapes of the per-frame weights on any rank.

    Raises
    ------
    ScanError
        Frames that are not 2-D or not all of one shape (on every rank alike).
    """
    shapes = {np.shape(data[int(i)]) for i in own}
    wshapes = {np.shape(w) for i in own if (w := weights.get(int(i))) is not None}
    everyone = comm.allgather((shapes, wshapes))
    all_shapes = set().union(*(s for s, _ in everyone))
    all_wshapes = set().union(*(w for _, w in everyone))
    if len(all_shapes) > 1 or any(len(s) != 2 for s in all_shapes):
        raise ScanError(
            f"{name}: frames must all be 2-D with one shape, got shapes "
            f"{sorted(all_shapes)} (across all ranks); check the detector ROI of the files"
        )
    return (next(iter(all_shapes)) if all_shapes else None), all_wshapes


def mean_frame(comm, stack, valid):
    """The mean of every rank's valid pixels, and how many frames each pixel had (collective).

    Parameters
    ----------
    stack : (n, ny, nx) frames of this rank
    valid : (n, ny, nx) or (1, ny, nx) bool

    Returns
    -------
    mean, count : (ny, nx) float64; mean is 0 where count is 0
    """
    total = (stack * valid).sum(axis=0, dtype=np.float64)
    count = np.broadcast_to(valid, stack.shape).sum(axis=0).astype(np.float64)
    comm.Allreduce(total)
    comm.Allreduce(count)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0), count


def stack_frames(own, data, weights, *, shape, mask):
    """``own``'s frames as (n, ny, nx) float32 data and weights.

    ``weights`` is None when no frame has weights of its own (the 2-D mask then
    applies to all); otherwise frames without their own weights get ``mask()``.
    """
    stack = np.empty((len(own), *shape), np.float32)
    for row, i in enumerate(own):
        stack[row] = data[int(i)]
    per_frame = [weights.get(int(i)) for i in own]
    if not any(w is not None for w in per_frame):
        return stack, None
    fallback = mask()
    wstack = np.empty_like(stack)
    for row, w in enumerate(per_frame):
        wstack[row] = fallback if w is None else w
    return stack, wstack
