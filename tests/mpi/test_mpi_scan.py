"""PtyScan over several ranks (run under mpiexec): same answer as serial, no hang.

Every test builds the serial reference in the same process with ``SerialComm()``;
frames are compared after gathering every rank's part of each chunk on rank 0.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from mpi_helpers import (
    SMALL,
    EveryHookScan,
    LiveScan,
    assert_ptyd_identical,
    assert_same_arrays,
    chunks_of,
    local_parts,
    merge_parts,
    run,
    summary,
)

from ptyscan import EOS
from ptyscan.errors import PeerError, ScanError
from ptyscan.io import ptyd_chunk_ids, read_chunk
from ptyscan.parallel import SerialComm, assign_frames
from ptyscan.scans.moonflower import MoonFlowerScan
from ptyscan.scans.simscan import SimScan

pytestmark = pytest.mark.mpi


def gather(comm, obj):
    """Every rank's ``obj`` on rank 0 in rank order, None elsewhere (pickled: tests only)."""
    return comm.comm.gather(obj, root=0)


def assert_same_everywhere(comm, value, what):
    values = comm.allgather(value)
    assert all(v == values[0] for v in values), f"{what} differs between ranks: {values}"
    return values[0]


# --- load_parallel ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["data", "common", "all", None])
def test_load_parallel_mode_matches_serial(comm, mode):
    pars = dict(SMALL, load_parallel=mode)
    scan = EveryHookScan(pars, comm=comm)
    answers = run(scan, 7)
    chunks = chunks_of(answers)
    kinds = assert_same_everywhere(comm, summary(answers), "sequence of answers")
    for chunk in chunks:
        np.testing.assert_array_equal(
            chunk.all_positions[np.isin(chunk.all_indices, chunk.indices)], chunk.positions
        )
    parts = gather(comm, [local_parts(c) for c in chunks])
    shared = gather(comm, [(c.all_indices, c.all_positions, c.meta) for c in chunks])
    calls = gather(comm, scan.calls)
    if comm.rank != 0:
        return
    ref = EveryHookScan(pars, comm=SerialComm())
    ref_answers = run(ref, 7)
    assert summary(ref_answers) == kinds
    for k, want in enumerate(chunks_of(ref_answers)):
        assert_same_arrays(merge_parts([p[k] for p in parts]), local_parts(want), f"chunk {k}")
        for rank, per_rank in enumerate(shared):
            indices, positions, meta = per_rank[k]
            np.testing.assert_array_equal(indices, want.all_indices)
            assert positions.tobytes() == want.all_positions.tobytes(), f"rank {rank} chunk {k}"
            assert meta == want.meta, f"rank {rank} chunk {k}: {meta} != {want.meta}"

    # who called which hook
    everywhere = mode in ("common", "all")
    for rank, c in enumerate(calls):
        expected = 1 if everywhere or rank == 0 else 0
        assert (c["load_common"], c["load_weight"], c["load_positions"]) == (expected,) * 3, (
            f"rank {rank}: {c}"
        )
    totals = np.zeros(comm.size, np.int64)
    for k, want in enumerate(chunks_of(ref_answers)):
        blocks = assign_frames(want.all_indices, comm.size, totals)
        totals += [len(b) for b in blocks]
        for rank, c in enumerate(calls):
            if mode in ("data", "all"):  # every rank loads its own frames, and only those
                assert c["load"][k] == blocks[rank].tolist(), f"rank {rank} chunk {k}"
            elif rank == 0:  # rank 0 loads the whole chunk and sends each rank its part
                assert c["load"][k] == want.all_indices.tolist()
            else:
                assert c["load"] == [], f"rank {rank} called load with {c['load']}"


# --- Chunk / WAIT / EOS -----------------------------------------------------------------

SEQUENCES = {
    "block_wait_count": (
        MoonFlowerScan,
        {"num_frames": 30, "block_wait_count": 1},
        [(0, 9), "WAIT", (10, 19), "WAIT", (20, 29), "EOS"],
    ),
    "min_frames_at_end": (
        MoonFlowerScan,
        {"num_frames": 25, "min_frames": 10},
        [(0, 9), (10, 19), (20, 24), "EOS"],
    ),
    "live_min_frames": (
        LiveScan,
        {"num_frames": 22, "min_frames": 6},
        ["WAIT", (0, 7), "WAIT", (8, 15), "WAIT", (16, 21), "EOS"],
    ),
}


