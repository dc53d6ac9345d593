"""Serial tests of ptyscan.parallel: the frame-to-rank rule, SerialComm, abort_on_error.

The MPI side (MPIComm, PtyScan over several ranks) is tested by tests/test_mpi.py,
which launches tests/mpi/ under ``mpiexec``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptyscan import parallel
from ptyscan.parallel import (
    Comm,
    SerialComm,
    abort_on_error,
    assign_counts,
    assign_frames,
    get_comm,
)


def greedy_counts(n_frames, size, totals):
    """The rule as stated: frame by frame to the least-loaded rank, ties to the highest."""
    load = np.array(totals, np.int64)
    counts = np.zeros(size, np.int64)
    for _ in range(n_frames):
        rank = np.flatnonzero(load == load.min())[-1]
        load[rank] += 1
        counts[rank] += 1
    return counts


def run_chunks(chunk_sizes, size, start=0):
    """assign_frames over consecutive chunks, as PtyScan does; yields (indices, blocks, totals)."""
    totals = np.zeros(size, np.int64)
    first = start
    for n in chunk_sizes:
        indices = np.arange(first, first + n)
        blocks = assign_frames(indices, size, totals)
        totals = totals + [len(b) for b in blocks]
        first += n
        yield indices, blocks, totals


chunk_lists = st.lists(st.integers(0, 60), min_size=1, max_size=12)
sizes = st.integers(1, 9)


# --- the assignment rule ---------------------------------------------------------------


def test_ptypy_measured_split_two_ranks():
    """ptypy's LoadManager, 2 ranks, chunks of 10, 7, 3, 1.

    Measured: 0–4|5–9, 10–12|13–16, 17–18|19, —|20.
    """
    expected = [
        [range(0, 5), range(5, 10)],
        [range(10, 13), range(13, 17)],
        [range(17, 19), range(19, 20)],
        [range(0), range(20, 21)],
    ]
    got = [[b.tolist() for b in blocks] for _, blocks, _ in run_chunks([10, 7, 3, 1], 2)]
    assert got == [[list(r) for r in chunk] for chunk in expected]


@settings(max_examples=200, deadline=None)
@given(chunk_lists, sizes, st.integers(0, 10**6))
def test_blocks_disjoint_complete_contiguous_in_rank_order(chunk_sizes, size, start):
    for indices, blocks, _ in run_chunks(chunk_sizes, size, start):
        assert len(blocks) == size
        assert all(b.dtype == np.int64 for b in blocks)
        # concatenated in rank order they are the chunk itself: complete, disjoint,
        # each block contiguous and ascending, lower ranks first
        np.testing.assert_array_equal(np.concatenate(blocks), indices)
        for b in blocks:
            assert np.all(np.diff(b) == 1)


@settings(max_examples=200, deadline=None)
@given(chunk_lists, sizes)
def test_balanced_per_chunk_and_cumulatively(chunk_sizes, size):
    for _, blocks, totals in run_chunks(chunk_sizes, size):
        counts = [len(b) for b in blocks]
        assert max(counts) - min(counts) <= 1, counts
        assert totals.max() - totals.min() <= 1, totals
    assert totals.sum() == sum(chunk_sizes)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 80), sizes, st.data())
def test_counts_equal_frame_by_frame_greedy_rule(n_frames, size, data):
    totals = data.draw(st.lists(st.integers(0, 50), min_size=size, max_size=size))
    counts = assign_counts(n_frames, size, totals)
    np.testing.assert_array_equal(counts, greedy_counts(n_frames, size, totals))
    assert counts.dtype == np.int64 and counts.sum() == n_frames and counts.min() >= 0


@settings(max_examples=100, deadline=None)
@given(chunk_lists, sizes)
def test_assignment_is_deterministic(chunk_sizes, size):
    first = [[b.tolist() for b in blocks] for _, blocks, _ in run_chunks(chunk_sizes, size)]
    again = [[b.tolist() for b in blocks] for _, blocks, _ in run_chunks(chunk_sizes, size)]
    assert first == again


def test_one_rank_takes_everything():
    (block,) = assign_frames(np.arange(5, 12), 1)
    np.testing.assert_array_equal(block, np.arange(5, 12))


def test_more_ranks_than_frames_top_ranks_first():
    blocks = assign_frames([7, 8], 4)
    assert [b.tolist() for b in blocks] == [[], [], [7], [8]]


def test_totals_steer_frames_to_the_least_loaded_rank():
    np.testing.assert_array_equal(assign_counts(3, 3, [4, 0, 2]), [0, 2, 1])
    np.testing.assert_array_equal(assign_counts(6, 3, [4, 0, 2]), [0, 4, 2])


@pytest.mark.parametrize(
    ("args", "match"),
    [((-1, 2), "n_frames >= 0"), ((3, 0), "size >= 1"), ((3, 2, [1, 2, 3]), "one count per rank")],
)
def test_assign_counts_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        assign_counts(*args)


# --- SerialComm ---------------------------------------------------------------------------


def test_serial_comm_is_a_comm_of_one():
    comm = SerialComm()
    assert isinstance(comm, Comm)
    assert (comm.rank, comm.size) == (0, 1)
    assert repr(comm) == "SerialComm()"


def test_serial_comm_collectives_return_their_input():
    comm = SerialComm()
    obj = {"a": [1, 2]}
    arr = np.arange(12.0).reshape(3, 4)
    assert comm.barrier() is None
    assert comm.idle_barrier() is None
    assert comm.bcast(obj) is obj
    np.testing.assert_array_equal(comm.bcast_array(arr), arr)
    assert comm.allreduce(3.5) == 3.5
    assert comm.allreduce(2, op="max") == 2
    assert comm.Allreduce(arr) is arr
    assert comm.allgather(obj) == [obj]
    np.testing.assert_array_equal(comm.gather_rows(arr), arr)
    np.testing.assert_array_equal(comm.scatter_rows(arr, [3]), arr)


@pytest.mark.parametrize("method", ["allreduce", "Allreduce"])
def test_serial_comm_rejects_unknown_op(method):
    with pytest.raises(ValueError, match="op: must be one of"):
        getattr(SerialComm(), method)(np.zeros(2), op="prod")


def test_serial_comm_allreduce_needs_contiguous_writeable_array_like_mpi():
    with pytest.raises(ValueError, match="C-contiguous"):
        SerialComm().Allreduce(np.zeros((4, 4))[:, ::2])


def test_serial_comm_scatter_rows_checks_counts_like_mpi():
    with pytest.raises(ValueError, match="add up to its number of rows"):
        SerialComm().scatter_rows(np.zeros((3, 2)), [2])
    with pytest.raises(ValueError, match="1 numbers"):
        SerialComm().scatter_rows(np.zeros((3, 2)), [1, 2])


def test_serial_comm_abort_exits():
    with pytest.raises(SystemExit) as info:
        SerialComm().abort(3)
    assert info.value.code == 3


def test_get_comm_is_serial_without_mpiexec(monkeypatch):
    for var in parallel._SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    comm = get_comm()
    assert comm.size == 1 and comm.rank == 0


# --- abort_on_error -----------------------------------------------------------------------


class FakeComm(SerialComm):
    """Pretends to be rank 1 of 2 and records abort() instead of ending the process."""

    rank, size = 1, 2

    def __init__(self):
        self.aborted = []

    def abort(self, code=1):
        self.aborted.append(code)


def test_abort_on_error_serial_reraises_unchanged():
    with pytest.raises(KeyError, match="boom"), abort_on_error(SerialComm()):
        raise KeyError("boom")


def test_abort_on_error_several_ranks_reports_and_aborts(capsys):
    comm = FakeComm()
    with pytest.raises(RuntimeError), abort_on_error(comm):
        raise RuntimeError("disk full on rank 1")
    assert comm.aborted == [1]
    assert "[rank 1/2] RuntimeError: disk full on rank 1" in capsys.readouterr().err


def test_abort_on_error_lets_a_clean_exit_through():
    comm = FakeComm()
    with pytest.raises(SystemExit), abort_on_error(comm):
        raise SystemExit(0)
    assert comm.aborted == []


def test_abort_on_error_no_exception_no_abort():
    comm = FakeComm()
    with abort_on_error(comm):
        pass
    assert comm.aborted == []


def test_local_rank_from_the_launcher_environment(monkeypatch):
    from ptyscan.parallel import _LOCAL_RANK_VARS, local_rank

    for var in _LOCAL_RANK_VARS:
        monkeypatch.delenv(var, raising=False)

    class Comm:
        rank, size = 5, 8

    assert local_rank() == 0 and local_rank(Comm()) == 5  # no launcher says: the rank
    monkeypatch.setenv("SLURM_LOCALID", "3")
    assert local_rank(Comm()) == 3
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")  # earlier in the list wins
    assert local_rank(Comm()) == 1
    monkeypatch.setenv("MPI_LOCALRANKID", " ")  # blank: ignored
    assert local_rank(Comm()) == 1
