"""PNG pictures of results and simulations: object, probe modes, error curves.

Needs matplotlib (``pip install 'ptyscan[plot]'``); uses the Agg backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PtyScanError

__all__ = ["plot_names", "plot_object", "plot_probe", "pyplot", "save_plots"]


def plot_names(path) -> dict:
    """PNG paths written next to ``path`` by :func:`save_plots`."""
    stem = Path(path).with_suffix("")
    return {k: Path(f"{stem}_{k}.png") for k in ("object", "probe", "errors")}


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


def save_plots(result, path) -> dict:
    """Object amplitude/phase, probe modes and error curves of a
    :class:`~ptyscan.io.results.Result` as PNGs next to ``path``.

    Needs matplotlib (``pip install 'ptyscan[plot]'``); uses the Agg backend.
    """
    plt = pyplot()
    names = plot_names(path)
    plot_object(plt, result.object[0], names["object"])
    plot_probe(plt, result.probe, names["probe"])
    _plot_errors(plt, result, names["errors"])
    return names


def plot_object(plt, obj, out):
    """Amplitude and phase of a 2-D complex object as a PNG at ``out``."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    for ax, data, title, cmap in (
        (axes[0], np.abs(obj), "object amplitude", "gray"),
        (axes[1], np.angle(obj), "object phase (rad)", "twilight"),
    ):
        # 1st-99th percentile: poorly illuminated border pixels would swamp the scale
        low, high = np.percentile(data, [1, 99])
        im = ax.imshow(data, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def plot_probe(plt, probe, out):
    """Amplitude of each (K, sy, sx) probe mode, with its share of the power, at ``out``."""
    k = len(probe)
    fig, axes = plt.subplots(1, k, figsize=(3.6 * k, 3.6), constrained_layout=True, squeeze=False)
    power = np.sum(np.abs(probe) ** 2, axis=(-2, -1))
    for mode, ax in enumerate(axes[0]):
        ax.imshow(np.abs(probe[mode]), cmap="magma")
        ax.set_title(f"probe mode {mode} ({100 * power[mode] / power.sum():.1f} %)")
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _plot_errors(plt, r, out):
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    steps = np.arange(len(r.history.get("fourier", [])))
    for key in ("fourier", "photons", "exit"):
        values = np.asarray(r.history.get(key, []), np.float64)
        if values.size and np.any(values > 0):
            ax.semilogy(steps, np.where(values > 0, values, np.nan), label=key)
    ax.set_xlabel("iteration (all engines)")
    ax.set_ylabel("error")
    ax.legend()
    fig.savefig(out, dpi=90)
    plt.close(fig)
