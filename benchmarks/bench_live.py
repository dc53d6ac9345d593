"""Live reconstruction: latency from a frame's write to its first use, and sustained ingest.

Runs ``ptyscan simulate --live`` (MoonFlower, ``--shape``² frames) in its own process and
``run_recipe`` on ``recipes/live_moonflower.yaml`` (pointed at that file) in this one, twice:

- **latency**: ``--frames`` frames at ``--rate`` Hz; DM iterates on what it has while
  they arrive (frames_per_chunk 1000: every frame there at each poll). The run measures,
  per frame, the time from the writer's flush to the end of the first DM iteration using
  it; p50/p95/max are reported (targets: p95 < 1 s at 100 Hz with 128² frames).
- **ingest**: ``--ingest-frames`` frames written as fast as ``--ingest-rate`` allows;
  ingest = frames / (last frame's first use − first frame's write): the rate at which the
  detector's frames end up in the reconstruction, falling behind included (target
  ≥ 500 frames/s of 128²). The writer's own rate is reported too.

The last line printed is ``p95 latency X s at R Hz, ingest F frames/s``. Figures go to
``benchmarks/results/bench_live.json`` (``--json`` elsewhere). Timing needs a quiet
machine (1-minute load < 1.3 on 2 cores: the writer and the reconstruction share them).

Usage::

    python benchmarks/bench_live.py                       # 100 Hz × 500, 3000 as fast as possible
    python benchmarks/bench_live.py --frames 100 --ingest-frames 400 --shape 64   # quick
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
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptyscan import load_recipe  # noqa: E402
from ptyscan.app.runner import run_recipe  # noqa: E402


def _write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def one_run(work, *, rate, frames, shape, numiter):
    """Writer at ``rate`` Hz + live reconstruction; returns the figures of that run."""
    work.mkdir(parents=True, exist_ok=True)
    h5 = work / "acq.h5"
    sim = _write_yaml(
        work / "sim.yaml",
        {
            "scan": {"name": "MoonFlowerScan", "num_frames": frames, "shape": shape, "seed": 1},
            "run": {"output_dir": str(work), "frames_per_chunk": 100},
        },
    )
    live = load_recipe(  # the shipped recipe, pointed at this run's file
        ROOT / "recipes" / "live_moonflower.yaml",
        overrides=[
            f"scan.intensities.file={h5}",
            f"engines.0.numiter={numiter}",
            f"run.output_dir={work / 'out'}",
            "run.progress=false",
            "run.plot=false",
            "run.checkpoint_every=0",
        ],
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    writer = subprocess.Popen(
        [sys.executable, "-m", "ptyscan", "-q", "simulate", "--live", str(rate), str(sim),
         "--to", str(h5)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while not h5.exists():
            if writer.poll() is not None:
                raise SystemExit(f"writer failed: {writer.communicate()}")
            time.sleep(0.01)
        summary = run_recipe(live)
        _, err = writer.communicate(timeout=600)
    finally:
        writer.kill()
    if writer.returncode != 0:
        raise SystemExit(f"writer failed: {err}")
    import h5py

    with h5py.File(h5, "r") as f:
        written = f["entry/data/written_at"][()]
    lat = summary.latency
    used = written[lat["indices"]] + lat["seconds"]
    span = float(used.max() - written.min())
    return {
        "rate_hz": rate,
        "frames": frames,
        "shape": shape,
        "writer_frames_per_s": frames / float(written.max() - written.min()),
        "ingest_frames_per_s": frames / span,
        "p50_s": lat["p50"],
        "p95_s": lat["p95"],
        "max_s": lat["max"],
        "streaming_iterations": summary.streaming_iterations,
        "run_s": summary.seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="latency run, frames/s")
    parser.add_argument("--frames", type=int, default=500, help="latency run, frames")
    parser.add_argument("--ingest-rate", type=float, default=5000.0, help="ingest run, Hz")
    parser.add_argument("--ingest-frames", type=int, default=3000, help="ingest run, frames")
    parser.add_argument("--shape", type=int, default=128, help="frame size, pixels")
    parser.add_argument("--numiter", type=int, default=5, help="DM iterations after the end")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/bench_live.json"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        latency = one_run(
            Path(tmp) / "latency", rate=args.rate, frames=args.frames, shape=args.shape,
            numiter=args.numiter,
        )  # fmt: skip
        ingest = one_run(
            Path(tmp) / "ingest", rate=args.ingest_rate, frames=args.ingest_frames,
            shape=args.shape, numiter=args.numiter,
        )  # fmt: skip
    load_after = os.getloadavg()[0]
    for name, r in (("latency", latency), ("ingest", ingest)):
        print(
            f"{name:8s} {r['frames']} frames of {r['shape']}² at {r['rate_hz']:g} Hz: writer "
            f"{r['writer_frames_per_s']:.0f} frames/s, ingest {r['ingest_frames_per_s']:.0f} "
            f"frames/s, latency p50 {r['p50_s']:.3f} p95 {r['p95_s']:.3f} max {r['max_s']:.3f} s, "
            f"{r['streaming_iterations']} DM iterations while streaming"
        )
    print(f"load average {load_before:.2f} before, {load_after:.2f} after")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {
                "latency": latency,
                "ingest": ingest,
                "load_before": load_before,
                "load_after": load_after,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d %H:%M"),
            },
            indent=1,
        )
    )
    print(
        f"p95 latency {latency['p95_s']:.3g} s at {latency['rate_hz']:g} Hz, "
        f"ingest {ingest['ingest_frames_per_s']:.0f} frames/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
