"""Scans and comparison helpers shared by the MPI tests (tests/mpi/) and their launcher.

Imported by the modules in tests/mpi/ (run under ``mpiexec``) and, by file path, by
tests/test_mpi.py (serial). Nothing here imports mpi4py.
"""

from __future__ import annotations

import numpy as np

from ptyscan import EOS, WAIT
from ptyscan.io import ptyd_chunk_ids, read_chunk, read_info, read_meta
from ptyscan.scans.moonflower import MoonFlowerScan

#: Small MoonFlower scan: 23 frames of 64², fixed seed, Poisson noise from (seed, index).
SMALL = {"num_frames": 23, "shape": 64, "seed": 11}


class EveryHookScan(MoonFlowerScan):
    """MoonFlower that uses every hook, and records which ones ran with what.

    - ``load_common``: a dark frame (added in ``load``, removed in ``correct``) and a gain;
    - ``load_weight``: a 2-D mask with a dead column;
    - ``load``: per-frame weights for frames ``i % 3 == 1`` (a dead row) and per-frame
      positions for frames ``i % 4 == 0`` (the stored ones shifted by 1 nm).
    """

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        self.calls = {"load": [], "load_common": 0, "load_weight": 0, "load_positions": 0}

    def load_common(self):
        self.calls["load_common"] += 1
        ny, nx = self.info.shape
        dark = np.linspace(0.0, 3.0, ny * nx, dtype=np.float32).reshape(ny, nx)
        return {"dark": dark, "gain": 1.5, "note": ["dark", 1]}

    def load_positions(self):
        self.calls["load_positions"] += 1
        return super().load_positions()

    def load_weight(self):
        self.calls["load_weight"] += 1
        weight = np.ones(self.info.shape, np.float32)
        weight[:, 5] = 0
        return weight

    def load(self, indices):
        self.calls["load"].append([int(i) for i in indices])
        raw, _, _ = super().load(indices)
        dark = self.common["dark"]
        raw = {i: frame + dark for i, frame in raw.items()}
        weights, positions = {}, {}
        for i in raw:
            if i % 3 == 1:
                weights[i] = np.ones(self.info.shape, np.float32)
                weights[i][i % self.info.shape[0], :] = 0
            if i % 4 == 0:
                positions[i] = self.positions[i] + np.array([1e-9, -1e-9])
        return raw, positions, weights

    def correct(self, raw, weights, common):
        gain, dark = common["gain"], common["dark"]
        return {i: np.maximum((f - dark) * gain, 0) for i, f in raw.items()}, weights


class LiveScan(MoonFlowerScan):
    """A scan still being measured: 4 more frames arrive at every ``check``."""

    def check(self, frames=None, start=None):
        start = self.framestart if start is None else start
        self._arrived = min(self.num_frames, getattr(self, "_arrived", 0) + 4)
        accessible = max(0, min(frames, self._arrived - start))
        return accessible, start + accessible >= self.num_frames


def run(scan, sizes, *, limit=200):
    """Call ``scan.auto`` with each of ``sizes`` (an int repeats) until EOS; every answer."""
    out = []
    for k in range(limit):
        size = sizes if isinstance(sizes, int) else sizes[min(k, len(sizes) - 1)]
        out.append(scan.auto(size))
        if out[-1] is EOS:
            return out
    raise AssertionError(f"no EOS after {limit} calls of auto: {summary(out)[-5:]}")


def summary(answers):
    """WAIT / EOS / the chunk's full index range, per answer (the same on every rank)."""
    out = []
    for a in answers:
        if a is WAIT or a is EOS:
            out.append(a.value)
        else:
            out.append(
                (int(a.all_indices[0]), int(a.all_indices[-1])) if len(a.all_indices) else ()
            )
    return out


def chunks_of(answers):
    return [a for a in answers if a is not WAIT and a is not EOS]


def local_parts(chunk):
    """This rank's frames of a chunk as plain arrays (weights materialised)."""
    return {
        "indices": np.array(chunk.indices),
        "data": np.array(chunk.data),
        "weights": np.array(chunk.weights),
        "positions": np.array(chunk.positions),
    }


def merge_parts(parts):
    """Concatenate the ranks' pieces of one chunk in rank order."""
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def assert_same_arrays(got, want, what):
    for key in want:
        a, b = np.asarray(got[key]), np.asarray(want[key])
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{what} {key}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        )
        assert a.tobytes() == b.tobytes(), f"{what} {key}: values differ"


def _same_value(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def assert_ptyd_identical(path_a, path_b, *, ignore_info=("dfile",)):
    """Chunk by chunk, byte for byte: indices, data, weights, positions; meta; info."""
    ids = ptyd_chunk_ids(path_a)
    assert ids == ptyd_chunk_ids(path_b), f"chunk ids differ: {path_a} vs {path_b}"
    assert len(ids) > 0
    for n in ids:
        assert_same_arrays(read_chunk(path_b, n), read_chunk(path_a, n), f"chunk {n}")
    meta_a, meta_b = read_meta(path_a), read_meta(path_b)
    assert meta_a.keys() == meta_b.keys()
    for key in meta_a:
        assert _same_value(meta_a[key], meta_b[key]), f"meta {key}: {meta_a[key]} != {meta_b[key]}"
    info_a, info_b = read_info(path_a), read_info(path_b)
    assert info_a.keys() == info_b.keys()
    for key in info_a.keys() - set(ignore_info):
        assert _same_value(info_a[key], info_b[key]), f"info {key}: {info_a[key]} != {info_b[key]}"
