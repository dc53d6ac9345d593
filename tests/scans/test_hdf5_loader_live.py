"""Live mode: frames delivered while a writer process appends them to an SWMR file."""

import contextlib
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _swmr_writer import frame, position

from ptyscan import EOS, WAIT
from ptyscan.scans.hdf5_loader import Hdf5Loader
from ptyscan.scans.hdf5_loader_fast import Hdf5LoaderFast

WRITER = Path(__file__).with_name("_swmr_writer.py")


@contextlib.contextmanager
def writer(path, n, rate_hz, mode, stop_after=None):
    """Run the SWMR writer; yield it once its file is in SWMR mode; kill it at the end."""
    args = [str(path), str(n), str(rate_hz), mode, str(stop_after or n)]
    with subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            line = proc.stdout.readline().strip()
            assert line == "ready", f"writer did not start: {line!r}"
            yield proc
            if stop_after is None:
                assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
            proc.wait(timeout=10)


def go(proc):
    """Let the writer start writing."""
    proc.stdin.write("go\n")
    proc.stdin.flush()


def live_scan(path, cls=Hdf5Loader, **kw):
    pars = {
        "intensities": {"file": str(path), "key": "entry/data"},
        "positions": {"slow_key": "entry/y", "fast_key": "entry/x"},
        "live": True,
        "live_timeout": 20.0,
        "energy": 7.2,
        "distance": 7.19,
        "psize": 172e-6,
    }
    return cls({**pars, **kw})


def follow(scan, per_chunk, deadline_s=30.0):
    """Call auto until EOS (sleeping on WAIT); return (chunks, number of WAITs)."""
    chunks, waits, end = [], 0, time.monotonic() + deadline_s
    while time.monotonic() < end:
        msg = scan.auto(per_chunk)
        if msg is EOS:
            return chunks, waits
        if msg is WAIT:
            waits += 1
            time.sleep(0.005)
        else:
            chunks.append(msg)
    raise AssertionError(f"no EOS within {deadline_s} s; got {len(chunks)} chunks")


def check_frames(chunks, n):
    indices = np.concatenate([c.indices for c in chunks])
    assert indices.tolist() == list(range(n))  # every frame exactly once, in order
    data = np.concatenate([c.data for c in chunks])
    np.testing.assert_array_equal(data, np.stack([frame(i) for i in range(n)]))
    positions = np.concatenate([c.positions for c in chunks])
    np.testing.assert_array_equal(positions, [position(i) for i in range(n)])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("mode", "cls", "extra"),
    [
        ("finite", Hdf5Loader, {}),
        ("unlimited", Hdf5Loader, {"num_frames": 30}),
        ("counter", Hdf5LoaderFast, {"live_key": "entry/live", "workers": 2}),
    ],
)
def test_frames_arrive_once_in_order_while_written(tmp_path, mode, cls, extra):
    path = tmp_path / "live.h5"
    with writer(path, 30, 100, mode) as proc:
        scan = live_scan(path, cls, min_frames=3, **extra)
        scan.initialize()  # opens the files (and starts Hdf5LoaderFast's workers)
        go(proc)
        chunks, waits = follow(scan, per_chunk=7)
    check_frames(chunks, 30)
    assert waits > 0  # the scan really ran ahead of the writer
    assert all(len(c) >= 3 for c in chunks[:-1]) and scan.num_frames == 30


@pytest.mark.timeout(60)
def test_timeout_ends_a_stalled_scan_with_a_warning(tmp_path, caplog):
    path = tmp_path / "stalled.h5"
    with writer(path, 20, 200, "finite", stop_after=6) as proc:
        go(proc)
        assert proc.stdout.readline().strip() == "done"
        scan = live_scan(path, live_timeout=0.5)
        with caplog.at_level(logging.WARNING):
            chunks, _ = follow(scan, per_chunk=4)
    check_frames(chunks, 6)
    assert "no new frame for" in caplog.text and "after 6 of 20 expected frames" in caplog.text
    assert scan.num_frames == 6 and scan.auto(4) is EOS


def test_live_scan_of_unknown_length_needs_num_frames_for_a_frame_order(tmp_path):
    path = tmp_path / "open.h5"
    with writer(path, 3, 500, "unlimited") as proc:
        go(proc)
    scan = live_scan(path, frameorder={"indices": [0]})
    with pytest.raises(Exception, match="need the number of frames of a live scan"):
        scan.initialize()


@pytest.mark.timeout(60)
def test_a_live_run_may_start_before_the_file_exists(tmp_path, caplog):
    """The reconstruction is started first: the live scan waits (up to live_timeout) for
    the detector's file to appear; without it, the usual missing-file error."""
    import threading

    from ptyscan.errors import ScanError

    path = tmp_path / "late.h5"
    with writer(tmp_path / "early.h5", 12, 500, "finite") as proc:
        go(proc)
        assert proc.stdout.readline().strip() == "done"
    timer = threading.Timer(0.5, lambda: (tmp_path / "early.h5").rename(path))
    timer.start()
    scan = live_scan(path, live_timeout=20)
    with caplog.at_level(logging.INFO, logger="ptyscan.scans.hdf5_live"):
        chunks, _ = follow(scan, per_chunk=5)
    timer.join()
    check_frames(chunks, 12)
    assert f"waiting up to 20 s (live_timeout) for {path} to appear" in caplog.text
    start = time.monotonic()
    with pytest.raises(ScanError, match=r"scan\.intensities\.file: no such file"):
        live_scan(tmp_path / "never.h5", live_timeout=0.3).initialize()
    assert 0.3 <= time.monotonic() - start < 10
