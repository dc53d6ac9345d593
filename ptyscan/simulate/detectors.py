"""Detector models: quantum efficiency, noise, saturation, digitisation and module gaps.

:func:`detect` turns noise-free intensities (photons per pixel) into what a
detector records, in the order of ptypy's ``Detector.filter``:

1. scintillator (optional, FRELON): Poisson X-ray absorption, ``sci_qe``
   optical photons each, Gaussian blur ``sci_psf`` (pixels);
2. Poisson counting of ``qe * I`` (``poisson=False`` keeps the mean);
3. Gaussian read noise of ``read_noise`` counts rms (ptypy's ``shot_noise``;
   zero mean here, ptypy adds its absolute value);
4. full well: counts ``>= full_well`` are clipped and masked; negatives become 0;
5. digitisation ``round(counts / adu)``, clipped (and masked) at the dtype's maximum;
6. module gaps: zero and masked.

The module layout (``modules`` of ``module_shape`` pixels separated by
``gaps``) is cut out around ``center`` (a detector pixel, default the middle
of the whole detector) to the frame shape, frame centre ``(ny // 2, nx // 2)``
on ``center``; pixels off the detector are masked too. PILATUS modules are
195 x 487 pixels with gaps of 17 (between module rows) and 7 pixels, as
Dectris specifies (300K: 3 x 1 modules, 619 x 487; 1M: 5 x 2; 2M: 8 x 3; 6M:
12 x 5, 2527 x 2463); ptypy's templates use 197 x 486.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ptyscan.errors import ParameterError

__all__ = ["DETECTORS", "DetectorModel", "detect", "detector_model", "gap_mask"]


@dataclass(frozen=True)
class DetectorModel:
    """A detector's response (see the module notes for the order of the steps).

    Attributes
    ----------
    name : str
    qe : float
        Quantum efficiency: counts per incident photon, in (0, 1] usually.
    poisson : bool
        Draw Poisson counts (False: the mean, for noise-free tests).
    read_noise : float
        Gaussian read noise, counts rms, >= 0.
    adu : float
        Counts per digital unit (ADU), > 0.
    full_well : float
        Pixel capacity in counts; pixels reaching it are clipped and masked.
    dtype : str
        Unsigned integer type of the recorded frames ('uint16', 'uint32').
    module_shape : (int, int) or None
        Pixels of one module; None: no module layout (no gaps, no edges).
    modules : (int, int)
        Modules along y and x.
    gaps : (int, int)
        Gap in pixels between module rows and between module columns.
    center : (float, float) or None
        Detector pixel under the frame centre; None: the detector's middle.
    psize : float
        Pixel size in metres (documentation; the scan's ``psize`` rules).
    sci_qe : float or None
        Scintillator optical photons per absorbed X-ray (None: no scintillator).
    sci_psf : float
        Scintillator blur, Gaussian sigma in pixels.
    """

    name: str = "custom"
    qe: float = 1.0
    poisson: bool = True
    read_noise: float = 0.0
    adu: float = 1.0
    full_well: float = 2.0**16 - 1
    dtype: str = "uint16"
    module_shape: tuple[int, int] | None = None
    modules: tuple[int, int] = (1, 1)
    gaps: tuple[int, int] = (0, 0)
    center: tuple[float, float] | None = None
    psize: float = 10e-6
    sci_qe: float | None = None
    sci_psf: float = 0.0

    def __post_init__(self):
        problems = []
        if not self.qe > 0:
            problems.append(f"qe: got {self.qe!r}; expected > 0")
        if not self.read_noise >= 0:
            problems.append(f"read_noise: got {self.read_noise!r}; expected >= 0")
        if not self.adu > 0:
            problems.append(f"adu: got {self.adu!r}; expected > 0")
        if not self.full_well > 0:
            problems.append(f"full_well: got {self.full_well!r}; expected > 0")
        if self.dtype not in ("uint8", "uint16", "uint32", "uint64", "float32"):
            problems.append(f"dtype: got {self.dtype!r}; expected 'uint16', 'uint32', ...")
        if self.sci_qe is not None and not self.sci_qe > 0:
            problems.append(f"sci_qe: got {self.sci_qe!r}; expected > 0 or None")
        if problems:
            raise ParameterError(f"detector {self.name!r}: " + "; ".join(problems) + ".")

    @property
    def shape(self):
        """Whole-detector shape ``(H, W)`` in pixels, or None without a module layout."""
        if self.module_shape is None:
            return None
        return tuple(
            int(m * s + (m - 1) * g)
            for m, s, g in zip(self.modules, self.module_shape, self.gaps, strict=True)
        )

    def replace(self, **changes):
        """A copy with some attributes changed (validated)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ParameterError(
                f"detector: unknown attribute(s) {unknown}; valid: "
                f"{', '.join(f.name for f in dataclasses.fields(self))}."
            )
        for key in ("module_shape", "modules", "gaps", "center"):
            if changes.get(key) is not None:
                changes[key] = tuple(changes[key])
        return dataclasses.replace(self, **changes)


_PILATUS = {
    "qe": 1.0,
    "read_noise": 0.0,
    "adu": 1.0,
    "full_well": float(2**20),
    "dtype": "uint32",
    "module_shape": (195, 487),
    "gaps": (17, 7),
    "psize": 172e-6,
}

DETECTORS = {
    "GenericCCD16bit": DetectorModel(name="GenericCCD16bit"),
    "GenericCCD32bit": DetectorModel(
        name="GenericCCD32bit", full_well=2.0**32 - 1, dtype="uint32"
    ),
    "FLI_PL1001": DetectorModel(
        name="FLI_PL1001", full_well=500000.0, read_noise=9.0, adu=10.0, psize=24e-6
    ),
    "FRELON_TAPER": DetectorModel(
        name="FRELON_TAPER",
        full_well=550000.0,
        read_noise=15.0,
        adu=9.0,
        psize=51e-6,
        qe=0.6,
        sci_qe=10.0,
        sci_psf=1.2,
    ),
    "PILATUS_300K": DetectorModel(name="PILATUS_300K", modules=(3, 1), **_PILATUS),
    "PILATUS_1M": DetectorModel(name="PILATUS_1M", modules=(5, 2), **_PILATUS),
    "PILATUS_2M": DetectorModel(name="PILATUS_2M", modules=(8, 3), **_PILATUS),
    "PILATUS_6M": DetectorModel(name="PILATUS_6M", modules=(12, 5), **_PILATUS),
}
"""Named detector models (ptypy's templates; PILATUS geometry from Dectris)."""


def detector_model(spec):
    """A :class:`DetectorModel` from a name, a mapping, a model or None.

    Parameters
    ----------
    spec : str, mapping, DetectorModel or None
        A name of :data:`DETECTORS`; a mapping with an optional ``name`` (the
        template, default 'GenericCCD16bit') and attributes overriding it; an
        empty mapping or empty string for the generic 16-bit CCD; None for no
        detector (returns None).

    Returns
    -------
    DetectorModel or None
    """
    if spec is None or isinstance(spec, DetectorModel):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec} if spec else {}
    if not hasattr(spec, "items"):
        raise ParameterError(f"detector: got {spec!r}; expected a name, a mapping or None.")
    changes = dict(spec)
    name = changes.pop("name", None) or "GenericCCD16bit"
    if name not in DETECTORS:
        from ptyscan.params import closest_name

        near = closest_name(name, DETECTORS)
        hint = f" (did you mean '{near}'?)" if near else ""
        raise ParameterError(
            f"detector: unknown model {name!r}{hint}; available: {', '.join(DETECTORS)}."
        )
    return DETECTORS[name].replace(**changes) if changes else DETECTORS[name]


