"""Hdf5LoaderFast gives exactly Hdf5Loader's chunks, in worker processes and in-process."""

import os

import h5py
import numpy as np
import pytest
from test_hdf5_loader import LAYOUTS, M, N, collect, make, scan_file, write

from ptyscan.scans.hdf5_loader import Hdf5Loader
from ptyscan.scans.hdf5_loader_fast import Hdf5LoaderFast


def corrected_scan(tmp_path, kind):
    """A scan file with per-frame darks, a 2-D flat, per-frame masks and a monitor."""
    path, frames, _ = scan_file(tmp_path, kind, dtype=np.uint32)
    rng = np.random.default_rng(11)
    lead = frames.shape[0]
    monitor = rng.uniform(80, 120, lead)
    monitor[3] = 900.0  # an outlier
    write(
        path,
        entry__dark=rng.uniform(0, 25, (lead, M, N)).astype(np.float32),
        entry__flat=rng.uniform(0.5, 1.5, (M, N)),
        entry__mask=(rng.uniform(size=(lead, M, N)) > 0.1).astype(np.uint8),
        entry__monitor=monitor,
    )
    return path, {
        "darkfield": {"key": "entry/dark"},
        "flatfield": {"key": "entry/flat"},
        "mask": {"key": "entry/mask"},
        "normalisation": {"key": "entry/monitor", "sigma": 2.5},
        "padding": [1, 0, 2, 1],
        "shape": (8, 9),
        "center": (5.2, 6.7),
    }


def dark_like_frames(path):
    """Per-frame darks and masks laid out like the frames (e.g. (A, B, m, n))."""
    with h5py.File(path, "a") as f:
        dark = f["entry/dark"][()]
        del f["entry/dark"]
        f["entry/dark"] = dark.reshape(f["entry/data"].shape)
        mask = f["entry/mask"][()]
        del f["entry/mask"]
        f["entry/mask"] = mask.reshape(f["entry/data"].shape)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", LAYOUTS)
def test_fast_equals_plain_on_every_layout_with_corrections(tmp_path, kind, workers):
    path, pars = corrected_scan(tmp_path, kind)
    dark_like_frames(path)
    plain = collect(make(path, Hdf5Loader, **pars), per_chunk=5)
    fast = collect(make(path, Hdf5LoaderFast, workers=workers, **pars), per_chunk=5)
    for a, b in zip(plain[:4], fast[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    assert plain[4] == fast[4]  # meta
    assert np.count_nonzero(plain[2] == 0) > 0  # masked pixels were exercised


def test_fast_selection_and_order_equal_plain(tmp_path):
    path, *_ = scan_file(tmp_path, "mapped raster")
    pars = {"positions": {"skip": 2}, "frameorder": {"indices": [3, 1, 1, 0, 2]}}
    plain = collect(make(path, Hdf5Loader, **pars))
    fast = collect(make(path, Hdf5LoaderFast, workers=2, **pars))
    for a, b in zip(plain[:4], fast[:4], strict=True):
        np.testing.assert_array_equal(a, b)


def shared_files():
    folder = "/dev/shm"
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return {name for name in names if name.startswith("ptyscan-hdf5-")}


def test_frames_from_one_load_survive_the_next(tmp_path):
    path, frames, _ = scan_file(tmp_path, "arbitrary")
    before = shared_files()
    scan = make(path, Hdf5LoaderFast, workers=2)
    scan.initialize()
    first, _, _ = scan.load(np.arange(4))
    second, _, _ = scan.load(np.arange(4, 8))  # must not reuse the buffer still in use
    np.testing.assert_array_equal(np.stack([first[i] for i in range(4)]), frames[:4])
    np.testing.assert_array_equal(np.stack([second[i] for i in range(4, 8)]), frames[4:8])
    buffer = scan._buffers["frames"]
    del first, second
    third, _, _ = scan.load(np.arange(8, 12))  # the buffer is free again: reused
    assert scan._buffers["frames"] is buffer
    np.testing.assert_array_equal(np.stack([third[i] for i in range(8, 12)]), frames[8:12])
    scan.close()
    assert shared_files() <= before  # the shared buffers are gone


def test_a_worker_error_reaches_the_caller(tmp_path):
    path, *_ = scan_file(tmp_path, "arbitrary")
    scan = make(path, Hdf5LoaderFast, workers=2)
    scan.initialize()
    scan._leads = lambda points: points[:, None] + 1000  # frames that do not exist
    before = shared_files()
    with pytest.raises((TypeError, ValueError, IndexError, OSError)):
        scan.load(np.arange(6))
    scan.close()
    assert shared_files() <= before
