"""Build time and memory of :func:`ptyscan.simulate.moonflower_object`.

    python benchmarks/bench_object.py                  # 512², 1024², 2100²; best of 5
    python benchmarks/bench_object.py --sizes 2100 --repeat 10

Each size runs in a fresh subprocess so its peak RSS is its own. Prints, per
size, the best and median wall time of ``--repeat`` builds, and the peak RSS
added by the first build over the RSS after imports (``ru_maxrss``, MB).
MoonFlowerScan with 1000 frames of 256² needs a 2100² object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_mb():
    """Peak resident set size of this process so far, in MB (Linux: ru_maxrss is kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(size, repeat):
    """Build the object ``repeat`` times in this process; return a result dict."""
    from ptyscan.simulate import moonflower_object

    moonflower_object(8)  # warm up imports and lazily loaded numpy code
    base = _rss_mb()
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        obj = moonflower_object((size, size))
        times.append(time.perf_counter() - start)
        if i == 0:
            peak = _rss_mb() - base
        del obj
    times.sort()
    return {
        "size": size,
        "best_s": times[0],
        "median_s": times[len(times) // 2],
        "peak_rss_added_mb": peak,
    }


def main(argv=None):
    """Parse arguments; run each size in a subprocess and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2100])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.repeat)))
        return
    print(f"{'size':>6} {'best s':>9} {'median s':>9} {'peak +MB':>9}")
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(size), "--repeat", str(args.repeat)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{size:>6} {r['best_s']:>9.3f} {r['median_s']:>9.3f} {r['peak_rss_added_mb']:>9.1f}"
        )


if __name__ == "__main__":
    main()
