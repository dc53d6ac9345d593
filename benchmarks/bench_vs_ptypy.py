"""ptyscan next to ptypy 0.9 itself: same ``.ptyd``, same starting probe, one run.

    python benchmarks/bench_vs_ptypy.py --ptypy-python /path/to/venv-with-ptypy/bin/python
    python benchmarks/bench_vs_ptypy.py --frames 92 --iterations 20     # quick

ptypy is never a dependency: it runs in its own interpreter (``--ptypy-python``, or
``$PTYPY_PYTHON``, or this one when it can ``import ptypy``), installed from its public
source repository into a scratch virtual environment. Without one the script says so
and exits 0 after timing ptyscan alone.

Per frame count (MoonFlower 128², Poisson noise, seed 0, written once as a ``.ptyd`` by
ptyscan and read by both codes through their PtydScan), each case runs in a fresh
process, ptyscan before and after each ptypy engine (``ptyscan, DM, ptyscan,
DM_serial, ptyscan``): each ptypy engine is compared with the mean of the two ptyscan
runs either side of it, so that a drift of the machine's speed during a case (up to
45 % over 20 minutes on the 2-core VM) hits both codes alike. It cannot make the
codes' speeds move together where only the second core slows down: ptyscan uses every
core and ptypy's engines one (benchmarks/RESULTS.md: the 92-frame speed-ups moved by
20 % between runs for that reason). The summary's ptyscan time is the median of its
runs:

- **DM**: ptypy's defaults; ptypy's ``DM`` and ``DM_serial`` (its fastest CPU engine);
- **ML**: ptypy's template setting (Gaussian, reg_del2, scale_precond, smooth_gradient
  20 with decay 1/50); ptypy's ``ML`` and ``ML_serial``.

Both start from the same model probe (MoonFlower's focused beam with the defocus 30 %
off) and a flat object; ptyscan in single precision. Per iteration is the median of the
iterations' own times (ptypy: ``runtime.iter_info`` durations with one iteration per
block); whole is the engine's wall time including its set-up. The object error is the
same function for both codes (``tests/engines/_engine_helpers.error_against_truth``): the
reconstructed object against MoonFlower's true object, placed through each code's own
view corners, where the model probe's coverage exceeds 30 % of its peak, after removing a
global complex factor and a linear phase ramp.

Prints a table and writes JSON (``benchmarks/results/bench_vs_ptypy.json``), with the
date, the 1-minute load before and after and whether the machine was quiet (load below
1.3 at the start, after waiting up to 3 minutes for it: ``benchmarks/quiet.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from statistics import median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engines import ML_SETTINGS  # noqa: E402  (stdlib-only module: fine under ptypy's venv)
from quiet import is_quiet, load_average, settle  # noqa: E402

SHAPE = 128
PTYPY_ENGINES = {"DM": ("DM", "DM_serial"), "ML": ("ML", "ML_serial")}


# --------------------------------------------------------------------------- ptypy side
def ptypy_child(args):
    """Run one ptypy engine (this interpreter has ptypy; no ptyscan import here)."""
    import numpy as np
    import ptypy
    from ptypy import utils as u
    from ptypy.core import Ptycho

    if args.engine.endswith("_serial"):
        ptypy.load_gpu_engines("serial")
    probe = np.load(args.probe)
    p = u.Param()
    p.verbose_level = "error"
    p.io = u.Param(home=args.work, rfile=None)
    p.io.autosave = u.Param(active=False)
    p.io.autoplot = u.Param(active=False)
    p.io.interaction = u.Param(active=False)
    scan = u.Param(name="BlockFull")
    scan.data = u.Param(name="PtydScan", source=args.ptyd, dfile=None, orientation=None)
    scan.illumination = u.Param(model=probe, aperture=None, propagation=None, diversity=None)
    scan.sample = u.Param(model=None, fill=1.0)
    scan.coherence = u.Param(num_probe_modes=1, num_object_modes=1)
    p.scans = u.Param(MF=scan)
    eng = u.Param(name=args.engine, numiter=args.iterations, numiter_contiguous=1)
    if args.engine.startswith("ML"):
        eng.update(ML_SETTINGS)
    p.engines = u.Param(engine00=eng)
    P = Ptycho(p, level=4)
    start = time.perf_counter()
    P.run()
    whole = time.perf_counter() - start
    obj = next(iter(P.obj.storages.values()))
    corners, coords = [], []
    for pod in P.pods.values():
        corners.append(np.asarray(pod.ob_view.dlow, np.int64))
        coords.append(np.asarray(pod.ob_view.coord, np.float64))
    infos = P.runtime.iter_info
    per_it = [i["duration"] for i in infos]
    out = os.path.join(args.work, f"ptypy_{args.engine}.npz")
    np.savez(out, object=obj.data[0], corners=np.array(corners), coords=np.array(coords))
    errors = np.asarray(infos[-1]["error"], np.float64)
    print(
        json.dumps(
            {
                "code": "ptypy",
                "engine": args.engine,
                "whole_s": whole,
                "median_s_per_iteration": float(np.median(per_it)),
                "iterations": len(per_it),
                "fourier": float(errors[0]),
                "photons": float(errors[1]),
                "npz": out,
                "ptypy_file": ptypy.__file__,
                "numpy": np.__version__,
            }
        )
    )


# ------------------------------------------------------------------------- ptyscan side
def ptyscan_child(args):
    """Run one ptyscan engine on the same ``.ptyd`` (in this interpreter)."""
    import numpy as np

    from ptyscan.engines import DM, ML
    from ptyscan.geometry import view_pixels
    from ptyscan.scans.ptydscan import PtydScan

    scan = PtydScan(source=args.ptyd)
    chunk = scan.auto(10**6)
    cls, extra = (DM, {}) if args.engine == "DM" else (ML, ML_SETTINGS)
    eng = cls(probe=np.load(args.probe), precision="single", **extra)
    start = time.perf_counter()
    eng.add_views(chunk)
    hist = eng.iterate(args.iterations)
    whole = time.perf_counter() - start
    st = eng.state
    positions = eng.positions[1]
    corners = view_pixels(positions, st.sample_pixel_m, st.frame)[0] - st.origin_px
    out = os.path.join(args.work, f"ptyscan_{args.engine}.npz")
    coords = np.asarray(positions, np.float64)
    np.savez(out, object=st.object_host[0], corners=corners, coords=coords)
    print(
        json.dumps(
            {
                "code": "ptyscan",
                "engine": args.engine,
                "whole_s": whole,
                "median_s_per_iteration": float(np.median([r["seconds"] for r in hist])),
                "iterations": len(hist),
                "fourier": float(hist[-1]["fourier"]),
                "photons": float(hist[-1]["photons"]),
                "npz": out,
                "threads": eng.backend.threads,
            }
        )
    )


# ------------------------------------------------------------------------------- parent
def prepare(work, frames):
    """The shared ``.ptyd``, the model probe and the truth for ``frames`` frames."""
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "tests", "engines"))
    from _engine_helpers import model_probe

    from ptyscan.scans.moonflower import MoonFlowerScan

    ptyd = os.path.join(work, f"mf{frames}.ptyd")
    scan = MoonFlowerScan(
        num_frames=frames, shape=SHAPE, add_poisson_noise=True, seed=0, save="append", dfile=ptyd
    )
    scan.auto(10**6)
    probe = os.path.join(work, "probe.npy")
    np.save(probe, model_probe(SHAPE).astype(np.complex64))
    truth = os.path.join(work, f"truth{frames}.npz")
    np.savez(
        truth,
        object=scan.true_object,
        corners=np.asarray(scan.true_positions_px, np.int64),
        coords=np.asarray(scan.positions, np.float64),
    )
    return ptyd, probe, truth


def object_error(npz, truth_npz, probe_npy, fraction=0.3):
    """The one error function for both codes (see the module notes)."""
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "tests", "engines"))
    from _engine_helpers import error_against_truth

    rec, truth = np.load(npz), np.load(truth_npz)
    # each reconstructed view matched to its frame by its position (both read one .ptyd)
    d = rec["coords"][:, None, :] - truth["coords"][None, :, :]
    frame = np.argmin(np.sum(d * d, axis=2), axis=1)
    shifts = rec["corners"] - truth["corners"][frame]
    values, counts = np.unique(shifts, axis=0, return_counts=True)
    shift = values[np.argmax(counts)]  # one rigid offset between the two grids
    obj = rec["object"]
    on_grid = np.full(obj.shape, np.nan + 0j, np.complex128)
    t = truth["object"]
    y0, x0 = int(shift[0]), int(shift[1])
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + t.shape[0], obj.shape[0]), min(x0 + t.shape[1], obj.shape[1])
    on_grid[ys:ye, xs:xe] = t[ys - y0 : ye - y0, xs - x0 : xe - x0]
    power = np.abs(np.load(probe_npy)) ** 2
    cov = np.zeros(obj.shape)
    for y, x in rec["corners"]:
        cov[y : y + power.shape[0], x : x + power.shape[1]] += power
    return error_against_truth(obj, on_grid, cov > fraction * cov.max())


def _run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} failed:\n{out.stderr[-3000:]}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def find_ptypy(explicit):
    """The interpreter that imports ptypy, or None."""
    for python in (explicit, os.environ.get("PTYPY_PYTHON"), sys.executable):
        if not python:
            continue
        probe = subprocess.run(
            [python, "-c", "import ptypy"],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        if probe.returncode == 0:
            return python
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", default="92,310", help="comma-separated frame counts")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--engines", default="DM,ML")
    parser.add_argument("--ptypy-python", help="an interpreter that can import ptypy")
    parser.add_argument(
        "--json", default=os.path.join(ROOT, "benchmarks/results/bench_vs_ptypy.json")
    )
    parser.add_argument("--child", choices=["ptypy", "ptyscan"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--ptyd", help=argparse.SUPPRESS)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "ptypy":
        return ptypy_child(args)
    if args.child == "ptyscan":
        return ptyscan_child(args)

    ptypy_python = find_ptypy(args.ptypy_python)
    if ptypy_python is None:
        print("ptypy is not importable (give --ptypy-python): timing ptyscan alone")
    load_before = settle()
    rows = []
    env = dict(os.environ, PYTHONPATH=ROOT)
    with tempfile.TemporaryDirectory() as work:
        for frames in [int(f) for f in args.frames.split(",")]:
            sub = os.path.join(work, str(frames))
            os.makedirs(sub)
            ptyd, probe, truth = prepare(sub, frames)
            common = ["--ptyd", ptyd, "--probe", probe, "--work", sub]
            common += ["--iterations", str(args.iterations)]
            for engine in args.engines.split(","):
                cases = [("ptyscan", engine)]
                for name in PTYPY_ENGINES[engine] if ptypy_python else ():
                    cases += [("ptypy", name), ("ptyscan", engine)]  # ptyscan either side
                for code, name in cases:
                    python = sys.executable if code == "ptyscan" else ptypy_python
                    cmd = [python, os.path.abspath(__file__), "--child", code, "--engine", name]
                    row = _run(cmd + common, env=env if code == "ptyscan" else None)
                    row["frames"] = frames
                    row["object_error"] = object_error(row.pop("npz"), truth, probe)
                    rows.append(row)
                    print(
                        f"{code:8s} {name:10s} {frames:4d} frames: "
                        f"{row['median_s_per_iteration']:.4f} s/it, whole {row['whole_s']:.2f} s, "
                        f"object error {row['object_error']:.4f}",
                        flush=True,
                    )
    load_after = load_average()
    summary = _summary(rows)
    _print_table(rows, summary)
    quiet = is_quiet(load_before)
    print(
        f"load average {load_before:.2f} before, {load_after:.2f} after (its own threads "
        "included): "
        f"{'quiet' if quiet else 'NOT quiet (figures not for RESULTS.md)'}"
    )
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "load_before": load_before,
        "load_after": load_after,
        "quiet": quiet,
        "iterations": args.iterations,
        "ptypy_python": ptypy_python,
        "rows": rows,
        "speedups": summary,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(record, f, indent=1)
    return 0


def _summary(rows):
    """ptyscan's speed-up per iteration against each ptypy engine (its time over the mean
    of the ptyscan runs just before and after it, in ``rows``' order) and against the
    fastest one (the smallest speed-up); ptyscan's time is the median of its runs."""
    out = []
    groups = {}
    for i, r in enumerate(rows):
        engine = r["engine"] if r["code"] == "ptyscan" else _family(r["engine"])
        groups.setdefault((r["frames"], engine), []).append(i)
    for (frames, engine), index in groups.items():
        ours = [i for i in index if rows[i]["code"] == "ptyscan"]
        vs = {}
        for i in index:
            if rows[i]["code"] != "ptypy":
                continue
            near = [rows[j]["median_s_per_iteration"] for j in (i - 1, i + 1) if j in ours]
            vs[rows[i]["engine"]] = rows[i]["median_s_per_iteration"] / (sum(near) / len(near))
        if not ours or not vs:
            continue
        fastest = min(vs, key=vs.get)
        best = next(
            rows[i] for i in index if rows[i]["code"] == "ptypy" and rows[i]["engine"] == fastest
        )
        out.append(
            {
                "engine": engine,
                "frames": frames,
                "ptyscan_s_per_iteration": median(
                    [rows[i]["median_s_per_iteration"] for i in ours]
                ),
                "vs": vs,
                "vs_fastest": vs[fastest],
                "fastest": fastest,
                "error_ratio": rows[ours[0]]["object_error"] / best["object_error"],
            }
        )
    return out


