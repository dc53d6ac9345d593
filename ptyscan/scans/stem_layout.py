"""Which stored frame each scan point reads, and the positions and probe a StemScan implies.

:class:`Layout` turns PtyRAD's array steps on the scan axes (``meas_permute``,
``meas_reshape``, the scan part of ``meas_crop``) into an index map, so that frame ``j``
of the prepared scan is read alone from the stored array: nothing is permuted, reshaped
or cropped in memory. A permutation that swaps the two detector axes becomes a transpose
of each frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import ScanError
from ..geometry import electron_wavelength_m
from ..io.h5typed import dataset_names
from ..io.ptyrad import ptyrad_positions_px
from ..io.results import read_ptyr
from ..propagation import NearField
from ..simulate.aberrations import normalize_aberrations
from ..simulate.electron import ANGSTROM_M, electron_probe
from ..simulate.modes import mixed_state_probe
from ..simulate.positions import affine_matrix

__all__ = [
    "Layout",
    "build_layout",
    "calibration_message",
    "foldslice_positions_angstrom",
    "initial_probe",
    "process_positions_angstrom",
    "ptyrad_positions_px",
    "ptyshv_positions_px",
    "raster_positions_angstrom",
    "scan_positions_m",
]


def ptyshv_positions_px(path, *, where="scan.pos_params"):
    """``outputs.probe_positions`` of a PtychoShelves / fold_slice reconstruction
    (``.mat``, v7.3 or older): ``(N, 2)`` (x, y) in pixels of dx, returned as (y, x)."""
    from scipy.io import loadmat

    if not isinstance(path, str) or not path.endswith(".mat"):
        raise ScanError(f"{where}: got {path!r}; expected the path of a PtychoShelves .mat")
    try:
        if h5py.is_hdf5(path):  # v7.3: MATLAB's column-major (N, 2) reads as (2, N)
            with h5py.File(path, "r") as f:
                pos = np.asarray(f["outputs/probe_positions"][()]).T
        else:
            pos = np.asarray(loadmat(path, simplify_cells=True)["outputs"]["probe_positions"])
    except (KeyError, TypeError, OSError, ValueError) as exc:
        raise ScanError(
            f"{where}: {path} has no outputs.probe_positions ({exc}); expected a "
            "PtychoShelves reconstruction"
        ) from None
    return np.asarray(pos, np.float64).reshape(-1, 2)[:, ::-1]


def foldslice_positions_angstrom(path, *, where="scan.pos_params"):
    """fold_slice's ``hdf5_pos`` positions: datasets ``ppY`` and ``ppX`` in Å (the unit of
    dx), negated and in reverse order (as PtyRAD's ``foldslice_hdf5``), ``(N, 2)`` (y, x)."""
    if not isinstance(path, str) or not h5py.is_hdf5(path):
        raise ScanError(f"{where}: got {path!r}; expected the path of an HDF5 file of ppY, ppX")
    with h5py.File(path, "r") as f:
        missing = [k for k in ("ppY", "ppX") if not isinstance(f.get(k), h5py.Dataset)]
        if missing:
            raise ScanError(
                f"{where}: {path} has no {', '.join(missing)}; expected fold_slice's position "
                f"file (datasets there: {', '.join(dataset_names(f)[:20]) or 'none'})"
            )
        pos = np.stack([-np.ravel(f["ppY"][()]), -np.ravel(f["ppX"][()])], axis=1)
    return pos[::-1].astype(np.float64)


@dataclass(frozen=True)
class Layout:
    """The map from prepared frame index to the stored array.

    Attributes
    ----------
    stored_lead : tuple of int
        Scan axes of the stored array, as stored.
    order : tuple of int
        Stored scan axis of each permuted scan axis (``meas_permute`` without the detector).
    transpose : bool
        The permutation swaps ky and kx.
    n_scans : int
        Frames after reshape, before the scan crop.
    scan_shape : (int, int) or None
        (slow, fast) of the raster before the scan crop (for ``meas_crop``).
    crop : ((int, int), (int, int)) or None
        The scan crop [slow0, slow1), [fast0, fast1).
    """

    stored_lead: tuple
    order: tuple
    transpose: bool
    n_scans: int
    scan_shape: tuple | None
    crop: tuple | None

    @property
    def grid(self) -> tuple[int, int] | None:
        """(slow, fast) of the prepared frames, when known."""
        if self.crop is not None:
            return tuple(b - a for a, b in self.crop)
        return self.scan_shape

    @property
    def num_frames(self) -> int:
        grid = self.grid
        return int(np.prod(grid)) if self.crop is not None else self.n_scans

    def leads(self, indices) -> np.ndarray:
        """(n, len(stored_lead)) stored indices of the prepared frames ``indices``."""
        j = np.asarray(indices, np.int64)
        if self.crop is not None:
            (s0, _), (f0, _) = self.crop
            slow, fast = np.divmod(j, self.grid[1])
            j = (slow + s0) * self.scan_shape[1] + (fast + f0)
        permuted = tuple(self.stored_lead[a] for a in self.order)
        coords = np.unravel_index(j, permuted)
        out = np.empty((len(j), len(self.order)), np.int64)
        for k, axis in enumerate(self.order):
            out[:, axis] = coords[k]
        return out


def build_layout(stored_shape, p, *, where="scan") -> Layout:
    """The :class:`Layout` of a stored array ``stored_shape`` under parameters ``p``."""
    ndim = len(stored_shape)
    perm = tuple(p.meas_permute) if p.meas_permute is not None else tuple(range(ndim))
    if sorted(perm) != list(range(ndim)) or set(perm[-2:]) != {ndim - 2, ndim - 1}:
        raise ScanError(
            f"{where}.meas_permute: got {list(perm)} for data of shape {tuple(stored_shape)}; "
            "expected a permutation of its axes keeping the two detector axes last "
            f"(e.g. {list(range(ndim - 2))} + [{ndim - 1}, {ndim - 2}])"
        )
    lead = tuple(int(s) for s in stored_shape[:-2])
    order, transpose = perm[:-2], perm[-2] == ndim - 1
    n_scans = int(np.prod(lead))
    detector = tuple(int(stored_shape[a]) for a in perm[-2:])
    if p.meas_Npix is not None and detector != (p.meas_Npix, p.meas_Npix):
        raise ScanError(
            f"{where}.meas_Npix: got {p.meas_Npix}; the data's detector is {detector[0]} × "
            f"{detector[1]} px (shape {tuple(stored_shape)}): set meas_Npix to the stored "
            "detector size (or fix meas_permute)"
        )
    if p.pos_N_scans is not None and p.pos_N_scans != n_scans:
        raise ScanError(
            f"{where}.pos_N_scans: got {p.pos_N_scans}; the data hold {n_scans} frames "
            f"(shape {tuple(stored_shape)})"
        )
    if p.meas_reshape is not None:
        target = list(p.meas_reshape)
        known = int(np.prod([t for t in target if t != -1]))
        if target.count(-1) == 1 and known > 0:  # np.reshape's -1: inferred
            target[target.index(-1)] = n_scans * detector[0] * detector[1] // known
        target = tuple(target)
        if len(target) != 3 or target[1:] != detector or target[0] != n_scans:
            raise ScanError(
                f"{where}.meas_reshape: got {list(p.meas_reshape)}; expected (N_scans, ky, kx) = "
                f"{[n_scans, *detector]} for data of shape {tuple(stored_shape)} (after "
                "meas_permute): it may regroup the scan axes only"
            )
    scan_shape = _scan_shape(lead, order, p, where=where)
    crop = None
    if p.meas_crop is not None and (p.meas_crop[0] or p.meas_crop[1]):
        if scan_shape is None:
            raise ScanError(
                f"{where}.meas_crop: cropping the scan needs its raster: set pos_N_scan_slow "
                "and pos_N_scan_fast (or store the data as (Ry, Rx, ky, kx))"
            )
        crop = []
        for rng, n, name in zip(p.meas_crop[:2], scan_shape, ("slow", "fast"), strict=True):
            kept = range(n)[slice(*rng)] if rng is not None else range(n)
            if rng is not None and (len(kept) == 0 or max(rng) > n or min(rng) < -n):
                raise ScanError(
                    f"{where}.meas_crop: the {name} range {list(rng)} does not fit the {n} scan "
                    "positions along that axis (expected [start, stop) within them)"
                )
            crop.append((kept.start, kept.stop))
        crop = tuple(crop)
    return Layout(lead, order, transpose, n_scans, scan_shape, crop)


def _scan_shape(lead, order, p, *, where):
    """(slow, fast) of the raster: pos_N_scan_slow/fast, or the stored 4-D layout."""
    permuted = tuple(lead[a] for a in order)
    n = int(np.prod(lead))
    if p.pos_N_scan_slow is not None and p.pos_N_scan_fast is not None:
        if p.pos_N_scan_slow * p.pos_N_scan_fast != n:
            raise ScanError(
                f"{where}.pos_N_scan_slow × pos_N_scan_fast: got {p.pos_N_scan_slow} × "
                f"{p.pos_N_scan_fast} = {p.pos_N_scan_slow * p.pos_N_scan_fast}; expected "
                f"the {n} frames of the data"
            )
        return (p.pos_N_scan_slow, p.pos_N_scan_fast)
    if len(permuted) == 2 and p.meas_reshape is None:
        return permuted
    return None


def raster_positions_angstrom(grid, step_angstrom):
    """PtyRAD's simulated raster ``(N, 2)`` (y, x) in Å: ``grid`` (slow, fast) points
    ``step_angstrom`` apart, the fast axis varying fastest, centred on 0."""
    ns, nf = grid
    y, x = np.meshgrid(np.arange(ns) - (ns - 1) / 2, np.arange(nf) - (nf - 1) / 2, indexing="ij")
    return np.stack([y, x], axis=-1).reshape(-1, 2) * float(step_angstrom)


def process_positions_angstrom(pos, grid, p, *, dx_angstrom, rng):
    """PtyRAD's processing of the scan pattern ``pos`` (``(N, 2)`` Å), in its order:
    ``pos_scan_flipT`` flips the (slow, fast) grid of positions (the frame order) and
    swaps y and x, ``pos_scan_affine`` acts on row vectors about their mean, then a
    Gaussian displacement of ``pos_scan_rand_std`` pixels of ``dx_angstrom``."""
    flips = p.pos_scan_flipT
    if flips is not None and any(flips):
        if grid is None or grid[0] * grid[1] != len(pos):
            raise ScanError(
                f"scan.pos_scan_flipT: got {list(flips)}; flipping the scan pattern needs its "
                f"(slow, fast) grid of the {len(pos)} positions: set pos_N_scan_slow and "
                "pos_N_scan_fast"
            )
        axes = tuple(k for k, flag in enumerate(flips) if flag)
        pos = np.flip(pos.reshape(*grid, 2), axes).reshape(-1, 2)
    if p.pos_scan_affine is not None:
        centre = pos.mean(axis=0)
        pos = (pos - centre) @ affine_matrix(*p.pos_scan_affine) + centre  # row vectors
    if p.pos_scan_rand_std:
        pos = pos + rng.normal(0.0, p.pos_scan_rand_std * dx_angstrom, pos.shape)
    return pos


def initial_probe(p, *, shape, dx_angstrom, total_intensity):
    """The probe the scan implies, ``(pmode, *shape)`` complex64: kV, convergence angle,
    defocus (Å, positive underfocus), C3, C5 and ``probe_aberrations``, mixed modes of
    ``probe_pmode_init_pows``, propagated by ``probe_z_shift`` Å, total intensity
    ``total_intensity``."""
    aberrations = {"C10": -p.probe_defocus, "C30": p.probe_c3, "C50": p.probe_c5}
    aberrations.update(normalize_aberrations(p.probe_aberrations))  # explicit entries win
    probe = electron_probe(
        shape,
        energy_kev=p.probe_kv,
        semi_angle_mrad=p.probe_conv_angle,
        sample_pixel_m=dx_angstrom * ANGSTROM_M,
        aberrations_angstrom=aberrations,
        electrons=max(float(total_intensity), 1e-30),
    )
    if p.probe_pmode_max == 1:
        probe = probe[None]
    else:
        powers = p.probe_pmode_init_pows  # one fraction, or all of them with mode 0 first
        powers = powers[0] if len(powers) == 1 else powers[1:]
        probe = mixed_state_probe(probe, n_modes=p.probe_pmode_max, powers=powers)
    if p.probe_z_shift:  # forward (into the sample) by z Å: Fresnel, angular spectrum
        near = NearField(
            shape,
            distance_m=p.probe_z_shift * ANGSTROM_M,
            wavelength_m=float(electron_wavelength_m(p.probe_kv)),
            psize_m=dx_angstrom * ANGSTROM_M,
        )
        probe = near.forward(probe).astype(np.complex64)
    return probe


def scan_positions_m(p, grid, *, dx_angstrom, seed) -> np.ndarray:
    """(N, 2) positions (y, x) in metres from ``pos_source``: the simulated raster of
    ``grid``, a PtyRAD, PtychoShelves or fold_slice result or a custom array, processed
    by :func:`process_positions_angstrom` (as PtyRAD); or our ``.ptyr`` result as is."""
    if p.pos_source == "ptyr":
        if not isinstance(p.pos_params, str):
            raise ScanError(
                f"scan.pos_params: got {type(p.pos_params).__name__}; expected the path of "
                "a .ptyr result for pos_source 'ptyr'"
            )
        return read_ptyr(p.pos_params).positions_final
    if p.pos_source == "PtyRAD":
        pos = ptyrad_positions_px(p.pos_params) * dx_angstrom
    elif p.pos_source == "PtyShv":
        pos = ptyshv_positions_px(p.pos_params) * dx_angstrom
    elif p.pos_source == "foldslice_hdf5":
        pos = foldslice_positions_angstrom(p.pos_params)
    elif p.pos_source == "custom":
        pos = np.asarray(p.pos_params, np.float64) if p.pos_params is not None else None
        if pos is None or pos.ndim != 2 or pos.shape[1] != 2 or not np.isfinite(pos).all():
            raise ScanError(
                f"scan.pos_params: got shape {getattr(pos, 'shape', None)}; expected a "
                "finite (N, 2) array (y, x) in pixels of dx for pos_source 'custom'"
            )
        pos = pos * dx_angstrom
    elif grid is None:
        raise ScanError(
            "scan.pos_N_scan_slow / pos_N_scan_fast: got None; pos_source 'simu' needs the "
            "raster (or data stored as (Ry, Rx, ky, kx))"
        )
    else:
        pos = raster_positions_angstrom(grid, p.pos_scan_step_size)
    rng = np.random.default_rng([int(seed), 11])
    return process_positions_angstrom(pos, grid, p, dx_angstrom=dx_angstrom, rng=rng) * ANGSTROM_M


def calibration_message(mode, base, out, fitted_rbf_px) -> str:
    """The calibration line a StemScan logs: ``base`` (the detector as loaded,
    :func:`ptyscan.geometry.stem_calibration`) and ``out`` (the prepared frames)."""
    return (
        f"StemScan calibration ({mode}): dx = {base['dx_angstrom']:.4f} Å, "
        f"dk = {base['dk_per_angstrom']:.5f} 1/Å, kMax = {base['kmax_per_angstrom']:.4f} 1/Å, "
        f"angleMax = {base['angle_max_mrad']:.2f} mrad, bright-field radius = "
        f"{base['rbf_px']:.2f} px (fitted {fitted_rbf_px:.2f} px), "
        f"λ = {base['wavelength_angstrom']:.5f} Å; prepared frames "
        f"{'×'.join(map(str, out['frame_shape']))}: dx = "
        f"{' × '.join(f'{v:.4f}' for v in out['dx_angstrom'])} Å, "
        f"kMax = {out['kmax_per_angstrom']:.4f} 1/Å; Nyquist limit (2·dx) = "
        f"{2 * max(out['dx_angstrom']):.4f} Å, Rayleigh limit (0.61 λ/α) = "
        f"{base['rayleigh_angstrom']:.4f} Å"
    )