@pytest.mark.parametrize("case", sorted(SEQUENCES))
def test_chunk_wait_eos_identical_on_every_rank(comm, case):
    cls, pars, expected = SEQUENCES[case]
    pars = {"shape": 32, "seed": 3, **pars}
    scan = cls(pars, comm=comm)
    answers = run(scan, 10)
    answers.append(scan.auto(10))  # asking again after the end is still EOS
    got = assert_same_everywhere(comm, summary(answers), "sequence of answers")
    assert got == [*expected, "EOS"]
    assert summary(run(cls(pars, comm=SerialComm()), 10)) == expected
    assert answers[-1] is EOS


# --- frames stay on the rank the rule gives them ----------------------------------------


def test_rank_local_frames_follow_assignment_rule(comm):
    scan = MoonFlowerScan(num_frames=21, shape=32, seed=5, comm=comm)
    answers = run(scan, [10, 7, 3, 1])
    chunks = chunks_of(answers)
    assert [len(c.all_indices) for c in chunks] == [10, 7, 3, 1]
    totals = np.zeros(comm.size, np.int64)
    for chunk in chunks:
        blocks = assign_frames(chunk.all_indices, comm.size, totals)
        totals += [len(b) for b in blocks]
        np.testing.assert_array_equal(chunk.indices, blocks[comm.rank])
        assert chunk.data.shape == (len(blocks[comm.rank]), 32, 32)
        assert chunk.weights.shape == chunk.data.shape
    if comm.size == 2:  # ptypy's LoadManager: 0–4|5–9, 10–12|13–16, 17–18|19, —|20
        ptypy = [
            [range(0, 5), range(10, 13), range(17, 19), range(0)],
            [range(5, 10), range(13, 17), range(19, 20), range(20, 21)],
        ][comm.rank]
        assert [c.indices.tolist() for c in chunks] == [list(r) for r in ptypy]


# --- auto-centre ------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [True, False])
def test_auto_center_equals_serial(comm, noise):
    pars = dict(SMALL, auto_center=True, add_poisson_noise=noise)
    scan = MoonFlowerScan(pars, comm=comm)
    run(scan, 7)
    center = assert_same_everywhere(comm, scan.meta.center, "meta.center")
    ref = MoonFlowerScan(pars, comm=SerialComm())
    run(ref, 7)
    assert center is not None and ref.meta.center is not None
    if noise:  # integer counts: the sums over frames are exact, so the centre is too
        assert center == ref.meta.center
    else:
        np.testing.assert_allclose(center, ref.meta.center, rtol=1e-12)
    # the centre comes from the first chunk's frames on ALL ranks, not this rank's alone
    assert center != pytest.approx((32.0, 32.0))


# --- errors reach every rank, nobody hangs ----------------------------------------------


class ShapeOnRank1(MoonFlowerScan):
    """Rank 1 (load_parallel='data') or frame 3 (rank 0 loads all) comes back 2 px smaller."""

    def load(self, indices):
        raw, pos, weights = super().load(indices)
        if self.info.load_parallel == "data" and self.comm.rank == 1:
            raw = {i: f[:-2, :-2] for i, f in raw.items()}
        elif self.info.load_parallel is None and 3 in raw:
            raw[3] = raw[3][:-2, :-2]
        return raw, pos, weights


@pytest.mark.parametrize("mode", ["data", None])
def test_frame_shape_mismatch_is_a_clear_error_on_every_rank(comm, mode):
    scan = ShapeOnRank1(dict(SMALL, load_parallel=mode), comm=comm)
    with pytest.raises(ScanError, match="one shape") as info:
        run(scan, 7)
    assert "(62, 62)" in str(info.value) and "(64, 64)" in str(info.value)
    comm.barrier()  # every rank got here: no one is left in a collective


class FailingHook(MoonFlowerScan):
    """``hook`` raises on rank ``rank`` only."""

    hook, rank = "load", 1

    def load(self, indices):
        if self.hook == "load" and self.comm.rank == self.rank:
            raise RuntimeError(f"detector file missing on rank {self.comm.rank}")
        return super().load(indices)

    def load_common(self):
        if self.hook == "load_common" and self.comm.rank == self.rank:
            raise RuntimeError(f"detector file missing on rank {self.comm.rank}")
        return super().load_common()