def _family(ptypy_engine):
    """ptyscan's engine a ptypy engine is compared with ('DM_serial' -> 'DM')."""
    return next(k for k, names in PTYPY_ENGINES.items() if ptypy_engine in names)


def _print_table(rows, summary):
    print()
    print("| code    | engine     | frames | s/it   | whole s | Fourier (DM) | object error |")
    print("|---------|------------|-------:|-------:|--------:|-------------:|-------------:|")
    for r in rows:
        print(
            f"| {r['code']:7s} | {r['engine']:10s} | {r['frames']:6d} | "
            f"{r['median_s_per_iteration']:.4f} | {r['whole_s']:7.2f} | {r['fourier']:7.1f} | "
            f"{r['object_error']:12.4f} |"
        )
    for s in summary:
        vs = ", ".join(f"{k} {v:.2f}x" for k, v in s["vs"].items())
        print(
            f"{s['engine']} {s['frames']} frames: ptyscan ({s['ptyscan_s_per_iteration']:.4f} "
            f"s/it, median of its runs) faster per iteration than {vs} (each against the "
            f"ptyscan runs either side of it); against the fastest ({s['fastest']}) "
            f"{s['vs_fastest']:.2f}x at {s['error_ratio']:.2f}x its object error"
        )


if __name__ == "__main__":
    sys.exit(main())
