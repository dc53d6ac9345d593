"""Child process for the live-mode tests: an SWMR writer appending frames at a set rate.

Usage: ``python _swmr_writer.py PATH N_FRAMES RATE_HZ MODE STOP_AFTER``

MODE is ``finite`` (datasets grow up to a finite maxshape N), ``unlimited`` (maxshape None)
or ``counter`` (datasets preallocated at N, a ``live`` counter per point set to 1 when the
point is complete). The writer prints ``ready`` once SWMR mode is on, writes STOP_AFTER
frames (frame, then positions, then flush; then the counter), prints ``done`` and, when
STOP_AFTER < N_FRAMES, stays open (a stalled acquisition) until killed. It starts writing
when it reads a line ("go") on stdin, so that the test can open the file first.
"""

import sys
import time

import h5py
import numpy as np

SHAPE = (6, 7)


def frame(i):
    """Frame of point ``i``: deterministic counts."""
    return np.random.default_rng(i).poisson(4.0, SHAPE).astype(np.uint16)


def position(i):
    """(slow, fast) of point ``i`` in metres."""
    return i * 1e-7, -i * 2e-7


def main(path, n_frames, rate_hz, mode, stop_after):
    n, stop = int(n_frames), int(stop_after)
    preallocated = mode == "counter"
    first = n if preallocated else 0
    most = None if mode == "unlimited" else n
    with h5py.File(path, "w", libver="latest") as f:
        data = f.create_dataset(
            "entry/data", (first, *SHAPE), np.uint16, maxshape=(most, *SHAPE), chunks=(1, *SHAPE)
        )
        axes = [
            f.create_dataset(f"entry/{name}", (first,), np.float64, maxshape=(most,), chunks=(4,))
            for name in ("y", "x")
        ]
        live = None
        if preallocated:  # SWMR datasets are chunked (a contiguous one cannot be refreshed)
            live = f.create_dataset("entry/live", (n,), np.int32, chunks=(n,))
        f.swmr_mode = True
        print("ready", flush=True)
        sys.stdin.readline()  # "go": the reader has opened the file
        for i in range(stop):
            if not preallocated:
                data.resize(i + 1, axis=0)
            data[i] = frame(i)
            data.flush()
            for axis, value in zip(axes, position(i), strict=True):
                if not preallocated:
                    axis.resize((i + 1,))
                axis[i] = value
                axis.flush()
            if live is not None:
                live[i] = 1
                live.flush()
            time.sleep(1.0 / float(rate_hz))
        print("done", flush=True)
        if stop < n:
            time.sleep(60)


if __name__ == "__main__":
    main(*sys.argv[1:])
