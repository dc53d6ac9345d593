"""Preparation speed and memory: MoonFlower frames through the PtyScan lifecycle.

    python benchmarks/bench_prepare.py                      # 1000 frames of 256², chunks of 100
    python benchmarks/bench_prepare.py --frames 200 --shape 128

Each mode (no save, append, link) runs in a fresh subprocess so that its peak
RSS is its own. Prints a table and writes JSON (default
benchmarks/results/bench_prepare.json). ptypy 0.9 on this 2-core machine kind
measured 6.2 ms/frame without saving, 13 ms/frame with append (gzip) and a
peak RSS of 372 MB for the same job; the target is at least 2x faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

PTYPY_MS_PER_FRAME = {"none": 6.2, "append": 13.0}
PTYPY_PEAK_RSS_MB = 372.0


def run_one(mode, frames, shape, chunk, compression):
    """Prepare in this process; return a result dict."""
    from ptyscan.app.streaming import iterate_chunks
    from ptyscan.scans import get_scan

    with tempfile.TemporaryDirectory() as tmp:
        kw = {}
        if mode != "none":
            kw = dict(save=mode, dfile=os.path.join(tmp, "bench.ptyd"), compression=compression)
        scan = get_scan("MoonFlowerScan")(num_frames=frames, shape=shape, seed=0, **kw)
        start = time.perf_counter()
        n = sum(len(c.all_indices) for c in iterate_chunks(scan, frames_per_chunk=chunk))
        seconds = time.perf_counter() - start
        size = sum(
            os.path.getsize(os.path.join(tmp, f))
            for f in os.listdir(tmp)
            if not f.endswith(".old")
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "mode": mode,
        "frames": n,
        "seconds": seconds,
        "ms_per_frame": 1e3 * seconds / n,
        "frames_per_s": n / seconds,
        "peak_rss_mb": peak_mb,
        "file_mb": size / 2**20,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--shape", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"])
    parser.add_argument("--modes", default="none,append,link")
    parser.add_argument(
        "--json", default=os.path.join(os.path.dirname(__file__), "results", "bench_prepare.json")
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    compression = None if args.compression == "none" else args.compression

    if args.child:
        result = run_one(args.child, args.frames, args.shape, args.chunk, compression)
        print(json.dumps(result))
        return 0

    rows = []
    for mode in args.modes.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--frames",
            str(args.frames),
            "--shape",
            str(args.shape),
            "--chunk",
            str(args.chunk),
            "--compression",
            args.compression,
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1800)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(
        f"MoonFlower {args.frames} frames of {args.shape}², chunks of {args.chunk}, "
        f"compression {args.compression}"
    )
    print(
        f"{'mode':<8} {'ms/frame':>9} {'frames/s':>9} {'peak MB':>8} {'file MB':>8} {'vs ptypy':>9}"
    )
    for r in rows:
        ref = PTYPY_MS_PER_FRAME.get(r["mode"])
        r["speedup_vs_ptypy"] = ref / r["ms_per_frame"] if ref and args.shape == 256 else None
        ratio = f"{r['speedup_vs_ptypy']:.1f}x" if r["speedup_vs_ptypy"] else "-"
        print(
            f"{r['mode']:<8} {r['ms_per_frame']:>9.2f} {r['frames_per_s']:>9.0f} "
            f"{r['peak_rss_mb']:>8.0f} {r['file_mb']:>8.1f} {ratio:>9}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(
            {
                "benchmark": "prepare",
                "frames": args.frames,
                "shape": args.shape,
                "chunk": args.chunk,
                "compression": args.compression,
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "date": time.strftime("%Y-%m-%d"),
                "ptypy_ms_per_frame": PTYPY_MS_PER_FRAME,
                "ptypy_peak_rss_mb": PTYPY_PEAK_RSS_MB,
                "results": rows,
            },
            fh,
            indent=2,
        )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
