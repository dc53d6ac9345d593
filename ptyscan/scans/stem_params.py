"""Parameters of :class:`~ptyscan.scans.stem.StemScan`: PtyRAD's ``init_params`` names.

Every knob keeps PtyRAD's name, meaning and unit (electrons: kV, Å, mrad, 1/Å; detector
pixels px). Values no experiment has (an energy over 1000 kV, a scan step outside
0.01–100 Å) are refused here, before anything is read or allocated.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..errors import ParameterError
from ..params import OptionalShape2, short_repr
from ..scan_params import SeededScanParams
from ..simulate.config import Aberrations
from ..simulate.modes import mode_fractions
from .stem_param_blocks import (
    Calibration,
    CropRanges,
    ExportField,
    FlipT,
    MeasParams,
    MeasParamsField,
    NegValues,
    Normalization,
    Pad,
    PoissonNoise,
    ProbeNormalization,
    Real,
    Resample,
)

__all__ = ["MEAS_SOURCES", "POS_SOURCES", "StemScanParams"]

MEAS_SOURCES = ("file", "raw", "h5", "hdf5", "npy", "tif", "tiff", "mat", "zarr", "custom")
POS_SOURCES = ("simu", "custom", "ptyr", "PtyRAD", "PtyShv", "foldslice_hdf5")


class StemScanParams(SeededScanParams):
    """Parameters of :class:`StemScan`: PtyRAD's ``init_params`` (names, meanings, units).

    ``energy``, ``psize`` and ``distance`` are set from the physics: meta gets the photon
    energy of the electron wavelength, ``distance`` (a nominal camera length) and the
    detector pixel ``psize = λ·distance·dk`` so that ``λ·distance / (N·psize)`` is the
    calibrated sample pixel ``dx``.
    """

    name: str = "StemScan"
    shape: OptionalShape2 = None
    """Crop/pad of the prepared patterns (px); None: as PtyRAD's steps leave them."""
    distance: float = Field(1.0, gt=0, le=1e3)
    """Nominal camera length in metres (only λ·distance/psize matters)."""
    load_parallel: Literal["data", "common", "all"] | None = "all"
    """'all' (default): every rank reads its share of the statistics pass and its frames."""
    probe_kv: float | None = Field(None, gt=0, le=1000)
    """Acceleration voltage in kV (electron energy in keV), at most 1000; required (as in
    PtyRAD)."""
    probe_conv_angle: float | None = Field(None, gt=0, le=500)
    """Convergence semi-angle of the probe-forming aperture in mrad; required (as in
    PtyRAD)."""
    probe_defocus: Real = 0.0
    """Defocus in Å; positive is underfocus (C10 = −defocus), Kirkland/abTEM/PtyRAD."""
    probe_c3: Real = 0.0
    """Third-order spherical aberration C3 (Cs) in Å."""
    probe_c5: Real = 0.0
    """Fifth-order spherical aberration C5 in Å."""
    probe_aberrations: Aberrations = {}
    """More aberrations in Å and degrees, any notation (C10, C12, A1/A1phi, Cs, ...)."""
    probe_pmode_max: int = Field(1, ge=1, le=64)
    """Number of mixed probe modes of the initial probe (PtyRAD's default is 4; here 1,
    the engines' probe_modes default: set both)."""
    probe_pmode_init_pows: list[float] = [0.02]
    """[p]: each additional mode holds the fraction p of the total intensity, mode 0 the
    rest; or probe_pmode_max fractions summing to 1 (mode 0 first), PtyRAD's."""
    probe_z_shift: Real | None = None
    """Propagate the initial probe along z by this many Å (positive: forward, into the
    sample), e.g. −50 after 50 Å of vacuum above the sample; for a simulated probe the
    same as probe_defocus reduced by it."""
    probe_illum_type: Literal["electron"] = "electron"
    """PtyRAD's illumination type; StemScan is electron only (X-ray: the other scans)."""
    probe_normalization: ProbeNormalization = ProbeNormalization()
    """{mode: mean_total_ints | target_intensity, value}: the initial probe's intensity."""
    meas_source: Literal[MEAS_SOURCES] = "file"
    """Type of the frames: 'file' (from the extension), raw, h5/hdf5, npy, tif/tiff, mat,
    zarr (the zarr extra), or custom (an array in meas_params)."""
    meas_params: MeasParamsField = MeasParams()
    """{path, key, shape, offset, gap, selection, zarr_kwargs} (or the array, for custom)."""
    meas_Npix: int | None = Field(None, ge=4, le=8192)
    """Detector pixels across, as stored (square): the .raw shape when meas_params has
    none, and checked against the data (after meas_permute); None: from the data."""
    pos_N_scans: int | None = Field(None, ge=1, le=10_000_000_000)
    """Number of scan positions (frames), checked against the data; None:
    pos_N_scan_slow × pos_N_scan_fast (or the data)."""
    meas_calibration: Calibration = Calibration()
    """{mode, value}: dx | dk | kMax | da | angleMax | n_alpha | RBF | fitRBF."""
    meas_permute: tuple[int, ...] | None = None
    """Axis order as np.transpose of the stored array; the detector axes stay last."""
    meas_reshape: tuple[int, ...] | None = None
    """Reshape to (N_scans, ky, kx) as np.reshape (after meas_permute; one -1 is
    inferred, e.g. [-1, 128, 128])."""
    meas_flipT: FlipT = None
    """[flipup, fliplr, transpose] of the patterns (PtychoShelves')."""
    meas_crop: CropRanges = None
    """[[slow0, slow1], [fast0, fast1], [ky0, ky1], [kx0, kx1]]: scan positions and detector
    px kept, each [start, stop) as NumPy slicing (negative from the end) or None."""
    meas_remove_neg_values: NegValues = NegValues()
    meas_normalization: Normalization = Normalization()
    meas_pad: Pad | None = None
    """{mode, padding_type, target_Npix (px), value, threshold (percentile)}: pad the
    patterns to target_Npix with a fitted background (dk kept, dx smaller); null: none."""
    meas_resample: Resample | None = None
    """{mode, scale_factors}: zoom the patterns (kMax kept, dk / factor); null: none."""

    def missing(self) -> list[str]:
        """One line per required value left out (PtyRAD requires them): probe_kv,
        probe_conv_angle, and pos_scan_step_size when something uses it."""
        out = [
            f"scan.{key}: got None; expected {what} (PtyRAD requires it)"
            for key, what in (
                ("probe_kv", "the acceleration voltage in kV, e.g. 300"),
                ("probe_conv_angle", "the convergence semi-angle in mrad, e.g. 20"),
            )
            if getattr(self, key) is None
        ]
        if self.pos_scan_step_size is None and self.step_users():
            out.append(
                "scan.pos_scan_step_size: got None; expected the scan step in Å (0.01 to 100), "
                f"which {' and '.join(self.step_users())} needs"
            )
        return out

    def step_users(self) -> list[str]:
        """What needs ``pos_scan_step_size`` (PtyRAD requires it): empty when nothing does."""
        noise = self.meas_add_poisson_noise
        uses = {
            "pos_source 'simu'": self.pos_source == "simu",
            "meas_add_source_size": bool(self.meas_add_source_size),
            "meas_add_poisson_noise in e_per_Ang2": bool(noise and noise.unit == "e_per_Ang2"),
        }
        return [name for name, used in uses.items() if used]

    @property
    def pads(self) -> bool:
        """meas_pad is set with a mode."""
        return self.meas_pad is not None and self.meas_pad.mode is not None

    @property
    def resamples(self) -> bool:
        """meas_resample is set with a mode."""
        return self.meas_resample is not None and self.meas_resample.mode is not None

    meas_add_source_size: float | None = Field(None, ge=0, le=100)
    """Source size (partial spatial coherence): Gaussian std in Å of a blur along both scan
    axes (needs the raster); a chunk reads int(4σ/step + 0.5) more scan rows each side."""
    meas_add_detector_blur: float | None = Field(None, ge=0, le=100)
    """Detector blur: Gaussian std in px along ky, kx."""
    meas_add_poisson_noise: PoissonNoise | None = None
    """{unit: total_e_per_pattern | e_per_Ang2, value}."""
    meas_export: ExportField = None
    """null/false: no export; true or {file_dir, file_name, file_format: hdf5 | npy | tif |
    mat, output_shape, append_shape}: write the prepared patterns to one file as they
    stream."""
    pos_source: Literal[POS_SOURCES] = "simu"
    """Positions: simu (raster), custom (pos_params an (N, 2) array (y, x) in px of dx,
    PtyRAD's), ptyr (the final positions of our result file pos_params), PtyRAD (its
    hdf5 result: model_attributes/crop_pos + optimizable_tensors/probe_pos_shifts, px),
    PtyShv (a PtychoShelves .mat: outputs.probe_positions (x, y) px) or foldslice_hdf5
    (fold_slice's ppY, ppX in Å, negated, in reverse order). pos_scan_flipT, _affine
    and _rand_std then apply to all of them but ptyr (as PtyRAD)."""
    pos_params: Any = None
    """A result path (ptyr, PtyRAD) or an (N, 2) array (custom)."""
    pos_N_scan_slow: int | None = Field(None, ge=1, le=100_000)
    """Scan positions along the slow (vertical) axis."""
    pos_N_scan_fast: int | None = Field(None, ge=1, le=100_000)
    """Scan positions along the fast (horizontal) axis."""
    pos_scan_step_size: float | None = Field(None, ge=0.01, le=100)
    """Raster step in Å (0.01 to 100); needed (as PtyRAD requires it) by pos_source simu,
    meas_add_source_size and Poisson noise in e_per_Ang2."""
    pos_scan_flipT: FlipT = None
    """[flipup, fliplr, transpose] of the scan pattern: flip the (slow, fast) grid of
    positions along slow, along fast, swap y and x of every position (PtyRAD's; prefer
    meas_flipT)."""
    pos_scan_affine: tuple[Real, Real, Real, Real] | None = None
    """[scale, asymmetry, rotation (deg), shear (deg)] of the scan pattern about its mean:
    (y, x) ← (y, x) · A with A = scale · asymmetry · rotation · shear (PtychoShelves'
    matrices, PtyRAD's)."""
    pos_scan_rand_std: float | None = Field(0.15, ge=0, le=100)
    """Random Gaussian displacement (std, px of dx) of the positions (as PtyRAD, of loaded
    ones too: set 0 to keep them); None or 0: none."""

    @model_validator(mode="before")
    @classmethod
    def _random_seed(cls, values):
        """PtyRAD's ``random_seed`` is our ``seed``."""
        if isinstance(values, dict) and "random_seed" in values:
            values = dict(values)
            seed = values.pop("random_seed")
            if values.get("seed") not in (None, seed):
                raise ValueError(
                    f"random_seed: got {seed!r} and seed {values['seed']!r}; expected one of "
                    "them (random_seed is PtyRAD's name of seed)"
                )
            values["seed"] = seed
        return values

    @model_validator(mode="after")
    def _mode_powers(self):
        pows, n = self.probe_pmode_init_pows, self.probe_pmode_max
        if len(pows) > 1 and (len(pows) != n or not np.isclose(sum(pows), 1.0, rtol=1e-5)):
            raise ValueError(
                f"probe_pmode_init_pows: got {short_repr(pows)}; expected one fraction or "
                f"probe_pmode_max = {n} fractions summing to 1 (mode 0 first)"
            )
        try:
            mode_fractions(n, pows if len(pows) == 1 else pows[1:])
        except ParameterError as exc:
            raise ValueError(f"probe_pmode_init_pows: {exc}") from None
        return self
