"""Parameter groups of simulated scans (ptypy's ``illumination``, ``sample``, ``xy``).

Nested :class:`~ptyscan.params.ParamsModel` groups used by
:class:`ptyscan.scans.simscan.SimScan`; names follow ptypy (and PtyRAD for the
electron and zone-plate groups), units are in the field documentation.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from ptyscan.params import (
    OptionalPair,
    OptionalPositiveFloat,
    ParamsModel,
    PositionsArray,
    PositiveFloat,
    checked_by,
    existing_input,
    short_repr,
)
from ptyscan.simulate.aberrations import normalize_aberrations

__all__ = [
    "Aberrations",
    "ApertureParams",
    "ComplexPair",
    "DiversityParams",
    "ElectronParams",
    "FZPParams",
    "IlluminationParams",
    "ProbePropagationParams",
    "ProcessParams",
    "SampleParams",
    "SignedPair",
    "XYParams",
]

ILLUMINATION_MODELS = (None, "fzp", "electron")
SAMPLE_MODELS = (None, "flat", "moonflower", "random")
FILE_SUFFIXES = (
    ".npy",
    ".h5",
    ".hdf5",
    ".hdf",
    ".nxs",
    ".cxi",
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".edf",
    ".cbf",
)


def _real(value):
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )


def _noise(value):
    """None, (rms, mfs) or (rms, mfs, rms_mod, mfs_mod), all finite and >= 0."""
    if value is None:
        return None
    if isinstance(value, list | tuple) and len(value) in (2, 4):
        if all(_real(v) and math.isfinite(v) and v >= 0 for v in value):
            return tuple(float(v) for v in value)
    raise ValueError(
        "must be None, (phase_rms, mfs) or (phase_rms, mfs, modulus_rms, modulus_mfs) of "
        f"numbers >= 0 (mfs in pixels), got {short_repr(value)}"
    )


def _signed_pair(value):
    pair = (value, value) if _real(value) else value
    if isinstance(pair, list | tuple) and len(pair) == 2:
        if all(_real(v) and math.isfinite(v) for v in pair):
            return (float(pair[0]), float(pair[1]))
    raise ValueError(f"must be a number or a pair (y, x) of numbers, got {short_repr(value)}")


def _complex(value):
    """A number (real) or a pair (real, imag) → (real, imag)."""
    pair = (value, 0.0) if _real(value) else value
    if isinstance(pair, list | tuple) and len(pair) == 2:
        if all(_real(v) and math.isfinite(v) for v in pair):
            return (float(pair[0]), float(pair[1]))
    raise ValueError(f"must be a number or a pair (real, imag), got {short_repr(value)}")


def _steps(value):
    if value is None:
        return None
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(pair, list | tuple) and len(pair) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
            return (int(pair[0]), int(pair[1]))
    raise ValueError(
        f"must be None, a positive int or a pair (y, x) of them, got {short_repr(value)}"
    )


def _model_name(allowed):
    def check(value, info: ValidationInfo):
        if value in allowed:
            return value
        if isinstance(value, str) and value.lower().endswith(FILE_SUFFIXES):
            return existing_input(value, info)  # next to the recipe, else the working dir
        names = ", ".join(repr(a) for a in allowed)
        raise ValueError(
            f"must be one of {names} or an image/array file path, got {short_repr(value)}"
        )

    return check


NoiseSpec = Annotated[tuple[float, ...] | None, BeforeValidator(_noise)]
SignedPair = Annotated[tuple[float, float], BeforeValidator(_signed_pair)]
ComplexPair = Annotated[tuple[float, float], BeforeValidator(_complex)]
Steps = Annotated[tuple[int, int] | None, BeforeValidator(_steps)]


class ApertureParams(ParamsModel):
    """``illumination.aperture``: the opening that shapes the beam (ptypy)."""

    form: Literal["circ", "rect"] | None = "circ"
    """'circ' (ellipse), 'rect' or None (no opening)."""
    size: OptionalPair = None
    """Diameter or width (y, x) in metres: in the aperture plane when the beam is focussed,
    else in the sample plane; None: a third of the grid."""
    edge: float = Field(2.0, ge=0)
    """Full width of the soft edge in pixels (of the aperture's plane)."""
    central_stop: float | None = Field(None, gt=0, lt=1)
    """Central stop diameter as a fraction of ``size``, or None."""
    diffuser: NoiseSpec = None
    """Random screen in the opening: (phase_rms rad, mfs px) or with (modulus_rms, mfs)."""
    offset: SignedPair = (0.0, 0.0)
    """Offset (y, x) of the opening from the optical axis in metres."""
    rotate: float = 0.0
    """Rotation of the opening in radians (ptypy's unit)."""


class ProbePropagationParams(ParamsModel):
    """``illumination.propagation``: from the aperture to the sample (ptypy)."""

    focussed: OptionalPositiveFloat = Field(
        None, validation_alias=AliasChoices("focussed", "focused")
    )
    """Distance from the aperture (a lens) to its focus in metres; None: no focusing.
    ptypy's spelling; ``focused`` is accepted too."""
    parallel: float | None = None
    """Further free-space propagation in metres (from the focus, or from the aperture)."""
    spot_size: OptionalPositiveFloat = None
    """Focal spot diameter in metres; sets the aperture size (needs ``focussed``)."""
    antialiasing: int = Field(1, ge=1, le=8)
    """Compute a focused probe on a grid this many times finer, then average blocks."""


class DiversityParams(ParamsModel):
    """``*.diversity``: incoherent modes (ptypy); single mode unless ``power`` is set."""

    power: float | list[float] | None = None
    """Power of each extra mode relative to the main mode (ptypy); a list gives one value
    per extra mode; None: a single mode."""
    modes: int | None = Field(None, ge=1)
    """Total number of modes (a single ``power`` is repeated); None: 1 + len(power)."""
    noise: NoiseSpec = (0.5, 1.0)
    """Screens that make the extra modes: (phase_rms rad, mfs px[, modulus_rms, mfs])."""
    method: Literal["noise", "hermite"] = "noise"
    """'noise' (ptypy: random screens) or 'hermite' (Hermite-Gauss factors, deterministic)."""
    shift: float | None = None
    """Lateral shift in pixels of mode k by k * shift (both axes), or None."""

    @field_validator("power")
    @classmethod
    def _positive_powers(cls, value):
        values = [value] if _real(value) else value
        if values is not None and not all(_real(v) and math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"must be None or positive numbers, got {short_repr(value)}")
        return value

    def count(self) -> int:
        """Number of modes these parameters ask for."""
        if self.power is None:
            return 1
        if self.modes is not None:
            return self.modes
        return 1 + (len(self.power) if isinstance(self.power, list) else 1)


class FZPParams(ParamsModel):
    """``illumination.fzp``: a Fresnel zone plate (PtyRAD names), for ``model: fzp``."""

    dRn: PositiveFloat = 50e-9
    """Outermost zone width in metres."""
    Rn: PositiveFloat = 90e-6
    """Zone-plate radius in metres; focal length 2·Rn·dRn/λ."""
    D_H: float = Field(60e-6, ge=0)
    """Central stop diameter in metres."""
    D_FZP: PositiveFloat = 180e-6
    """Diameter of the zone plate's opening in metres (usually 2·Rn)."""
    Ls: float = 0.0
    """Distance from the focal plane to the sample in metres (positive: downstream)."""


Aberrations = Annotated[dict[str, float], AfterValidator(checked_by(normalize_aberrations))]
"""Aberrations in Å and degrees in any notation of :mod:`ptyscan.simulate.aberrations`."""


class ElectronParams(ParamsModel):
    """``illumination.electron``: a 4D-STEM probe, for ``model: electron`` (PtyRAD)."""

    conv_angle: PositiveFloat = 20.0
    """Convergence semi-angle in mrad."""
    aberrations: Aberrations = {}
    """Aberrations in Å and degrees, any notation (C10/phi.., C12a/b, Haider A1/A1phi,
    defocus, Cs); C10 = -defocus."""
    edge: float = Field(1.0, ge=0)
    """Width of the aperture's soft edge in frequency pixels."""


class IlluminationParams(ParamsModel):
    """``illumination``: the probe (ptypy's parameters plus zone-plate and electron models)."""

    model: Annotated[str | None, BeforeValidator(_model_name(ILLUMINATION_MODELS))] = None
    """None: a plane wave through ``aperture`` then ``propagation`` (ptypy); 'fzp': a
    zone plate (``fzp``); 'electron': a 4D-STEM probe (``electron``; needs
    ``electron_data``); or a .npy/HDF5 file holding a complex probe (modes allowed),
    relative: next to the recipe, else in the working directory."""
    key: str | None = None
    """Dataset of an HDF5 ``model`` file."""
    photons: PositiveFloat = 1e8
    """Photons (electrons) per exposure, Σ|P|² over all modes."""
    aperture: ApertureParams = ApertureParams()
    propagation: ProbePropagationParams = ProbePropagationParams()
    diversity: DiversityParams = DiversityParams()
    fzp: FZPParams = FZPParams()
    electron: ElectronParams = ElectronParams()


class ProcessParams(ParamsModel):
    """``sample.process``: a real image as a thickness map of a material (ptypy)."""

    offset: tuple[int, int] = (0, 0)
    """Shift (y, x) in pixels of the image centre from the scan centre."""
    zoom: OptionalPair = None
    """Resample the image by this factor (y, x) first; None: as is."""
    formula: str | None = None
    """Chemical formula (e.g. 'Au', 'Si3N4') giving δ with f1 = Z (no tabulated data);
    β is then 0 unless ``ref_index`` is given too (its δ is ignored)."""
    density: PositiveFloat = 1.0
    """Density in g/cm³ (with ``formula``)."""
    thickness: OptionalPositiveFloat = 1e-6
    """Thickness in metres of the image's maximum; None: the image is already in metres."""
    ref_index: tuple[float, float] | None = None
    """Refractive index (δ, β), n = 1 − δ + iβ; needed unless ``formula`` is given."""
    smoothing: float | None = Field(2.0, ge=0)
    """Gaussian smoothing, FWHM in pixels; None or 0: none."""

    @field_validator("ref_index")
    @classmethod
    def _non_negative(cls, value):
        if value is not None and not all(math.isfinite(v) and v >= 0 for v in value):
            raise ValueError(f"must be (delta, beta) with both >= 0, got {short_repr(value)}")
        return value


class SampleParams(ParamsModel):
    """``sample``: the object transmission (ptypy, plus procedural and noise options)."""

    model: Annotated[str | None, BeforeValidator(_model_name(SAMPLE_MODELS))] = "moonflower"
    """'moonflower' (procedural), 'random' (smooth random maps), 'flat'/None (``fill``), or
    an image file (.npy, HDF5 with ``key``, PNG/TIFF, EDF), relative: next to the recipe,
    else in the working directory."""
    key: str | None = None
    """Dataset of an HDF5 image file."""
    fill: ComplexPair = (1.0, 0.0)
    """Transmission outside the image and of a flat sample, (real, imag) or a number."""
    amplitude_range: tuple[float, float] = (0.6, 1.0)
    """Amplitude range of the image/procedural maps (without ``process``)."""
    phase_range: tuple[float, float] = (-1.0, 1.0)
    """Phase range in radians of the image/procedural maps (without ``process``)."""
    feature_size: PositiveFloat = 8.0
    """Feature size (FWHM, pixels) of model 'random'."""
    noise: NoiseSpec = None
    """Random screen multiplied in: (phase_rms rad, mfs px[, modulus_rms, mfs])."""
    process: ProcessParams | None = None
    """Thickness/refractive-index processing of a real image, or None."""
    diversity: DiversityParams = DiversityParams()
    """Object modes (incoherent), as the probe's."""


class XYParams(ParamsModel):
    """``xy``: the true scan trajectory (ptypy, plus PtyRAD's affine and flipT)."""

    model: Literal["round", "raster", "spiral"] | None = "round"
    """'round' (shells), 'raster' (grid), 'spiral' (Fermat); None: ``override`` only."""
    spacing: OptionalPair = (1.5e-6, 1.5e-6)
    """Step in metres (y, x)."""
    steps: Steps = (10, 10)
    """Points per axis (raster) or pattern diameter in steps (round, spiral)."""
    extent: OptionalPair = (15e-6, 15e-6)
    """Box (y, x) in metres: positions outside it are dropped; with steps or spacing None
    it sets that one."""
    offset: SignedPair = (0.0, 0.0)
    """Added to every position, metres."""
    jitter: float | None = Field(None, ge=0)
    """Random error (std, metres) of the true positions themselves (known to the scan)."""
    count: int | None = Field(None, ge=1)
    """Keep the first ``count`` positions."""
    override: PositionsArray = None
    """Explicit (N, 2) true positions in metres; the pattern parameters are ignored."""
    affine: tuple[float, float, float, float] | None = None
    """PtyRAD [scale, asymmetry, rotation°, shear°] applied to the pattern."""
    flipT: tuple[bool, bool, bool] | None = None
    """PtyRAD [flipud, fliplr, transpose] applied after ``affine``."""
