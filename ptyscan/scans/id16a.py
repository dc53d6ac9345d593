"""ID16AScan: near-field ptychography at ESRF ID16A (EDF or HDF5 frames, one file per point).

Files in ``base_path``::

    <sample_name>*.edf  (or .h5)   the scan, one frame per file, natural sort order
    dark*.edf           (or .h5)   dark frames, averaged
    ref*.edf            (or .h5)   flat (reference) frames, averaged

EDF files are read with fabio; positions come from their headers' motor lists
(``motor_mne`` names, ``motor_pos`` values) and the optional ``bpm5_ct`` monitor
from the counter lists (``counter_mne`` / ``counter_pos``). HDF5 files hold the
frame in ``entry_0000/measurement/<recipe.detector>`` (a group with ``data`` and
a ``parameters`` group holding the same four lists, or the dataset itself).

Per frame, :meth:`ID16AScan.correct` applies, in order: ``(raw − dark)/(flat −
dark)`` with ``flat_division`` (else ``raw − dark`` with ``dark_subtraction``),
negatives → 0, ÷ the detector flat field (normalised to its mean, zeros → 1),
:func:`undistort` when distortion maps are given, a symmetric crop/pad to
``recipe.pad_crop``, ÷ the bpm5 monitor (normalised to its mean). Pixels where
``flat − dark <= 0``, outside the undistorted field or in the padding have
weight 0. Meta says ``nearfield``.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from functools import cached_property
from typing import Literal

import h5py
import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from .. import preprocess
from ..errors import RecipeError, ScanError
from ..params import (
    InputPath,
    OptionalPair,
    OptionalPositiveFloat,
    OptionalShape2,
    ParamsModel,
    check_finite_nonzero,
)
from ..preprocess.distortion import BilinearMap, undistort
from ..scan import PtyScan
from ..scan_params import Orientation, PtyScanParams

__all__ = ["ID16AParams", "ID16ARecipe", "ID16AScan", "undistort"]

log = logging.getLogger(__name__)

_EXTENSIONS = (".edf", ".h5", ".hdf5")


class ID16ARecipe(ParamsModel):
    """Additional ID16A parameters (``scan.recipe``)."""

    detector: str | None = None
    """Detector name of HDF5 files: frames in ``entry_0000/measurement/<detector>``."""
    use_bpm5_ct: bool = False
    """Divide each frame by its ``bpm5_ct`` counter normalised to the scan's mean."""
    pad_crop: OptionalShape2 = None
    """Crop/pad frames symmetrically to (ny, nx) (an int n: n×n) after the corrections."""


class ID16AParams(PtyScanParams):
    """Parameters of :class:`ID16AScan` (ptypy's names; file defaults None)."""

    name: str = "ID16AScan"
    base_path: InputPath = None
    """Folder holding the frames, darks (``dark*``) and flats (``ref*``); required."""
    sample_name: str | None = None
    """Frames are the files ``<sample_name>*.edf`` (or ``.h5``) in base_path; required."""
    motors: tuple[str, str] = ("spy", "spz")
    """Header motors giving positions (column 0, column 1)."""
    motors_multiplier: float = 1e-6
    """Metres per motor unit (1e-6: the motors count in µm)."""
    mask_file: InputPath = None
    """Detector mask (> 0 valid): HDF5 dataset ``mask``, EDF or .npy."""
    flat_division: bool = False
    """Frames become (raw − dark)/(flat − dark) (needs dark* and ref* files)."""
    dark_subtraction: bool = False
    """Subtract the mean dark (needs dark* files)."""
    distortion_h_file: InputPath = None
    """EDF map of horizontal detector distortion (pixels); with distortion_v_file."""
    distortion_v_file: InputPath = None
    """EDF map of vertical detector distortion (pixels); with distortion_h_file."""
    whitefield_file: InputPath = None
    """Accepted for ptypy recipes and not used, as in ptypy (see det_flat_field)."""
    det_flat_field: InputPath = None
    """EDF flat field of the detector; frames are divided by it over its mean."""
    recipe: ID16ARecipe = Field(default_factory=ID16ARecipe)
    """detector, use_bpm5_ct, pad_crop (see :class:`ID16ARecipe`)."""
    auto_center: bool | None = False
    orientation: Orientation = (False, True, False)
    psize: OptionalPair = None
    """Effective (sample-plane) detector pixel size in metres; required (no default)."""
    distance: OptionalPositiveFloat = None
    """Focus-to-detector distance in metres; required (no default)."""
    energy: OptionalPositiveFloat = None
    """Photon energy in keV; required (no default)."""
    propagation: Literal["farfield", "nearfield"] = "nearfield"
    """Near-field ptychography ('farfield' only to experiment)."""

    @field_validator("motors_multiplier")
    @classmethod
    def _multiplier_nonzero(cls, value):
        return check_finite_nonzero(value)

    @field_validator("distortion_v_file")
    @classmethod
    def _both_maps(cls, value, info: ValidationInfo):
        if (value is None) != (info.data.get("distortion_h_file") is None):
            raise ValueError(
                "must be given together with distortion_h_file (both maps or neither), "
                f"got distortion_h_file={info.data.get('distortion_h_file')!r}, "
                f"distortion_v_file={value!r}"
            )
        return value


