"""FliSpecScanMultexp: multi-exposure FLI-camera scans logged by SPEC (optics laboratory).

Each scan point is recorded several times with different exposure times by an
FLI CCD, one ``.raw`` file per exposure::

    <data_dir>/ccd*_<frame:05d>_<exposure:02d>.raw      e.g. ccdfli_00012_01.raw

and dark frames of the same exposures lie in ``<dark_dir>`` (another scan).
SPEC logs one row per exposure, so point ``j``'s position is row ``j·n`` for
``n`` exposures. The exposures of a point are merged into one high-dynamic-range
frame by :func:`merge_exposures` (see there for the rule).

A ``.raw`` file is a text header (``key = value`` lines, ending with a line
holding ``EOH``) followed by the image as little-endian uint16, ``rows × cols``,
at the end of the file (:func:`read_fli_raw`).

Geometry follows ptypy's class: ``lam`` (wavelength, m), ``z`` (distance, m)
and ``psize_det`` (m) give ``energy``, ``distance`` and ``psize`` unless those
are set explicitly.
"""

from __future__ import annotations

import glob
import logging
import os
from functools import cached_property

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from ..errors import ScanError
from ..geometry import photon_energy_kev
from ..params import (
    OptionalPair,
    OptionalPositiveFloat,
    Pair,
    PositiveFloat,
    check_finite_nonzero,
    existing_input,
    recipe_dir,
)
from ..scan import PtyScan
from ..scan_params import Center, Orientation, PtyScanParams
from .spec import SpecInfo

__all__ = [
    "FliSpecParams",
    "FliSpecScanMultexp",
    "merge_exposures",
    "read_fli_raw",
]

log = logging.getLogger(__name__)

_PATTERN_KEYS = ("base_path", "scan_dir", "scan_number", "dark_number")
_HEADER_LIMIT = 64 * 1024


class FliSpecParams(PtyScanParams):
    """Parameters of :class:`FliSpecScanMultexp` (ptypy's names and defaults)."""

    name: str = "FliSpecScanMultexp"
    base_path: str = "/data/CDI/opticslab_sxdm_2013/"
    """Root folder of the experiment (``%(base_path)s`` in the patterns)."""
    scan_dir: str = "ccdfli/S00000-00999/"
    """Folder of the scan folders below ``base_path`` (``%(scan_dir)s``)."""
    scan_number: int = Field(74, ge=0)
    """SPEC scan number of the measurement (``%(scan_number)05d``)."""
    dark_number: int | None = Field(72, ge=0)
    """SPEC scan number of the dark frames; None: no dark subtraction."""
    log_file_pattern: str = "%(base_path)sspec/dat-files/spec_started_2013_11_21_1659.dat"
    """Path of the SPEC log file, ``%``-formatted with base_path, scan_dir, scan_number,
    dark_number. A relative result is looked for next to the recipe, then in the
    working directory (as every input path; the three patterns alike)."""
    data_dir_pattern: str = "%(base_path)s%(scan_dir)sS%(scan_number)05d/"
    """Folder of the scan's ``.raw`` files (same formatting)."""
    dark_dir_pattern: str = "%(base_path)s%(scan_dir)sS%(dark_number)05d/"
    """Folder of the dark ``.raw`` files (same formatting)."""
    exp_string: str = "exp_time"
    """Header key of the exposure time in the ``.raw`` files."""
    hdr_thresholds: tuple[float, float] = (500.0, 50000.0)
    """(low, high) dark-subtracted counts: a pixel of an exposure is valid within
    [low, high] (below low still valid in the longest exposure)."""
    motors: tuple[str, str] = ("samy", "samx")
    """SPEC columns giving positions (column 0, column 1) of the (N, 2) positions."""
    motors_multiplier: float = 1e-3
    """Metres per motor unit (1e-3: the motors count in mm)."""
    lam: PositiveFloat = 650e-9
    """Wavelength in metres; gives ``energy`` when that is None."""
    z: PositiveFloat = 0.158
    """Sample-detector distance in metres; gives ``distance`` when that is None."""
    psize_det: Pair = (24e-6, 24e-6)
    """Detector pixel size in metres; gives ``psize`` when that is None."""
    energy: OptionalPositiveFloat = None
    """Photon energy in keV; None: from ``lam``."""
    distance: OptionalPositiveFloat = None
    """Sample-detector distance in metres; None: ``z``."""
    psize: OptionalPair = None
    """Detector pixel size in metres; None: ``psize_det``."""
    center: Center = None
    orientation: Orientation = (True, True, False)

    @field_validator("hdr_thresholds")
    @classmethod
    def _thresholds_ordered(cls, value):
        low, high = value
        if not (0 <= low < high):
            raise ValueError(f"must be (low, high) counts with 0 <= low < high, got {value}")
        return value

    @field_validator("motors_multiplier")
    @classmethod
    def _multiplier_nonzero(cls, value):
        return check_finite_nonzero(value)

    @field_validator("log_file_pattern", "data_dir_pattern", "dark_dir_pattern")
    @classmethod
    def _pattern_formats(cls, value, info: ValidationInfo):
        values = {k: info.data.get(k) for k in _PATTERN_KEYS}
        if info.field_name == "dark_dir_pattern" and values["dark_number"] is None:
            return value
        try:
            path = value % values
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(
                f"must be a %-pattern using only %(base_path)s, %(scan_dir)s, "
                f"%(scan_number)05d, %(dark_number)05d ({exc!r} with the values given), "
                f"got {value!r}"
            ) from None
        return _relative_to_recipe(value, path, info)


