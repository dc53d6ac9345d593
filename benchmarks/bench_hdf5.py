"""Reading throughput of Hdf5Loader, Hdf5LoaderFast and a bare h5py loop.

Writes ``--frames`` detector frames of ``--size``² (uint16 photon counts, a diffraction-like
pattern with Poisson noise) twice, uncompressed and bitshuffle-LZ4 (Eiger style, one frame
per HDF5 chunk), then measures frames per second for a crop of ``--crop``² around the
centre, read in chunks of ``--chunk`` frames:

- ``bare``: ``buf[k] = dset[i, rows, cols]`` for every frame into a reused raw array: the
  least any reader must do;
- ``load``: the class's ``load(indices)``: ROI read, float32, corrections, weights;
- ``auto``: the whole PtyScan pipeline, ``scan.auto(chunk)`` → Chunk (base-class stacking
  and checks included), after ``initialize()`` (timed separately, ``init_s``).

Every configuration runs ``--repeats`` times, interleaved, and the best run counts (the
files are in the page cache; other jobs on the machine only ever slow a run down). The
targets of issue 4 are checked on ``load``: Hdf5LoaderFast ≥ 80 % of bare and ≥ 1.5×
Hdf5Loader. ``effective_cores`` (two busy processes vs one) tells how many cores were free.

Usage::

    python benchmarks/bench_hdf5.py                 # 2000 frames, writes the JSON
    python benchmarks/bench_hdf5.py --frames 200    # quick run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptyscan import EOS
from ptyscan.scans.hdf5_loader import Hdf5Loader
from ptyscan.scans.hdf5_loader_fast import Hdf5LoaderFast

RESULTS = Path(__file__).resolve().parent / "results" / "bench_hdf5.json"


def pattern(size, rng):
    """A far-field-like mean pattern: bright centre, rings, a diffuse background."""
    y, x = np.indices((size, size)) - size / 2
    r = np.hypot(y, x) / (size / 16)
    return 5e3 * (np.sinc(r) ** 2) + 2.0 + rng.uniform(0, 1, (size, size))


def write_files(folder, frames, size, seed=0):
    """The uncompressed and bitshuffle-LZ4 files; returns {name: path}."""
    rng = np.random.default_rng(seed)
    mean = pattern(size, rng)
    base = rng.poisson(mean, (16, size, size)).astype(np.uint16)  # 16 noisy frames, shifted
    paths = {"uncompressed": folder / "frames_raw.h5", "bitshuffle-lz4": folder / "frames_lz4.h5"}
    filters = {"uncompressed": {}, "bitshuffle-lz4": dict(hdf5plugin.Bitshuffle(cname="lz4"))}
    for name, path in paths.items():
        with h5py.File(path, "w") as f:
            dset = f.create_dataset(
                "entry/data",
                (frames, size, size),
                np.uint16,
                chunks=(1, size, size),
                **filters[name],
            )
            for start in range(0, frames, 16):
                block = np.roll(base, start // 16, axis=-1)[: frames - start]
                dset[start : start + len(block)] = block
            f["entry/y"] = np.arange(frames) * 1e-7
            f["entry/x"] = np.arange(frames) * -1e-7
    return {name: str(path) for name, path in paths.items()}


def bare(path, *, crop, chunk):
    with h5py.File(path, "r") as f:
        dset = f["entry/data"]
        n, size = dset.shape[0], dset.shape[-1]
        lo = size // 2 - crop // 2
        rows = cols = slice(lo, lo + crop)
        buf = np.empty((chunk, crop, crop), dset.dtype)
        start = time.perf_counter()
        for i in range(n):
            buf[i % chunk] = dset[i, rows, cols]
        return n / (time.perf_counter() - start), 0.0


def scan_rate(cls, path, *, crop, chunk, mode, workers):
    kw = {} if cls is Hdf5Loader else {"workers": workers}
    size = h5py.File(path, "r")["entry/data"].shape[-1]
    scan = cls(
        intensities={"file": path, "key": "entry/data"},
        positions={"slow_key": "entry/y", "fast_key": "entry/x"},
        shape=crop,
        center=(size // 2, size // 2),
        energy=8.0,
        distance=5.0,
        psize=75e-6,
        **kw,
    )
    start = time.perf_counter()
    scan.initialize()
    init_s = time.perf_counter() - start
    frames = 0
    start = time.perf_counter()
    if mode == "auto":
        while (out := scan.auto(chunk)) is not EOS:
            frames += len(out)
    else:
        for first in range(0, scan.num_frames, chunk):
            indices = np.arange(first, min(first + chunk, scan.num_frames))
            scan.load(indices)
            frames += len(indices)
    rate = frames / (time.perf_counter() - start)
    scan.close()
    return rate, init_s


def _burn(n):
    total = 0
    for i in range(n):
        total += i
    return total


def effective_cores():
    """How many cores two CPU-bound processes get (1.0 .. 2.0 on a 2-core machine)."""
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(2) as pool:
        pool.map(_burn, [1, 1])
        start = time.perf_counter()
        _burn(3_000_000)
        one = time.perf_counter() - start
        start = time.perf_counter()
        pool.map(_burn, [3_000_000] * 2)
        two = time.perf_counter() - start
    return round(2 * one / two, 2)


def run(args):
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_hdf5_"))
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paths = write_files(folder, args.frames, args.size)
    print(
        f"wrote {args.frames} frames of {args.size}² twice in {time.perf_counter() - start:.1f} s"
    )
    configs = [("bare", None, "bare")]
    for mode in ("load", "auto"):
        configs += [("Hdf5Loader", Hdf5Loader, mode), ("Hdf5LoaderFast", Hdf5LoaderFast, mode)]
    best = {}
    cores = []
    try:
        for _ in range(args.repeats):
            cores.append(effective_cores())
            for data, path in paths.items():
                for name, cls, mode in configs:
                    if cls is None:
                        rate, init_s = bare(path, crop=args.crop, chunk=args.chunk)
                    else:
                        rate, init_s = scan_rate(
                            cls,
                            path,
                            crop=args.crop,
                            chunk=args.chunk,
                            mode=mode,
                            workers=args.workers,
                        )
                    key = (data, name, mode)
                    if rate > best.get(key, (0, 0))[0]:
                        best[key] = (rate, init_s)
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    return best, cores


def report(best, cores, args):
    rows, results = [], {}
    for data in ("uncompressed", "bitshuffle-lz4"):
        bare_rate = best[(data, "bare", "bare")][0]
        entry = {"bare_fps": round(bare_rate)}
        for mode in ("load", "auto"):
            plain = best[(data, "Hdf5Loader", mode)]
            fast = best[(data, "Hdf5LoaderFast", mode)]
            entry[mode] = {
                "Hdf5Loader_fps": round(plain[0]),
                "Hdf5LoaderFast_fps": round(fast[0]),
                "fast_over_bare": round(fast[0] / bare_rate, 3),
                "fast_over_plain": round(fast[0] / plain[0], 3),
                "init_s": {"Hdf5Loader": round(plain[1], 3), "Hdf5LoaderFast": round(fast[1], 3)},
            }
            rows.append(
                f"{data:15s} {mode:5s} {bare_rate:9.0f} {plain[0]:11.0f} {fast[0]:15.0f} "
                f"{fast[0] / bare_rate:10.2f} {fast[0] / plain[0]:11.2f}"
            )
        entry["targets_met_on_load"] = {
            "fast_ge_80pct_of_bare": entry["load"]["fast_over_bare"] >= 0.8,
            "fast_ge_1.5x_plain": entry["load"]["fast_over_plain"] >= 1.5,
        }
        results[data] = entry
    print(
        f"\nframes/s, best of {args.repeats}; crop {args.crop}² of {args.size}², chunks of {args.chunk}"
    )
    print(
        f"{'data':15s} {'mode':5s} {'bare':>9s} {'Hdf5Loader':>11s} {'Hdf5LoaderFast':>15s} "
        f"{'fast/bare':>10s} {'fast/plain':>11s}"
    )
    print("\n".join(rows))
    print(f"effective cores during the runs: {cores}")
    return {
        "benchmark": "bench_hdf5",
        "frames": args.frames,
        "frame_size": args.size,
        "crop": args.crop,
        "chunk": args.chunk,
        "dtype": "uint16",
        "repeats": args.repeats,
        "workers": args.workers if args.workers is not None else "auto (CPUs of the process)",
        "cpus": os.cpu_count(),
        "effective_cores": cores,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "hdf5plugin": hdf5plugin.version,
        "results": results,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="Hdf5LoaderFast workers")
    parser.add_argument("--dir", default=None, help="where to write the files (kept)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON output ('' for none)")
    args = parser.parse_args(argv)
    best, cores = run(args)
    summary = report(best, cores, args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