# --- file reading -----------------------------------------------------------------------------


def _natural_key(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(path))]


def _parse_lists(names, values, what, path):
    if names is None or values is None:
        return {}
    names, values = _text(names).split(), _text(values).split()
    if len(names) != len(values):
        raise ScanError(
            f"ID16AScan: {path}: {what}_mne names {len(names)} entries but {what}_pos has "
            f"{len(values)} values"
        )
    try:
        return {n: float(v) for n, v in zip(names, values, strict=True)}
    except ValueError:
        raise ScanError(
            f"ID16AScan: {path}: {what}_pos has a value that is not a number"
        ) from None


def _text(value):
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)
        value = " ".join(_text(v) for v in value)
    if isinstance(value, bytes | np.bytes_):
        value = value.decode("utf-8", "replace")
    return str(value)


class _Reader:
    """Frames and headers of EDF or ID16A HDF5 files."""

    def __init__(self, detector):
        self.detector = detector

    def _h5_node(self, fh, path):
        key = f"entry_0000/measurement/{self.detector}"
        if self.detector is None:
            raise ScanError(
                f"ID16AScan: {path} is HDF5: set scan.recipe.detector (frames are read from "
                "entry_0000/measurement/<detector>)"
            )
        if key not in fh:
            raise ScanError(f"ID16AScan: {path} has no {key}; check scan.recipe.detector")
        return fh[key], key

    def stack(self, path):
        """All frames of a file, (n, ny, nx) float32."""
        if path.endswith(".edf"):
            try:
                with _fabio(path).open(path) as image:
                    out = [frame.data for frame in image.frames()]
            except (OSError, ValueError) as exc:
                raise ScanError(f"ID16AScan: cannot read EDF file {path}: {exc}") from None
            return np.asarray(out, np.float32)
        with h5py.File(path, "r") as fh:
            node, key = self._h5_node(fh, path)
            data = node["data"] if isinstance(node, h5py.Group) and "data" in node else node
            if not isinstance(data, h5py.Dataset) or data.ndim not in (2, 3):
                raise ScanError(
                    f"ID16AScan: {path}: {key} must be a 2-D/3-D dataset or a group with one "
                    "named 'data'"
                )
            return np.asarray(data[()], np.float32).reshape(-1, *data.shape[-2:])

    def frame(self, path):
        """The single frame of a scan file, (ny, nx) float32."""
        stack = self.stack(path)
        if len(stack) != 1:
            raise ScanError(f"ID16AScan: {path} holds {len(stack)} frames, expected 1 per point")
        return stack[0]

    def header(self, path):
        """(motors, counters): dicts of name → value from the file's header."""
        if path.endswith(".edf"):
            try:
                with _fabio(path).openheader(path) as image:
                    head = dict(image.header)
            except (OSError, ValueError) as exc:
                raise ScanError(f"ID16AScan: cannot read EDF header of {path}: {exc}") from None
        else:
            head = {}
            with h5py.File(path, "r") as fh:
                node, _ = self._h5_node(fh, path)
                group = node.get("parameters") if isinstance(node, h5py.Group) else None
                if isinstance(group, h5py.Group):  # datasets or attributes; ESRF's names
                    head = {k.strip(): v for k, v in group.attrs.items()}  # may end in spaces
                    head.update(
                        (k.strip(), v[()]) for k, v in group.items() if isinstance(v, h5py.Dataset)
                    )
        return (
            _parse_lists(head.get("motor_mne"), head.get("motor_pos"), "motor", path),
            _parse_lists(head.get("counter_mne"), head.get("counter_pos"), "counter", path),
        )


