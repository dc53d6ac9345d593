"""MPI preparation benchmark: MoonFlower frames prepared on 1 and 2 ranks, with and without saving.

Usage::

    python benchmarks/bench_mpi.py                          # 1000 frames of 256², chunks of 100
    python benchmarks/bench_mpi.py --frames 200 --shape 128 --repeat 1   # a quick run

Each case runs in fresh processes (the 2-rank case under the ``mpiexec`` next to this
Python, i.e. the ``mpich`` wheel's): a 1-rank run with the default threads, a 1-rank run
with one thread (``OMP_NUM_THREADS=1``, the pure-scaling baseline) and an N-rank run,
each without saving and with ``save='append'`` (gzip). Per case it reports the wall time
(barrier to barrier, best of ``--repeat``), the part of it spent building MoonFlower's
synthetic truth (object, probe, positions: a simulation cost, not a preparation one),
frames/s, the speed-up over 1 rank and the peak RSS of every rank
(``resource.getrusage``, gathered). A table goes to stdout and everything to JSON
(default ``benchmarks/results/bench_mpi.json``).

Targets (2-core machine): speed-up >= 1.7 at 2 ranks without saving; with saving, rank
0's peak memory <= 1.3x the other ranks'.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "BENCH_JSON "


# --- one run, on every rank -----------------------------------------------------------------


def worker(args):
    """Prepare the scan on every rank; rank 0 prints the gathered per-rank figures."""
    sys.path.insert(0, str(ROOT))
    from ptyscan import EOS, WAIT
    from ptyscan.parallel import get_comm
    from ptyscan.scans.moonflower import MoonFlowerScan

    comm = get_comm()
    folder = comm.bcast(tempfile.mkdtemp(prefix="bench-mpi-") if comm.rank == 0 else None)
    save = {"save": "append", "dfile": os.path.join(folder, "bench.ptyd")} if args.save else {}
    scan = MoonFlowerScan(
        num_frames=args.frames, shape=args.shape, seed=1, comm=comm, **save
    )  # builds nothing yet
    comm.barrier()
    t0 = time.perf_counter()
    for name in ("true_positions_px", "true_probe", "true_object"):  # the simulated truth
        getattr(scan, name, None)
    comm.barrier()
    t1 = time.perf_counter()
    frames = chunks = 0
    while (chunk := scan.auto(args.chunk)) is not EOS:
        if chunk is not WAIT:
            frames += len(chunk)
            chunks += 1
    comm.barrier()
    t2 = time.perf_counter()
    row = {
        "rank": comm.rank,
        "frames": frames,
        "chunks": chunks,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    rows = comm.allgather(row)
    if comm.rank == 0:
        size = os.path.getsize(save["dfile"]) if args.save else 0
        out = {
            "wall_s": t2 - t0,
            "truth_s": t1 - t0,
            "prepare_s": t2 - t1,
            "ptyd_mb": size / 2**20,
            "ranks": rows,
        }
        print(MARK + json.dumps(out), flush=True)
        shutil.rmtree(folder, ignore_errors=True)


# --- the driver --------------------------------------------------------------------------------


def mpiexec():
    here = Path(sys.executable).with_name("mpiexec")
    return str(here) if here.exists() else shutil.which("mpiexec")


def launch(args, *, ranks, save, threads=None):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    cmd += ["--frames", str(args.frames), "--shape", str(args.shape), "--chunk", str(args.chunk)]
    cmd += ["--save"] if save else []
    if ranks > 1:
        exe = mpiexec()
        if exe is None:
            raise SystemExit("no mpiexec found: pip install 'ptyscan[mpi]' (mpi4py and mpich)")
        cmd = [exe, "-n", str(ranks), *cmd]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(
        cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout, check=False
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len(MARK) :])


def run_case(args, *, label, ranks, save, threads=None):
    runs = [launch(args, ranks=ranks, save=save, threads=threads) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["wall_s"])
    frames = sum(r["frames"] for r in best["ranks"])
    return {
        "case": label,
        "ranks": ranks,
        "threads": threads or "default",
        "save": "append" if save else None,
        "frames": frames,
        "wall_s": best["wall_s"],
        "wall_s_all": [round(r["wall_s"], 3) for r in runs],
        "truth_s": best["truth_s"],
        "prepare_s": best["prepare_s"],
        "frames_per_s": frames / best["wall_s"],
        "ms_per_frame": 1e3 * best["wall_s"] / frames,
        "ptyd_mb": best["ptyd_mb"],
        "peak_rss_mb": [max(r["ranks"][k]["peak_rss_mb"] for r in runs) for k in range(ranks)],
        "frames_per_rank": [row["frames"] for row in best["ranks"]],
    }


def add_speedups(cases, n):
    by = {(c["case"], c["save"]): c for c in cases}
    for c in cases:
        base = by[("1 rank", c["save"])]
        single = by[("1 rank, 1 thread", c["save"])]
        c["speedup"] = base["wall_s"] / c["wall_s"]
        c["speedup_vs_1_thread"] = single["wall_s"] / c["wall_s"]
        c["prepare_speedup"] = base["prepare_s"] / c["prepare_s"]
    nosave, saved = by[(f"{n} ranks", None)], by[(f"{n} ranks", "append")]
    rss = saved["peak_rss_mb"]
    others = max(rss[1:])
    return {
        "speedup_without_saving": nosave["speedup"],
        "speedup_without_saving_vs_1_thread": nosave["speedup_vs_1_thread"],
        "speedup_target": 1.7,
        "speedup_met": nosave["speedup"] >= 1.7,
        "speedup_vs_1_thread_met": nosave["speedup_vs_1_thread"] >= 1.7,
        "rank0_rss_ratio_with_saving": rss[0] / others,
        "rank0_rss_target": 1.3,
        "rank0_rss_met": rss[0] / others <= 1.3,
    }


def table(cases):
    head = (
        f"{'case':<17} {'save':<7} {'wall s':>7} {'truth s':>8} {'prep s':>7} {'frames/s':>9} "
        f"{'ms/frame':>9} {'speed-up':>9} {'vs 1 thr':>9}  peak RSS per rank (MB)"
    )
    lines = [head, "-" * len(head)]
    for c in cases:
        lines.append(
            f"{c['case']:<17} {c['save'] or '-':<7} {c['wall_s']:7.2f} {c['truth_s']:8.2f} "
            f"{c['prepare_s']:7.2f} {c['frames_per_s']:9.1f} {c['ms_per_frame']:9.2f} "
            f"{c['speedup']:9.2f} {c['speedup_vs_1_thread']:9.2f}  "
            + " / ".join(f"{m:.0f}" for m in c["peak_rss_mb"])
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000, help="MoonFlower frames (1000)")
    parser.add_argument("--shape", type=int, default=256, help="frame side in pixels (256)")
    parser.add_argument("--chunk", type=int, default=100, help="frames per chunk (100)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the MPI case (2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case, best kept (3)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run (600)")
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "bench_mpi.json"), help="JSON"
    )
    parser.add_argument("--save", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    load_before = os.getloadavg()
    cases = []
    for save in (False, True):
        for label, ranks, threads in (
            ("1 rank", 1, None),
            ("1 rank, 1 thread", 1, 1),
            (f"{args.ranks} ranks", args.ranks, None),
        ):
            cases.append(run_case(args, label=label, ranks=ranks, save=save, threads=threads))
            print(f"  done: {label}, save={'append' if save else None}", file=sys.stderr)
    targets = add_speedups(cases, args.ranks)
    print(
        f"MoonFlower {args.frames} frames of {args.shape}², chunks of {args.chunk}, "
        f"best of {args.repeat}; load average before {load_before[0]:.2f}"
    )
    print(table(cases))
    verdict = {True: "met", False: "MISSED"}
    print(
        f"speed-up at {args.ranks} ranks without saving (target >= 1.7): "
        f"{targets['speedup_without_saving']:.2f} over 1 rank with default threads "
        f"({verdict[targets['speedup_met']]}), "
        f"{targets['speedup_without_saving_vs_1_thread']:.2f} over 1 rank with 1 thread "
        f"({verdict[targets['speedup_vs_1_thread_met']]})"
    )
    print(
        f"rank 0 peak RSS / other ranks' with saving: "
        f"{targets['rank0_rss_ratio_with_saving']:.2f} "
        f"(target <= 1.3: {verdict[targets['rank0_rss_met']]})"
    )
    result = {
        "benchmark": "bench_mpi",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "params": {
            "scan": "MoonFlowerScan",
            "frames": args.frames,
            "shape": args.shape,
            "chunk": args.chunk,
            "repeat": args.repeat,
            "compression": "gzip",
        },
        "cases": cases,
        "targets": targets,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
