"""PNG pictures of results and simulations: object, probe modes, errors, positions.

One module for ``ptyscan run``/``show`` and ``ptyscan simulate``:

- lengths in physical units (Å, nm, µm or mm, chosen by the field of view) with
  a scale bar;
- the object's colour limits from robust percentiles (2–98 %) of the scanned,
  illuminated region (where the probe's summed intensity is above 10 % of its
  peak), that region outlined; the phase on a sequential map with the mean
  phase of the region removed;
- each probe mode as a complex image (brightness = amplitude, hue = phase) with
  its share of the power;
- the error history on log axes, one panel per kind, engine changes marked;
- initial and final positions;
- a multislice object (M, S, oy, ox): the projected object (the slices' product,
  whose phase is the summed phase) as the object picture, and each slice's phase
  side by side (``<stem>_object_slices.png``).

Needs matplotlib (``pip install 'ptyscan[plot]'``); uses the Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import PtyScanError
from ..geometry import view_pixels
from .results import projected_object

__all__ = [
    "illuminated_region",
    "length_unit",
    "plot_names",
    "plot_object",
    "plot_probe",
    "plot_slices",
    "pyplot",
    "save_plots",
    "save_preview",
]

PICTURES = ("object", "probe", "errors", "positions")
REGION_FRACTION = 0.1
"""The illuminated region: summed probe intensity above this fraction of its peak."""


def plot_names(path) -> dict:
    """PNG paths written next to ``path`` by :func:`save_plots`."""
    stem = Path(path).with_suffix("")
    return {k: Path(f"{stem}_{k}.png") for k in PICTURES}


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a PtyScanError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PtyScanError(
            "pictures need matplotlib: pip install 'ptyscan[plot]' (or set run.plot: false)"
        ) from exc
    return plt


def length_unit(metres: float) -> tuple[str, float]:
    """``(name, metres per unit)`` that shows ``metres`` as a number from 1 to 1000."""
    for name, scale in (("mm", 1e-3), ("µm", 1e-6), ("nm", 1e-9)):
        if abs(metres) >= scale:
            return name, scale
    return "Å", 1e-10


def illuminated_region(shape, probe, offsets_px) -> tuple[np.ndarray, np.ndarray]:
    """Summed probe intensity over every view, and the region above
    :data:`REGION_FRACTION` of its peak.

    Parameters
    ----------
    shape : (oy, ox) object shape
    probe : (K, sy, sx) complex
    offsets_px : (N, 2) int, top-left pixel of each view in the object

    Returns
    -------
    coverage : (oy, ox) float64
    region : (oy, ox) bool
    """
    intensity = np.sum(np.abs(np.asarray(probe)) ** 2, axis=0)
    coverage = np.zeros(shape, np.float64)
    sy, sx = intensity.shape
    for y, x in np.asarray(offsets_px, np.int64):
        ys, xs = slice(max(y, 0), min(y + sy, shape[0])), slice(max(x, 0), min(x + sx, shape[1]))
        if ys.start < ys.stop and xs.start < xs.stop:
            coverage[ys, xs] += intensity[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
    peak = coverage.max()
    return coverage, coverage > REGION_FRACTION * peak if peak > 0 else coverage > 0


def _extent(shape, pixel_m, unit_scale):
    """imshow extent (left, right, bottom, top) in the unit, origin at the top left."""
    height, width = shape[0] * pixel_m[0] / unit_scale, shape[1] * pixel_m[1] / unit_scale
    return (0.0, width, height, 0.0)


def _scale_bar(ax, width, unit):
    """A bar of a round length (1, 2 or 5 × 10^k) near a fifth of ``width``, lower left."""
    target = width / 5
    power = 10 ** np.floor(np.log10(target))
    length = max(m * power for m in (1, 2, 5) if m * power <= target)
    ylim = ax.get_ylim()
    y = ylim[0] - 0.06 * (ylim[0] - ylim[1])
    x = 0.05 * width
    ax.plot([x, x + length], [y, y], color="white", lw=3, solid_capstyle="butt")
    ax.plot([x, x + length], [y, y], color="black", lw=1, solid_capstyle="butt")
    ax.text(x + length / 2, y, f"{length:g} {unit}\n", ha="center", va="bottom", color="white")


def _axes(ax, shape, pixel_m):
    """Physical extent and axis labels; returns (extent, unit)."""
    if pixel_m is None:
        ax.set(xlabel="x (pixels)", ylabel="y (pixels)")
        return None, None
    pixel_m = np.broadcast_to(np.asarray(pixel_m, np.float64), (2,))
    unit, scale = length_unit(max(shape[0] * pixel_m[0], shape[1] * pixel_m[1]) / 5)
    ax.set(xlabel=f"x ({unit})", ylabel=f"y ({unit})")
    return _extent(shape, pixel_m, scale), unit


def _phase(obj, region):
    """Phase of ``obj`` with the mean of the ``region`` (bool, or None: all) removed."""
    region = np.ones(obj.shape, bool) if region is None or not region.any() else region
    mean = np.mean(obj[region])
    return np.angle(obj * (np.conj(mean) / abs(mean) if abs(mean) > 0 else 1)), region


def plot_object(plt, obj, out, *, pixel_m=None, region=None, label="object"):
    """Amplitude and phase of a 2-D complex object as a PNG at ``out``.

    ``pixel_m``: (2,) or scalar sample pixel (axes and scale bar in physical units);
    ``region``: (oy, ox) bool, the illuminated region whose 2–98 % percentiles set
    the colour limits and whose mean phase is removed (default: the whole object);
    ``label`` starts the panel titles.
    """
    obj = np.asarray(obj)
    phase, region = _phase(obj, region)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    panels = (
        (axes[0], np.abs(obj), f"{label} amplitude", "gray"),
        (axes[1], phase, f"{label} phase (rad, mean removed)", "viridis"),
    )
    for ax, data, title, cmap in panels:
        extent, unit = _axes(ax, obj.shape, pixel_m)
        low, high = np.percentile(data[region], [2, 98])
        im = ax.imshow(data, cmap=cmap, vmin=low, vmax=high, extent=extent)
        if not region.all():
            ax.contour(region, levels=[0.5], colors="tab:orange", linewidths=0.8, extent=extent)
        if extent is not None:
            _scale_bar(ax, extent[1], unit)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def plot_slices(plt, slices, out, *, region=None):
    """The phase of each slice of a multislice object (S, oy, ox), mean removed, side by
    side as a PNG at ``out`` (one colour scale: the 2–98 % range of all slices)."""
    phases = [_phase(np.asarray(s), region) for s in slices]
    values = np.concatenate([p[r] for p, r in phases])
    low, high = np.percentile(values, [2, 98])
    fig, axes = plt.subplots(1, len(phases), figsize=(4 * len(phases), 4), squeeze=False)
    for s, (ax, (phase, _)) in enumerate(zip(axes[0], phases, strict=True)):
        im = ax.imshow(phase, cmap="viridis", vmin=low, vmax=high)
        ax.set_title(f"slice {s + 1} phase (rad)")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def complex_rgb(field) -> np.ndarray:
    """(…, 3) RGB of a complex array: hue = phase, brightness = amplitude / its maximum."""
    from matplotlib.colors import hsv_to_rgb

    amplitude = np.abs(field)
    peak = amplitude.max()
    hsv = np.stack(
        [
            (np.angle(field) + np.pi) / (2 * np.pi),
            np.ones(field.shape),
            amplitude / peak if peak > 0 else amplitude,
        ],
        axis=-1,
    )
    return hsv_to_rgb(hsv)


def plot_probe(plt, probe, out, *, pixel_m=None):
    """Each (K, sy, sx) probe mode as a complex image (brightness = amplitude, hue =
    phase) with its share of the power, and a phase colour bar, at ``out``."""
    probe = np.asarray(probe)
    k = len(probe)
    fig, axes = plt.subplots(
        1, k, figsize=(4.2 * k + 1, 4.2), constrained_layout=True, squeeze=False
    )
    power = np.sum(np.abs(probe) ** 2, axis=(-2, -1))
    for mode, ax in enumerate(axes[0]):
        extent, unit = _axes(ax, probe.shape[-2:], pixel_m)
        ax.imshow(complex_rgb(probe[mode]), extent=extent)
        if extent is not None:
            _scale_bar(ax, extent[1], unit)
        ax.set_title(f"probe mode {mode}: {100 * power[mode] / power.sum():.1f} % of the power")
    mappable = plt.cm.ScalarMappable(cmap="hsv", norm=plt.Normalize(-np.pi, np.pi))
    bar = fig.colorbar(mappable, ax=axes[0].tolist(), shrink=0.8)
    bar.set_label("phase (rad); brightness: amplitude")
    fig.savefig(out, dpi=90)
    plt.close(fig)


def plot_errors(plt, history, out):
    """The error history on log axes, one panel per kind, engine changes marked."""
    kinds = [
        key
        for key in ("fourier", "photons", "exit")
        if np.any(np.asarray(history.get(key, []), np.float64) > 0)
    ]
    fig, axes = plt.subplots(
        max(1, len(kinds)), 1, figsize=(7, 2.2 + 1.8 * len(kinds)), sharex=True, squeeze=False
    )
    engines = [str(e) for e in history.get("engine", [])]
    changes = [i for i in range(1, len(engines)) if engines[i] != engines[i - 1]]
    for ax, key in zip(axes[:, 0], kinds, strict=False):
        values = np.asarray(history[key], np.float64)
        ax.semilogy(np.arange(len(values)), np.where(values > 0, values, np.nan), label=key)
        ax.set_ylabel(f"{key} error")
        for i in changes:
            ax.axvline(i - 0.5, color="gray", ls="--", lw=0.8)
            ax.annotate(engines[i], (i, 1), xycoords=("data", "axes fraction"), va="top")
    if engines:
        axes[0, 0].set_title(f"errors per iteration (first engine: {engines[0]})")
    axes[-1, 0].set_xlabel("iteration (all engines)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def plot_positions(plt, initial_m, final_m, out):
    """Initial and final (refined) positions in physical units."""
    initial, final = np.asarray(initial_m, np.float64), np.asarray(final_m, np.float64)
    unit, scale = length_unit(max(float(np.ptp(initial)) if initial.size else 0.0, 1e-12) / 5)
    fig, ax = plt.subplots(figsize=(6, 5.4), constrained_layout=True)
    ax.scatter(
        initial[:, 1] / scale,
        initial[:, 0] / scale,
        s=14,
        facecolors="none",
        edgecolors="tab:blue",
        label="initial",
    )
    ax.scatter(final[:, 1] / scale, final[:, 0] / scale, s=5, color="tab:red", label="final")
    moved = np.linalg.norm(final - initial, axis=1).max() if len(final) else 0.0
    ax.set(
        xlabel=f"x ({unit})",
        ylabel=f"y ({unit})",
        title=f"positions (largest change {moved / scale:.3g} {unit})",
    )
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.legend()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def view_offsets_px(positions_m, sample_pixel_m, origin_px, frame_shape) -> np.ndarray:
    """(N, 2) int64 top-left pixel of each view in the object array: the engines' global
    view pixels (:func:`ptyscan.geometry.view_pixels`) less the object's origin."""
    pixel = np.asarray(sample_pixel_m, np.float64)
    return view_pixels(positions_m, pixel, frame_shape)[0] - np.asarray(origin_px, np.int64)


