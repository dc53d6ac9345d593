"""Probe, object and trajectory from the parameter groups of :mod:`.config`.

The steps follow ptypy's ``illumination``, ``sample`` and ``xy`` handling
(model, then aperture, propagation, photons, diversity for the probe; model,
zoom, smoothing, thickness/refractive index, placement, diversity for the
object), with the physics of the other ``simulate`` modules. Each builder
takes its own random generator, so its result depends only on the seed.
"""

from __future__ import annotations

import logging

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.propagation import NearField
from ptyscan.simulate.electron import electron_probe
from ptyscan.simulate.materials import refractive_index
from ptyscan.simulate.modes import mixed_state_probe
from ptyscan.simulate.objects import moonflower_object, noise_screen
from ptyscan.simulate.patterns import positions_from_pars
from ptyscan.simulate.positions import add_jitter, apply_affine, flip_transpose
from ptyscan.simulate.probes import normalize_photons
from ptyscan.simulate.samples import (
    FWHM_PER_SIGMA,
    load_image,
    noise_transmission,
    noise_transmission_kwargs,
    object_from_image,
    place_on_canvas,
    smooth,
    thickness_from_image,
    transmission_from_thickness,
    zoom,
)
from ptyscan.simulate.xray import aperture, focused_beam, fzp_probe

__all__ = ["build_object", "build_positions", "build_probe"]

log = logging.getLogger(__name__)


def _load_array(path, key, what):
    if str(path).lower().endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except OSError as exc:
            raise ParameterError(f"{what}: cannot read {path!r}: {exc}") from None
    return load_image(path, key=key)


def _with_modes(field, diversity, rng):
    n_modes = diversity.count()
    if n_modes == 1:
        return field[None] if field.ndim == 2 else field
    return mixed_state_probe(
        field,
        n_modes=n_modes,
        powers=diversity.power,
        relative_to="main",
        method=diversity.method,
        noise=diversity.noise,
        shift_px=diversity.shift,
        rng=rng,
    )


def build_probe(pars, *, shape, sample_pixel_m, wavelength_m, energy_kev, electron, rng):
    """The probe modes described by ``illumination`` parameters.

    Parameters
    ----------
    pars : IlluminationParams
    shape : (int, int)
        Probe shape in sample pixels.
    sample_pixel_m : (float, float)
        Sample-plane pixel size in metres.
    wavelength_m : float
        Wavelength in metres.
    energy_kev : float
        Beam energy in keV (photon energy, or electron kinetic energy when ``electron``).
    electron : bool
        The beam is an electron beam (needed by ``model: electron``).
    rng : numpy.random.Generator

    Returns
    -------
    (K, ny, nx) ndarray of complex64
        Modes with ``sum(|P|**2) = photons`` in all.
    """
    ap, prop = pars.aperture, pars.propagation
    if pars.model == "electron":
        if not electron:
            raise ParameterError(
                "illumination.model: 'electron' needs electron_data: true (energy is then the "
                "electron beam energy in keV)."
            )
        probe = electron_probe(
            shape,
            energy_kev=energy_kev,
            semi_angle_mrad=pars.electron.conv_angle,
            sample_pixel_m=sample_pixel_m,
            aberrations_angstrom=pars.electron.aberrations,
            edge_px=pars.electron.edge,
            electrons=pars.photons,
        )
    elif pars.model == "fzp":
        z = pars.fzp
        probe = fzp_probe(
            shape,
            wavelength_m=wavelength_m,
            sample_pixel_m=sample_pixel_m,
            outer_zone_width_m=z.dRn,
            radius_m=z.Rn,
            diameter_m=z.D_FZP,
            central_stop_m=z.D_H,
            focus_to_sample_m=z.Ls,
            edge_px=ap.edge,
            antialiasing=prop.antialiasing,
            photons=pars.photons,
        )
    elif pars.model is not None:
        probe = _probe_from_file(pars, shape)
    elif prop.focussed is not None:
        probe = focused_beam(
            shape,
            wavelength_m=wavelength_m,
            sample_pixel_m=sample_pixel_m,
            focal_length_m=prop.focussed,
            diameter_m=ap.size,
            spot_size_m=prop.spot_size,
            form=ap.form,
            edge_px=ap.edge,
            central_stop=ap.central_stop,
            offset_m=ap.offset,
            rotate_rad=ap.rotate,
            diffuser=ap.diffuser,
            rng=rng,
            defocus_m=prop.parallel or 0.0,
            antialiasing=prop.antialiasing,
            photons=pars.photons,
        )
    else:
        probe = _unfocused(pars, shape, sample_pixel_m, wavelength_m, rng)
    return _with_modes(np.asarray(probe), pars.diversity, rng)


def _unfocused(pars, shape, pixel, wavelength, rng):
    ap, prop = pars.aperture, pars.propagation
    if prop.spot_size is not None:
        raise ParameterError(
            "illumination.propagation.spot_size: needs propagation.focussed (the focal length)."
        )
    pixel = np.asarray(pixel, dtype=float)
    field = aperture(
        shape,
        form=ap.form,
        size_px=None if ap.size is None else np.asarray(ap.size) / pixel,
        edge_px=ap.edge,
        central_stop=ap.central_stop,
        offset_px=np.asarray(ap.offset) / pixel,
        rotate_rad=ap.rotate,
        diffuser=ap.diffuser,
        rng=rng,
    )
    if prop.parallel:
        near = NearField(shape, distance_m=prop.parallel, wavelength_m=wavelength, psize_m=pixel)
        field = near.forward(field)
    return normalize_photons(field.astype(np.complex64), pars.photons)


