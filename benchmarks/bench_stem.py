"""StemScan memory and speed: a large float32 4D-STEM file prepared in chunks.

Writes a ``--scan`` × ``--scan`` raster of ``--npix``² float32 frames (a bright-field disk,
rings and noise) block by block, as an EMPAD-1 ``.raw`` (1024 bytes of metadata after each
frame), a ``(Ry, Rx, ky, kx)`` ``.npy`` or an ``(N, ky, kx)`` HDF5 dataset, in
``--dir`` (default /tmp; deleted afterwards); then prepares it with StemScan (statistics
pass, normalisation, a power-law pad to ``--pad``, Poisson noise) once per ``--chunk``
size, each in a fresh process, and reports:

- ``file_mb``: the size of the data;
- ``peak_rss_mb``: the process's peak resident memory (VmHWM), and ``over_base_mb`` above
  its resident memory after the imports: bounded by the chunk, not the file;
- ``frames_per_s``: frames prepared per second, the statistics pass included, with the
  1-minute load average before and after (it depends on load; the memory does not).

Usage::

    python benchmarks/bench_stem.py                      # 64 × 64 × 128², writes the JSON
    python benchmarks/bench_stem.py --scan 16 --chunk 64 # quick run
    python benchmarks/bench_stem.py --gib 4 --chunk 1024 --format npy   # the 4 GiB file
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "bench_stem.json"
GAP_BYTES = 1024


def pattern(npix):
    y, x = np.indices((npix, npix)) - npix / 2
    r = np.hypot(y, x)
    return (1e3 * (r < npix / 5) + 50.0 / (1 + (r / 4) ** 2) + 1.0).astype(np.float32)


def write(path, fmt, scan, npix, block=256, seed=0):
    """The scan in ``fmt`` (raw, npy, h5), ``block`` frames at a time (plain file writes:
    nothing of the file stays mapped or in this process's memory)."""
    rng = np.random.default_rng(seed)
    base, n = pattern(npix), scan * scan
    handle = None
    if fmt == "h5":
        import h5py

        handle = h5py.File(path, "w")
        flat = handle.create_dataset("data", (n, npix, npix), np.float32, chunks=(1, npix, npix))
    else:
        handle = open(path, "wb")  # noqa: SIM115
        gap = np.zeros(GAP_BYTES // 4, np.float32)
        if fmt == "npy":
            header = {"descr": "<f4", "fortran_order": False, "shape": (scan, scan, npix, npix)}
            np.lib.format.write_array_header_1_0(handle, header)
    for start in range(0, n, block):
        k = min(block, n - start)
        frames = rng.poisson(base, (k, npix, npix)).astype(np.float32)
        if fmt == "raw":
            for frame in frames:
                handle.write(frame.tobytes())
                handle.write(gap.tobytes())
        elif fmt == "npy":
            handle.write(frames.tobytes())
        else:
            flat[start : start + k] = frames
    handle.close()


def _status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(path, fmt, scan, npix, chunk, pad):
    """Prepare the file with StemScan in chunks of ``chunk``; print one JSON line."""
    from ptyscan import EOS
    from ptyscan.parallel import SerialComm
    from ptyscan.scans.stem import StemScan

    params = {"path": path, "key": "data"} if fmt == "h5" else {"path": path}
    if fmt == "raw":
        params["shape"] = [scan * scan, npix, npix]
    pars = {
        "meas_params": params,
        "pos_N_scan_slow": scan,
        "pos_N_scan_fast": scan,
        "meas_calibration": {"mode": "dx", "value": 0.2},
        "pos_scan_step_size": 0.5,
        "probe_kv": 300.0,
        "probe_conv_angle": 20.0,
        "meas_add_poisson_noise": {"unit": "total_e_per_pattern", "value": 1e5},
        "seed": 1,
    }
    if pad:
        pars["meas_pad"] = {"mode": "precompute", "padding_type": "power", "target_Npix": pad}
    base = _status_mb("VmRSS")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    scan_obj = StemScan(pars, comm=SerialComm())
    frames = 0
    while (out := scan_obj.auto(chunk)) is not EOS:
        frames += len(out.indices)
    elapsed = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    row = {"frames": frames, "seconds": elapsed, "frames_per_s": frames / elapsed}
    row.update({"base_rss_mb": base, "peak_rss_mb": peak, "over_base_mb": peak - base})
    row.update({"load_before": load_before, "load_after": os.getloadavg()[0]})
    print(json.dumps(row))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scan", type=int, default=64, help="raster side (frames = scan²)")
    ap.add_argument(
        "--gib", type=float, help="file size in GiB instead of --scan (4: 256 × 256 × 128²)"
    )
    ap.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the file goes")
    ap.add_argument("--npix", type=int, default=128, help="detector pixels across")
    ap.add_argument("--chunk", type=int, nargs="+", default=[64, 512], help="frames per chunk")
    ap.add_argument("--format", nargs="+", default=["raw", "npy", "h5"], dest="formats")
    ap.add_argument("--pad", type=int, default=0, help="meas_pad target_Npix (0: no pad)")
    ap.add_argument("--json", type=Path, default=RESULTS)
    ap.add_argument("--child", nargs=6, metavar=("PATH", "FMT", "SCAN", "NPIX", "CHUNK", "PAD"))
    args = ap.parse_args(argv)
    if args.child:
        path, fmt, *numbers = args.child
        child(path, fmt, *(int(v) for v in numbers))
        return 0
    if args.gib:
        args.scan = round(np.sqrt(args.gib * 2**30 / (4 * args.npix**2)))
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_stem_") as folder:
        for fmt in args.formats:
            path = Path(folder) / f"scan.{ {'h5': 'h5', 'npy': 'npy'}.get(fmt, 'raw') }"
            write(path, fmt, args.scan, args.npix)
            file_mb = path.stat().st_size / 2**20
            for chunk in args.chunk:
                cmd = [sys.executable, __file__, "--child", str(path), fmt, str(args.scan),
                       str(args.npix), str(chunk), str(args.pad)]  # fmt: skip
                env = dict(os.environ, OMP_NUM_THREADS="1")
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append({"format": fmt, "chunk": chunk, "file_mb": file_mb, **row})
            path.unlink()
    header = f"{'format':>6} {'chunk':>6} {'file MB':>8} {'peak RSS MB':>12} "
    header += f"{'over base MB':>13} {'frames/s':>9} {'load':>9}"
    print(header)
    for r in rows:
        print(
            f"{r['format']:>6} {r['chunk']:>6} {r['file_mb']:>8.1f} {r['peak_rss_mb']:>12.1f} "
            f"{r['over_base_mb']:>13.1f} {r['frames_per_s']:>9.0f} "
            f"{r['load_before']:>4.1f}-{r['load_after']:.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    setup = {k: getattr(args, k) for k in ("scan", "npix", "chunk", "formats", "pad", "gib")}
    payload = {"setup": setup, "machine": platform.platform(), "cpus": os.cpu_count()}
    args.json.write_text(json.dumps({**payload, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
