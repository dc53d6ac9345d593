"""SimScan: a simulated scan from ptypy's ``illumination``, ``sample`` and ``xy`` parameters.

Geometry: wavelength from ``energy`` (X-ray photon energy, or the electron
beam energy with ``electron_data``); simulation frames of ``frame_size``
(default ``shape``) pixels; sample pixel ``λ·distance / (frame_size·psize)``
in the far field and ``psize`` in the near field. The true positions are
snapped to that pixel grid, so every view is an exact window of the object.
Frames are ``Σ_k,l |propagate(P_k · O_l[view])|²`` with the propagators the
engines use (:mod:`ptyscan.propagation`), then an optional point-spread
function and a detector model (:mod:`ptyscan.simulate.detectors`), or
Poisson noise (``add_poisson_noise``) without one. The positions handed out
carry the configured errors (``pos_noise``, ``pos_scale``, ``pos_drift``);
the truth stays in :attr:`SimScan.true_positions_m`. Everything random is
drawn from ``(seed, stream[, frame])``, so results never depend on chunking
or on the number of MPI ranks, and each rank simulates only its own frames.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..errors import ScanError
from ..geometry import (
    check_object_extent,
    check_sample_pixel,
    electron_wavelength_m,
    photon_energy_kev,
    xray_wavelength_m,
)
from ..parallel import thread_count
from ..params import OptionalShape2, Shape2, checked_by, short_repr
from ..propagation import FarField, NearField
from ..scan import PtyScan
from ..scan_params import SyntheticScanParams
from ..simulate.build import build_object, build_positions, build_probe
from ..simulate.config import IlluminationParams, SampleParams, SignedPair, XYParams
from ..simulate.detectors import detect, detector_model, gap_mask
from ..simulate.positions import reported_positions

__all__ = ["SimScan", "SimScanParams"]

log = logging.getLogger(__name__)

_PROBE, _OBJECT, _POSITIONS, _ERRORS, _FRAMES = range(1, 6)  # random streams
_MARGIN_PX = 2
_BLOCK_BYTES = 64 << 20  # exit waves per propagation block


_MAX_PSF_SIGMA_PX = 1000


def _psf(value):
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64) if not isinstance(value, bool) else None
    except (TypeError, ValueError):  # a mapping, a ragged list, text
        arr = None
    ok = arr is not None and np.all(np.isfinite(arr)) and np.all(arr >= 0)
    sigma_ok = ok and np.all(arr <= _MAX_PSF_SIGMA_PX)
    if sigma_ok and arr.ndim == 0:
        return float(arr)
    if sigma_ok and arr.shape == (2,):
        return (float(arr[0]), float(arr[1]))
    if ok and arr.ndim == 2 and arr.sum() > 0:
        return arr.tolist()
    raise ValueError(
        "must be None, a Gaussian sigma in pixels (number or (y, x) pair, 0 to "
        f"{_MAX_PSF_SIGMA_PX}) or a 2-D "
        f"non-negative kernel, got {short_repr(value)}"
    )


class SimScanParams(SyntheticScanParams):
    """Parameters of :class:`SimScan` (ptypy's SimScan, plus electron and detector options)."""

    name: str = "SimScan"
    shape: Shape2 = (128, 128)
    illumination: IlluminationParams = IlluminationParams()
    """The probe (``model``, ``photons``, ``aperture``, ``propagation``, ``diversity``, ...)."""
    sample: SampleParams = SampleParams()
    """The object (``model``, ``fill``, ``process``, ``diversity``, ...)."""
    xy: XYParams = XYParams()
    """The true trajectory (``model``, ``spacing``, ``steps``, ``extent``, ...)."""
    pos_noise: SignedPair = (0.0, 0.0)
    """Random error (std, metres, per axis) of the reported positions."""
    pos_scale: SignedPair = (0.0, 0.0)
    """Relative scale error of the reported positions (0.01: 1 % too large), per axis."""
    pos_drift: SignedPair = (0.0, 0.0)
    """Drift of the reported positions in metres per frame (frame i off by i·drift)."""
    detector: Annotated[Any, BeforeValidator(checked_by(detector_model))] = "PILATUS_300K"
    """Detector model: a name (PILATUS_300K/1M/2M/6M, GenericCCD16bit/32bit, FLI_PL1001,
    FRELON_TAPER), a mapping {name: ..., attribute: value} overriding one, {} for the generic
    16-bit CCD, or None for an ideal detector (see add_poisson_noise)."""
    frame_size: OptionalShape2 = None
    """Simulated detector frame (ny, nx) before the crop to ``shape``; None: ``shape``."""
    psf: Annotated[Any, BeforeValidator(_psf)] = None
    """Blur of the intensities before the detector: Gaussian sigma in pixels (number or
    (y, x)) or a 2-D kernel (normalised); models partial coherence."""
    plot: bool = False
    """``ptyscan simulate`` saves PNGs of the true object, probe modes, positions and the
    first frame next to the truth file."""
    electron_data: bool = False
    """``energy`` is the electron beam energy in keV (kV); meta records the photon energy of
    the same wavelength."""
    seed: int | None = Field(None, ge=0)

    @field_validator("pos_noise")
    @classmethod
    def _noise_non_negative(cls, value):
        if min(value) < 0:
            raise ValueError(f"must be >= 0 (a standard deviation in metres), got {value}")
        return value

    @field_validator("pos_scale")
    @classmethod
    def _scale_above_minus_one(cls, value):
        if min(value) <= -1:
            raise ValueError(f"must be > -1 (a relative scale error), got {value}")
        return value

    @model_validator(mode="after")
    def _electron_model_needs_electron_data(self):
        if self.illumination.model == "electron" and not self.electron_data:
            raise ValueError(
                "illumination.model 'electron' needs electron_data: true (energy is then the "
                "electron beam energy in keV), got electron_data=False"
            )
        return self


class SimScan(PtyScan):
    """Simulated scan: ptypy's illumination/sample/xy models, detectors, position errors."""

    Params = SimScanParams
    SYNTHETIC = True

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        p = self.info
        if p.electron_data:
            self.recorded_meta["energy"] = float(photon_energy_kev(self.wavelength_m))

    # --- geometry ---------------------------------------------------------------------

    @cached_property
    def wavelength_m(self) -> float:
        """Wavelength in metres (X-ray, or relativistic electron with ``electron_data``)."""
        p = self.info
        wavelength = electron_wavelength_m if p.electron_data else xray_wavelength_m
        return float(wavelength(p.energy))

    @property
    def sim_shape(self) -> tuple[int, int]:
        """Simulated frame shape: ``frame_size`` or ``shape``."""
        return tuple(self.info.frame_size or self.info.shape)

    @cached_property
    def sample_pixel_m(self) -> np.ndarray:
        """(2,) sample-plane pixel size in metres."""
        p = self.info
        psize = np.asarray(p.psize, dtype=np.float64)
        if p.propagation == "nearfield":
            pixel = psize
        else:
            pixel = self.wavelength_m * p.distance / (np.asarray(self.sim_shape) * psize)
        check_sample_pixel(pixel, scan=p.name)
        return pixel

    @cached_property
    def propagator(self):
        """The forward propagator of the simulation frames (shared with the engines)."""
        p = self.info
        if p.propagation == "nearfield":
            return NearField(
                self.sim_shape,
                distance_m=p.distance,
                wavelength_m=self.wavelength_m,
                psize_m=p.psize,
            )
        return FarField(self.sim_shape)

    # --- the truth ----------------------------------------------------------------------

    def _rng(self, *stream):
        if self.seed is None:
            raise ScanError(
                "SimScan: the simulation needs its seed; set seed, or call initialize() first"
            )
        return np.random.default_rng([int(self.seed), *stream])

    @cached_property
    def _positions_px(self) -> np.ndarray:
        pos = build_positions(self.info.xy, rng=self._rng(_POSITIONS))
        if self.info.num_frames is not None:
            pos = pos[: self.info.num_frames]
        return np.round(pos / self.sample_pixel_m).astype(np.int64)

    @property
    def true_positions_m(self) -> np.ndarray:
        """(N, 2) true positions in metres (y, x), on the sample pixel grid."""
        return self._positions_px * self.sample_pixel_m

    @cached_property
    def true_positions_px(self) -> np.ndarray:
        """(N, 2) int64 top-left pixel of each view in :attr:`true_object`."""
        return self._positions_px - self._positions_px.min(axis=0) + _MARGIN_PX

    @cached_property
    def true_object(self) -> np.ndarray:
        """(M, oy, ox) complex64 object modes covering every view plus a margin."""
        extent = self.true_positions_px.max(axis=0) + np.asarray(self.sim_shape) + _MARGIN_PX
        check_object_extent(extent, scan=self.info.name)
        return build_object(
            self.info.sample,
            shape=tuple(int(e) for e in extent),
            wavelength_m=self.wavelength_m,
            energy_kev=self.info.energy,
            rng=self._rng(_OBJECT),
        )

    @cached_property
    def true_probe(self) -> np.ndarray:
        """(K, ny, nx) complex64 probe modes, ``Σ|P|² = illumination.photons``."""
        p = self.info
        return build_probe(
            p.illumination,
            shape=self.sim_shape,
            sample_pixel_m=tuple(self.sample_pixel_m),
            wavelength_m=self.wavelength_m,
            energy_kev=p.energy,
            electron=p.electron_data,
            rng=self._rng(_PROBE),
        )

    @cached_property
    def detector_model(self):
        """The :class:`~ptyscan.simulate.detectors.DetectorModel`, or None."""
        return detector_model(self.info.detector)

    # --- hooks ----------------------------------------------------------------------------

    def load_positions(self):
        """The reported positions: the truth with ``pos_noise``, ``pos_scale``, ``pos_drift``."""
        p = self.info
        return reported_positions(
            self.true_positions_m,
            noise_m=p.pos_noise,
            scale=p.pos_scale,
            drift_m=p.pos_drift,
            rng=self._rng(_ERRORS),
        )

    def load_weight(self):
        """The detector's gap mask on the simulated frame (None: every pixel valid)."""
        model = self.detector_model
        if model is None:
            return None
        mask = gap_mask(model, self.sim_shape)
        return None if mask.all() else mask.astype(np.float32)

    def load(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and indices.max() >= len(self.true_positions_px):
            raise ScanError(
                f"SimScan: frame {int(indices.max())} requested but the trajectory has "
                f"{len(self.true_positions_px)} positions"
            )
        raw, weights = {}, {}
        per_block = max(
            1, _BLOCK_BYTES // (8 * self._views_per_frame * int(np.prod(self.sim_shape)))
        )
        with ThreadPoolExecutor(thread_count(self.comm)) as pool:  # detector noise per frame
            for start in range(0, len(indices), per_block):
                block = [int(i) for i in indices[start : start + per_block]]
                recorded = pool.map(self._record, block, self.diffraction(block))
                for index, (frame, weight) in zip(block, recorded, strict=True):
                    raw[index] = frame
                    if weight is not None:
                        weights[index] = weight
        return raw, {}, weights

    # --- simulation -------------------------------------------------------------------------

    @property
    def _views_per_frame(self) -> int:
        return len(self.true_probe) * len(self.true_object)

    def exit_waves(self, indices) -> np.ndarray:
        """(n, K·M, ny, nx) complex64 exit waves ``P_k · O_l[view]`` of frames ``indices``."""
        ny, nx = self.sim_shape
        probe, obj = self.true_probe, self.true_object
        out = np.empty((len(indices), len(probe) * len(obj), ny, nx), np.complex64)
        for row, (y, x) in enumerate(self.true_positions_px[np.asarray(indices)]):
            views = obj[:, y : y + ny, x : x + nx]
            out[row] = (probe[:, None] * views[None]).reshape(-1, ny, nx)
        return out

    def diffraction(self, indices) -> np.ndarray:
        """Noise-free intensities (n, ny, nx) float32 of frames ``indices``, PSF applied."""
        waves = self.propagator.forward(self.exit_waves(indices))
        intensity = (waves.real**2 + waves.imag**2).sum(axis=1, dtype=np.float32)
        return self._blur(intensity)

    def _blur(self, intensity):
        psf = self.info.psf
        if psf is None or (np.ndim(psf) == 0 and psf == 0):
            return intensity
        from scipy import ndimage

        if np.ndim(psf) == 2:
            kernel = np.asarray(psf, dtype=np.float32)
            return ndimage.convolve(intensity, (kernel / kernel.sum())[None])
        sigma = np.broadcast_to(np.asarray(psf, dtype=float), (2,))
        return ndimage.gaussian_filter(intensity, sigma=(0, *sigma))

    @cached_property
    def _gap_mask(self):
        return gap_mask(self.detector_model, self.sim_shape)

    def _record(self, index, intensity):
        """(frame, per-frame weight or None) recorded by the detector for frame ``index``."""
        model = self.detector_model
        if model is None:
            if self.info.add_poisson_noise:
                rng = self._rng(_FRAMES, index)
                return rng.poisson(intensity).astype(np.float32), None
            return intensity, None
        frame, valid = detect(intensity, model, rng=self._rng(_FRAMES, index), mask=self._gap_mask)
        if np.array_equal(valid, self._gap_mask):
            return frame, None
        return frame, valid.astype(np.float32)