def _probe_from_file(pars, shape):
    probe = np.asarray(_load_array(pars.model, pars.key, "illumination.model"))
    if probe.ndim not in (2, 3) or tuple(probe.shape[-2:]) != tuple(shape):
        raise ParameterError(
            f"illumination.model: {pars.model!r} holds shape {probe.shape}; expected "
            f"{tuple(shape)} or (modes, *{tuple(shape)}) (the simulation frame shape)."
        )
    return normalize_photons(probe.astype(np.complex64), pars.photons)


def _real_source(pars, canvas, rng):
    """The sample's real-valued source map, or None for complex/procedural models."""
    if pars.model == "random":
        return noise_screen(canvas, rng=rng, correlation_px=pars.feature_size / FWHM_PER_SIGMA)
    if pars.model in (None, "flat", "moonflower"):
        return None
    image = np.asarray(_load_array(pars.model, pars.key, "sample.model"))
    if image.ndim != 2:
        raise ParameterError(
            f"sample.model: {pars.model!r} holds shape {image.shape}; expected 2-D."
        )
    return image


def build_object(pars, *, shape, wavelength_m, energy_kev, rng):
    """The object modes described by ``sample`` parameters, on a canvas of ``shape``.

    Returns
    -------
    (M, oy, ox) ndarray of complex64
    """
    fill = complex(*pars.fill)
    source = _real_source(pars, shape, rng)
    if pars.process is not None and source is None:
        raise ParameterError(
            f"sample.process: needs a real image as thickness map (model 'random' or an image "
            f"file), got model {pars.model!r}."
        )
    if pars.model == "moonflower":
        obj = moonflower_object(
            shape, amplitude_range=pars.amplitude_range, phase_range=pars.phase_range
        )
    elif source is None:
        obj = np.full(shape, fill, dtype=np.complex64)
    elif np.iscomplexobj(source):
        obj = place_on_canvas(source, shape, fill=fill)
    elif pars.process is None:
        mapped = object_from_image(
            source, amplitude_range=pars.amplitude_range, phase_range=pars.phase_range
        )
        obj = place_on_canvas(mapped, shape, fill=fill)
    else:
        transmission = _processed(source, pars.process, wavelength_m, energy_kev)
        obj = place_on_canvas(transmission, shape, offset_px=pars.process.offset, fill=fill)
    if pars.noise is not None:
        noise = noise_transmission_kwargs(pars.noise, name="sample.noise")
        obj = obj * noise_transmission(shape, rng=rng, **noise)
    modes = _with_modes(np.asarray(obj, dtype=np.complex64), pars.diversity, rng)
    if len(modes) > 1:  # object modes share the main mode's power (they add incoherently)
        modes = modes * np.sqrt(np.sum(np.abs(obj) ** 2) / np.sum(np.abs(modes[0]) ** 2))
    return modes.astype(np.complex64)


def _processed(image, process, wavelength, energy_kev):
    image = np.asarray(image, dtype=np.float64)
    if process.zoom is not None:
        image = zoom(image, process.zoom)
    if process.smoothing:
        image = smooth(image, fwhm_px=process.smoothing)
    if process.thickness is None:
        thickness = image - image.min()
    else:
        thickness = thickness_from_image(image, max_thickness_m=process.thickness)
    if process.formula is not None:
        delta, beta = refractive_index(
            process.formula, density_g_cm3=process.density, energy_kev=energy_kev
        )
        source = "Henke tables" if beta is not None else "f1 = Z"
        if process.ref_index is not None:  # an explicit beta wins
            beta = process.ref_index[1]
        elif beta is None:
            beta = 0.0
            log.warning(
                "sample: no absorption for %s: install periodictable (pip install "
                "'ptyscan[sim]') or give ref_index",
                process.formula,
            )
        log.info(
            "sample: %s at %.4g g/cm3: delta = %.4g (%s), beta = %.4g",
            process.formula,
            process.density,
            delta,
            source,
            beta,
        )
    elif process.ref_index is not None:
        delta, beta = process.ref_index
    else:
        raise ParameterError(
            "sample.process: give ref_index (delta, beta) or a formula for the material."
        )
    return transmission_from_thickness(thickness, delta=delta, beta=beta, wavelength_m=wavelength)


def build_positions(pars, *, rng):
    """True scan positions (N, 2) in metres from ``xy`` parameters.

    Order: pattern (model/override, extent, offset, count), ``affine``,
    ``flipT``, then ``jitter`` (drawn from ``rng``).
    """
    if pars.model is None and pars.override is None:
        raise ParameterError("xy: model is None and no override given; set one of them.")
    pos = positions_from_pars(
        model=pars.model,
        spacing=pars.spacing,
        steps=pars.steps,
        extent=pars.extent,
        offset=pars.offset,
        count=pars.count,
        override=pars.override,
    )
    if pars.affine is not None:
        pos = apply_affine(pos, pars.affine)
    if pars.flipT is not None:
        pos = flip_transpose(pos, pars.flipT)
    if pars.jitter:
        pos = add_jitter(pos, std_m=pars.jitter, rng=rng)
    return pos
