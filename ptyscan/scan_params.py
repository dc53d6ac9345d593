"""``PtyScanParams``: the parameters every scan class shares (ptypy names and defaults)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from .params import Pair, ParamsModel, PositionsArray, PositiveFloat, Shape2, short_repr

__all__ = ["CENTER_NAMES", "PtyScanParams", "SeededScanParams", "SyntheticScanParams"]

CENTER_NAMES = ("fftshift", "geometric", "fft")


def _orientation(value):
    """None, int 0..7 (4 transpose, 2 flipud, 1 fliplr) or 3 bools → None or int."""
    expected = (
        "must be None, an int 0-7 (4 = transpose, 2 = flipud, 1 = fliplr, summed) "
        "or 3 bools [transpose, flipud, fliplr]"
    )
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 7:
        return value
    if isinstance(value, list | tuple) and len(value) == 3:
        if all(isinstance(v, bool) for v in value):
            return 4 * value[0] + 2 * value[1] + value[2]
    raise ValueError(f"{expected}, got {short_repr(value)}")


def _center(value):
    expected = (
        f"must be None, one of {', '.join(map(repr, CENTER_NAMES))} or a pair (cy, cx) "
        "of pixel coordinates"
    )
    if value is None or value in CENTER_NAMES:
        return value
    if isinstance(value, list | tuple) and len(value) == 2:
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return (float(value[0]), float(value[1]))
    hint = ""
    if isinstance(value, str):
        from .params import closest_name

        near = closest_name(value, CENTER_NAMES)
        hint = f" (did you mean '{near}'?)" if near else ""
    raise ValueError(f"{expected}, got {short_repr(value)}{hint}")


def _rebin(value):
    """None (ptypy's default) → 1."""
    return 1 if value is None else value


Orientation = Annotated[int | None, BeforeValidator(_orientation)]
Center = Annotated[str | tuple[float, float] | None, BeforeValidator(_center)]


_SYNTHETIC_ONLY = (
    "only scans that simulate their frames have it (MoonFlowerScan, QuickScan, SimScan, "
    "ptypy loaders, plugins with Params from SyntheticScanParams); remove it for measured data"
)


class PtyScanParams(ParamsModel):
    """Parameters of :class:`ptyscan.PtyScan` (ptypy's names, defaults and units).

    Measured data have no ``add_poisson_noise`` or ``seed``: those are in
    :class:`SyntheticScanParams` (and ``seed`` alone in :class:`SeededScanParams`).
    """

    KEY_HINTS: ClassVar[dict[str, str]] = {
        "add_poisson_noise": f"add_poisson_noise: {_SYNTHETIC_ONLY}",
        "seed": f"seed: {_SYNTHETIC_ONLY}",
    }

    name: str = "PtyScan"
    """Scan class name, as given to ``ptyscan.scans.get_scan``."""
    dfile: str | None = None
    """Path of the prepared-data file (``.ptyd``) written when ``save`` is set."""
    chunk_format: str = ".chunk%02d"
    """printf-style suffix of chunk part files in ``save='link'`` mode."""
    save: Literal["append", "link"] | None = None
    """Save prepared chunks to ``dfile``: None (don't), 'append' (one file) or 'link'
    (one part file per chunk, linked from ``dfile``)."""
    compression: Literal["gzip", "lzf"] | None = "gzip"
    """HDF5 compression of saved data and weights: 'gzip' (ptypy's), 'lzf' (faster) or None."""
    auto_center: bool | None = None
    """True: centre = centre of mass of the mean masked frame (overrides ``center``);
    None: only when ``center`` is None; False: never."""
    load_parallel: Literal["data", "common", "all"] | None = "data"
    """MPI: 'data' every rank loads its frames; 'common' every rank runs load_positions,
    load_weight and load_common; 'all' both; None rank 0 loads all and distributes."""
    shape: Shape2 = (256, 256)
    """Frame shape (ny, nx) in raw pixels cropped/padded around the centre (before rebin);
    an int n means (n, n)."""
    rebin: Annotated[int, BeforeValidator(_rebin)] = Field(1, ge=1, le=32)
    """Sum rebin×rebin pixel blocks (1..32); must divide ``shape``; None means 1 (ptypy)."""
    orientation: Orientation = None
    """Detector orientation: None, int 0-7 (4 = transpose, 2 = flipud, 1 = fliplr) or
    [transpose, flipud, fliplr]; applied in that order after cropping."""
    center: Center = "fftshift"
    """Optical axis in raw pixels: 'fftshift' (n//2), 'geometric' (n/2-0.5), 'fft' (0),
    a pair (cy, cx), or None (find it, see auto_center)."""
    min_frames: int = Field(1, ge=1)
    """Fewest new frames worth a chunk before the end of the scan (else WAIT)."""
    positions_theory: PositionsArray = None
    """(N, 2) positions in metres (slow, fast) that replace loaded ones and set num_frames."""
    num_frames: int | None = Field(None, ge=1)
    """Frames in the scan; None: from the positions. More than there are positions is
    lowered to their count."""
    label: str | None = None
    """Free label stored in meta."""
    experimentID: str | None = None
    """Experiment or proposal identifier."""
    version: float = 0.1
    """.ptyd layout version (ptypy's is 0.1)."""
    psize: Pair = (172e-6, 172e-6)
    """Detector pixel size in metres, one number or (py, px)."""
    distance: PositiveFloat = 7.19
    """Sample-detector distance in metres."""
    energy: PositiveFloat = 7.2
    """Photon energy in keV."""
    propagation: Literal["farfield", "nearfield"] = "farfield"
    """Propagation regime recorded in meta."""

    @field_validator("rebin")
    @classmethod
    def _rebin_divides_shape(cls, value, info: ValidationInfo):
        shape = info.data.get("shape")
        if shape and any(s % value for s in shape):
            raise ValueError(
                f"must divide both sides of shape {tuple(shape)}, got {value}; "
                "choose another rebin or shape"
            )
        return value

    @field_validator("save")
    @classmethod
    def _save_needs_dfile(cls, value, info: ValidationInfo):
        if value is not None and not info.data.get("dfile"):
            raise ValueError(f"needs dfile (the .ptyd path) to be set, got save={value!r}")
        return value

    @field_validator("chunk_format")
    @classmethod
    def _chunk_format_ok(cls, value):
        try:
            value % 0
        except (TypeError, ValueError):
            raise ValueError(
                f"must contain one integer placeholder such as '.chunk%02d', got {value!r}"
            ) from None
        return value


class SeededScanParams(PtyScanParams):
    """:class:`PtyScanParams` plus ``seed``, for scans that draw random numbers."""

    seed: int | None = Field(None, ge=0)
    """Random seed for anything random (noise); None draws one and records it in ``info``."""


class SyntheticScanParams(SeededScanParams):
    """Parameters of scans that simulate their frames: ``seed`` and ``add_poisson_noise``."""

    add_poisson_noise: bool = False
    """Add Poisson noise to simulated data (synthetic scans)."""