@pytest.mark.parametrize(
    ("hook", "mode", "rank"),
    [("load", "data", 1), ("load", None, 0), ("load_common", "common", -1)],
)
def test_hook_error_reaches_every_rank(comm, hook, mode, rank):
    failing = rank % comm.size
    cls = type("Failing", (FailingHook,), {"hook": hook, "rank": failing})
    scan = cls(dict(SMALL, load_parallel=mode), comm=comm)
    with pytest.raises(Exception, match=f"detector file missing on rank {failing}") as info:
        run(scan, 7)
    if comm.rank == failing:
        assert info.type is RuntimeError
    else:
        assert info.type is PeerError and f"rank {failing} failed" in str(info.value)
    comm.barrier()


class BadLoadOnOneRank(MoonFlowerScan):
    """``load`` returns something unusable on rank ``rank`` only."""

    fault, rank = "missing frame", 1

    def load(self, indices):
        raw, pos, weights = super().load(indices)
        if self.comm.rank == self.rank and raw:
            if self.fault == "missing frame":
                raw.pop(min(raw))
            elif self.fault == "weight shape":
                weights = {i: np.ones((3, 3), np.float32) for i in raw}
            elif self.fault == "position shape":
                pos = {i: np.zeros(3) for i in raw}
        return raw, pos, weights


# Each of these hung (ranks left in different collectives) while scan.py checked
# load's output outside a collective; the timeout turns a regression into a failure.
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("fault", "mode", "rank", "match"),
    [
        ("missing frame", "data", 1, "returned no frame for indices"),
        ("missing frame", None, 0, "returned no frame for indices"),
        ("weight shape", "data", 1, "(?i)weight"),
        ("position shape", "data", 1, None),
    ],
)
def test_bad_load_output_on_one_rank_is_an_error_everywhere(comm, fault, mode, rank, match):
    failing = rank % comm.size
    cls = type("Bad", (BadLoadOnOneRank,), {"fault": fault, "rank": failing})
    scan = cls(dict(SMALL, load_parallel=mode), comm=comm)
    with pytest.raises(Exception) as info:
        run(scan, 7)
    if match is not None:
        assert info.match(match)
    if comm.rank != failing and match != "(?i)weight":
        assert info.type is PeerError and f"rank {failing} failed" in str(info.value)
    comm.barrier()


@pytest.mark.parametrize("mode", ["data", "common", "all", None])
def test_drawn_seed_is_the_same_on_every_rank(comm, mode):
    """With seed=None one seed is drawn for the scan, not one per rank (noise per frame)."""
    scan = MoonFlowerScan(num_frames=4, shape=32, load_parallel=mode, comm=comm)
    scan.initialize()
    assert_same_everywhere(comm, scan.seed, "the drawn seed")


# --- saved .ptyd: byte-identical at any rank count --------------------------------------


@pytest.mark.parametrize(
    ("cls", "pars"),
    [
        (MoonFlowerScan, {"auto_center": True}),
        (EveryHookScan, {"load_parallel": None}),
        (SimScan, {"xy": {"model": "spiral", "spacing": 1e-6, "steps": 8}, "pos_noise": 2e-9}),
    ],
    ids=["moonflower", "every_hook_rank0_loads", "simscan_pilatus_noise"],
)
def test_saved_ptyd_identical_to_serial(comm, shared_dir, cls, pars):
    pars = {**SMALL, **pars, "save": "append"}
    path = os.path.join(shared_dir, f"{cls.__name__}_{comm.size}ranks.ptyd")
    run(cls(pars, dfile=path, comm=comm), 7)
    comm.barrier()
    if comm.rank != 0:
        return
    ref = os.path.join(shared_dir, f"{cls.__name__}_1rank.ptyd")
    run(cls(pars, dfile=ref, comm=SerialComm()), 7)
    assert_ptyd_identical(ref, path)
    ids = ptyd_chunk_ids(path)
    assert len(ids) == 4
    for n in ids:  # frames inside a saved chunk are in index order
        assert np.all(np.diff(read_chunk(path, n)["indices"]) == 1)
