"""Results in formats other programs read: CXI/NeXus, ptypy's ``.ptyr``, NumPy, TIFF.

Each format is a :class:`~ptyscan.io.sinks.ResultSink` (``suffix`` and
``write(path, result)``), registered in :mod:`ptyscan.registry`, so it serves
both ``run.result_formats`` and ``ptyscan export RESULT.ptyr --format NAME``.
Every file is written atomically.

CXI (``.cxi``, CXI 1.6 with NeXus classes)::

    cxi_version                    160
    entry_1/                       NXentry: program_name, start_time
      image_1/                     NXdata, signal 'data': the object
        data                       (M, oy, ox) complex64 (a multislice object: the
                                   product of its slices, the projected object)
        x_pixel_size, y_pixel_size m (attribute units)
        data_type                  'object'
      image_2/                     NXdata, signal 'data': the probe, (K, sy, sx) complex64
      sample_1/geometry_1/translation   (N, 3) m, columns (x, y, z) = (fast, slow, 0)
      instrument_1/                NXinstrument
        source_1/energy            J (photon energy; the wavelength as well, m)
        detector_1/distance        m; x_pixel_size, y_pixel_size in m
      data_1/                      NXdata: the error history (one dataset per kind)

ptypy (``.ptypy.ptyr``): ptypy's ``save_run(kind='minimal')`` layout written with
ptypy's typed HDF5 values: ``header`` {kind, description} and ``content`` {obj:
{S00G00: storage}, probe: {S00G00: storage}, pars, runtime: {iter_info}}, each
storage holding ``data`` (layers, y, x), ``shape``, ``psize``/``_psize``
(m), ``origin``/``_origin`` (m), ``_center``, ``fill_value``, ``layermap``,
``nlayers``, ``padonly``, ``padding``, ``model_initialized``.

NumPy (``.npz``): object, probe, sample_pixel_m, object_origin_px, indices,
positions_initial, positions_final and ``history_<kind>``.

TIFF (``_amplitude.tif`` and ``_phase.tif``): float32 images of the first
object mode (needs Pillow, which matplotlib brings). CXI, ptypy and TIFF hold a
multislice object projected (the slices multiplied); ``.npz`` keeps its slices.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from .._version import __version__
from ..errors import PtyScanError
from ..geometry import HC_KEV_M
from .atomic import atomic_path
from .h5typed import write_typed
from .results import projected_object

__all__ = ["CxiSink", "NpzSink", "PtypySink", "TiffSink"]

KEV_J = 1.602176634e-16
"""Joules per keV."""


def _wavelength_m(result) -> float:
    energy = result.meta.get("energy")
    return HC_KEV_M / float(energy) if energy else float("nan")


def _nx(group, nx_class, **attrs):
    group.attrs["NX_class"] = nx_class
    for key, value in attrs.items():
        group.attrs[key] = value
    return group


def _metres(group, name, value):
    group[name] = float(value)
    group[name].attrs["units"] = "m"


class CxiSink:
    """CXI 1.6 / NeXus result file (see the module documentation)."""

    suffix = ".cxi"

    @staticmethod
    def write(path, result) -> Path:
        pixel = np.asarray(result.sample_pixel_m, np.float64)
        psize = np.broadcast_to(np.asarray(result.meta.get("psize", np.nan), np.float64), (2,))
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f["cxi_version"] = 160
            entry = _nx(f.create_group("entry_1"), "NXentry")
            entry["program_name"] = f"ptyscan {__version__}"
            entry["start_time"] = result.attrs.get("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
            for name, array, kind in (
                ("image_1", projected_object(result.object), "object"),
                ("image_2", result.probe, "probe"),
            ):
                image = _nx(entry.create_group(name), "NXdata", signal="data")
                image["data"] = np.asarray(array, np.complex64)
                image["data_type"] = kind
                _metres(image, "x_pixel_size", pixel[1])
                _metres(image, "y_pixel_size", pixel[0])
            geometry = entry.create_group("sample_1/geometry_1")
            _nx(entry["sample_1"], "NXsample")
            pos = np.asarray(result.positions_final, np.float64)
            translation = np.stack([pos[:, 1], pos[:, 0], np.zeros(len(pos))], axis=1)
            geometry["translation"] = translation
            geometry["translation"].attrs["units"] = "m"
            instrument = _nx(entry.create_group("instrument_1"), "NXinstrument")
            source = _nx(instrument.create_group("source_1"), "NXsource")
            source["energy"] = float(result.meta.get("energy", np.nan)) * KEV_J
            source["energy"].attrs["units"] = "J"
            _metres(source, "wavelength", _wavelength_m(result))
            detector = _nx(instrument.create_group("detector_1"), "NXdetector")
            _metres(detector, "distance", result.meta.get("distance", np.nan))
            _metres(detector, "x_pixel_size", psize[1])
            _metres(detector, "y_pixel_size", psize[0])
            errors = _nx(entry.create_group("data_1"), "NXdata")
            for key, values in result.history.items():
                values = np.asarray(values)
                if values.dtype.kind == "U":  # engine names
                    values = values.astype(h5py.string_dtype())
                errors[key] = values
        return Path(path)


def _storage(array, pixel, origin_m):
    """One ptypy Storage as its ``_to_dict`` keys (what ptypy's loaders and plotter read)."""
    data = np.asarray(array, np.complex64)
    return {
        "ID": "S00G00",
        "data": data,
        "shape": tuple(int(s) for s in data.shape),
        "psize": np.asarray(pixel, np.float64),
        "_psize": np.asarray(pixel, np.float64),
        "origin": np.asarray(origin_m, np.float64),
        "_origin": np.asarray(origin_m, np.float64),
        "_center": np.asarray(data.shape[-2:], np.int64) // 2,
        "fill_value": 0.0,
        "layermap": list(range(data.shape[0])),
        "nlayers": int(data.shape[0]),
        "padonly": False,
        "padding": 0,
        "model_initialized": True,
    }


class PtypySink:
    """ptypy's ``.ptyr`` ('minimal' kind), readable by ptypy's own tools."""

    suffix = ".ptypy.ptyr"

    @staticmethod
    def write(path, result) -> Path:
        pixel = np.asarray(result.sample_pixel_m, np.float64)
        origin_m = np.asarray(result.object_origin_px, np.float64) * pixel
        probe_origin = -np.asarray(result.probe.shape[-2:]) / 2 * pixel
        history = result.history
        n = len(next(iter(history.values()))) if history else 0
        iter_info = [
            {
                "iteration": i + 1,
                "iterations": i + 1,
                "engine": str(history["engine"][i]) if "engine" in history else "",
                "error": np.array(
                    [float(history.get(k, np.zeros(n))[i]) for k in ("fourier", "photons", "exit")]
                ),
            }
            for i in range(n)
        ]
        content = {
            "obj": {"S00G00": _storage(projected_object(result.object), pixel, origin_m)},
            "probe": {"S00G00": _storage(result.probe, pixel, probe_origin)},
            "pars": {"ptyscan_recipe": result.recipe, "ptyscan_version": __version__},
            "runtime": {"iter_info": iter_info},
        }
        header = {"kind": "minimal", "description": "Ptypy .h5 compatible storage format"}
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_typed(f, "header", header)
            write_typed(f, "content", content)
        return Path(path)


class NpzSink:
    """The result's arrays in one NumPy ``.npz`` file."""

    suffix = ".npz"

    @staticmethod
    def write(path, result) -> Path:
        arrays = {
            "object": result.object,
            "probe": result.probe,
            "sample_pixel_m": result.sample_pixel_m,
            "object_origin_px": result.object_origin_px,
            "indices": result.indices,
            "positions_initial": result.positions_initial,
            "positions_final": result.positions_final,
            **{f"history_{k}": np.asarray(v) for k, v in result.history.items()},
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return Path(path)


class TiffSink:
    """Amplitude and phase of the first object mode as float32 TIFFs (needs Pillow).

    ``write(path)`` writes ``<stem>_amplitude.tif`` and ``<stem>_phase.tif``.
    """

    suffix = ".tif"

    @staticmethod
    def write(path, result) -> Path:
        try:
            from PIL import Image
        except ImportError as exc:
            raise PtyScanError(
                "TIFF export needs Pillow: pip install 'ptyscan[plot]' (or pillow)"
            ) from exc
        stem = str(path).removesuffix(TiffSink.suffix)
        obj = np.asarray(projected_object(result.object)[0])
        for name, image in (("amplitude", np.abs(obj)), ("phase", np.angle(obj))):
            with atomic_path(f"{stem}_{name}.tif") as tmp:
                Image.fromarray(np.ascontiguousarray(image, np.float32)).save(tmp, format="TIFF")
        return Path(f"{stem}_amplitude.tif")