def gap_mask(model, shape):
    """Valid-pixel mask of a frame of ``shape`` cut from the detector (see module notes).

    Returns
    -------
    (ny, nx) ndarray of bool
        True on a sensitive pixel, False in gaps and off the detector.
    """
    ny, nx = shape
    layout = model.shape
    if layout is None:
        return np.ones((ny, nx), dtype=bool)
    axes = []
    for axis, (n, size, gap) in enumerate(
        zip((ny, nx), model.module_shape, model.gaps, strict=True)
    ):
        centre = layout[axis] // 2 if model.center is None else model.center[axis]
        pixel = np.arange(n) - n // 2 + round(float(centre))
        within = pixel % (size + gap) < size
        axes.append((pixel >= 0) & (pixel < layout[axis]) & within)
    return axes[0][:, None] & axes[1][None, :]


def detect(intensity, model, *, rng, mask=None):
    """Record one frame with a detector model.

    Parameters
    ----------
    intensity : (ny, nx) array_like of float
        Noise-free photons per pixel, >= 0.
    model : DetectorModel
    rng : numpy.random.Generator
        Random source for this frame (draw order: scintillator, Poisson, read noise).
    mask : (ny, nx) array_like of bool, optional
        The gap mask (computed with :func:`gap_mask` when not given).

    Returns
    -------
    frame : (ny, nx) ndarray of ``model.dtype``
        Recorded digital units; 0 in gaps.
    valid : (ny, nx) ndarray of bool
        False in gaps, off the detector and where the pixel saturated.
    """
    from scipy.ndimage import gaussian_filter

    photons = np.abs(np.asarray(intensity, dtype=np.float64))
    valid = gap_mask(model, photons.shape) if mask is None else np.array(mask, dtype=bool)
    if model.sci_qe is not None:
        absorbed = rng.poisson(photons).astype(np.float64) if model.poisson else photons
        photons = model.sci_qe * absorbed
        if model.sci_psf > 0:
            photons = gaussian_filter(photons, model.sci_psf)
    mean = photons * model.qe
    counts = rng.poisson(mean).astype(np.float64) if model.poisson else mean
    if model.read_noise > 0:
        counts += rng.normal(0.0, model.read_noise, counts.shape)
    saturated = counts >= model.full_well
    np.clip(counts, 0.0, model.full_well, out=counts)
    units = np.rint(counts / model.adu)
    if model.dtype != "float32":
        top = float(np.iinfo(model.dtype).max)
        saturated |= units >= top
        np.minimum(units, top, out=units)
    units[~valid] = 0
    return units.astype(model.dtype), valid & ~saturated
