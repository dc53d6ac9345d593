"""``ptyscan simulate RECIPE``: prepare a simulated scan and write its truth next to it.

:func:`simulate_recipe` runs the recipe's scan to the end (saving a ``.ptyd``
file as ``ptyscan prepare`` does) and writes ``<dfile stem>.truth.h5``, an
HDF5 file with what the data were made from::

    object              (M, oy, ox) complex64   object modes
    probe               (K, ny, nx) complex64   probe modes (Σ|P|² = photons)
    positions_m         (N, 2) float64          true positions (y, x), metres
    positions_px        (N, 2) int64            top-left pixel of each view in ``object``
    reported_positions_m (N, 2) float64         positions given to the reconstruction
    sample_pixel_m      (2,) float64            object pixel size (y, x), metres
    recipe              str                     the resolved recipe (YAML)

with attributes ``scan`` (class name), ``seed``, ``num_frames``,
``propagation``, ``wavelength_m`` and ``ptyscan_version``. The file is
written under a temporary name and renamed, so it is either complete or absent.
Any scan class with ``true_object`` and ``true_probe`` works (SimScan,
MoonFlowerScan, QuickScan).
"""

from __future__ import annotations

import logging
import os
import time

import h5py
import numpy as np

from .._version import __version__
from ..errors import ScanError
from ..io.atomic import atomic_path
from ..io.plots import illuminated_region, length_unit, plot_object, plot_probe, pyplot
from ..parallel import get_comm
from ..scan_support import collective
from .streaming import stream_to_end

__all__ = ["simulate_recipe", "truth_path", "write_truth"]

log = logging.getLogger(__name__)


def truth_path(dfile):
    """The truth file next to ``dfile``: ``run/scan.ptyd`` → ``run/scan.truth.h5``."""
    return os.path.splitext(os.fspath(dfile))[0] + ".truth.h5"


def _modes(array):
    arr = np.asarray(array)
    return arr[None] if arr.ndim == 2 else arr


def write_truth(path, scan, *, recipe_yaml=""):
    """Write the truth of an initialised simulated ``scan`` to ``path`` atomically."""
    positions_m = getattr(scan, "true_positions_m", None)
    if positions_m is None:  # MoonFlower: positions are on the pixel grid already
        positions_m = scan.positions
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f["object"] = _modes(scan.true_object).astype(np.complex64)
        f["probe"] = _modes(scan.true_probe).astype(np.complex64)
        f["positions_m"] = np.asarray(positions_m, dtype=np.float64)
        f["positions_px"] = np.asarray(scan.true_positions_px, dtype=np.int64)
        f["positions_px"].attrs["meaning"] = "top-left pixel (row, col) of each view"
        f["reported_positions_m"] = np.asarray(scan.positions, dtype=np.float64)
        f["sample_pixel_m"] = np.asarray(scan.sample_pixel_m, dtype=np.float64)
        f["recipe"] = recipe_yaml
        meta = scan.meta
        f.attrs.update(
            scan=type(scan).__name__,
            seed=int(scan.seed),
            num_frames=int(scan.num_frames),
            propagation=meta.propagation,
            wavelength_m=float(getattr(scan, "wavelength_m", meta.wavelength_m)),
            ptyscan_version=__version__,
        )


def plot_truth(truth, scan) -> list:
    """PNGs of the true object, probe modes, positions and first frame next to ``truth``."""
    plt = pyplot()
    stem = str(truth).removesuffix(".h5")
    names = [f"{stem}_object.png", f"{stem}_probe.png", f"{stem}_scan.png"]
    obj, probe = _modes(scan.true_object), _modes(scan.true_probe)
    pixel = np.asarray(scan.sample_pixel_m, np.float64)
    _, region = illuminated_region(obj.shape[-2:], probe, scan.true_positions_px)
    plot_object(plt, obj[0], names[0], pixel_m=pixel, region=region)
    plot_probe(plt, probe, names[1], pixel_m=pixel)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    positions = np.asarray(scan.positions)
    unit, scale = length_unit(max(float(np.ptp(positions)), 1e-12) / 5)
    dots = axes[0].scatter(
        positions[:, 1] / scale, positions[:, 0] / scale, c=np.arange(len(positions)), s=8
    )
    fig.colorbar(dots, ax=axes[0], shrink=0.8, label="frame index")
    axes[0].set(title="reported positions", xlabel=f"fast x ({unit})", ylabel=f"slow y ({unit})")
    axes[0].invert_yaxis()
    raw, _, _ = scan.load(np.array([0]))  # a hook: local, no collective, no state change
    im = axes[1].imshow(np.log10(np.maximum(np.asarray(raw[0], float), 0) + 1), cmap="viridis")
    axes[1].set_title("frame 0 as detected, log10(counts + 1)")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    fig.savefig(names[2], dpi=90)
    plt.close(fig)
    return names


def simulate_recipe(recipe, *, comm=None) -> dict:
    """Simulate the recipe's scan into a ``.ptyd`` file and write its truth file.

    Parameters
    ----------
    recipe : ptyscan.recipe.Recipe
        A validated recipe whose scan class exposes ``true_object`` and
        ``true_probe`` (e.g. SimScan). ``scan.dfile`` (default
        ``<run.output_dir>/<recipe stem>.ptyd``) receives the data, in
        ``scan.save`` mode (default 'append').
    comm : Comm, optional
        Communicator; every rank simulates its own frames.

    Returns
    -------
    dict
        ``dfile``, ``truth`` (paths), ``frames``, ``chunks``, ``seconds``, ``ranks``,
        ``pictures`` (PNG paths written when the scan's ``plot`` is True).
    """
    comm = comm if comm is not None else get_comm()
    dfile = recipe.dfile
    scan = recipe.scan_class(
        recipe.scan, comm=comm, save=recipe.scan.save or "append", dfile=dfile
    )
    if not all(hasattr(type(scan), name) for name in ("true_object", "true_probe")):
        raise ScanError(
            f"simulate: {type(scan).__name__} is not a simulation (no true_object/true_probe); "
            "use SimScan, MoonFlowerScan or QuickScan, or `ptyscan prepare` for measured data"
        )
    start = time.perf_counter()
    frames, chunks = stream_to_end(scan, recipe.run)
    truth = truth_path(dfile)
    collective(
        comm, lambda: write_truth(truth, scan, recipe_yaml=recipe.to_yaml()), root_only=True
    )
    pictures = []
    if getattr(scan.info, "plot", False) and comm.rank == 0:
        pictures = plot_truth(truth, scan)
    seconds = time.perf_counter() - start
    if comm.rank == 0:
        log.info("simulated %d frames in %.2f s -> %s (truth: %s)", frames, seconds, dfile, truth)
    return {
        "dfile": dfile,
        "truth": truth,
        "frames": frames,
        "chunks": chunks,
        "seconds": seconds,
        "ranks": comm.size,
        "pictures": [str(p) for p in pictures],
    }
