"""Data residency: 'host' (views streamed block by block) gives the results of 'device'.

On NumPy the 'host' path runs the control flow CuPy runs (staging buffers, copies,
write-backs), with synchronous copies; a deferring copier stands in for the
asynchronous CUDA stream.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _engine_helpers import model_probe, moonflower

from ptyscan.engines import DM, ML, get_backend
from ptyscan.engines.residency import AUTO_FRACTION, Streamer, choose_residency

MODELS = ["gaussian", "poisson", "euclid"]
BLOCK = 5  # 24 views: blocks of 5 with a short last one


@pytest.fixture(scope="module")
def scan():
    return moonflower(24, 32, density=0.25, noise=True)


def _chunk(scan, n=24, start=0, *, per_frame_mask=False):
    chunk = scan.get_data_chunk(n, start=start)
    if not per_frame_mask:
        return chunk
    rng = np.random.default_rng(start)
    weights = (rng.random(chunk.data.shape) > 0.02).astype(np.float32)
    return dataclasses.replace(chunk, weights=weights)


def _engine(cls, residency, **kw):
    kw.setdefault("probe", model_probe(32))
    return cls(
        backend="numpy", precision="double", block_size=BLOCK, data_residency=residency, **kw
    )


def _run(cls, chunks, residency, n=6, **kw):
    """Add each chunk (with its residency) and iterate ``n`` times after each."""
    eng = _engine(cls, residency if isinstance(residency, str) else residency[0], **kw)
    history = []
    for k, chunk in enumerate(chunks):
        if not isinstance(residency, str):
            eng.params = eng.params.model_copy(update={"data_residency": residency[k]})
        eng.add_views(chunk)
        history += eng.iterate(n)
    return eng, history


def _assert_streamed(eng):
    """Host view sets keep data, exit waves and per-frame masks in host memory and no
    per-view array derived from them."""
    for vs in eng.state.viewsets:
        assert vs.streamed and {"data", "exit"} <= vs.host_arrays
        assert ("mask" in vs.host_arrays) == (vs.mask.shape[0] > 1)
        assert not [k for k, v in vs.cache.items() if getattr(v, "ndim", 0) > 1 or k == "blocks"]


# --- 'auto' -----------------------------------------------------------------------------


def test_auto_resolves_to_device_on_numpy(scan):
    dm = DM(backend="numpy", probe=model_probe(32))
    assert dm.params.data_residency == "auto"
    dm.add_views(_chunk(scan))
    dm.iterate(1)
    vs = dm.state.viewsets[0]
    assert not vs.streamed and vs.host_arrays == frozenset()
    assert "far_exit" in vs.cache  # the device-resident DM keeps the spectra
    assert choose_residency("auto", gpu=False, need_bytes=1 << 60, free_bytes=0) == "device"


def test_auto_rule_keeps_the_resident_views_in_a_fraction_of_the_free_memory():
    gpu = dict(gpu=True, free_bytes=1000)
    assert AUTO_FRACTION == 0.5
    assert choose_residency("auto", need_bytes=500, **gpu) == "device"
    assert choose_residency("auto", need_bytes=501, **gpu) == "host"
    # 300 bytes already resident: the budget is half of the 1300 bytes the state may use
    assert choose_residency("auto", need_bytes=350, resident_bytes=300, **gpu) == "device"
    assert choose_residency("auto", need_bytes=351, resident_bytes=300, **gpu) == "host"
    assert choose_residency("auto", gpu=True, need_bytes=10, free_bytes=None) == "device"
    for mode in ("device", "host"):
        assert choose_residency(mode, need_bytes=1 << 60, **gpu) == mode
    with pytest.raises(ValueError, match="data_residency"):
        choose_residency("disk", gpu=False)


def test_data_residency_is_validated():
    from ptyscan.errors import RecipeError

    with pytest.raises(RecipeError, match="data_residency"):
        DM(backend="numpy", data_residency="disk")


# --- same results -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"per_frame_mask": True},
        {"probe_modes": 2, "object_modes": 2, "probe": None},
        {"alpha": 0.5, "compute_log_likelihood": False, "update_object_first": False},
        {"probe_model": "focused", "probe": None, "per_frame_mask": True},
    ],
    ids=str,
)
def test_dm_host_equals_device(scan, kw):
    kw = dict(kw, probe_update_start=0)
    chunk = _chunk(scan, per_frame_mask=kw.pop("per_frame_mask", False))
    dev, h_dev = _run(DM, [chunk], "device", n=8, **kw)
    host, h_host = _run(DM, [chunk], "host", n=8, **kw)
    _assert_streamed(host)
    # the streamed DM starts each Fourier update from fw(ψ) instead of the kept spectrum
    # (ptypy's way): equal to rounding
    scale = np.abs(dev.object).max()
    np.testing.assert_allclose(host.object, dev.object, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(host.probe, dev.probe, rtol=0, atol=1e-10 * np.abs(dev.probe).max())
    for a, b in zip(h_dev, h_host, strict=True):
        for key in ("fourier", "photons", "exit"):
            assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("floating", [False, True])
@pytest.mark.parametrize("poly", ["quadratic", "all"])
@pytest.mark.parametrize("kind", MODELS)
def test_ml_host_equals_device_exactly(scan, kind, poly, floating):
    """ML recomputes per block what it keeps per view on the device, with the same
    operations on the same blocks: the results are identical."""
    chunk = _chunk(scan, per_frame_mask=floating)
    kw = dict(ML_type=kind, poly_line_coeffs=poly, floating_intensities=floating, reg_del2=True)
    dev, h_dev = _run(ML, [chunk], "device", **kw)
    host, h_host = _run(ML, [chunk], "host", **kw)
    _assert_streamed(host)
    np.testing.assert_array_equal(host.object, dev.object)
    np.testing.assert_array_equal(host.probe, dev.probe)
    assert [r["loglik"] for r in h_host] == [r["loglik"] for r in h_dev]


@pytest.mark.parametrize("cls", [DM, ML])
def test_views_added_incrementally_and_mixed_residency(scan, cls):
    """Two chunks added while iterating: 'host', 'device' and a mix ('auto' on a GPU
    may keep early chunks on the device and stream later ones) agree."""
    chunks = [_chunk(scan, 10, 0, per_frame_mask=True), _chunk(scan, 14, 10)]
    kw = {"ML_type": "poisson", "poly_line_coeffs": "all"} if cls is ML else {}
    dev, h_dev = _run(cls, chunks, "device", n=4, **kw)
    results = {
        "host": _run(cls, chunks, "host", n=4, **kw),
        "mixed": _run(cls, chunks, ("device", "host"), n=4, **kw),
    }
    mixed = results["mixed"][0].state.viewsets
    assert [vs.streamed for vs in mixed] == [False, True]
    tol = 0 if cls is ML else 1e-10
    for eng, hist in results.values():
        assert eng.state.n_views == 24 and len(hist) == 8
        scale = np.abs(dev.object).max()
        np.testing.assert_allclose(eng.object, dev.object, rtol=0, atol=tol * scale)
        np.testing.assert_allclose(
            eng.probe, dev.probe, rtol=0, atol=tol * np.abs(dev.probe).max()
        )
        for a, b in zip(h_dev, hist, strict=True):
            assert b["fourier"] == pytest.approx(a["fourier"], rel=tol)


def test_ml_continues_a_streamed_dm(scan):
    chunk = _chunk(scan, per_frame_mask=True)
    out = {}
    for residency in ("device", "host"):
        dm, _ = _run(DM, [chunk], residency, n=4)
        ml = ML(state=dm.state, block_size=BLOCK, data_residency=residency)
        out[residency] = ml.iterate(4), ml.object
    np.testing.assert_allclose(
        out["host"][1], out["device"][1], rtol=0, atol=1e-9 * np.abs(out["device"][1]).max()
    )


# --- the streaming machinery ----------------------------------------------------------------


class DeferringCopier:
    """Copies as late as the events allow: the copy 'stream' runs its queue only when the
    compute side waits for one of its events (or at synchronize) — the worst case of
    asynchrony. A pass that used a block before waiting for its copy, or a write-back
    whose source changed before the copy ran, would give other results."""

    def __init__(self):
        self.queue = []  # pending copies, in stream order
        self.done = 0  # copies run so far
        self.most_in_flight = 0

    def _enqueue(self, dst, src):
        self.queue.append((dst, src))
        self.most_in_flight = max(self.most_in_flight, len(self.queue))

    h2d = d2h = _enqueue

    def compute_event(self):
        return None  # NumPy compute is synchronous: it is always done

    def copy_event(self):
        return self.done + len(self.queue)  # "all copies enqueued so far"

    def copy_waits(self, event):
        pass

    def compute_waits(self, event):
        while event is not None and self.done < event:
            dst, src = self.queue.pop(0)
            np.copyto(dst, src)
            self.done += 1

    def synchronize(self):
        self.compute_waits(self.done + len(self.queue))


@pytest.mark.parametrize("cls", [DM, ML])
def test_deferred_copies_give_the_same_result(scan, cls):
    chunk = _chunk(scan, per_frame_mask=True)
    ref, _ = _run(cls, [chunk], "host", n=5)
    eng = _engine(cls, "host")
    eng.add_views(chunk)
    copier = DeferringCopier()
    eng.state.streamer = Streamer(eng.backend, copier=copier)
    eng.iterate(5)
    assert copier.most_in_flight >= 4  # copies really were left pending across blocks
    np.testing.assert_array_equal(eng.object, ref.object)
    np.testing.assert_array_equal(eng.probe, ref.probe)


@pytest.mark.parametrize("cls", [DM, ML])
def test_host_residency_keeps_only_blocks_on_the_device(scan, cls):
    """Bounded device memory: two staging buffers of one block per streamed array."""
    eng, _ = _run(cls, [_chunk(scan, per_frame_mask=True)], "host", n=3)
    _assert_streamed(eng)
    st = eng.state
    per_view = st.npix * (2 * 8 + st.object_modes * st.probe_modes * 16)  # data, mask, exit
    assert 0 < st.streamer.staging_bytes <= 2 * max(BLOCK, 64) * per_view
    for pair in st.streamer._buffers.values():
        assert all(buf.shape[0] <= max(BLOCK, 64) for buf in pair)


def test_block_passes_read_and_write_rows(scan):
    bk = get_backend("numpy", precision="double", threads=1)
    dm = DM(backend=bk, data_residency="host", block_size=7, probe=model_probe(32))
    dm.add_views(_chunk(scan))
    st = dm.state
    st.ensure_exit(7)
    before = st.viewsets[0].exit.copy()
    seen = []
    for blk in st.blocks(7, read=("data", "exit")):
        seen.append((blk.sl.start, len(blk)))
        np.testing.assert_array_equal(blk["data"], blk.vs.data[blk.sl])
        with pytest.raises(KeyError, match="mask"):
            blk["mask"]
        blk["exit"] = 2 * blk["exit"]
        with pytest.raises(ValueError, match="shape"):
            blk["exit"] = blk["exit"][:1]
    assert seen == [(0, 7), (7, 7), (14, 7), (21, 3)]
    np.testing.assert_array_equal(st.viewsets[0].exit, 2 * before)


def test_copy_of_a_streamed_state_is_independent(scan):
    dm, _ = _run(DM, [_chunk(scan)], "host", n=2)
    new = dm.state.copy()
    assert new.viewsets[0].host_arrays == dm.state.viewsets[0].host_arrays
    new.viewsets[0].exit += 1
    assert not np.allclose(new.viewsets[0].exit, dm.state.viewsets[0].exit)
    assert new.streamer is not dm.state.streamer
