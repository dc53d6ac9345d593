"""StemScan: 4D-STEM electron ptychography data with PtyRAD's ``init_params``.

Frames come from an EMPAD ``.raw``, HDF5, ``.npy``, TIFF, MATLAB or Zarr file, or an
array (:mod:`.stem_files`), laid out ``(N, ky, kx)`` or ``(Ry, Rx, ky, kx)``
(:mod:`.stem_layout`). They are read per chunk and per rank, never the whole scan.

``load_common`` makes one streaming pass over the frames (each rank its share when
``load_parallel`` is 'common' or 'all', summed over MPI) for the numbers PtyRAD takes from
the whole array: the minimum, the mean pattern, the normalisation constant, the padding
background and the bright-field disk. Every chunk is then transformed alone by PtyRAD's
steps (:mod:`ptyscan.preprocess.electron`) with those numbers, so the frames equal the
steps applied to the whole array. The mean pattern goes through the linear steps (pad,
resample, blur) for the mean total intensity (Poisson noise, initial probe).

Geometry, one convention for the whole project: ``meta.energy`` is the photon energy of
the electron wavelength, ``meta.distance`` the nominal ``distance`` and ``meta.psize =
λ·distance·dk``, so the engines' sample pixel ``λ·distance / (N·psize)`` is the calibrated
``dx``. The initial probe the scan implies is :attr:`StemScan.probe` and
``common['probe']``; the calibration is :attr:`StemScan.calibration` (and logged).
"""

from __future__ import annotations

import logging
import os
from functools import partial

import numpy as np

from ..chunk import EOS, Chunk
from ..errors import RecipeError, ScanError
from ..geometry import electron_wavelength_m, photon_energy_kev, stem_calibration
from ..preprocess import electron as steps
from ..preprocess.dpc import axes_advice, com_rotation_fit, frame_centers_of_mass
from ..preprocess.electron_stats import (
    ScanStats,
    bright_field_radius_px,
    normalization_constant,
    pad_background_pattern,
    pad_box,
    source_blur_weights,
)
from ..scan import PtyScan
from ..simulate.electron import ANGSTROM_M
from .closing import ClosesAtEnd
from .stem_export import MeasExporter
from .stem_files import open_source
from .stem_layout import build_layout, calibration_message, initial_probe, scan_positions_m
from .stem_params import StemScanParams

__all__ = ["StemScan", "StemScanParams"]

log = logging.getLogger(__name__)

PASS_BYTES = 8 << 20
"""Frames read at once by the statistics pass."""