def _relative_to_recipe(pattern, path, info):
    """A pattern whose path is relative, in a recipe: the path is looked for next to the
    recipe, then in the working directory, and must be in one (the error names both);
    found next to the recipe, the pattern gets the recipe's folder in front."""
    base_dir = recipe_dir(info)
    if base_dir is None or os.path.isabs(os.path.expanduser(path)):
        return pattern
    if existing_input(path, info) == path:  # only in the working directory
        return pattern
    return os.path.join(base_dir.replace("%", "%%"), pattern)


def read_fli_raw(path, *, exp_key="exp_time"):
    """Read one FLI camera ``.raw`` file.

    Parameters
    ----------
    path : str
    exp_key : str
        Header key of the exposure time.

    Returns
    -------
    image : (rows, cols) uint16 ndarray
    header : dict of str to str
        The ``key = value`` lines; ``exposure`` (float seconds) is added. Files
        whose lines carry other names are read by line position as ptypy did
        (rows on line 3, cols on line 4, exposure time on line 7, value third word).
    """
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_LIMIT)
        end = head.find(b"EOH")
        if end < 0:
            raise ScanError(f"read_fli_raw: {path} has no 'EOH' header end in its first 64 KiB")
        lines = head[:end].decode("latin-1").splitlines()
        header = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if sep:
                header[key.strip()] = value.strip()
        rows = _header_value(header, lines, "rows", 2, int, path)
        cols = _header_value(header, lines, "cols", 3, int, path)
        exposure = _header_value(header, lines, exp_key, 6, float, path)
        nbytes = rows * cols * 2
        fh.seek(0, os.SEEK_END)
        if fh.tell() < end + nbytes:
            raise ScanError(
                f"read_fli_raw: {path} is too short for a {rows}x{cols} uint16 image "
                f"({fh.tell()} bytes); the file is truncated"
            )
        fh.seek(-nbytes, os.SEEK_END)
        image = np.frombuffer(fh.read(nbytes), dtype="<u2").reshape(rows, cols)
    header["exposure"] = exposure
    return image, header


def _header_value(header, lines, key, line_index, kind, path):
    text = header.get(key)
    if text is None and len(lines) > line_index and len(lines[line_index].split()) > 2:
        text = lines[line_index].split()[2]
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise ScanError(
            f"read_fli_raw: {path}: header has no valid {key!r} ({kind.__name__}), got "
            f"{text!r}; header keys: {', '.join(header) or 'none'}"
        ) from None


