"""Block passes on several threads (engines/blockpool.py): same results as one thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _engine_helpers import model_probe

from ptyscan.backend import ScipyFFT, get_backend
from ptyscan.engines import DM, ML, RAAR, blockpool
from ptyscan.engines.blockpool import BlockPool
from ptyscan.scans.moonflower import MoonFlowerScan


@pytest.fixture(scope="module")
def chunk():
    scan = MoonFlowerScan(num_frames=40, shape=64, add_poisson_noise=True, seed=0)
    return scan.auto(40)


def test_run_keeps_block_order_and_sums_every_thread_into_the_shared_arrays():
    pool = BlockPool(get_backend("numpy", threads=3))
    total = np.zeros(4)
    groups, accs = [], []
    original = BlockPool._work

    def spy(self, group, fn, acc):
        groups.append(list(group))
        accs.append(acc[0])
        return original(self, group, fn, acc)

    def fn(blk, acc):
        acc[0][blk % 4] += blk
        return blk * 10

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BlockPool, "_work", spy)
        out = pool.run(iter(range(11)), fn, accumulate=(total,))
    assert out == [b * 10 for b in range(11)]
    expected = np.zeros(4)
    np.add.at(expected, np.arange(11) % 4, np.arange(11))
    np.testing.assert_array_equal(total, expected)
    # three contiguous runs of blocks, each summing into its own array (the first: total)
    assert groups == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10]]
    assert accs[0] is total and accs[1] is not total and accs[2] is not accs[1]


def test_one_thread_or_parallel_false_runs_on_the_calling_thread():
    me = threading.current_thread().name
    for pool, parallel in (
        (BlockPool(get_backend("numpy", threads=1)), True),
        (BlockPool(get_backend("numpy", threads=2)), False),
    ):
        seen = pool.run(
            range(5), lambda b, acc: threading.current_thread().name, parallel=parallel
        )
        assert seen == [me] * 5


def test_an_error_in_one_block_reaches_the_caller_after_every_thread_is_done():
    pool = BlockPool(get_backend("numpy", threads=2))
    done = []

    def fn(blk, acc):
        if blk == 0:
            raise ValueError("block 0 failed")
        done.append(blk)

    with pytest.raises(ValueError, match="block 0 failed"):
        pool.run(range(6), fn)
    assert sorted(done) == [3, 4, 5]  # the other thread (blocks 3-5) finished its run


def test_fft_thread_limit_is_per_thread():
    fft = ScipyFFT(2)
    inside = []

    def worker():
        with fft.limited(1):
            inside.append(fft.workers)
            x = np.ones((2, 8, 8), np.complex64)
            np.testing.assert_allclose(fft.ifft2(fft.fft2(x)), x, atol=1e-6)
        inside.append(fft.workers)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert inside == [1, 2] and fft.workers == 2


@pytest.mark.parametrize(
    "cls, extra, iterations",
    [
        (DM, {}, 6),
        (RAAR, {}, 6),
        (ML, dict(ML_type="gaussian", reg_del2=True, scale_precond=True), 6),
        # Poisson CG with exact line searches amplifies rounding ~10x per iteration from a
        # flat start (1e-7 after one, 3e-5 after two, 0.1 after six): two iterations
        (ML, dict(ML_type="poisson", poly_line_coeffs="all"), 2),
        (ML, dict(ML_type="gaussian", object_slices=2, slice_thickness=5e-6), 4),
    ],
)
def test_two_threads_reconstruct_what_one_thread_does(chunk, cls, extra, iterations):
    """Only the order of the sums differs: the results agree to single-precision rounding."""
    out, calls = {}, []
    original = BlockPool._work

    def counting(self, group, fn, acc):
        calls.append(len(group))
        return original(self, group, fn, acc)

    for threads in (1, 2):
        backend = get_backend("numpy", threads=threads)
        eng = cls(probe=model_probe(64), backend=backend, block_size=4, **extra)
        eng.add_views(chunk)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(blockpool.BlockPool, "_work", counting)
            hist = eng.iterate(iterations)
        out[threads] = (eng.state.object_host[0], eng.probe, hist[-1])
    assert calls and all(n > 0 for n in calls)  # the two-thread run used the pool
    (o1, p1, h1), (o2, p2, h2) = out[1], out[2]
    lit = np.abs(o1) > 0.5 * np.abs(o1).max()
    assert np.max(np.abs(o1 - o2)[lit]) < 1e-4 * np.abs(o1).max()
    assert np.max(np.abs(p1 - p2)) < 1e-4 * np.abs(p1).max()
    for key in ("fourier", "photons"):
        assert h2[key] == pytest.approx(h1[key], rel=1e-4)


def test_streamed_view_sets_run_on_one_thread(chunk):
    """Host-resident rows share two staging buffers: their passes never go to the pool."""
    eng = DM(
        probe=model_probe(64),
        backend=get_backend("numpy", threads=2),
        block_size=4,
        data_residency="host",
    )
    eng.add_views(chunk)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blockpool.BlockPool, "_pool", lambda self: pytest.fail("pool used"))
        eng.iterate(3)


@pytest.mark.parametrize(
    "threads, n, expect",
    [(3, 10, [(0, 3), (3, 7), (7, 10)]), (1, 5, [(0, 5)]), (4, 2, [(0, 1), (1, 2)])],
)
def test_split_covers_the_range_in_order_on_one_fft_thread_each(threads, n, expect):
    bk = get_backend("numpy", threads=threads)
    seen = []

    def fn(lo, hi):
        seen.append(threading.current_thread().name)
        return (lo, hi, bk.fft.workers)

    out = BlockPool(bk).split(n, fn)
    assert [o[:2] for o in out] == expect
    assert all(o[2] == (1 if len(expect) > 1 else threads) for o in out)
    assert threading.current_thread().name in seen  # the caller takes the first range


def test_split_waits_for_every_range_before_an_error_propagates():
    done = []

    def fn(lo, hi):
        if lo == 0:
            raise ValueError("band 0")
        time.sleep(0.05)
        done.append(lo)

    with pytest.raises(ValueError, match="band 0"):
        BlockPool(get_backend("numpy", threads=2)).split(8, fn)
    assert done == [4]
