"""The physics of synthetic data: probes, samples, scan patterns and detectors.

Everything here is deterministic given its arguments; random pieces take a
``numpy.random.Generator`` (or an int seed) argument. Lengths are in metres
(ångström only where an electron parameter's name says so).

- :mod:`.probes`: generic probes (:func:`focused_probe`, :func:`aperture_probe`,
  :func:`circular_pupil`, :func:`normalize_photons`).
- :mod:`.xray`: apertures (circ/rect, soft edge, central stop, diffuser), beams
  focused by a lens (:func:`focused_beam`), Fresnel zone plates (:func:`fzp_probe`).
- :mod:`.electron` and :mod:`.aberrations`: 4D-STEM probes from kV,
  convergence angle and aberrations in Krivanek, Haider or alias notation.
- :mod:`.modes`: mixed-state probes (:func:`mixed_state_probe`,
  :func:`orthogonalize_modes`).
- :mod:`.objects`, :mod:`.samples`, :mod:`.materials`: transmission functions
  (procedural, from images, from thickness and refractive index, noise screens).
- :mod:`.patterns` and :mod:`.positions`: scan trajectories in metres and their
  errors and distortions (jitter, drift, scale, PtyRAD affine and flipT).
- :mod:`.detectors`: detector models (PILATUS, CCDs, FRELON).
- :mod:`.config` and :mod:`.build`: ptypy's ``illumination``/``sample``/``xy``
  parameter groups and what they describe (used by SimScan).
- :mod:`.run`: :func:`simulate_recipe`, the ``ptyscan simulate`` command.
"""

from ptyscan.simulate.aberrations import (
    aberration_phase_rad,
    convert_aberrations,
    normalize_aberrations,
)
from ptyscan.simulate.detectors import DETECTORS, DetectorModel, detect, detector_model, gap_mask
from ptyscan.simulate.electron import electron_probe
from ptyscan.simulate.materials import delta_from_formula, refractive_index
from ptyscan.simulate.modes import mixed_state_probe, mode_fractions, orthogonalize_modes
from ptyscan.simulate.objects import moonflower_object, noise_screen
from ptyscan.simulate.patterns import (
    SCAN_MODELS,
    positions_by_model,
    positions_from_array,
    positions_from_pars,
    raster_grid,
    raster_positions,
    round_positions,
    spiral_positions,
)
from ptyscan.simulate.positions import (
    add_jitter,
    affine_matrix,
    apply_affine,
    decompose_affine,
    flip_transpose,
    reported_positions,
)
from ptyscan.simulate.probes import (
    aperture_probe,
    circular_pupil,
    focused_probe,
    normalize_photons,
    smooth_step,
    soft_disc,
)
from ptyscan.simulate.samples import (
    load_image,
    noise_transmission,
    object_from_image,
    thickness_from_image,
    transmission_from_thickness,
)
from ptyscan.simulate.xray import aperture, focused_beam, fzp_focal_length_m, fzp_probe

__all__ = [
    "DETECTORS",
    "SCAN_MODELS",
    "DetectorModel",
    "aberration_phase_rad",
    "add_jitter",
    "affine_matrix",
    "aperture",
    "aperture_probe",
    "apply_affine",
    "circular_pupil",
    "convert_aberrations",
    "decompose_affine",
    "delta_from_formula",
    "detect",
    "detector_model",
    "electron_probe",
    "flip_transpose",
    "focused_beam",
    "focused_probe",
    "fzp_focal_length_m",
    "fzp_probe",
    "gap_mask",
    "load_image",
    "mixed_state_probe",
    "mode_fractions",
    "moonflower_object",
    "noise_screen",
    "noise_transmission",
    "normalize_aberrations",
    "normalize_photons",
    "object_from_image",
    "orthogonalize_modes",
    "positions_by_model",
    "positions_from_array",
    "positions_from_pars",
    "raster_grid",
    "raster_positions",
    "refractive_index",
    "reported_positions",
    "round_positions",
    "smooth_step",
    "soft_disc",
    "spiral_positions",
    "thickness_from_image",
    "transmission_from_thickness",
]
