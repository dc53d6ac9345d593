"""Conformance: every registered scan class honours the Chunk/WAIT/EOS and .ptyd contracts.

A new scan class must add a factory to FACTORIES (the first test fails until it does).
"""

import numpy as np
import pytest

from ptyscan import EOS, WAIT, Chunk
from ptyscan.ptyd import read_ptyd
from ptyscan.scans import available_scans, get_scan

N_FRAMES = 13


def _moonflower(tmp_path, **kw):
    return get_scan("MoonFlowerScan")(num_frames=N_FRAMES, shape=32, seed=2, **kw)


def _quick(tmp_path, **kw):
    return get_scan("QuickScan")(num_frames=N_FRAMES, shape=32, seed=2, **kw)


def _ptyd(tmp_path, **kw):
    source = tmp_path / "source.ptyd"
    if not source.exists():
        src = get_scan("MoonFlowerScan")(
            num_frames=N_FRAMES, shape=32, seed=2, save="append", dfile=str(source)
        )
        while src.auto(5) is not EOS:
            pass
    if "dfile" in kw:
        return get_scan("PtydScan")(source=str(source), **kw)
    return get_scan("PtydScan")(dfile=str(source), **kw)


FACTORIES = {"MoonFlowerScan": _moonflower, "QuickScan": _quick, "PtydScan": _ptyd}


def test_every_registered_scan_has_a_conformance_factory():
    missing = sorted(set(available_scans()) - set(FACTORIES))
    assert not missing, f"add conformance factories for {missing}"


def drain(scan, per_chunk=5):
    chunks = []
    for _ in range(200):
        msg = scan.auto(per_chunk)
        if msg is EOS:
            return chunks
        if msg is not WAIT:
            chunks.append(msg)
    raise AssertionError("no EOS after 200 calls")


@pytest.fixture(params=sorted(FACTORIES))
def make(request, tmp_path):
    return lambda **kw: FACTORIES[request.param](tmp_path, **kw)


def test_chunks_follow_the_contract(make):
    scan = make()
    chunks = drain(scan)
    assert scan.auto(5) is EOS and scan.auto(5) is EOS  # EOS stays EOS
    assert all(isinstance(c, Chunk) for c in chunks)
    indices = np.concatenate([c.indices for c in chunks])
    assert indices.tolist() == list(range(scan.num_frames))  # every frame once, in order
    assert [c.number for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        n = len(c)
        assert 0 < n <= 5
        assert c.data.dtype == np.float32 and c.data.shape == (n, *c.meta.shape)
        assert c.weights.dtype == np.float32 and c.weights.shape == c.data.shape
        assert c.positions.dtype == np.float64 and c.positions.shape == (n, 2)
        assert c.indices.dtype == np.int64
        assert np.all(c.data >= 0) and np.all(np.isfinite(c.data))
        assert np.all(c.weights >= 0)
        # positions are metres: a ptychography scan spans nm to mm, never metres
        assert np.all(np.abs(c.positions) < 1e-2)
        assert c.meta.num_frames == scan.num_frames
        assert c.meta.center is not None
        assert c.meta.psize[0] > 0 and c.meta.energy > 0 and c.meta.distance > 0


def test_ptyd_round_trip(make, tmp_path):
    out = tmp_path / "conformance.ptyd"
    scan = make(save="append", dfile=str(out))
    chunks = drain(scan)
    stored = read_ptyd(out)
    np.testing.assert_array_equal(stored.indices, np.concatenate([c.indices for c in chunks]))
    np.testing.assert_array_equal(stored.data, np.concatenate([c.data for c in chunks]))
    np.testing.assert_array_equal(stored.weights, np.concatenate([c.weights for c in chunks]))
    np.testing.assert_array_equal(stored.positions, np.concatenate([c.positions for c in chunks]))
    meta = chunks[0].meta
    assert tuple(stored.meta["shape"]) == meta.shape
    np.testing.assert_allclose(stored.meta["psize"], meta.psize)
    np.testing.assert_allclose(stored.meta["center"], meta.center)
    assert stored.meta["num_frames"] == scan.num_frames
    assert stored.meta["energy"] == pytest.approx(meta.energy)
    assert stored.info["name"] == scan.info.name
    assert stored.info["seed"] == scan.seed
