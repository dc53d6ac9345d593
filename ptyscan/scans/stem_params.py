"""Parameters of :class:`~ptyscan.scans.stem.StemScan`: PtyRAD's ``init_params`` names.

Every knob keeps PtyRAD's name, meaning and unit (electrons: kV, Å, mrad, 1/Å; detector
pixels px). Values no experiment has (an energy over 1000 kV, a scan step outside
0.01–100 Å) are refused here, before anything is read or allocated.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..errors import ParameterError
from ..geometry import STEM_CALIBRATION_MODES
from ..params import InputPath, OptionalShape2, ParamsModel, short_repr
from ..preprocess.electron import NEG_MODES, NORM_MODES
from ..preprocess.electron_stats import PAD_TYPES
from ..scan_params import PtyScanParams
from ..simulate.config import Aberrations
from ..simulate.modes import mode_fractions

__all__ = ["MEAS_SOURCES", "POS_SOURCES", "StemScanParams"]

MEAS_SOURCES = ("file", "raw", "h5", "hdf5", "npy", "tif", "tiff", "mat", "zarr", "custom")
POS_SOURCES = ("simu", "custom", "ptyr", "PtyRAD", "PtyShv", "foldslice_hdf5")
Real = Annotated[float, Field(allow_inf_nan=False)]


def _meas_params(value):
    if isinstance(value, np.ndarray):
        return {"array": value}
    return value


class MeasParams(ParamsModel):
    """``meas_params``: where the frames are (PtyRAD's keys)."""

    path: InputPath = None
    """File of the frames (.raw, .h5/.hdf5, .npy, .tif/.tiff, .mat, .zarr); relative: next
    to the recipe (else the working directory)."""
    key: str | None = None
    """Dataset (HDF5, MATLAB v7.3), variable (older .mat) or array in a Zarr group of the
    frames; None: the only 3-D or 4-D one."""
    shape: tuple[int, ...] | None = None
    """(N, ky, kx) or (Ry, Rx, ky, kx) of a .raw file; None: from pos_N_scan_slow,
    pos_N_scan_fast and meas_Npix."""
    offset: int = Field(0, ge=0)
    """Bytes before the first .raw frame."""
    gap: int | None = Field(None, ge=0)
    """Bytes after each .raw frame; None: 1024 (EMPAD-1's 2 metadata rows)."""
    selection: list[Any] | None = None
    """Load-time selection of the stored array, one entry per axis (missing trailing axes
    whole): None (all), an index (drops the axis) or [start, stop] / [start, stop, step]
    (NumPy slicing), e.g. [[0, 64], [0, 64], null, null]; applied as frames are read."""
    zarr_kwargs: dict[str, Any] | None = None
    """Keyword arguments of ``zarr.open`` (e.g. storage_options); not path or selection."""
    array: Any = None
    """The frames for ``meas_source: custom`` (an array; PtyRAD passes it as meas_params)."""

    @field_validator("selection")
    @classmethod
    def _selection(cls, value):
        for item in value or ():
            whole = isinstance(item, int) and not isinstance(item, bool)
            span = (
                isinstance(item, list | tuple)
                and len(item) in (2, 3)
                and all(
                    v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in item
                )
            )
            if not (item is None or whole or span):
                raise ValueError(
                    "must be one entry per axis: None, an index or [start, stop(, step)] of "
                    f"ints, got {short_repr(item)} in {short_repr(value)}"
                )
        return value or None

    @field_validator("zarr_kwargs")
    @classmethod
    def _zarr_kwargs(cls, value):
        clash = sorted({"path", "selection", "mode"} & set(value or {}))
        if clash:
            raise ValueError(
                f"must not set {', '.join(clash)} (key picks the array, selection the frames, "
                f"the store is opened read-only), got {short_repr(value)}"
            )
        return value

    @field_validator("shape")
    @classmethod
    def _shape(cls, value):
        if value is not None and (len(value) not in (3, 4) or min(value) < 1):
            raise ValueError(f"must be (N, ky, kx) or (Ry, Rx, ky, kx) of ints >= 1, got {value}")
        return value


class Calibration(ParamsModel):
    """``meas_calibration``: the detector's reciprocal-space pixel in one of PtyRAD's units."""

    mode: Literal[STEM_CALIBRATION_MODES] = "fitRBF"
    """dx (Å), dk (1/Å), kMax (1/Å), da (mrad), angleMax (mrad), n_alpha (angleMax /
    probe_conv_angle), RBF (bright-field radius, px) or fitRBF (fitted from the data)."""
    value: float | None = Field(None, gt=0, lt=1e6, allow_inf_nan=False)
    """The value in the mode's unit (None for fitRBF)."""
    thresh: float = Field(0.5, gt=0, lt=1)
    """fitRBF: the disk is the pixels above thresh × max of the mean pattern."""

    @model_validator(mode="after")
    def _value_needed(self):
        if self.mode != "fitRBF" and self.value is None:
            raise ValueError(f"mode {self.mode!r} needs a value, got value=None")
        return self


class NegValues(ParamsModel):
    """``meas_remove_neg_values``."""

    mode: Literal[NEG_MODES] = "clip_neg"
    """clip_neg (negative values become 0), clip_value (values below ``value`` become 0),
    subtract_min (subtract the scan's minimum) or subtract_value; skipped when no value
    of the scan is negative (unless force); a final clip at 0 follows."""
    value: Real | None = None
    """For subtract_value and clip_value, in the data's counts (before normalisation)."""
    force: bool = False
    """Apply even when no value is negative."""

    @model_validator(mode="after")
    def _value_needed(self):
        if self.mode in ("subtract_value", "clip_value") and self.value is None:
            raise ValueError(f"mode {self.mode!r} needs a value, got value=None")
        return self


class Normalization(ParamsModel):
    """``meas_normalization``."""

    mode: Literal[NORM_MODES] = "max_at_one"
    """Divide the scan so that its mean pattern has a maximum of 1 (max_at_one), a mean of
    1 (mean_at_one) or a sum of 1 (sum_to_one); or divide by ``value`` (divide_const)."""
    value: float | None = Field(None, gt=0, allow_inf_nan=False)
    """For divide_const, in the data's counts."""

    @model_validator(mode="after")
    def _value_needed(self):
        if self.mode == "divide_const" and self.value is None:
            raise ValueError("mode 'divide_const' needs a value, got value=None")
        return self


class Pad(ParamsModel):
    """``meas_pad``: pad the patterns to target_Npix with a background (dk unchanged)."""

    mode: Literal["precompute", "on_the_fly"] | None = "on_the_fly"
    """'on_the_fly' (PtyRAD's default) or 'precompute': the same here (frames stream);
    null: no padding (as is meas_pad: null, the default)."""
    padding_type: Literal[PAD_TYPES] = "power"
    target_Npix: int = Field(256, ge=1, le=8192)
    value: Real = 0.0
    """constant / linear_ramp: the amplitude padded."""
    threshold: float = Field(70, ge=0, le=100)
    """exp / power: fit the pixels below this percentile of the mean amplitude."""


class Resample(ParamsModel):
    """``meas_resample``: zoom the patterns (kMax unchanged, dk / factor)."""

    mode: Literal["precompute", "on_the_fly"] | None = "on_the_fly"
    """'on_the_fly' (PtyRAD's default) or 'precompute': the same here; null: no resample."""
    scale_factors: tuple[float, float] = (2.0, 2.0)
    """[ky_zoom, kx_zoom], equal (square detectors, as PtyRAD)."""

    @field_validator("scale_factors")
    @classmethod
    def _factors(cls, value):
        if not all(0.05 <= v <= 16 for v in value) or value[0] != value[1]:
            raise ValueError(
                f"must be two equal zoom factors between 0.05 and 16 (square detectors), got "
                f"{list(value)}"
            )
        return value


class PoissonNoise(ParamsModel):
    """``meas_add_poisson_noise``."""

    unit: Literal["total_e_per_pattern", "e_per_Ang2"]
    """total_e_per_pattern: electrons in the mean pattern; e_per_Ang2: dose in e/Å², times
    pos_scan_step_size² per pattern."""
    value: float = Field(gt=0, le=1e12, allow_inf_nan=False)
    """The dose in ``unit``."""


class ProbeNormalization(ParamsModel):
    """``probe_normalization``: Σ|probe|² of the initial probe."""

    mode: Literal["mean_total_ints", "max_total_ints", "target_intensity"] = "mean_total_ints"
    """mean_total_ints: the mean total intensity (sum over ky, kx) of the prepared patterns
    (before Poisson noise: its expectation); max_total_ints: the largest total intensity
    of a prepared pattern (ideally vacuum: electrons scattered off the detector; one more
    pass over the frames); target_intensity: ``value``."""
    value: float | None = Field(None, gt=0, le=1e15, allow_inf_nan=False)
    """For target_intensity: Σ|probe|² in the units of the prepared (normalised) patterns."""

    @model_validator(mode="after")
    def _value_needed(self):
        if self.mode == "target_intensity" and self.value is None:
            raise ValueError("mode 'target_intensity' needs a value, got value=None")
        return self


class Export(ParamsModel):
    """``meas_export``: where the prepared patterns go."""

    file_dir: str | None = None
    """Folder; None: the folder of meas_params.path (else the working directory)."""
    file_name: str = Field("ptyrad_init_meas", min_length=1)
    file_format: Literal["hdf5", "npy", "tif", "mat"] = "hdf5"
    """hdf5 (dataset 'meas'), npy, tif (one page per frame) or mat (the HDF5 file named
    .mat, as PtyRAD); the file ends in .<file_format>."""
    output_shape: list[int] | None = None
    """Shape of the exported array: its leading axes regroup the N frames, the detector
    stays last (e.g. [Ny, Nx, ky, kx]; one -1 is inferred); None: (N, ky, kx)."""
    append_shape: bool = True
    """Append the array's shape (_N_ky_kx) to the file name."""

    @field_validator("output_shape")
    @classmethod
    def _output_shape(cls, value):
        if value is not None and (
            len(value) < 3 or value.count(-1) > 1 or any(v < 1 and v != -1 for v in value)
        ):
            raise ValueError(
                "must be at least 3 sizes >= 1 (one may be -1) ending in the detector's "
                f"ky, kx, got {value}"
            )
        return value


def _export(value):
    if value is True:
        return {}
    return None if value is False else value


def _flip_t(value):
    if value is None:
        return None
    ok = isinstance(value, list | tuple) and len(value) == 3
    if ok and all(v in (0, 1) and not isinstance(v, float) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(
        f"must be None or 3 flags [flipup, fliplr, transpose] (0/1), got {short_repr(value)}"
    )


def _crop(value):
    if value is None:
        return None
    ok = isinstance(value, list | tuple) and len(value) == 4
    out = []
    for item in value if ok else ():
        if item is None:
            out.append(None)
        elif (
            isinstance(item, list | tuple)
            and len(item) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            out.append((int(item[0]), int(item[1])))
        else:
            ok = False
    if not ok:
        raise ValueError(
            "must be None or 4 ranges [[slow0, slow1], [fast0, fast1], [ky0, ky1], [kx0, kx1]] "
            f"(each [start, stop) of ints as NumPy slicing, or None), got {short_repr(value)}"
        )
    return tuple(out)


FlipT = Annotated[tuple[int, int, int] | None, BeforeValidator(_flip_t)]


class StemScanParams(PtyScanParams):
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
    probe_kv: float = Field(300.0, gt=0, le=1000)
    """Acceleration voltage in kV (electron energy in keV), at most 1000."""
    probe_conv_angle: float = Field(20.0, gt=0, le=500)
    """Convergence semi-angle of the probe-forming aperture in mrad."""
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
    meas_params: Annotated[MeasParams, BeforeValidator(_meas_params)] = MeasParams()
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
    """Reshape to (N_scans, ky, kx) as np.reshape (after meas_permute)."""
    meas_flipT: FlipT = None
    """[flipup, fliplr, transpose] of the patterns (PtychoShelves')."""
    meas_crop: Annotated[Any, BeforeValidator(_crop)] = None
    """[[slow0, slow1], [fast0, fast1], [ky0, ky1], [kx0, kx1]]: scan positions and detector
    px kept, each [start, stop) as NumPy slicing (negative from the end) or None."""
    meas_remove_neg_values: NegValues = NegValues()
    meas_normalization: Normalization = Normalization()
    meas_pad: Pad | None = None
    """{mode, padding_type, target_Npix (px), value, threshold (percentile)}: pad the
    patterns to target_Npix with a fitted background (dk kept, dx smaller); null: none."""
    meas_resample: Resample | None = None
    """{mode, scale_factors}: zoom the patterns (kMax kept, dk / factor); null: none."""

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
    meas_export: Annotated[Export | None, BeforeValidator(_export)] = None
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