def _fabio(path):
    """The fabio module (EDF files need it; HDF5 scans do not), or a ScanError saying how to
    install it."""
    try:
        import fabio
    except ImportError:
        raise ScanError(
            f"ID16AScan: reading the EDF file {path} needs fabio, which is not installed; "
            "pip install fabio (or 'ptyscan[io]'), or convert the scan to HDF5"
        ) from None
    return fabio


def _read_image(path, what):
    """A 2-D map from EDF, .npy or HDF5 (dataset ``mask``), float32."""
    if not os.path.isfile(path):
        raise ScanError(f"ID16AScan: {what} file not found: {path}")
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32)
    if path.endswith((".h5", ".hdf5", ".nxs")):
        with h5py.File(path, "r") as fh:
            if "mask" not in fh:
                raise ScanError(f"ID16AScan: {what} file {path} has no dataset 'mask'")
            return np.asarray(fh["mask"][()], np.float32)
    with _fabio(path).open(path) as image:
        return np.asarray(image.data, np.float32)


# --- the scan ---------------------------------------------------------------------------------


class ID16AScan(PtyScan):
    """ESRF ID16A near-field ptychography: EDF/HDF5 frames, darks, flats, distortion."""

    Params = ID16AParams

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        p = self.info
        missing = [k for k in ("base_path", "sample_name") if not getattr(p, k)]
        if missing:
            raise RecipeError(
                [f"scan.{k}: required for ID16AScan, got None" for k in missing],
            )
        if p.whitefield_file is not None and self.comm.rank == 0:
            log.warning("ID16AScan: whitefield_file is not used (as in ptypy); see det_flat_field")
        self.reader = _Reader(p.recipe.detector)
        self._loaded_common = {}

    # --- files ----------------------------------------------------------------------------

    def _glob(self, prefix):
        folder = self.info.base_path
        if not os.path.isdir(folder):
            raise ScanError(f"ID16AScan: base_path {folder!r} is not a folder")
        found = glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*"))
        return sorted((f for f in found if f.endswith(_EXTENSIONS)), key=_natural_key)

    @cached_property
    def _files(self):
        files = self._glob(self.info.sample_name)
        if not files:
            raise ScanError(
                f"ID16AScan: no frames {self.info.sample_name}*.edf/.h5 in {self.info.base_path}"
            )
        kinds = {os.path.splitext(f)[1] for f in files}
        if len(kinds) > 1:
            raise ScanError(f"ID16AScan: frames of several formats {sorted(kinds)} in base_path")
        return files

    def _mean_of(self, prefix, what):
        ext = os.path.splitext(self._files[0])[1]
        files = [f for f in self._glob(prefix) if f.endswith(ext)]
        if not files:
            raise ScanError(
                f"ID16AScan: {what} needs {prefix}*{ext} files in {self.info.base_path}; none found"
            )
        total, count = 0.0, 0
        for f in files:
            stack = self.reader.stack(f)
            total = total + stack.sum(axis=0, dtype=np.float64)
            count += len(stack)
        return (total / count).astype(np.float32)

    @cached_property
    def _headers(self):
        return [self.reader.header(f) for f in self._files]

    # --- hooks ----------------------------------------------------------------------------

    def load_common(self):
        """Darks, flats, distortion maps and bpm5 (read once; load_weight needs them first)."""
        if self._loaded_common:
            return self._loaded_common
        p = self.info
        need_dark = p.dark_subtraction or p.flat_division
        common = {
            "files": list(self._files),
            "dark": self._mean_of("dark", "dark subtraction") if need_dark else None,
            "flat": self._mean_of("ref", "flat_division") if p.flat_division else None,
            "det_flat": None,
            "distortion": None,
            "bpm5": None,
        }
        if p.det_flat_field is not None:
            ff = _read_image(p.det_flat_field, "det_flat_field")
            ff = ff / ff.mean()
            ff[ff == 0] = 1
            common["det_flat"] = ff.astype(np.float32)
        if p.distortion_h_file is not None:
            dh = _read_image(p.distortion_h_file, "distortion_h_file")
            dv = _read_image(p.distortion_v_file, "distortion_v_file")
            common["distortion"] = [dh, dv]
        if p.recipe.use_bpm5_ct:
            common["bpm5"] = self._bpm5()
        self._loaded_common = common
        return common

    def _bpm5(self):
        values = []
        for path, (_, counters) in zip(self._files, self._headers, strict=True):
            if "bpm5_ct" not in counters:
                raise ScanError(f"ID16AScan: {path} has no bpm5_ct counter (recipe.use_bpm5_ct)")
            values.append(counters["bpm5_ct"])
        values = np.asarray(values, np.float64)
        good = np.isfinite(values) & (values > 0)
        if not good.any():
            raise ScanError("ID16AScan: no positive bpm5_ct value in the scan")
        if not good.all():
            bad = np.flatnonzero(~good)
            log.warning("bpm5_ct <= 0 at frames %s: interpolated from neighbours", bad.tolist())
            values[bad] = np.interp(bad, np.flatnonzero(good), values[good])
        return values / values.mean()

    def load_positions(self):
        """(motors[0], motors[1]) of each frame's header × motors_multiplier, metres."""
        p = self.info
        positions = []
        for path, (motors, _) in zip(self._files, self._headers, strict=True):
            missing = [m for m in p.motors if m not in motors]
            if missing:
                raise ScanError(
                    f"ID16AScan: {path} header has no motor {missing[0]!r} (scan.motors); "
                    f"motors there: {sorted(motors)}"
                )
            positions.append([motors[m] for m in p.motors])
        return np.asarray(positions, np.float64) * p.motors_multiplier

    def load_weight(self):
        """Mask × (flat − dark > 0), undistorted and padded like the frames; None if all 1."""
        p, common = self.info, self.load_common()
        if not (p.mask_file or p.flat_division or common.get("distortion") or p.recipe.pad_crop):
            return None
        if p.mask_file:
            weight = _read_image(p.mask_file, "mask_file")
        else:
            weight = np.ones(self.reader.frame(self._files[0]).shape, np.float32)
        if p.flat_division:
            self._check_shape(weight, common["flat"], "mask_file")
            weight = weight * (common["flat"] - common["dark"] > 0)
        if common.get("distortion"):
            self._check_shape(weight, common["distortion"][0], "mask_file")
            weight = self._distortion_map(weight.shape).apply_weights(weight)
        return self._pad_crop(weight.astype(np.float32))

    @staticmethod
    def _check_shape(a, b, what):
        if np.shape(a) != np.shape(b):
            raise ScanError(f"ID16AScan: {what} shape {np.shape(a)} differs from {np.shape(b)}")

    def load(self, indices):
        files = self.common["files"]
        raw = {int(j): self.reader.frame(files[int(j)]) for j in indices}
        return raw, {}, {}

    def _distortion_map(self, shape):
        cache = self.__dict__.setdefault("_distortion_cache", {})
        if shape not in cache:
            dh, dv = (self.common or self._loaded_common)["distortion"]
            for name, d in (("distortion_h_file", dh), ("distortion_v_file", dv)):
                if d.shape != shape:
                    raise ScanError(
                        f"ID16AScan: {name} map has shape {d.shape}, the frames {shape}"
                    )
            cache[shape] = BilinearMap(shape, dh, dv)
        return cache[shape]

    def _pad_crop(self, frame):
        shape = self.info.recipe.pad_crop
        if shape is None:
            return frame
        centre = preprocess.resolve_center("fftshift", frame.shape)
        return preprocess.crop_pad(frame, shape=shape, center=centre)[0]

    def correct(self, raw, weights, common):
        """Dark/flat, clip, ÷ detector flat, undistort, pad/crop, ÷ bpm5 (see module doc)."""
        p = self.info
        dark, flat = common.get("dark"), common.get("flat")
        denominator = None
        if p.flat_division:
            denominator = flat - dark
            denominator = np.where(denominator > 0, denominator, np.inf).astype(np.float32)
        data = {}
        for j, frame in raw.items():
            d = np.asarray(frame, np.float32)
            if dark is not None and d.shape != dark.shape:
                raise ScanError(f"ID16AScan: frame {j} shape {d.shape} != dark {dark.shape}")
            if p.flat_division:
                d = (d - dark) / denominator
            elif p.dark_subtraction:
                d = d - dark
            d = np.maximum(d, 0)
            if common.get("det_flat") is not None:
                d = d / common["det_flat"]
            if common.get("distortion") is not None:
                d = self._distortion_map(d.shape).apply(d, outside=d.mean())
            d = self._pad_crop(d)
            if common.get("bpm5") is not None:
                d = d / common["bpm5"][j]
            data[j] = d.astype(np.float32, copy=False)
        return data, weights