def merge_exposures(frames, exposure_times, *, darks=None, thresholds=(500.0, 50000.0)):
    """Merge exposures of one scan point into one high-dynamic-range frame.

    Each exposure is dark-subtracted (negatives → 0); a pixel of exposure ``e``
    is valid when ``low <= counts <= high`` — in the longest exposure also below
    ``low`` (faint pixels have no better measurement). Valid values are scaled to
    the longest exposure (``counts · t_max / t_e``) and averaged over the valid
    exposures. A pixel valid in no exposure (saturated in all) gets 0 and weight 0.

    Parameters
    ----------
    frames : (n_exp, ny, nx) array_like
    exposure_times : (n_exp,) array_like of float, seconds (any positive unit)
    darks : (n_exp, ny, nx) or (ny, nx) array_like, optional
    thresholds : (low, high) float

    Returns
    -------
    data : (ny, nx) float32
        Counts as if every pixel had been exposed for the longest time.
    weight : (ny, nx) float32
        1 where at least one exposure was valid, else 0.
    """
    frames = np.asarray(frames, np.float64)
    times = np.asarray(exposure_times, np.float64).reshape(-1)
    if frames.ndim != 3 or len(times) != len(frames):
        raise ScanError(
            f"merge_exposures: expected (n_exp, ny, nx) frames and n_exp exposure times, got "
            f"frames of shape {frames.shape} and {len(times)} times"
        )
    if not np.all(times > 0):
        raise ScanError(f"merge_exposures: exposure times must be positive, got {times.tolist()}")
    counts = frames if darks is None else frames - np.asarray(darks, np.float64)
    np.maximum(counts, 0, out=counts)
    low, high = thresholds
    longest = int(np.argmax(times))
    total = np.zeros(frames.shape[1:], np.float64)
    n_valid = np.zeros(frames.shape[1:], np.int32)
    for e, t in enumerate(times):
        valid = counts[e] <= high
        if e != longest:
            valid &= counts[e] >= low
        total += np.where(valid, counts[e] * (times[longest] / t), 0.0)
        n_valid += valid
    data = np.divide(total, n_valid, out=np.zeros_like(total), where=n_valid > 0)
    return data.astype(np.float32), (n_valid > 0).astype(np.float32)


