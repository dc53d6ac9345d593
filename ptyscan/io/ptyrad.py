"""PtyRAD's result files (its ``model*.hdf5``): positions and a :class:`Result` to start from.

PtyRAD 1.0 (``ptyrad.io.save``) writes its model as nested HDF5 groups; the parts read here::

    optimizable_tensors/obja              (omode, Nz, Ny, Nx) float  object amplitude
    optimizable_tensors/objp              (omode, Nz, Ny, Nx) float  object phase, radians
    optimizable_tensors/probe             (pmode, Ny, Nx) complex    probe modes
    optimizable_tensors/probe_pos_shifts  (N, 2) float  sub-pixel rest of each position (y, x)
    model_attributes/crop_pos             (N, 2) int    object pixel of each view's corner
    model_attributes/dx                   ()     float  object pixel: Å (electrons) or m (X-rays)
    model_attributes/omode_occu           (omode,)      weight of each object mode
    params/init_params/probe_illum_type   'electron' | 'xray' (the unit of dx)

PtyRAD's object is ``obja * exp(i objp)``; the view of frame ``j`` covers object
pixels ``crop_pos[j] + [0, Ny) × [0, Nx)`` and the probe is shifted by
``probe_pos_shifts[j]``, so ``crop_pos + probe_pos_shifts`` is each view's exact
corner (what PtyRAD's own ``pos_source: PtyRAD`` reads). Its far field is
``fftshift(fft2(ψ, norm='ortho'))``, as ours, so the probe is taken as it is.

As a :class:`~ptyscan.io.results.Result`: ``positions = (crop_pos + probe_pos_shifts) × dx``
(metres; the same numbers StemScan's ``pos_source: PtyRAD`` gives) and
``object_origin_px = -(Ny // 2, Nx // 2)``: a view centred at ``position`` has its
corner half a probe before it (:func:`ptyscan.geometry.view_pixels`), so each view
lands on the object pixels PtyRAD used. Object modes are scaled by ``√omode_occu``
(our modes are unweighted); the slices of a multislice object are multiplied into
one transmission (the projection; the propagation between slices is lost).
"""

from __future__ import annotations

import logging

import h5py
import numpy as np

from ..errors import PtyScanError, ScanError
from .h5typed import dataset_names

__all__ = [
    "PTYRAD_OBJECT",
    "PTYRAD_POSITIONS",
    "is_ptyrad_result",
    "ptyrad_positions_px",
    "read_ptyrad_result",
]

log = logging.getLogger(__name__)

PTYRAD_POSITIONS = ("model_attributes/crop_pos", "optimizable_tensors/probe_pos_shifts")
"""A PtyRAD result's positions: the view corners (px) plus their refined shifts (px)."""

PTYRAD_OBJECT = (
    "optimizable_tensors/obja",
    "optimizable_tensors/objp",
    "optimizable_tensors/probe",
    "model_attributes/dx",
)
"""What a PtyRAD result needs to be started from (with :data:`PTYRAD_POSITIONS`)."""

ANGSTROM_M = 1e-10


def _missing(f, names):
    return [k for k in names if not isinstance(f.get(k), h5py.Dataset)]


def is_ptyrad_result(f) -> bool:
    """True when the open HDF5 file ``f`` has PtyRAD's model layout (by content)."""
    return "optimizable_tensors" in f and "model_attributes" in f


def ptyrad_positions_px(path, *, where="scan.pos_params"):
    """``crop_pos + probe_pos_shifts`` ``(N, 2)`` (y, x) in object pixels from a PtyRAD
    hdf5 result (as PtyRAD's own ``pos_source: PtyRAD`` reads them); ScanError naming
    ``where`` when the file is not one."""
    if not isinstance(path, str) or not h5py.is_hdf5(path):
        raise ScanError(f"{where}: got {path!r}; expected the path of a PtyRAD .hdf5 result")
    with h5py.File(path, "r") as f:
        missing = _missing(f, PTYRAD_POSITIONS)
        if missing:
            names = dataset_names(f)
            raise ScanError(
                f"{where}: {path} has no {', '.join(missing)}; expected a PtyRAD result "
                f"(datasets there: {', '.join(names[:20]) or 'none'})"
            )
        pos = _corners(f[PTYRAD_POSITIONS[0]], f[PTYRAD_POSITIONS[1]])
    return pos


