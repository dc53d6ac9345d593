"""The engines' parameter models: what an ``engines:`` item of a recipe may hold.

:class:`EngineParams` are the keys every engine shares (ptypy's names and
defaults where ptypy has them); each engine's model adds its own. The recipe
validates every ``engines:`` item against the model of the engine it names
(``ptyscan schema DM`` lists them).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..params import InputPath, ParamsModel
from .ptypy_keys import ptypy_only_keys

__all__ = ["DMParams", "EngineParams", "MLParams", "PositionRefinementParams"]


def _optional_array(value):
    """None, or a (sy, sx) / (K, sy, sx) numeric array as complex128."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"must be a numeric (sy, sx) or (K, sy, sx) array, got shape {arr.shape}")
    return arr.astype(np.complex128)


def _position_refinement(value):
    """ptypy's switch: False/None off, True the defaults, a dict (or model) the keys."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    return value


class PositionRefinementParams(ParamsModel):
    """ptypy's ``position_refinement`` block (names and defaults of ptypy 0.9), plus
    ``method: gradient`` and its ``step``; see :mod:`ptyscan.engines.posref`."""

    method: Annotated[
        Literal["annealing", "gridsearch", "gradient"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = "annealing"
    """'annealing' (ptypy's 'Annealing', Maiden et al. 2012): try ``nshifts`` random moves
    per view, keep the best if it lowers the view's error. 'gridsearch' (ptypy's
    'GridSearch'): try every whole-pixel move within ``amplitude`` (and ``max_shift``),
    keep the best if it lowers the view's error. 'gradient': a Gauss-Newton step
    of each view's shift on the amplitude ('fourier') error through the object's spatial
    gradient."""
    start: int | None = Field(None, ge=0)
    """First iteration (of this engine) that refines; None: 0."""
    stop: int | None = Field(None, ge=0)
    """Iteration (of this engine) at which refinement stops (not included); None: ``numiter``."""
    interval: int = Field(1, ge=1)
    """Refine every ``interval`` iterations."""
    nshifts: int = Field(4, ge=1)
    """Annealing: random moves tried per view and refinement (one per quadrant in turn)."""
    amplitude: float = Field(1e-6, gt=0)
    """Metres. Annealing: largest move per axis of a trial; grid search: half-width of
    the grid (rounded up to whole pixels; no move while at most one pixel); gradient:
    largest step length per refinement."""
    amplitude_decay: bool = True
    """Scale ``amplitude`` by (stop - iteration) / (stop - start) at each refinement."""
    max_shift: float = Field(2e-6, gt=0)
    """Metres: largest distance of a view from its initial position."""
    metric: Literal["fourier", "photon"] = "fourier"
    """Annealing's and grid search's error of a view: 'fourier' (masked mean (|F| - sqrt(I))²) or 'photon'
    (Σ mask (|F|² - I)² / (I + 1) / pixels). The gradient method uses 'fourier'."""
    record: bool = False
    """Accepted for ptypy recipes; refined positions are always kept (positions/final)."""
    step: float = Field(0.5, gt=0, le=1)
    """Gradient: fraction of the Gauss-Newton shift applied per refinement."""
    seed: int = 0
    """Seed of the annealing trials (drawn from (seed, iteration, frame index), so runs
    repeat on any number of ranks)."""

    @field_validator("metric")
    @classmethod
    def _gradient_metric(cls, value, info):
        if value == "photon" and info.data.get("method") == "gradient":
            raise ValueError(
                "the gradient method refines on the 'fourier' metric; use "
                "method 'annealing' or 'gridsearch' for 'photon'"
            )
        return value


class EngineParams(ParamsModel):
    """Parameters every engine shares (ptypy's names and defaults where ptypy has them)."""

    MULTISLICE: ClassVar[bool] = False
    """Whether the engine models ``object_slices`` > 1."""

    name: str = "Engine"
    """Engine name, as registered in the ``ptyscan.engines`` entry-point group."""
    numiter: int = Field(20, ge=0)
    """Total number of iterations."""
    numiter_contiguous: int = Field(1, ge=1)
    """ptypy's iterations between pauses for plots and autosaves: accepted, no effect on
    the result (``run.numiter_contiguous`` sets the streaming rounds)."""
    probe_support: float | None = Field(0.7, gt=0)
    """Probe support: a centred disc of this fraction of the frame area (π r² = f·sy·sx);
    None for no support."""
    probe_update_start: int = Field(2, ge=0)
    """Iterations (of this engine) before the probe is updated."""
    precision: Literal["single", "double"] = "single"
    """complex64/float32 ('single') or complex128/float64 working arrays (used when the
    engine makes its own backend)."""
    block_size: int | None = Field(None, ge=1)
    """Views processed together (bounds memory); None: about 1 MB of complex waves per
    FFT thread per block on NumPy (cache-sized), 512 MB on CuPy."""
    data_residency: Literal["auto", "device", "host"] = "auto"
    """Where each chunk's measured data, masks and (DM) exit waves live. 'device': on the
    device, moved there once per chunk. 'host': in host memory (page-locked on CuPy);
    every pass copies each block of ``block_size`` views to the device (the next block's
    copy overlapping the current block's work, on a second CUDA stream) and writes back
    what it changes; per-view arrays the engine derives (amplitudes, weights, far fields)
    are recomputed per block, so the device holds only a few blocks and a scan larger
    than its memory runs. 'auto': 'device' for a chunk while the arrays the engine keeps
    per view, for all chunks so far, fit in half the free device memory, else 'host' for
    that chunk; always 'device' on NumPy. The results do not depend on it (DM: to
    rounding, as it recomputes the far fields of streamed exit waves; ML: exactly)."""
    probe_model: Annotated[
        Literal["aperture", "focused"],
        BeforeValidator(lambda v: "focused" if v == "focussed" else v),
    ] = "aperture"
    """Initial probe when ``probe`` is None: 'aperture' (flat disc) or 'focused'
    (back-propagated square root of the mean frame). Scaled to the mean frame power."""
    probe_size: float = Field(0.5, gt=0, le=1)
    """'aperture' disc diameter as a fraction of the frame side."""
    probe_defocus_m: float = 0.0
    """'focused', far field: distance in metres from the focus to the sample (negative:
    upstream), applied as the Fresnel phase -π λ Δz |f|² on the mean frame's amplitude."""
    probe: Any = Field(None, exclude=True)
    """Initial probe array (sy, sx) or (K, sy, sx), e.g. from an earlier result; kept at
    its own power. None: from ``probe_model``. (Python only: left out of dumped recipes.)"""
    probe_modes: int = Field(1, ge=1)
    """K, incoherent probe modes (extra modes start as orthogonal perturbations)."""
    probe_mode_powers: list[float] | None = None
    """Relative power of each probe mode (K numbers, normalised); None: 5 % per extra mode."""
    start_from: InputPath = None
    """A result to start from (ours, ptypy's ``save_run`` .ptyr or PtyRAD's model .hdf5,
    told apart by content): its probe (unless ``probe`` is given) and, where it overlaps
    this scan, its object (same sample pixel size required)."""
    object_modes: int = Field(1, ge=1)
    """M, incoherent object modes."""
    object_margin_px: int = Field(4, ge=0)
    """Object pixels added around the scanned area on each side."""
    subpixel: Literal["none", "linear", "fourier"] = "none"
    """Views at the exact positions: 'none' rounds each position to the nearest object
    pixel; 'linear' keeps the fraction and interpolates the object view bilinearly (the
    adjoints scatter with the same weights); 'fourier' moves the view by the fraction with
    a Fourier phase ramp (exact for a band-limited object; circular within the view, so
    for probes that vanish at the frame edge, as electron probes do; ML and ePIE only).
    At integer
    positions all give the same. The engine that starts a reconstruction sets it; engines
    continuing from its state follow (giving another value is an error)."""

    object_slices: int = Field(1, ge=1)
    """S, slices of a multislice object (PtyRAD's ``obj_Nlayer``): the probe meets slice 1,
    the wave propagates ``slice_thickness`` (angular spectrum) to each next slice, the
    last slice's exit wave goes to the detector (:mod:`~ptyscan.engines.multislice`).
    1: the thin-object model. ML only: DM, RAAR and ePIE refuse more than 1. An engine
    continuing from a state follows its slices; ML may split a one-slice state (slice
    1 keeps the object, the others start at ones)."""
    slice_thickness: float | None = Field(None, gt=0)
    """Metres between consecutive slices (PtyRAD's ``obj_slice_thickness``, there in Å);
    required when ``object_slices`` > 1."""

    position_refinement: Annotated[
        PositionRefinementParams | None, BeforeValidator(_position_refinement)
    ] = None
    """Refine the scan positions (:mod:`~ptyscan.engines.posref`): None or False off, True
    ptypy's defaults, or a block of :class:`PositionRefinementParams` keys. The refined
    positions stay in the state for later iterations and engines and are written as
    ``positions/final``."""

    @field_validator("probe", mode="before")
    @classmethod
    def _probe_array(cls, value):
        return _optional_array(value)

    @model_validator(mode="after")
    def _slices(self):
        if self.object_slices > 1:
            if not self.MULTISLICE:
                raise ValueError(
                    f"object_slices: {self.object_slices}: {self.name} models one slice "
                    "(DM, RAAR and ePIE refuse multislice objects); use ML for "
                    "object_slices > 1, or 1"
                )
            if self.slice_thickness is None:
                raise ValueError(
                    f"slice_thickness: None with object_slices {self.object_slices}; "
                    "expected the distance between slices in metres, e.g. 1e-9"
                )
            pr = self.position_refinement
            if pr is not None and pr.method == "gradient":
                raise ValueError(
                    "position_refinement.method: 'gradient' with object_slices > 1; the "
                    "gradient method models one slice: use 'annealing' or 'gridsearch'"
                )
        return self


class DMParams(EngineParams, ptypy_only_keys("DM")):
    """Parameters of :class:`~ptyscan.engines.dm.DM` (ptypy 0.9 names and defaults)."""

    name: str = "DM"
    alpha: float = Field(1.0, ge=0)
    """Mix between Difference Map (1) and Alternating Projections (0)."""
    update_object_first: bool = True
    """Update the object before the probe in the overlap loop."""
    overlap_converge_factor: float = Field(0.05, ge=0)
    """Leave the overlap loop once the relative probe change is below this."""
    overlap_max_iterations: int = Field(10, ge=1)
    """Most object/probe rounds per overlap update."""
    probe_inertia: float = Field(1e-9, ge=0)
    """Weight of the current probe in its update (times frames × object modes)."""
    object_inertia: float = Field(1e-4, ge=0)
    """Weight of the current object in its update (times the mean photons per pixel)."""
    fourier_relax_factor: float = Field(0.05, ge=0)
    """Power bound 0.25 × factor² × (maximum frame photons / pixels); 0: strict projection."""
    obj_smooth_std: float | None = Field(None, gt=0)
    """Gaussian smoothing (sigma, object pixels) of the inertia term; None: off."""
    clip_object: tuple[float, float] | None = None
    """Clip the object amplitude into [min, max] after each update; None: off."""
    compute_log_likelihood: bool = True
    """Compute the 'photons' error: no extra FFT (the update computes fw(P·O) anyway),
    one pass over the model intensities and a stored 1/(I+1) per pixel."""

    @field_validator("subpixel")
    @classmethod
    def _no_fourier(cls, value):
        if value == "fourier":
            raise ValueError(
                "'fourier' is for ML (and ePIE): DM and RAAR divide by the bilinear spread of "
                "Σ|P|², which Fourier-moved waves do not match (they do not converge); use "
                "'linear' here, or start with ML"
            )
        return value

    @field_validator("clip_object")
    @classmethod
    def _ordered(cls, value):
        if value is not None and not (0 <= value[0] <= value[1]):
            raise ValueError(f"must be (min, max) with 0 <= min <= max, got {value}")
        return value


class MLParams(EngineParams, ptypy_only_keys("ML")):
    """Parameters of :class:`~ptyscan.engines.ml.ML` (ptypy 0.9 names and defaults)."""

    MULTISLICE: ClassVar[bool] = True

    name: str = "ML"
    ML_type: Annotated[
        Literal["gaussian", "poisson", "euclid"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = "gaussian"
    """Likelihood model: 'gaussian', 'poisson' or 'euclid' (any case, as in ptypy)."""
    floating_intensities: bool = False
    """Fit one intensity factor per frame (incident-flux fluctuations)."""
    intensity_renormalization: float = Field(1.0, gt=0)
    """Factor turning the intensities into Poisson counts."""
    reg_del2: bool = False
    """Use the squared-gradient (Gaussian smoothness) prior on the object."""
    reg_del2_amplitude: float = Field(0.01, ge=0)
    """Amplitude of that prior (rescaled as ptypy: × frames·pixels·photons / (8 · object pixels²))."""
    smooth_gradient: float = Field(0.0, ge=0)
    """Sigma (object pixels) of the Gaussian smoothing preconditioner; 0: off."""
    smooth_gradient_decay: float = Field(0.0, ge=0, lt=1)
    """Sigma shrinks by (1 - decay) every iteration."""
    scale_precond: bool = False
    """Balance probe and object gradients (faster for weakly scattering samples)."""
    scale_probe_object: float = Field(1.0, gt=0)
    """Relative scale of probe to object steps."""
    poly_line_coeffs: Literal["quadratic", "all"] = "quadratic"
    """Line search polynomial: 'quadratic' (Newton step) or 'all' (see the module notes)."""
    cache_farfield: bool = True
    """Keep each iteration's far fields for the line search (one FFT less per view and
    mode, memory of two more exit-wave arrays). Device-resident views only: streamed
    ones ('host' residency) recompute them, which costs less than streaming them."""

    @model_validator(mode="after")
    def _multislice_line(self):
        if self.object_slices > 1 and self.poly_line_coeffs == "all":
            raise ValueError(
                "poly_line_coeffs: 'all' with object_slices > 1; the exact line polynomial "
                "holds for one slice: use 'quadratic'"
            )
        return self


# --- RAAR and ePIE -----------------------------------------------------------------------


class RAARParams(DMParams):
    """Parameters of :class:`~ptyscan.engines.raar.RAAR`: DM's, with ``beta`` for ``alpha``
    (ptypy 0.9 names and defaults)."""

    name: str = "RAAR"
    beta: float = Field(0.75, ge=0)
    """RAAR relaxation (Luke 2005): 1 is the Difference Map (DM with alpha = 1), smaller
    values lean towards the projected iterate."""
    alpha: float | None = Field(None, exclude=True)
    """Not a RAAR parameter (DM's mix of DM and alternating projections); use ``beta``."""

    @field_validator("alpha")
    @classmethod
    def _no_alpha(cls, value):
        if value is not None:
            raise ValueError("RAAR has no alpha (DM's mix of DM and AP); its relaxation is beta")
        return value


class EPIEParams(EngineParams):
    """Parameters of :class:`~ptyscan.engines.epie.EPIE` (ptypy 0.9 names and defaults,
    plus ``rpie_alpha``, ``random_order`` and ``seed``)."""

    name: str = "EPIE"
    alpha: float = Field(1.0, ge=0)
    """Step size of the object update."""
    beta: float = Field(1.0, ge=0)
    """Step size of the probe update."""
    object_norm_is_global: bool = False
    """Normalise the probe update by the maximum of Σ_m |O_m|² over the whole object
    (ptypy's choice for speed on GPUs) instead of over the view."""
    rpie_alpha: float = Field(1.0, gt=0, le=1)
    """rPIE (Maiden, Johnson & Li, Optica 4, 736 (2017)): the updates divide by
    ``(1 - rpie_alpha) |P|² + rpie_alpha max |P|²`` (and likewise |O|² for the probe);
    1 is ePIE."""
    random_order: bool = True
    """Visit the views in a new random order every iteration (else by frame index)."""
    seed: int = 0
    """Seed of that order (drawn from (seed, iteration), so runs repeat on any number of
    ranks)."""
    clip_object: tuple[float, float] | None = None
    """Clip the object amplitude into [min, max] after each iteration; None: off."""
    compute_log_likelihood: bool = True
    """Compute the 'photons' error (from the far field each view update computes anyway)."""
    synchronization: int = Field(1, ge=1, le=1)
    """ptypy's period of object sharing between ranks. Here the ranks run the serial
    algorithm together and share after every run of views, so only 1 is accepted."""
    redistribute_data: bool = True
    """Accepted for ptypy recipes; no effect: frames stay on the rank that prepared them."""
    average_probe: bool = False
    """Accepted for ptypy recipes; no effect: the probe is the same on every rank."""

    @field_validator("clip_object")
    @classmethod
    def _ordered(cls, value):
        return DMParams._ordered(value)


__all__ += ["EPIEParams", "RAARParams"]
