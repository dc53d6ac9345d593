"""The physics of synthetic data: probes, objects and scan patterns.

Everything here is deterministic given its arguments; random pieces take a
``numpy.random.Generator`` (or an int seed) argument.

- :mod:`ptyscan.simulate.probes`: sample-plane illuminations
  (:func:`focused_probe`, :func:`aperture_probe`, :func:`circular_pupil`,
  :func:`normalize_photons`).
- :mod:`ptyscan.simulate.objects`: transmission functions
  (:func:`moonflower_object`, :func:`noise_screen`).
- :mod:`ptyscan.simulate.patterns`: scan positions in metres
  (:func:`round_positions`, :func:`raster_positions`, :func:`positions_by_model`).
"""

from ptyscan.simulate.objects import moonflower_object, noise_screen
from ptyscan.simulate.patterns import (
    SCAN_MODELS,
    positions_by_model,
    raster_positions,
    round_positions,
)
from ptyscan.simulate.probes import (
    aperture_probe,
    circular_pupil,
    focused_probe,
    normalize_photons,
    smooth_step,
    soft_disc,
)

__all__ = [
    "SCAN_MODELS",
    "aperture_probe",
    "circular_pupil",
    "focused_probe",
    "moonflower_object",
    "noise_screen",
    "normalize_photons",
    "positions_by_model",
    "raster_positions",
    "round_positions",
    "smooth_step",
    "soft_disc",
]
