"""Where one GPU iteration spends its time: a kernel profile of DM and ML on CuPy.

    python benchmarks/profile_gpu.py                  # 1000 frames of 256², as bench_engines --gpu
    python benchmarks/profile_gpu.py --frames 200     # smaller

Builds the same case as ``bench_engines.py --gpu`` (MoonFlower, Poisson noise, one
probe mode, single precision, model probe), runs warm-up iterations, then records
the CUDA kernels of ``--profiled`` iterations of DM and of ML with PyTorch's profiler
(CUPTI sees every kernel in the process, CuPy's and cuFFT's included; PyTorch itself
is used for nothing else). Kernels are grouped as

- ``fused DM update``: DM's fused Fourier-update kernels (``engines/kernels.py``);
- ``fft``: cuFFT's kernels;
- ``gather/scatter``: CuPy's ``take`` and ``add.at`` (scatter_add) kernels;
- ``reduction``: sums, norms and dot products;
- ``elementwise``: every other CuPy kernel (the update formulas);
- ``copy``: memcpy and memset.

Prints, per engine, the time per iteration, the share of each group and the ten
costliest kernels; writes JSON (default benchmarks/results/profile_gpu.json) and, beside
it, PyTorch's own table per engine (``profile_<engine>_<views>.txt``).
Without PyTorch it still prints the per-iteration times, measured with CUDA events.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GROUPS = (
    ("fused DM update", ("ptyscan_dm_",)),
    ("fft", ("fft", "cufft", "radix", "regular_fft", "vector_fft", "dft")),
    ("gather/scatter", ("gather", "take", "add_at", "scatter", "_ufunc_at", "cupy_add_at")),
    ("reduction", ("reduce", "sum", "dot", "vdot", "norm", "argmax", "max", "min")),
    ("copy", ("memcpy", "memset")),
)


def group_of(name: str) -> str:
    """The group of a kernel (or memory operation) name, by the first matching rule."""
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "elementwise"


def summarise(kernels: dict[str, tuple[float, int]], iterations: int) -> dict:
    """``kernels``: name -> (total µs, calls) over ``iterations`` iterations."""
    total = sum(t for t, _ in kernels.values())
    groups: dict[str, float] = {}
    for name, (t, _) in kernels.items():
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + t
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:10]
    return {
        "kernel_ms_per_iteration": total / 1e3 / iterations,
        "groups_ms_per_iteration": {g: t / 1e3 / iterations for g, t in groups.items()},
        "top_kernels": [
            {
                "name": n,
                "ms_per_iteration": t / 1e3 / iterations,
                "calls_per_iteration": c / iterations,
            }
            for n, (t, c) in top
        ],
    }


def _profile(eng, iterations, table_path=None):
    """Kernel times ``{name: (µs, calls)}`` of ``iterations`` iterations, or None without
    PyTorch's profiler. ``table_path``: also write PyTorch's own table there."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return None
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        eng.iterate(iterations)
        eng.backend.synchronize()
    averages = prof.key_averages()
    if table_path:
        with open(table_path, "w") as fh:
            fh.write(averages.table(sort_by="self_device_time_total", row_limit=40))
    kernels: dict[str, tuple[float, int]] = {}
    for ev in averages:
        if getattr(getattr(ev, "device_type", None), "name", "") != "CUDA":
            continue
        micros = getattr(ev, "self_device_time_total", None)
        if micros is None:
            micros = getattr(ev, "self_cuda_time_total", 0.0)
        kernels[ev.key] = (float(micros), int(ev.count))
    return kernels


def _event_time(eng, iterations):
    """Milliseconds per iteration between two CUDA events."""
    xp = eng.backend.xp
    start, stop = xp.cuda.Event(), xp.cuda.Event()
    start.record()
    eng.iterate(iterations)
    stop.record()
    stop.synchronize()
    return xp.cuda.get_elapsed_time(start, stop) / iterations


def _device_name():
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def run(engine, frames, shape, warmup, profiled, timed, table_dir=None, views="kernel"):
    from bench_engines import ML_SETTINGS

    from ptyscan.engines import DM, ML
    from ptyscan.scans.moonflower import MoonFlowerScan

    sys.path.insert(0, os.path.join(ROOT, "tests", "engines"))
    from _engine_helpers import model_probe

    scan = MoonFlowerScan(num_frames=frames, shape=shape, add_poisson_noise=True, seed=0)
    chunk = scan.auto(frames)
    cls, extra = (DM, {}) if engine == "DM" else (ML, ML_SETTINGS)
    eng = cls(backend="cupy", probe=model_probe(shape), precision="single", **extra)
    eng.add_views(chunk)
    eng.iterate(warmup)
    eng.backend.synchronize()
    row = {"engine": engine, "frames": frames, "shape": shape, "device": _device_name()}
    row["event_ms_per_iteration"] = _event_time(eng, timed)
    table = os.path.join(table_dir, f"profile_{engine}_{views}.txt") if table_dir else None
    try:
        kernels = _profile(eng, profiled, table)
    except Exception as exc:  # the profiler is a diagnostic: report, keep the timing
        print(f"{engine}: the PyTorch profiler failed ({type(exc).__name__}: {exc})")
        kernels = None
    if kernels is not None:
        row.update(summarise(kernels, profiled))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--shape", type=int, default=256)
    parser.add_argument("--engines", default="DM,ML")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profiled", type=int, default=3, help="iterations profiled")
    parser.add_argument("--timed", type=int, default=20, help="iterations timed with events")
    parser.add_argument(
        "--views",
        default="kernel",
        choices=["kernel", "index"],
        help="the fused CUDA kernels (default) or none: flat-index views and DM's array code",
    )
    parser.add_argument(
        "--json", default=os.path.join(ROOT, "benchmarks", "results", "profile_gpu.json")
    )
    args = parser.parse_args(argv)
    if args.views == "index":
        from ptyscan.engines import kernels

        kernels.available = lambda xp: False  # flat-index views, DM's array code
    table_dir = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(table_dir, exist_ok=True)
    rows = [
        run(
            e,
            args.frames,
            args.shape,
            args.warmup,
            args.profiled,
            args.timed,
            table_dir,
            args.views,
        )
        for e in args.engines.split(",")
    ]
    for r in rows:
        print(
            f"{r['engine']} {r['frames']} frames of {r['shape']}² on {r['device']}: "
            f"{r['event_ms_per_iteration']:.2f} ms/iteration (CUDA events)"
        )
        if not r.get("top_kernels"):
            print("  (no PyTorch profiler: no kernel breakdown)")
            continue
        print(f"  kernels {r['kernel_ms_per_iteration']:.2f} ms/iteration:")
        for g, t in sorted(r["groups_ms_per_iteration"].items(), key=lambda kv: -kv[1]):
            print(f"    {g:<15} {t:7.3f} ms  {100 * t / r['kernel_ms_per_iteration']:5.1f} %")
        for k in r["top_kernels"]:
            print(
                f"    {k['ms_per_iteration']:7.3f} ms {k['calls_per_iteration']:5.1f}x  {k['name'][:90]}"
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(
            {"date": time.strftime("%Y-%m-%d %H:%M"), "views": args.views, "results": rows},
            fh,
            indent=2,
        )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
