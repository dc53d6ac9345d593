"""Hdf5Loader: frames and positions from HDF5 / NeXus / CXI files (ptypy's Hdf5Loader).

A scan is described by datasets, each named by a file and a key::

    scan:
      name: Hdf5Loader
      intensities: {file: scan_123.nxs, key: entry/data/data}
      positions: {slow_key: entry/sample/y, fast_key: entry/sample/x,
                  slow_multiplier: 1.0e-6, fast_multiplier: 1.0e-6}
      mask: {file: mask.h5, key: mask, invert: false}
      shape: 256
      center: [257, 261]

Frames may be laid out in any of five ways relative to the positions
(:mod:`ptyscan.scans.hdf5_mapping`); a bounding box, ``skip``, a frame filter and a frame
order select the frames. Each frame is corrected while it is read: ``max(raw − dark, 0)``
÷ flat × normalisation (mean/monitor for monitors within ``sigma`` standard deviations),
masked, zero padded. With ``shape`` and an explicit ``center`` only the region of interest
is read from disk. Compressed Eiger data (bitshuffle-LZ4, Blosc) is decoded through
``hdf5plugin``. CXI files need no keys. ``live: true`` reads files still being written
(:mod:`ptyscan.scans.hdf5_live`).

All files and keys are checked when the scan initialises, before any frame is read; every
problem is reported at once.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..errors import ScanError
from ..scan import PtyScan
from .closing import ClosesAtEnd
from .hdf5_io import H5Files, read_frames
from .hdf5_live import LiveTracker, read_positions, wait_for_file
from .hdf5_params import Hdf5LoaderParams
from .hdf5_setup import inspect_scan

__all__ = ["Hdf5Loader", "Hdf5LoaderParams", "normalisation_scales"]

log = logging.getLogger(__name__)


def normalisation_scales(monitor, sigma) -> np.ndarray:
    """Per-point factor ``mean / n`` for monitor values n with ``|n − mean| < sigma·std``.

    Parameters
    ----------
    monitor : (N,) array
        Monitor value of every scan point (the whole scan, whatever is selected).
    sigma : float

    Returns
    -------
    (N,) float32
        1 for outliers (left unscaled).
    """
    monitor = np.asarray(monitor, np.float64)
    mean, std = monitor.mean(), monitor.std()
    good = np.abs(monitor - mean) < sigma * std
    scales = np.ones(len(monitor), np.float32)
    scales[good] = mean / monitor[good]
    if np.count_nonzero(~good):
        log.info(
            "normalisation: %d of %d monitor values are outliers (beyond %g sigma), not scaled",
            np.count_nonzero(~good),
            len(monitor),
            sigma,
        )
    return scales


class Hdf5Loader(ClosesAtEnd, PtyScan):
    """Frames and positions from HDF5/NeXus/CXI files, any of five scan layouts (ptypy's)."""

    Params = Hdf5LoaderParams

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        self.setup = None
        self._files = None
        self._setup_arrays = None
        self._scales = None
        self._live = None

    @property
    def files(self) -> H5Files:
        """This process's open files (opened on first use)."""
        if self._files is None:
            self._files = H5Files(swmr=self.info.live)
        return self._files

    def close(self):
        """Close the files (they reopen when needed); called at the end of the scan."""
        if self._files is not None:
            self._files.close()
            self._files = None

    # --- hooks ----------------------------------------------------------------------------

    def _inspected(self):
        """Check every dataset, recognise the layout, read positions, masks, darks, flats
        (once, in whichever hook runs first)."""
        if self._setup_arrays is None:
            if self.info.live:  # the run may start before the detector's first frame
                wait_for_file(self.info.intensities.file, timeout_s=self.info.live_timeout)
            setup, arrays = inspect_scan(self.info, self.files)
            self.recorded_meta.update(setup.recorded)
            if self.info.live and setup.plan.finite:
                self.num_frames = len(setup.plan)
            self._setup_arrays = (setup, arrays)
        return self._setup_arrays

    def load_positions(self):
        return self._inspected()[1].get("positions")

    def load_weight(self):
        return self._inspected()[1].get("weight2d")

    def load_common(self):
        setup, arrays = self._inspected()
        return {"hdf5": setup, **{k: v for k, v in arrays.items() if k != "positions"}}

    def post_initialize(self):
        common = self.common
        setup = common["hdf5"]
        spec = replace(
            setup.spec,
            dark2d=common["dark2d"],
            flat2d=common["flat2d"],
            weight2d=common["weight2d"],
        )
        self.setup = replace(setup, spec=spec)
        if setup.plan.finite and self.num_frames is not None and self.num_frames > len(setup.plan):
            raise ScanError(
                f"{type(self).__name__}: {self.num_frames} frames asked for (positions_theory) "
                f"but the files hold {len(setup.plan)} selected frames"
            )
        if setup.center is not None:
            # the region around the centre was read: the base class's crop is the identity
            self.recorded_meta["center"] = setup.center
        if common["monitor"] is not None:
            self._scales = normalisation_scales(common["monitor"], self.info.normalisation.sigma)
        if self.info.live:
            self._live = LiveTracker(
                self.setup, live_key=self.info.live_key, timeout=self.info.live_timeout
            )

    def check(self, frames=None, start=None):
        if self._live is None:
            return super().check(frames, start)
        start = self.framestart if start is None else start
        available, end, total = self._live.check(self.files, start)
        self.num_frames = total
        return available, end

    def load(self, indices):
        points = self.setup.plan.point(indices)
        out, weights = self._read(points)
        raw = {int(i): out[k] for k, i in enumerate(indices)}
        wdict = {} if weights is None else {int(i): weights[k] for k, i in enumerate(indices)}
        positions = {}
        if self.info.live:
            pos = read_positions(self.files, self.setup, points)
            positions = {int(i): pos[k] for k, i in enumerate(indices)}
        return raw, positions, wdict

    def correct(self, raw, weights, common):
        """Frames are corrected (and clipped at 0) while they are read: nothing left to do."""
        return raw, weights

    def frame_times(self, indices) -> np.ndarray | None:
        """(n,) float64 time each frame was written (s since the epoch, the writer's
        ``time.time()``), from ``live_timestamps``; None without it. The runner uses it
        to measure latency (write to first use)."""
        key = self.info.live_timestamps
        if key is None or self.setup is None:
            return None
        dset = self.files.dataset(self.setup.spec.data.file, key)
        if self.info.live:
            dset.refresh()
        values = np.asarray(dset[()], np.float64).ravel()
        return values[self.setup.plan.point(np.asarray(indices, np.int64))]

    # --- reading ----------------------------------------------------------------------------

    def _leads(self, points):
        """Index of each point's frame in the intensities dataset, (n, lead ndim)."""
        lead = self.setup.layout.lead
        if len(lead) == 1:
            return points[:, None]
        return np.stack(np.unravel_index(points, lead), axis=1)

    def _read(self, points):
        """(frames, per-frame weights or None) of ``points``, frame after frame."""
        spec = self.setup.spec
        out = np.zeros((len(points), *spec.shape), np.float32)
        weights = np.empty_like(out) if spec.per_frame_weights else None
        scales = None if self._scales is None else self._scales[points]
        read_frames(self.files, spec, self._leads(points), out, weights=weights, scales=scales)
        return out, weights
