"""The blocks of :class:`~ptyscan.scans.stem_params.StemScanParams`: PtyRAD's nested
``init_params`` (meas_params, meas_calibration, meas_remove_neg_values, ...), with
PtyRAD's keys, meanings and units.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..geometry import STEM_CALIBRATION_MODES
from ..params import InputPath, ParamsModel, short_repr
from ..preprocess.electron import NEG_MODES, NORM_MODES
from ..preprocess.electron_stats import PAD_TYPES

__all__ = [
    "Calibration",
    "CropRanges",
    "Export",
    "ExportField",
    "FlipT",
    "MeasParams",
    "MeasParamsField",
    "NegValues",
    "Normalization",
    "Pad",
    "PoissonNoise",
    "ProbeNormalization",
    "Real",
    "Resample",
    "needs_value",
]

Real = Annotated[float, Field(allow_inf_nan=False)]


def needs_value(block, needed):
    """A block whose ``mode`` takes a ``value``: an error when ``needed`` and it is None."""
    if needed and block.value is None:
        raise ValueError(f"mode {block.mode!r} needs a value, got value=None")
    return block


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
        return needs_value(self, self.mode != "fitRBF")


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
        return needs_value(self, self.mode in ("subtract_value", "clip_value"))


class Normalization(ParamsModel):
    """``meas_normalization``."""

    mode: Literal[NORM_MODES] = "max_at_one"
    """Divide the scan so that its mean pattern has a maximum of 1 (max_at_one), a mean of
    1 (mean_at_one) or a sum of 1 (sum_to_one); or divide by ``value`` (divide_const)."""
    value: float | None = Field(None, gt=0, allow_inf_nan=False)
    """For divide_const, in the data's counts."""

    @model_validator(mode="after")
    def _value_needed(self):
        return needs_value(self, self.mode == "divide_const")


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
        return needs_value(self, self.mode == "target_intensity")


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
"""[flipup, fliplr, transpose] flags (0/1) or None."""
MeasParamsField = Annotated[MeasParams, BeforeValidator(_meas_params)]
"""``meas_params``: the keys, or the array itself (custom)."""
CropRanges = Annotated[Any, BeforeValidator(_crop)]
"""``meas_crop``: 4 ranges or None."""
ExportField = Annotated[Export | None, BeforeValidator(_export)]
"""``meas_export``: true, false/null or the keys."""