def _corners(crop_pos, shifts):
    """``crop_pos + probe_pos_shifts`` (N, 2), added in float64."""
    return (np.asarray(crop_pos[()], np.float64) + np.asarray(shifts[()], np.float64)).reshape(
        -1, 2
    )


def _length_unit_m(f) -> float:
    """Metres per PtyRAD length unit: Å for electrons (its default), m for X-rays."""
    kind = f.get("params/init_params/probe_illum_type")
    kind = kind[()] if isinstance(kind, h5py.Dataset) else b"electron"
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    return 1.0 if kind == "xray" else ANGSTROM_M


def _object(obja, objp, occupancy):
    """(omode, Ny, Nx) complex: the slices multiplied, each mode scaled by √occupancy."""
    obja, objp = np.asarray(obja, np.float64), np.asarray(objp, np.float64)
    if obja.ndim == 3:  # (omode, Ny, Nx): no slice axis
        obja, objp = obja[:, None], objp[:, None]
    if obja.ndim != 4 or obja.shape != objp.shape:
        raise ValueError(f"obja {obja.shape} and objp {objp.shape}; expected (omode, Nz, Ny, Nx)")
    if obja.shape[1] > 1:
        log.warning(
            "start_from: PtyRAD's object has %d slices; starting from their product "
            "(one transmission: the propagation between slices is not kept)",
            obja.shape[1],
        )
    obj = np.prod(obja, axis=1) * np.exp(1j * np.sum(objp, axis=1))
    if occupancy is not None and np.shape(occupancy) == (len(obj),):
        obj *= np.sqrt(np.clip(np.asarray(occupancy, np.float64), 0, None))[:, None, None]
    return obj.astype(np.complex128)


def read_ptyrad_result(path):
    """A PtyRAD result file (see the module notes) as a :class:`~ptyscan.io.results.Result`;
    PtyScanError naming the file and what is missing when it is not one."""
    from .results import Result

    try:
        with h5py.File(path, "r") as f:
            missing = _missing(f, PTYRAD_OBJECT + PTYRAD_POSITIONS)
            if missing:
                raise PtyScanError(
                    f"{path}: a PtyRAD result without {', '.join(missing)}; expected "
                    "PtyRAD's model file (optimizable_tensors/obja, objp, probe, "
                    "probe_pos_shifts and model_attributes/crop_pos, dx)"
                )
            t, a = f["optimizable_tensors"], f["model_attributes"]
            occupancy = (
                a["omode_occu"][()] if isinstance(a.get("omode_occu"), h5py.Dataset) else None
            )
            obj = _object(t["obja"][()], t["objp"][()], occupancy)
            probe = np.asarray(t["probe"][()])
            dx_m = float(np.ravel(a["dx"][()])[0]) * _length_unit_m(f)
            corners = _corners(a["crop_pos"], t["probe_pos_shifts"])
    except (OSError, KeyError, ValueError) as exc:
        raise PtyScanError(f"{path}: not a readable PtyRAD result ({exc})") from None
    probe = probe[None] if probe.ndim == 2 else probe
    if not np.iscomplexobj(probe) or probe.ndim != 3 or not dx_m > 0:
        raise PtyScanError(
            f"{path}: PtyRAD probe {probe.dtype} {probe.shape}, dx {dx_m} m; expected a complex "
            "(pmode, Ny, Nx) probe and a positive dx"
        )
    positions = corners * dx_m
    n = len(positions)
    return Result(
        object=obj,
        probe=probe.astype(np.complex128),
        sample_pixel_m=np.array([dx_m, dx_m]),
        object_origin_px=-(np.array(probe.shape[-2:], np.int64) // 2),
        indices=np.arange(n, dtype=np.int64),
        positions_initial=positions,
        positions_final=positions.copy(),
        history={},
        engines=[],
        meta={},
        recipe="",
        attrs={"status": "PtyRAD", "source": str(path)},
    )