class FliSpecScanMultexp(PtyScan):
    """Optics-lab FLI CCD scans with several exposures per point, positions from SPEC."""

    Params = FliSpecParams
    RADIATION = "visible"  # optics-laboratory lasers and LEDs

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        p = self.info
        values = {k: getattr(p, k) for k in _PATTERN_KEYS}
        self.log_file = p.log_file_pattern % values
        self.data_dir = p.data_dir_pattern % values
        self.dark_dir = None if p.dark_number is None else p.dark_dir_pattern % values
        if p.energy is None:
            self.recorded_meta["energy"] = float(photon_energy_kev(p.lam))
        if p.distance is None:
            self.recorded_meta["distance"] = p.z
        if p.psize is None:
            self.recorded_meta["psize"] = p.psize_det

    # --- files ----------------------------------------------------------------------------

    @staticmethod
    def _raw_files(folder, *, frame=None, exposure=None):
        """Sorted ``ccd*_<frame:05d>_<exposure:02d>.raw`` files; None matches any number."""
        f = "[0-9]" * 5 if frame is None else f"{frame:05d}"
        e = "[0-9]" * 2 if exposure is None else f"{exposure:02d}"
        return sorted(glob.glob(os.path.join(glob.escape(folder), f"ccd*_{f}_{e}.raw")))

    @cached_property
    def num_exposures(self) -> int:
        """Exposures per point: the files of frame 0 in the dark (else data) folder."""
        folder = self.dark_dir if self.dark_dir is not None else self.data_dir
        files = self._raw_files(folder, frame=0)
        if not files:
            raise ScanError(
                f"{type(self).__name__}: no exposures of frame 0 in {folder} (expected files "
                "ccd*_00000_NN.raw); check base_path, scan_dir and the scan/dark numbers"
            )
        return len(files)

    def _read_exposures(self, folder, frame):
        files = self._raw_files(folder, frame=frame)
        if len(files) != self.num_exposures:
            raise ScanError(
                f"{type(self).__name__}: frame {frame} has {len(files)} exposure files in "
                f"{folder}, expected {self.num_exposures}: {[os.path.basename(f) for f in files]}"
            )
        read = [read_fli_raw(f, exp_key=self.info.exp_string) for f in files]
        return np.stack([image for image, _ in read]), [h["exposure"] for _, h in read]

    # --- hooks ----------------------------------------------------------------------------

    def load_common(self):
        """Mean dark per exposure (or none) and the exposure times."""
        n = self.num_exposures
        if self.dark_dir is None:
            _, times = self._read_exposures(self.data_dir, 0)
            return {"darks": None, "exposures": np.asarray(times, np.float64)}
        darks, times = [], []
        for e in range(n):
            files = self._raw_files(self.dark_dir, exposure=e)
            images = [read_fli_raw(f, exp_key=self.info.exp_string) for f in files]
            darks.append(np.mean([im for im, _ in images], axis=0, dtype=np.float64))
            times.append(images[0][1]["exposure"])
        log.info("%d exposures per point, times %s s, darks from %s", n, times, self.dark_dir)
        return {"darks": np.asarray(darks, np.float32), "exposures": np.asarray(times)}

    def load_positions(self):
        """Every n-th row of the SPEC scan's motor columns, × motors_multiplier."""
        p = self.info
        spec = SpecInfo(self.log_file)
        scan = spec.scans.get(p.scan_number)
        if scan is None:
            raise ScanError(
                f"{type(self).__name__}: scan {p.scan_number} is not in the SPEC file "
                f"{self.log_file}; scans there: {sorted(spec.scans)}"
            )
        missing = [m for m in p.motors if m not in scan.data]
        if missing:
            raise ScanError(
                f"{type(self).__name__}: SPEC scan {p.scan_number} has no column "
                f"{missing[0]!r} (scan.motors); columns: {scan.counters}"
            )
        n = self.num_exposures
        points = scan.num_points // n
        if points == 0:
            raise ScanError(
                f"{type(self).__name__}: SPEC scan {p.scan_number} has {scan.num_points} rows, "
                f"not one complete point of {n} exposures"
            )
        if scan.aborted:
            log.warning("SPEC scan %d was aborted after %d points", p.scan_number, points)
        cols = [scan.data[m][: points * n : n] for m in p.motors]
        return np.stack(cols, axis=1) * p.motors_multiplier

    def check(self, frames=None, start=None):
        """Frames whose last exposure file exists (the scan may still be running)."""
        start = self.framestart if start is None else start
        frames = self.info.min_frames if frames is None else frames
        if not os.path.isdir(self.data_dir):  # a wrong path, not a scan still running
            raise ScanError(
                f"{type(self).__name__}: the data folder {self.data_dir} does not exist "
                f"(data_dir_pattern {self.info.data_dir_pattern!r}); check base_path, "
                "scan_dir, scan_number and the pattern"
            )
        written = len(self._raw_files(self.data_dir, exposure=self.num_exposures - 1))
        return max(0, min(frames, written - start)), None

    def load(self, indices):
        """HDR-merged frames and their weights (1 where some exposure was valid)."""
        raw, weights = {}, {}
        darks, times = self.common["darks"], self.common["exposures"]
        for j in indices:
            stack, _ = self._read_exposures(self.data_dir, int(j))
            raw[int(j)], weights[int(j)] = merge_exposures(
                stack, times, darks=darks, thresholds=self.info.hdr_thresholds
            )
        return raw, {}, weights
