"""Electron ptychography against py4DSTEM on an independent multislice simulation.

The case (issue 12): a MoS2 monolayer simulated by abTEM's multislice (not our code),
80 kV, 21.4 mrad convergence semi-angle, +50 Å defocus (underfocus: C10 = -50 Å in
abTEM's, PtyRAD's and our convention, checked below by comparing abTEM's probe with
ours), a 32 × 32 raster of 0.4 Å steps, 128 × 128 EMPAD-1 frames (.raw, 1024 bytes of
metadata after each frame). The detector spans ±kMax = ±64 dk with dk = 1/60 Å⁻¹, so
the frame's real-space pixel, PtyRAD's dx = 1/(N·dk), is 0.46875 Å (a step of
0.853 px). abTEM's potential is sampled 4× finer (512² over 60 Å; its anti-aliasing
aperture lies beyond the detector) and the frames are the central 128² of its
diffraction patterns. Two data sets: noise-free, and Poisson noise at 1e5 e/Å² (1.6e4
electrons per pattern).

Ground truth: abTEM's projected potential times the interaction constant, σ·V_proj
(radians), Fourier-resampled onto the 0.46875 Å grid. Metric: the phase correlation of
:func:`ptyscan.simulate.compare.phase_correlation` over the scanned area (the rectangle
of the probe positions) after removing a constant phase and a sub-pixel shift.

Reconstructions, from the same files:

- ptyscan: ``ptyscan run`` of a recipe like ``recipes/stem_empad.yaml`` that holds only
  the physical parameters (kV, mrad, defocus, raster, detector calibration) and the
  defaults for everything else (one ML engine with StemScan's engine defaults);
- py4DSTEM 0.14 single-slice ptychography (gradient descent, 32 iterations, batches of
  128, step 0.5, otherwise its defaults; the known scan rotation 0 and no transpose),
  where py4DSTEM is installed.

abTEM and py4DSTEM are not dependencies of ptyscan and do not install together (their
pins conflict). Give each stage an interpreter that has it, e.g. two scratch venvs::

    python3 -m venv /tmp/stem-venv && /tmp/stem-venv/bin/pip install -e . abtem==1.0.11
    python3 -m venv /tmp/stem-venv-p4 && /tmp/stem-venv-p4/bin/pip install py4dstem==0.14.18
    python benchmarks/bench_stem_vs_py4dstem.py \\
        --abtem-python /tmp/stem-venv/bin/python --py4dstem-python /tmp/stem-venv-p4/bin/python

The simulated case is cached (``--cache``, default /tmp/ptyscan-stem-case) so reruns only
reconstruct. Results: a table on stdout and ``benchmarks/results/bench_stem_vs_py4dstem.json``.
``--quick`` runs few iterations (checks that everything works; the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "bench_stem_vs_py4dstem.json"
CASE = {
    "energy_kv": 80.0,
    "conv_angle_mrad": 21.4,
    "defocus_angstrom": 50.0,  # positive: underfocus, C10 = -50 Å
    "n_scan": 32,
    "step_angstrom": 0.4,
    "npix": 128,
    "cell_angstrom": 60.0,  # dk = 1 / cell; dx = cell / npix
    "oversample": 4,  # abTEM's potential pixel is dx / oversample
    "slice_thickness_angstrom": 1.0,
    "dose_e_per_angstrom2": 1e5,
    "seed": 12,
}
DATASETS = {"noisefree": None, "dose1e5": CASE["dose_e_per_angstrom2"]}
GAP_BYTES = 1024
TARGETS = {"noisefree": 0.985, "dose1e5": 0.95}
PY4DSTEM_REPORTED = {"noisefree": 0.983, "dose1e5": 0.916}  # issue 12, their held-back case


def dx_angstrom():
    return CASE["cell_angstrom"] / CASE["npix"]


def scan_positions_angstrom():
    """(N, 2) probe positions (y, x) in the simulation cell: a raster centred in it."""
    n, step = CASE["n_scan"], CASE["step_angstrom"]
    start = CASE["cell_angstrom"] / 2 - step * (n - 1) / 2
    y, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return start + step * np.stack([y.ravel(), x.ravel()], axis=1).astype(np.float64)


# --- the simulation (abTEM) ----------------------------------------------------------------


def mos2_cell(extent):
    """A MoS2 monolayer filling an ``extent``² Å cell (atoms outside it dropped)."""
    import abtem
    from ase.build import mx2

    atoms = abtem.orthogonalize_cell(
        mx2(formula="MoS2", kind="2H", a=3.18, thickness=3.19, vacuum=2.0)
    )
    reps = [int(np.ceil(extent / atoms.cell[i, i])) + 1 for i in (0, 1)]
    atoms = atoms * (reps[0], reps[1], 1)
    keep = np.all((atoms.positions[:, :2] >= 0) & (atoms.positions[:, :2] < extent), axis=1)
    atoms = atoms[keep]
    atoms.cell = [extent, extent, atoms.cell[2, 2]]
    atoms.center(vacuum=2.0, axis=2)
    return atoms


def write_empad(path, frames):
    """(N, 128, 128) float32 frames, each followed by 1024 bytes of metadata (the index)."""
    meta = np.zeros(GAP_BYTES // 4, np.float32)
    with open(path, "wb") as f:
        for k, frame in enumerate(np.asarray(frames, "<f4")):
            meta[0] = k
            f.write(frame.tobytes())
            f.write(meta.tobytes())


def read_empad(path, n, npix):
    raw = np.fromfile(path, "<f4").reshape(n, npix * npix + GAP_BYTES // 4)
    return raw[:, : npix * npix].reshape(n, npix, npix)


def fourier_resample(image, shape):
    """``image`` on a coarser periodic grid of ``shape`` (same field; pixel 0 kept), complex."""
    spec = np.fft.fftshift(np.fft.fft2(image))
    cy, cx = np.array(image.shape) // 2
    hy, hx = shape[0] // 2, shape[1] // 2
    crop = spec[cy - hy : cy - hy + shape[0], cx - hx : cx - hx + shape[1]]
    out = np.fft.ifft2(np.fft.ifftshift(crop))
    return out * (shape[0] * shape[1]) / (image.shape[0] * image.shape[1])


def simulate(cache: Path):
    """abTEM multislice of the case: the EMPAD files, the truth and the probe check."""
    import abtem
    from abtem.core.energy import energy2sigma

    from ptyscan.simulate.electron import ANGSTROM_M, electron_probe

    abtem.config.set({"device": "cpu", "fft": "numpy"})
    npix, extent, over = CASE["npix"], CASE["cell_angstrom"], CASE["oversample"]
    gpts = npix * over
    energy = CASE["energy_kv"] * 1e3
    atoms = mos2_cell(extent)
    potential = abtem.Potential(
        atoms,
        gpts=gpts,
        slice_thickness=CASE["slice_thickness_angstrom"],
        projection="infinite",
        parametrization="lobato",
    )
    probe = abtem.Probe(
        energy=energy,
        semiangle_cutoff=CASE["conv_angle_mrad"],
        defocus=CASE["defocus_angstrom"],
        gpts=gpts,
        extent=extent,
    )
    # sign check: abTEM's probe at the cell centre against ours (C10 = -defocus)
    theirs = probe.build(np.array([[extent / 2, extent / 2]]), lazy=False).array
    theirs = theirs.reshape(-1, gpts, gpts)[0]
    theirs = fourier_resample(theirs, (npix, npix))
    checks = {}
    for sign in (1, -1):
        ours = electron_probe(
            (npix, npix),
            energy_kev=CASE["energy_kv"],
            semi_angle_mrad=CASE["conv_angle_mrad"],
            sample_pixel_m=dx_angstrom() * ANGSTROM_M,
            aberrations_angstrom={"defocus": sign * CASE["defocus_angstrom"]},
        )
        a, b = np.abs(ours).ravel(), np.abs(theirs).ravel()
        overlap = (
            abs(np.vdot(ours.ravel(), theirs.ravel())) / np.linalg.norm(a) / np.linalg.norm(b)
        )
        checks[f"{sign * CASE['defocus_angstrom']:+g}"] = float(overlap)
    positions = scan_positions_angstrom()
    frames = np.empty((len(positions), npix, npix), np.float32)
    lo = gpts // 2 - npix // 2
    for start in range(0, len(positions), 64):
        part = positions[start : start + 64]  # column 0 is array axis 0 (abTEM names it x)
        exit_waves = probe.multislice(potential, scan=part, lazy=False)
        patterns = exit_waves.diffraction_patterns(max_angle=None, renormalize=False)
        frames[start : start + 64] = patterns.array[:, lo : lo + npix, lo : lo + npix]
    projected = potential.project().compute().array
    truth = fourier_resample(energy2sigma(energy) * projected, (npix, npix)).real
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(CASE["seed"])
    for name, dose in DATASETS.items():
        data = frames
        if dose is not None:  # electrons per pattern: dose × step²; abTEM's total is 1
            data = rng.poisson(frames * dose * CASE["step_angstrom"] ** 2).astype(np.float32)
        write_empad(cache / f"{name}.raw", data)
    np.savez(
        cache / "truth.npz",
        phase=truth,
        dx_angstrom=dx_angstrom(),
        positions_angstrom=positions,
        frame_power=frames.sum(axis=(1, 2)),
    )
    info = {"case": CASE, "probe_overlap_with_ours_by_defocus": checks, "atoms": len(atoms)}
    (cache / "case.json").write_text(json.dumps(info, indent=2))
    return info


# --- reconstructions -----------------------------------------------------------------------


def ptyscan_recipe(raw, out_dir, *, quick=False):
    """The recipe: physical parameters only; engines and everything else at defaults."""
    engines = [{"name": "ML"}]  # StemScan's defaults: Fourier sub-pixel views, Poisson ML
    if quick:
        engines = [{"name": "ML", "numiter": 3}]
    return {
        "scan": {
            "name": "StemScan",
            "meas_params": {"path": str(raw), "gap": GAP_BYTES},  # EMPAD-1 .raw
            "meas_Npix": CASE["npix"],
            "pos_N_scan_slow": CASE["n_scan"],
            "pos_N_scan_fast": CASE["n_scan"],
            "pos_scan_step_size": CASE["step_angstrom"],
            "pos_scan_rand_std": 0.0,  # the raster as recorded (no random start offsets)
            "probe_kv": CASE["energy_kv"],
            "probe_conv_angle": CASE["conv_angle_mrad"],
            "probe_defocus": CASE["defocus_angstrom"],
            "meas_calibration": {"mode": "dk", "value": 1.0 / CASE["cell_angstrom"]},
        },
        "engines": engines,
        "run": {"output_dir": str(out_dir)},
    }


def run_ptyscan(cache: Path, name: str, *, quick=False):
    """``ptyscan run`` of the recipe on ``name``.raw: the phase and its cell offset (px)."""
    import yaml

    from ptyscan.app.cli import main
    from ptyscan.io import read_ptyr

    out = cache / f"ptyscan_{name}"
    recipe = cache / f"ptyscan_{name}.yaml"
    recipe.write_text(yaml.safe_dump(ptyscan_recipe(cache / f"{name}.raw", out, quick=quick)))
    t0 = time.perf_counter()
    code = main(["run", str(recipe), "--no-progress"])
    seconds = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"ptyscan run {recipe} failed with exit code {code}")
    result = read_ptyr(sorted(out.glob("*.ptyr"))[-1])
    obj = result.object.reshape(-1, *result.object.shape[-2:])[0]
    # object pixel i is at scan coordinate (i + origin)·dx; the raster is centred on the cell
    centre_px = CASE["cell_angstrom"] / 2 / dx_angstrom()
    offset = np.asarray(result.object_origin_px, np.float64) + centre_px
    return np.angle(obj), offset, seconds


def run_py4dstem(cache: Path, name: str, *, quick=False):
    """py4DSTEM 0.14 single-slice ptychography of ``name``.raw: phase, cell offset (px)."""
    import py4DSTEM
    from py4DSTEM.process.phase import SingleslicePtychography

    n, npix = CASE["n_scan"], CASE["npix"]
    data = read_empad(cache / f"{name}.raw", n * n, npix).reshape(n, n, npix, npix)
    cube = py4DSTEM.DataCube(data=np.array(data))
    cube.calibration.set_R_pixel_size(CASE["step_angstrom"])
    cube.calibration.set_R_pixel_units("A")
    cube.calibration.set_Q_pixel_size(1.0 / CASE["cell_angstrom"])
    cube.calibration.set_Q_pixel_units("A^-1")
    t0 = time.perf_counter()
    ptycho = SingleslicePtychography(
        energy=CASE["energy_kv"] * 1e3,
        datacube=cube,
        semiangle_cutoff=CASE["conv_angle_mrad"],
        defocus=CASE["defocus_angstrom"],  # py4DSTEM: C10 = -defocus, as ours
        device="cpu",
        verbose=False,
    )
    ptycho.preprocess(
        plot_center_of_mass=False,
        plot_rotation=False,
        plot_probe_overlaps=False,
        force_com_rotation=0.0,  # the simulation's scan and detector axes agree
        force_com_transpose=False,
    )
    ptycho.reconstruct(
        num_iter=2 if quick else 32,
        reconstruction_method="gradient-descent",
        step_size=0.5,
        max_batch_size=128,
        seed_random=CASE["seed"],
        progress_bar=False,
    )
    seconds = time.perf_counter() - t0
    obj = np.asarray(ptycho.object)
    # py4DSTEM's positions (Å from object pixel 0, probe centres) against the raster's
    cell_px = scan_positions_angstrom() / dx_angstrom()
    object_px = np.asarray(ptycho.positions) / np.asarray(ptycho.sampling)
    offset = np.mean(cell_px - object_px, axis=0)
    return np.angle(obj), offset, seconds


# --- the score ---------------------------------------------------------------------------


def score(phase, offset_px, cache: Path):
    """phase_correlation of a reconstruction (cell pixel = object pixel + ``offset_px``)
    with the truth over the scanned area; (correlation, shift in px)."""
    from ptyscan.simulate.compare import phase_correlation

    truth_npz = np.load(cache / "truth.npz")
    truth, dx = truth_npz["phase"], float(truth_npz["dx_angstrom"])
    offset = np.rint(offset_px).astype(np.int64)
    rows = (np.arange(phase.shape[0]) + offset[0]) % truth.shape[0]
    cols = (np.arange(phase.shape[1]) + offset[1]) % truth.shape[1]
    on_grid = truth[np.ix_(rows, cols)]
    pos = truth_npz["positions_angstrom"] / dx - offset  # in object pixels
    lo, hi = np.ceil(pos.min(axis=0)).astype(int), np.floor(pos.max(axis=0)).astype(int)
    region = (slice(lo[0], hi[0] + 1), slice(lo[1], hi[1] + 1))
    corr, shift = phase_correlation(phase, on_grid, region)
    return corr, shift


# --- driver --------------------------------------------------------------------------------


def _importable(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _stage(args, stage, python, *extra):
    """Run ``stage`` here if its package imports, else in ``python``; False if neither."""
    module = {"simulate": "abtem", "py4dstem": "py4DSTEM"}[stage]
    if _importable(module):
        return None  # run in this process
    if not python:
        return False
    cmd = [python, __file__, "--stage", stage, "--cache", str(args.cache), *extra]
    if args.quick:
        cmd.append("--quick")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run(cmd, check=True, env=env)
    return True


def _save_recon(cache, tool, name, phase, offset, seconds):
    np.savez(cache / f"{tool}_{name}.npz", phase=phase, offset=offset, seconds=seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ptyscan-stem-case"))
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke test)")
    parser.add_argument("--abtem-python", help="an interpreter with abtem (simulation)")
    parser.add_argument("--py4dstem-python", help="an interpreter with py4DSTEM 0.14")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--skip-py4dstem", action="store_true")
    parser.add_argument("--stage", choices=["simulate", "py4dstem"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cache = args.cache
    if args.stage == "simulate":
        print(json.dumps(simulate(cache)))
        return 0
    if args.stage == "py4dstem":
        for name in args.datasets:
            _save_recon(cache, "py4dstem", name, *run_py4dstem(cache, name, quick=args.quick))
        return 0
    if not (cache / "truth.npz").exists():
        done = _stage(args, "simulate", args.abtem_python)
        if done is False:
            print(
                "abTEM is not installed here: pip install abtem==1.0.11 (a scratch venv), or "
                "give --abtem-python",
                file=sys.stderr,
            )
            return 2
        if done is None:
            simulate(cache)
    info = json.loads((cache / "case.json").read_text())
    rows = []
    for name in args.datasets:
        phase, offset, seconds = run_ptyscan(cache, name, quick=args.quick)
        corr, shift = score(phase, offset, cache)
        rows.append(
            {
                "tool": "ptyscan",
                "data": name,
                "correlation": corr,
                "shift_px": shift.tolist(),
                "seconds": seconds,
            }
        )
    py4dstem_note = None
    if not args.skip_py4dstem:
        done = _stage(args, "py4dstem", args.py4dstem_python, "--datasets", *args.datasets)
        if done is None:
            for name in args.datasets:
                _save_recon(cache, "py4dstem", name, *run_py4dstem(cache, name, quick=args.quick))
        if done is False:
            py4dstem_note = (
                "py4DSTEM not installed (pip install py4dstem==0.14.18, or give "
                "--py4dstem-python): ptyscan's figures only"
            )
        else:
            for name in args.datasets:
                rec = np.load(cache / f"py4dstem_{name}.npz")
                corr, shift = score(rec["phase"], rec["offset"], cache)
                rows.append(
                    {
                        "tool": "py4DSTEM 0.14",
                        "data": name,
                        "correlation": corr,
                        "shift_px": shift.tolist(),
                        "seconds": float(rec["seconds"]),
                    }
                )
    print(f"{'tool':<14} {'data':<10} {'correlation':>11} {'target':>7} {'seconds':>8}")
    for r in rows:
        target = TARGETS[r["data"]] if r["tool"] == "ptyscan" else ""
        print(
            f"{r['tool']:<14} {r['data']:<10} {r['correlation']:>11.4f} {target!s:>7} "
            f"{r['seconds']:>8.1f}"
        )
    if py4dstem_note:
        print(py4dstem_note)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "case": info,
                    "targets": TARGETS,
                    "py4dstem_reported_in_issue": PY4DSTEM_REPORTED,
                    "machine": platform.platform(),
                    "cpus": os.cpu_count(),
                    "rows": rows,
                    "note": py4dstem_note,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
