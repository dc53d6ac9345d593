"""MoonFlowerScan and QuickScan: synthetic far-field ptychography scans.

The geometry follows ptypy's MoonFlowerScan: wavelength from ``energy``,
sample pixel ``λ·distance / (shape·psize)``, step ``pixel·shape·density``.
Unlike ptypy, exactly ``num_frames`` frames are delivered. The object is a
procedural complex image (:func:`ptyscan.simulate.moonflower_object`), the
probe a defocused focused beam with ``Σ|P|² = photons``. Noise is drawn per
frame from ``(seed, frame index)``, so results never depend on chunking or on
the number of MPI ranks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.fft
from pydantic import Field

from ..geometry import check_object_extent, check_sample_pixel, farfield_sample_pixel_m
from ..parallel import thread_count
from ..params import PositiveFloat, Shape2
from ..scan import PtyScan
from ..scan_params import SyntheticScanParams
from ..simulate import focused_probe, moonflower_object, positions_by_model

__all__ = ["MoonFlowerParams", "MoonFlowerScan", "QuickParams", "QuickScan"]


_MAX_DENSITY = 10  # steps of ten fields of view: far beyond any overlap


class MoonFlowerParams(SyntheticScanParams):
    """Parameters of :class:`MoonFlowerScan`."""

    name: str = "MoonFlowerScan"
    num_frames: int = Field(100, ge=1)
    """Number of frames delivered (exactly)."""
    shape: Shape2 = (128, 128)
    density: PositiveFloat = Field(0.2, le=_MAX_DENSITY)
    """Step between neighbouring positions as a fraction of the frame's field of view
    (above 1 the views no longer overlap)."""
    model: Literal["round", "raster"] = "round"
    """Scan pattern: 'round' (concentric shells) or 'raster'."""
    photons: PositiveFloat = Field(1e8, le=1e15)
    """Photons in the probe per exposure (Σ|P|²)."""
    psf: float = Field(0.0, ge=0, le=1000, allow_inf_nan=False)
    """Detector point-spread function: Gaussian sigma in pixels (0 = none)."""
    add_poisson_noise: bool = True
    block_wait_count: int = Field(0, ge=0)
    """Live-mode testing: every (b+1)-th check reports no new frames (0 = never)."""


class MoonFlowerScan(PtyScan):
    """Synthetic far-field scan of a procedural 'moon and flower' object (ptypy's MoonFlower)."""

    Params = MoonFlowerParams
    SYNTHETIC = True

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        self._checks = 0

    # --- the truth, computed lazily (construction loads nothing) -------------------------

    @cached_property
    def sample_pixel_m(self) -> np.ndarray:
        """(2,) sample-plane pixel size in metres."""
        p = self.info
        pixel = farfield_sample_pixel_m(
            energy_kev=p.energy, distance_m=p.distance, shape=p.shape, psize_m=p.psize
        )
        check_sample_pixel(pixel, scan=p.name)
        return pixel

    @cached_property
    def true_positions_px(self) -> np.ndarray:
        """(N, 2) int64 top-left pixel of each frame's view into :attr:`true_object`."""
        p = self.info
        spacing = float(np.min(self.sample_pixel_m * np.asarray(p.shape) * p.density))
        pos_px = np.round(
            positions_by_model(p.model, p.num_frames, spacing_m=spacing) / self.sample_pixel_m
        )
        return (pos_px - pos_px.min(axis=0)).astype(np.int64) + 2

    @cached_property
    def true_object(self) -> np.ndarray:
        """(oy, ox) complex64 object covering every view plus a 2-pixel margin."""
        extent = self.true_positions_px.max(axis=0) + np.asarray(self.info.shape) + 2
        check_object_extent(extent, scan=self.info.name)
        return moonflower_object(tuple(int(e) for e in extent))

    @cached_property
    def true_probe(self) -> np.ndarray:
        """(ny, nx) complex64 probe with Σ|P|² = photons."""
        return focused_probe(self.info.shape, photons=self.info.photons)

    # --- hooks ----------------------------------------------------------------------------

    def load_positions(self):
        """Positions in metres, on the sample-pixel grid (so views are exact)."""
        centre = self.true_positions_px.mean(axis=0)
        return (self.true_positions_px - np.round(centre)) * self.sample_pixel_m

    def check(self, frames=None, start=None):
        start = self.framestart if start is None else start
        b = self.info.block_wait_count
        if b and start < self.num_frames:
            self._checks += 1
            if self._checks % (b + 1) == 0:
                return 0, False
        return super().check(frames, start)

    def load(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), *self.info.shape), np.float32)
        blocks = np.array_split(np.arange(len(indices)), min(len(indices), self._threads) or 1)
        work = [(indices[rows], out[rows[0] : rows[-1] + 1]) for rows in blocks if len(rows)]
        if len(work) > 1:
            with ThreadPoolExecutor(len(work)) as pool:
                list(pool.map(lambda job: self._simulate(*job), work))
        else:
            for job in work:
                self._simulate(*job)
        return {int(i): out[row] for row, i in enumerate(indices)}, {}, {}

    @cached_property
    def _threads(self) -> int:
        return thread_count(self.comm)

    def _simulate(self, indices, out):
        """Fill ``out`` (n, ny, nx) float32 with the frames ``indices`` (noisy if asked)."""
        out[...] = self.diffraction(indices)
        if self.info.add_poisson_noise:
            for row, index in enumerate(indices):
                rng = np.random.default_rng([int(self.seed), int(index)])
                out[row] = rng.poisson(out[row])

    @cached_property
    def _shifted_probe(self) -> np.ndarray:
        """Probe × (-1)^(y+x): its FFT comes out fftshifted (even frame sides)."""
        ny, nx = self.info.shape
        sign = 1 - 2 * ((np.arange(ny)[:, None] + np.arange(nx)[None, :]) % 2)
        return (self.true_probe * sign).astype(np.complex64)

    def diffraction(self, indices) -> np.ndarray:
        """Noise-free far-field intensities (n, ny, nx) float32, zero frequency at n//2."""
        ny, nx = self.info.shape
        even = ny % 2 == 0 and nx % 2 == 0
        obj = self.true_object
        probe = self._shifted_probe if even else self.true_probe
        exits = np.empty((len(indices), ny, nx), np.complex64)
        for row, (y, x) in enumerate(self.true_positions_px[np.asarray(indices)]):
            np.multiply(probe, obj[y : y + ny, x : x + nx], out=exits[row])
        far = scipy.fft.fft2(exits, norm="ortho", overwrite_x=True, workers=1)
        intensity = np.abs(far)
        np.square(intensity, out=intensity)
        if not even:
            intensity = scipy.fft.fftshift(intensity, axes=(-2, -1))
        if self.info.psf > 0:
            from scipy.ndimage import gaussian_filter

            intensity = gaussian_filter(intensity, sigma=(0, self.info.psf, self.info.psf))
        return intensity


class QuickParams(MoonFlowerParams):
    """Parameters of :class:`QuickScan` (small frames, dense scan)."""

    name: str = "QuickScan"
    shape: Shape2 = (64, 64)
    density: PositiveFloat = Field(0.05, le=_MAX_DENSITY)


class QuickScan(MoonFlowerScan):
    """Small, fast MoonFlower variant (64² frames, density 0.05) for tests and demos."""

    Params = QuickParams