class StemScan(ClosesAtEnd, PtyScan):
    """4D-STEM frames with PtyRAD's preprocessing, calibration, positions and probe."""

    Params = StemScanParams
    RADIATION = "electron"  # meta.energy is the photon energy of the electron wavelength
    ENGINE_DEFAULTS = {"ML": {"subpixel": "fourier", "ML_type": "poisson"}}  # README

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        p = self.info
        if p.missing():
            raise RecipeError(p.missing())
        self.wavelength_m = float(electron_wavelength_m(p.probe_kv))
        self.recorded_meta["energy"] = float(photon_energy_kev(self.wavelength_m))
        self.recorded_meta["distance"] = float(p.distance)
        self._source = None
        self._layout = None
        self._steps = None
        self._positions_m = None
        self._common_cache = None
        self.calibration: dict | None = None
        self._export = None
        if p.meas_export is not None:
            folder = os.path.dirname(p.meas_params.path) if p.meas_params.path else None
            self._export = MeasExporter(p.meas_export, default_dir=folder, comm=self.comm)
        self.probe: np.ndarray | None = None

    # --- the stored frames -----------------------------------------------------------------

    @property
    def source(self):
        """This process's open frame source (opened on first use)."""
        if self._source is None:
            p = self.info
            default = None
            n_scans = p.pos_N_scans
            if n_scans is None and p.pos_N_scan_slow and p.pos_N_scan_fast:
                n_scans = p.pos_N_scan_slow * p.pos_N_scan_fast
            if n_scans and p.meas_Npix:
                default = (n_scans, p.meas_Npix, p.meas_Npix)
            if p.meas_source != "custom" and p.meas_params.path is None:
                raise ScanError(
                    "scan.meas_params.path: got None; expected the file of the frames "
                    "(or meas_source: custom with the array)"
                )
            self._source = open_source(
                p.meas_source, p.meas_params.model_dump(), default_shape=default
            )
        return self._source

    @property
    def layout(self):
        if self._layout is None:
            self._layout = build_layout(self.source.shape, self.info)
        return self._layout

    def auto(self, frames):
        """ptypy's ``auto``, and ``meas_export`` of every chunk (collective)."""
        out = super().auto(frames)
        if self._export is not None:
            if isinstance(out, Chunk):
                self._export.write(out, self.num_frames)
            elif out is EOS:
                self._export.close()
        return out

    @property
    def export_path(self) -> str | None:
        """The ``meas_export`` file (once the first chunk is written on rank 0), or None."""
        return None if self._export is None else self._export.path

    def close(self):
        """Close the source (it reopens when needed); called at the end of the scan."""
        if self._source is not None:
            self._source.close()
            self._source = None

    # --- hooks -----------------------------------------------------------------------------

    def load_common(self):
        """The statistics pass, the calibration, the positions and the initial probe."""
        return dict(self._whole_scan())

    def load_positions(self):
        """Positions in metres: they need the calibration, so the statistics pass runs
        first (once; ptypy's hook order asks for positions before the common data)."""
        self._whole_scan()
        return self._positions_m

    def _whole_scan(self) -> dict:
        """The one streaming pass over the scan and what follows from it (cached)."""
        if self._common_cache is None:
            self._common_cache = self._compute_whole_scan()
        return self._common_cache

    def _compute_whole_scan(self) -> dict:
        p = self.info
        n = self.layout.num_frames
        self.num_frames = n if self.num_frames is None else min(self.num_frames, n)
        stats, raw_mean = self._statistics_pass(self.num_frames)
        force = p.meas_remove_neg_values.force
        mean = stats.mean_after_removal(force=force)
        norm = p.meas_normalization
        constant = normalization_constant(mean, mode=norm.mode, value=norm.value)
        if not np.isfinite(constant) or constant <= 0:
            raise ScanError(
                f"scan.meas_normalization: the {norm.mode} constant of the data is {constant}; "
                "expected > 0 (are the frames all zero?): use mode divide_const with a value"
            )
        numbers = {
            "global_min": stats.minimum,
            "removal_applies": stats.removal_applies(force=force),
            "constant": constant,
            "rbf_fitted_px": bright_field_radius_px(raw_mean, thresh=p.meas_calibration.thresh),
            "detector_npix": int(raw_mean.shape[-1]),
        }
        mean = (mean / constant).astype(np.float32)
        if p.pads:
            pad = p.meas_pad
            numbers["background"] = pad_background_pattern(
                mean,
                padding_type=pad.padding_type,
                target_npix=pad.target_Npix,
                value=pad.value,
                threshold=pad.threshold,
            )
        if self.source_sigma_px:  # the mean after the blur along the scan
            mean = stats.mean_after_removal(force=force, weighted=True) / constant
        numbers.update(self._calibrate(numbers, mean.astype(np.float32)))
        self.recorded_meta["psize"] = numbers["psize_m"]
        # the frames load() will give are known now: the start-up geometry (sample pixel,
        # step in pixels, object size) uses them instead of an unknown 0 x 0 frame
        self._check_raw_shape(numbers["prepared_shape"])
        dx = max(numbers["dx_angstrom"])
        self._positions_m = scan_positions_m(p, self.layout.grid, dx_angstrom=dx, seed=self.seed)
        probe = initial_probe(
            p,
            shape=numbers["frame_shape"],
            dx_angstrom=dx,
            total_intensity=self._probe_intensity(numbers),
        )
        return {"stem": numbers, "probe": probe}

    def _probe_intensity(self, numbers) -> float:
        """``probe_normalization``: Σ|probe|² of the initial probe, PtyRAD's modes: the mean
        (``mean_total_ints``) or the largest (``max_total_ints``) total intensity of the
        prepared patterns, or ``target_intensity``'s value. The largest needs a second
        pass over the prepared frames (each rank its share, the maximum over MPI)."""
        norm = self.info.probe_normalization
        if norm.mode == "target_intensity":
            return float(norm.value)
        if norm.mode == "mean_total_ints":
            return numbers["mean_total_intensity"]
        frame_steps = self._frame_steps(numbers, seed=self.seed)
        mine, everywhere = self._my_share(self.num_frames)
        block = max(
            1, PASS_BYTES // (4 * int(np.prod(numbers["frame_shape"])) * self.info.rebin**2)
        )
        largest = np.zeros(1)
        for start in range(0, len(mine), block):
            frames = self._frames_of(mine[start : start + block], frame_steps)
            largest[0] = max(largest[0], float(frames.sum(axis=(1, 2), dtype=np.float64).max()))
        if everywhere:
            self.comm.Allreduce(largest, op="max")
        return float(largest[0])

    def initial_probe(self):
        """The probe of ``probe_kv``, ``probe_conv_angle``, ``probe_defocus`` and the
        aberrations: the engines start from it (never the X-ray aperture default)."""
        return self.probe

    def post_initialize(self):
        numbers = self.common["stem"]
        self.probe = self.common["probe"]
        self.calibration = {k: v for k, v in numbers.items() if not isinstance(v, np.ndarray)}
        self._steps = self._frame_steps(numbers, seed=self.seed)

    def load(self, indices):
        indices = np.asarray(indices, np.int64)
        frames = self._frames_of(indices, self._steps)
        return {int(i): frames[k] for k, i in enumerate(indices)}, {}, {}

    def _frames_of(self, indices, frame_steps):
        """The prepared frames ``indices``; with a source size, whole scan rows are read
        with the rows the blur along the scan reaches."""
        if not self.source_sigma_px:
            return self._prepared(indices, frame_steps)
        (n_slow, n_fast), radius = self.layout.grid, int(4 * self.source_sigma_px + 0.5)
        rows = indices // n_fast
        first, stop = max(rows.min() - radius, 0), min(rows.max() + radius + 1, n_slow)
        frames = self._prepared(np.arange(first * n_fast, stop * n_fast), frame_steps)
        return frames[indices - first * n_fast]

    def correct(self, raw, weights, common):
        """The frames are prepared (and clipped at 0) while they are read."""
        return raw, weights

    # --- pieces ----------------------------------------------------------------------------

    @property
    def source_sigma_px(self) -> float:
        """``meas_add_source_size`` in scan steps (0: none)."""
        p = self.info
        return (p.meas_add_source_size or 0.0) / (p.pos_scan_step_size or 1.0)

    def _prepared(self, indices, frame_steps):
        """Frames ``indices`` read and put through ``frame_steps``: (n, ky, kx) float32."""
        frames = self.source.read(self.layout.leads(indices))
        meta = steps.FrameMeta(indices=indices)
        ones = np.broadcast_to(np.float32(1), frames.shape)  # no detector mask: all valid
        frames, _, _ = steps.apply_steps(frame_steps, frames, ones, meta)
        return np.ascontiguousarray(frames, np.float32)

    def _geometry_steps(self):
        p = self.info
        out = []
        if self.layout.transpose:
            out.append(partial(steps.flip_transpose, flipT=(0, 0, 1)))
        if p.meas_flipT is not None:
            out.append(partial(steps.flip_transpose, flipT=p.meas_flipT))
        return out

    def _crop_step(self):
        crop = self.info.meas_crop
        if crop is None or (crop[2] is None and crop[3] is None):
            return []
        return [partial(steps.crop_k, ky=crop[2], kx=crop[3])]

    def _my_share(self, n):
        """(frame indices this rank reads in a whole-scan pass, whether ranks share it)."""
        everywhere = self.info.load_parallel in ("common", "all") and self.comm.size > 1
        if not everywhere:
            return np.arange(n), False
        return np.array_split(np.arange(n), self.comm.size)[self.comm.rank], True

    def _statistics_pass(self, n):
        """One pass over the frames: ScanStats after the k crop, and the mean pattern
        before it (for fitRBF); each rank reads its share when the hooks run everywhere."""
        p = self.info
        mine, everywhere = self._my_share(n)
        neg = p.meas_remove_neg_values
        stats = ScanStats(neg.mode, neg.value)
        geometry, crop = self._geometry_steps(), self._crop_step()
        first = self._prepared(np.arange(1), geometry)
        raw_sum = np.zeros(first.shape[1:], np.float64)
        cropped = steps.apply_steps(crop, first, first, None)[0].shape[1:]
        if min(cropped) < 1:
            raise ScanError(
                f"scan.meas_crop: got {[list(r) if r else r for r in p.meas_crop]}; leaves "
                f"{cropped[0]} × {cropped[1]} detector px of {first.shape[1]} × {first.shape[2]}"
            )
        block = max(1, PASS_BYTES // max(first.nbytes, 1))
        weights, com = None, np.zeros((n, 2))
        if self.source_sigma_px:
            if self.layout.grid is None:
                raise ScanError(
                    "scan.meas_add_source_size: blurring along the scan needs its raster: set "
                    "pos_N_scan_slow and pos_N_scan_fast (or store (Ry, Rx, ky, kx) data)"
                )
            weights = source_blur_weights(self.layout.grid, self.source_sigma_px)
        for start in range(0, len(mine), block):
            part = mine[start : start + block]
            frames = self._prepared(part, geometry)
            com[part] = frame_centers_of_mass(frames)
            raw_sum += frames.sum(axis=0, dtype=np.float64)
            frames, _, _ = steps.apply_steps(crop, frames, frames, None)  # no weights needed
            stats.add(frames, None if weights is None else weights[part])
        minimum, count, sums = stats.arrays(cropped)
        if everywhere:
            self.comm.Allreduce(minimum, op="min")
            for arr in (count, sums, raw_sum, com):
                self.comm.Allreduce(arr)
        stats = ScanStats.from_arrays(minimum, count, sums, mode=neg.mode, value=neg.value)
        grid = self.layout.grid  # a curl needs a raster of at least 3 × 3 points
        if grid is not None and int(np.prod(grid)) == n and min(grid) >= 3:
            message, worrying = axes_advice(com_rotation_fit(com, grid), p.meas_flipT)
            (log.warning if worrying else log.info)("StemScan: %s", message)
        return stats, raw_sum / max(n, 1)

    def _linear_steps(self, numbers, *, source_blur=False):
        """pad, resample, (source size,) detector blur: linear (affine) in the frames."""
        p = self.info
        out = []
        if p.pads:
            bg = numbers["background"]
            box = pad_box(numbers["cropped_shape"], bg.shape[-1])
            out.append(partial(steps.pad_background, background=bg, box=box))
        if p.resamples:
            out.append(partial(steps.resample, factor=p.meas_resample.scale_factors[0]))
        if source_blur and self.source_sigma_px:
            n_fast = self.layout.grid[1]
            out.append(partial(steps.source_blur, n_fast=n_fast, sigma_px=self.source_sigma_px))
        if p.meas_add_detector_blur:
            out.append(partial(steps.detector_blur, sigma_px=p.meas_add_detector_blur))
        return out

    def _frame_steps(self, numbers, *, seed):
        """Every step of a chunk, with the numbers of the whole scan."""
        p = self.info
        neg = p.meas_remove_neg_values
        out = [*self._geometry_steps(), *self._crop_step()]
        out.append(
            partial(
                steps.remove_negative,
                mode=neg.mode,
                value=neg.value,
                global_min=numbers["global_min"],
                apply=numbers["removal_applies"],
            )
        )
        out.append(partial(steps.normalize, constant=numbers["constant"]))
        out += self._linear_steps(numbers, source_blur=True)
        noise = p.meas_add_poisson_noise
        if noise is not None:
            electrons = noise.value
            if noise.unit == "e_per_Ang2":
                electrons = noise.value * p.pos_scan_step_size**2
            out.append(
                partial(
                    steps.poisson_noise,
                    total_electrons=electrons,
                    constant=numbers["mean_total_intensity"],
                    seed=seed,
                )
            )
        out.append(steps.clip_negative)
        return out

    def _calibrate(self, numbers, mean):
        """dk, dx, the final shape and psize; logged on rank 0."""
        p = self.info
        cal = p.meas_calibration
        value = numbers["rbf_fitted_px"] if cal.mode == "fitRBF" else cal.value
        if cal.mode == "fitRBF" and value <= 0:
            raise ScanError(
                "scan.meas_calibration: fitRBF found no bright-field disk in the mean pattern; "
                "give a mode and value (dx, dk, kMax, da, angleMax, n_alpha or RBF)"
            )
        base = stem_calibration(
            cal.mode,
            value,
            npix=numbers["detector_npix"],
            energy_kev=p.probe_kv,
            conv_angle_mrad=p.probe_conv_angle,
        )
        numbers["cropped_shape"] = mean.shape
        meta = steps.FrameMeta(np.zeros(1, np.int64), base["dk_per_angstrom"])
        final, _, meta = steps.apply_steps(
            self._linear_steps(numbers), mean[None], np.ones_like(mean[None]), meta
        )
        dk = meta.dk_per_angstrom * p.rebin
        shape = tuple(p.shape) if p.shape is not None else final.shape[1:]
        shape = tuple(s // p.rebin for s in shape)
        dx = 1.0 / (np.asarray(shape, np.float64) * dk)
        psize = self.wavelength_m * p.distance * dk / ANGSTROM_M / p.rebin
        total = float(final.sum(dtype=np.float64))
        out = {
            **{f"calibrated_{k}": v for k, v in base.items()},
            "dk_per_angstrom": float(meta.dk_per_angstrom),
            "dx_angstrom": (float(dx[0]), float(dx[1])),
            "frame_shape": shape,
            "prepared_shape": tuple(int(n) for n in final.shape[1:]),
            "psize_m": float(psize),
            "mean_total_intensity": total,
            "kmax_per_angstrom": float(meta.dk_per_angstrom * final.shape[-1] / 2),
        }
        nyquist_mrad = 1e3 * base["wavelength_angstrom"] / (2 * float(dx.max()))
        if p.probe_conv_angle >= nyquist_mrad:
            raise ScanError(
                f"scan.probe_conv_angle: got {p.probe_conv_angle} mrad; expected below the "
                f"{nyquist_mrad:.3g} mrad (λ / 2dx) that the sample pixel dx = {dx.max():.4g} Å "
                "holds: check meas_calibration (a finer dx) and the angle"
            )
        if self.comm.rank == 0:
            mode = p.meas_calibration.mode
            log.info("%s", calibration_message(mode, base, out, numbers["rbf_fitted_px"]))
        return out
