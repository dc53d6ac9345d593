"""Setting up an :class:`Hdf5Loader` scan: layout, frame selection, region, corrections.

:func:`inspect_scan` runs once, on the rank(s) that load the common data, before any frame
is read. It checks every file and key (:mod:`ptyscan.scans.hdf5_sources`, all problems at
once), recognises the scan layout, selects and orders the frames, reads the small per-scan
data (positions, monitor, frame filter, 2-D mask/dark/flat cut to the region of interest,
recorded energy, distance and pixel size) and returns an :class:`Hdf5Setup` plus the
arrays to share with the other ranks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .. import preprocess
from ..errors import ScanError
from ..geometry import electron_wavelength_m, photon_energy_kev
from .hdf5_io import FrameSource, ReadSpec, axis_shape, axis_values, mask_valid
from .hdf5_mapping import Plan, ScanLayout, detect_layout, per_point, plan_points, point_positions
from .hdf5_sources import AxisRef, find_sources

__all__ = ["Hdf5Setup", "frame_region", "inspect_scan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hdf5Setup:
    """What every rank needs to load frames (small; large arrays travel separately)."""

    layout: ScanLayout
    plan: Plan
    spec: ReadSpec
    slow: AxisRef
    fast: AxisRef
    center: tuple[float, float] | None
    recorded: dict = field(default_factory=dict)


def inspect_scan(p, files):
    """Check and read everything but the frames; return (Hdf5Setup, arrays to share)."""
    refs, (slow, fast) = find_sources(p, files)
    data = files.dataset(refs["intensities"].file, refs["intensities"].key)
    if data.ndim < 3 or 0 in data.shape[-2:]:
        raise ScanError(
            f"Hdf5Loader: intensities {refs['intensities'].key!r} has shape {data.shape}; "
            "expected frames (..., ny, nx) with at least one leading axis"
        )
    outer = _outer(p, data)
    recorded = _recorded(p, files, refs, outer)  # a spectro stack needs outer_index: say so first
    layout, axes = _layout(p, files, data, slow, fast, outer)
    plan = _plan(p, files, refs, layout, outer)
    src, dst, shape, center = frame_region(data.shape[-2:], p)
    arrays = {"monitor": _per_point(files, refs, "normalisation", layout, outer)}
    if arrays["monitor"] is not None and p.live:
        raise ScanError(
            "Hdf5Loader: normalisation is not supported with live=True: its mean and spread "
            "over the scan are not known before the scan ends"
        )
    sources = {}
    for name, group in (("dark", "darkfield"), ("flat", "flatfield"), ("mask", "mask")):
        sources[name], arrays[name + "2d"] = _frame_data(p, files, refs, group, data, outer, src)
    arrays["positions"] = None
    if axes is not None:
        raw = point_positions(layout, plan.points, *axes)
        arrays["positions"] = raw * [slow.multiplier, fast.multiplier]
    prefix = () if outer is None else (p.outer_index,)
    spec = ReadSpec(
        data=FrameSource(refs["intensities"].file, refs["intensities"].key, prefix),
        src=src,
        dst=dst,
        shape=shape,
        mask_invert=p.mask.invert or ("mask" in refs and refs["mask"].cxi),
        swmr=p.live,
        **sources,
    )
    arrays["weight2d"] = weight2d(spec, arrays["mask2d"], arrays["flat2d"])
    setup = Hdf5Setup(layout, plan, spec, slow, fast, center, recorded)
    log.info(
        "Hdf5Loader: %s scan, frames %s in %s, grid %s, %s frames, loaded frame shape %s",
        layout.kind,
        data.shape,
        refs["intensities"].key,
        layout.grid,
        len(plan) if plan.finite else "unknown (live)",
        shape,
    )
    return setup, arrays


def _plan(p, files, refs, layout, outer):
    keep = _per_point(files, refs, "framefilter", layout, outer)
    box = p.positions.bounding_box
    plan = plan_points(
        layout,
        bounds=(box.slow_axis_bounds, box.fast_axis_bounds),
        skip=p.positions.skip,
        keep=None if keep is None else keep > 0,
        order=p.frameorder.indices,
        count=p.num_frames,
    )
    if plan.finite and len(plan) == 0:
        raise ScanError(
            "Hdf5Loader: no frames left after bounding box, skip and frame filter; "
            f"the scan has {layout.size} points ({layout.kind}, grid {layout.grid})"
        )
    return plan


def _outer(p, data):
    """(outer index, size of the outer axis), or None when the frames have no outer axis."""
    if p.outer_index is None:
        return None
    if p.live:
        raise ScanError("Hdf5Loader: outer_index is not supported with live=True")
    if data.ndim < 4 or p.outer_index >= data.shape[0]:
        raise ScanError(
            f"Hdf5Loader: outer_index {p.outer_index} needs frames with an outer axis, "
            f"(n_outer, ..., ny, nx) with n_outer > {p.outer_index}; got shape {data.shape}"
        )
    return p.outer_index, data.shape[0]


def _expected(dset, p):
    """Shape of a dataset once the (live) scan is complete; -1: not known yet."""
    shape = tuple(int(s) for s in dset.shape)
    if not p.live or p.live_key is not None:
        return shape
    first = dset.maxshape[0]
    return (-1 if first is None else int(first), *shape[1:])


def _layout(p, files, data, slow, fast, outer):
    """Recognise the layout; read the axes (None in live mode, where they still grow)."""
    index, n_outer = outer or (None, None)
    lead = data.shape[0 if outer is None else 1 : -2]
    shapes, values = [], []
    for axis, where in ((slow, "slow"), (fast, "fast")):
        ds = files.dataset(axis.file, axis.key)
        kw = {"index": axis.index, "outer": index, "n_outer": n_outer, "where": where}
        if p.live:
            shapes.append(axis_shape(_expected(ds, p), **kw))
        else:
            values.append(axis_values(ds[()], **kw))
            shapes.append(values[-1].shape)
    if p.live:
        lead = _expected(data, p)[:-2]
    try:
        layout = detect_layout(tuple(lead), *shapes)
    except ScanError:
        if p.live:
            raise
        lead, values = _common_count(p, tuple(lead), values)
        layout = detect_layout(lead, *(v.shape for v in values))
    return layout, (None if p.live else values)


def _common_count(p, lead, axes):
    """A scan stopped early: frames and 1-D positions of lengths no layout matches.

    Keeps the first min(frames, positions) with a one-line warning (ptypy's choice),
    or raises with ``count_mismatch: error``. Other layouts are left as they are.
    """
    if len(lead) != 1 or any(a.ndim != 1 for a in axes) or len(axes[0]) != len(axes[1]):
        return lead, axes
    n = min(lead[0], len(axes[0]))
    what = f"Hdf5Loader: {lead[0]} frames but {len(axes[0])} positions"
    if p.count_mismatch == "error":
        raise ScanError(
            f"{what} (count_mismatch: error); set count_mismatch: truncate to use the first {n}"
        )
    log.warning("%s: using the first %d (a scan stopped early?)", what, n)
    return (n,), [a[:n] for a in axes]


def _per_point(files, refs, group, layout, outer):
    """A per-point dataset (monitor, filter) as (N,) float64 in acquisition order, or None."""
    if group not in refs:
        return None
    ref = refs[group]
    values = np.asarray(files.dataset(ref.file, ref.key)[()])
    if outer is not None and values.ndim > 1 and values.shape[0] == outer[1]:
        values = values[outer[0]]
    return per_point(values, layout, what=f"{group} {ref.key!r}").astype(np.float64)


def _frame_data(p, files, refs, group, data, outer, src):
    """Per-frame source (laid out like the frames) or a 2-D array cut to ``src``."""
    if group not in refs:
        return None, None
    path, key = refs[group].file, refs[group].key
    prefix = () if outer is None else (outer[0],)
    ds = files.dataset(path, key)
    frame = data.shape[-2:]
    live_growing = p.live and ds.maxshape[0] is None
    if ds.shape == frame or (ds.shape == (1, *frame) and not live_growing):
        values = ds[(..., *src)].reshape(src[0].stop - src[0].start, -1)
        return None, values if group == "mask" else values.astype(np.float32)
    growing = live_growing and ds.ndim == data.ndim >= 3 and ds.shape[1:] == data.shape[1:]
    if ds.shape == data.shape or growing:
        return FrameSource(path, key, prefix), None
    if ds.shape == data.shape[len(prefix) :]:
        return FrameSource(path, key, ()), None
    raise ScanError(
        f"Hdf5Loader: {group} {key!r} has shape {ds.shape}; expected one frame {tuple(frame)}, "
        f"(1, {frame[0]}, {frame[1]}) or one per frame like the intensities {data.shape}"
    )


def frame_region(frame, p):
    """Region read from each frame and where it goes: (src, dst, loaded shape, centre).

    Frames are padded by ``p.padding``; when ``p.shape`` and an explicit centre are given,
    only the crop around that centre (in padded-frame pixels) is read, and the returned
    centre is where it lands in the loaded frame (None otherwise: the base class crops).
    """
    top, bottom, left, right = p.padding or (0, 0, 0, 0)
    padded = (frame[0] + top + bottom, frame[1] + left + right)
    full = (slice(0, padded[0]), slice(0, padded[1]))
    src_p, dst_p, shape, center = full, full, padded, None
    if p.shape is not None and p.auto_center is not True and p.center is not None:
        c = preprocess.resolve_center(p.center, padded)
        src_p, dst_p = preprocess.crop_pad_slices(padded, shape=p.shape, center=c)
        shape = tuple(p.shape)
        moved = c + (np.asarray(shape) // 2 - preprocess.round_half_up(c))
        center = (float(moved[0]), float(moved[1]))
    src, dst = [], []
    for sp, dp, off, n in zip(src_p, dst_p, (top, left), frame, strict=True):
        lo, hi = max(sp.start - off, 0), min(sp.stop - off, n)
        if hi <= lo:
            raise ScanError(
                f"Hdf5Loader: shape {p.shape} around centre {p.center} with padding "
                f"{p.padding} holds no detector pixel of the {tuple(frame)} frames"
            )
        start = dp.start + lo - (sp.start - off)
        src.append(slice(lo, hi))
        dst.append(slice(start, start + hi - lo))
    return tuple(src), tuple(dst), shape, center


def weight2d(spec, mask2d, flat2d):
    """Weights of the loaded frame shared by all frames (None when all ones)."""
    region = np.ones(
        (spec.src[0].stop - spec.src[0].start, spec.src[1].stop - spec.src[1].start), np.float32
    )
    if mask2d is not None:
        region *= mask_valid(mask2d, spec.mask_invert)
    if flat2d is not None:
        region *= flat2d > 0
    out = np.zeros(spec.shape, np.float32)
    out[spec.dst] = region
    if not spec.per_frame_weights and np.all(out == 1):
        return None
    return out


def _recorded(p, files, refs, outer):
    """Energy (keV), distance (m), psize (m) recorded in the files, as meta overrides."""
    out = {}
    for name in ("recorded_energy", "recorded_distance", "recorded_psize"):
        if name in refs:
            out[name[9:]] = _value(files, refs[name], getattr(p, name), outer, pair=name[9] == "p")
    if "psize_y" in refs:
        out["psize"] = tuple(
            _value(files, refs[k], p.recorded_psize, outer) for k in ("psize_y", "psize_x")
        )
    if p.electron_data:
        energy = out.get("energy", p.energy)
        if energy is not None:  # else PtyScan.meta names the missing key
            out["energy"] = float(photon_energy_kev(electron_wavelength_m(energy)))
    return out


def _value(files, ref, group, outer, *, pair=False):
    """One recorded value (a pair for pixel sizes), × unit × multiplier + offset."""
    values = np.asarray(files.dataset(ref.file, ref.key)[()], dtype=np.float64) * ref.unit
    if values.size == 1:
        value = values.reshape(())
    elif pair and values.shape == (2,):
        value = values
    elif outer is not None and values.ndim == 1 and len(values) == outer[1]:
        value = values[outer[0]]
    else:
        raise ScanError(
            f"Hdf5Loader: {ref.where} {ref.key!r} in {ref.file} holds {values.size} values of "
            f"shape {values.shape}; expected one value (or one per scan of a stack: set "
            "outer_index)"
        )
    scaled = value * group.multiplier + group.offset
    return tuple(float(v) for v in scaled) if scaled.ndim else float(scaled)