def save_plots(result, path) -> dict:
    """The pictures of a :class:`~ptyscan.io.results.Result` as PNGs next to ``path``."""
    plt = pyplot()
    names = plot_names(path)
    pixel = np.asarray(result.sample_pixel_m, np.float64)
    offsets = view_offsets_px(
        result.positions_final, pixel, result.object_origin_px, result.probe.shape[-2:]
    )
    _, region = illuminated_region(result.object.shape[-2:], result.probe, offsets)
    obj = np.asarray(result.object)
    label = "object" if obj.ndim < 4 else f"projected object ({obj.shape[1]} slices)"
    plot_object(
        plt, projected_object(obj)[0], names["object"], pixel_m=pixel, region=region, label=label
    )
    if obj.ndim == 4:
        names["object_slices"] = names["object"].with_name(
            names["object"].name.replace("_object.png", "_object_slices.png")
        )
        plot_slices(plt, obj[0], names["object_slices"], region=region)
    plot_probe(plt, result.probe, names["probe"], pixel_m=pixel)
    plot_errors(plt, result.history, names["errors"])
    plot_positions(plt, result.positions_initial, result.positions_final, names["positions"])
    return names


def save_preview(result, path) -> Path:
    """A quick picture of a running reconstruction: ``<stem>_preview.png``, the first
    object mode's amplitude and phase (mean removed) side by side, one pixel per object
    pixel, colour limits from the illuminated region; no axes (about 50 ms, against
    seconds for :func:`save_plots`), so a live run can rewrite it often."""
    plt = pyplot()
    pixel = np.asarray(result.sample_pixel_m, np.float64)
    offsets = view_offsets_px(
        result.positions_final, pixel, result.object_origin_px, result.probe.shape[-2:]
    )
    obj = np.asarray(projected_object(np.asarray(result.object))[0])
    _, region = illuminated_region(obj.shape, result.probe, offsets)
    phase, region = _phase(obj, region)
    halves = []
    for data, cmap in ((np.abs(obj), "gray"), (phase, "viridis")):
        low, high = np.percentile(data[region], [2, 98])
        scaled = np.clip((data - low) / (high - low if high > low else 1.0), 0, 1)
        halves.append(plt.get_cmap(cmap)(scaled)[..., :3])
    out = Path(f"{Path(path).with_suffix('')}_preview.png")
    with_tmp = out.with_name(out.name + ".partial")
    picture = np.concatenate(halves, axis=1)
    plt.imsave(with_tmp, picture, format="png", pil_kwargs={"compress_level": 1})
    os.replace(with_tmp, out)  # a viewer never sees half a picture
    return out
