"""MPIComm under mpiexec: every method against what each rank can compute alone."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from ptyscan.parallel import MPIComm, SerialComm, get_comm
from ptyscan.scan_support import collective, share_common

pytestmark = pytest.mark.mpi


def test_launched_with_several_ranks():
    comm = get_comm()
    assert isinstance(comm, MPIComm) and comm.size > 1
    expected = os.environ.get("PTYSCAN_EXPECTED_RANKS")
    if expected:
        assert comm.size == int(expected)
    ranks = comm.allgather(comm.rank)
    assert ranks == list(range(comm.size))


def test_bcast_and_allreduce(comm):
    assert comm.bcast({"x": comm.rank}, root=comm.size - 1) == {"x": comm.size - 1}
    assert comm.allreduce(comm.rank + 1) == comm.size * (comm.size + 1) // 2
    assert comm.allreduce(comm.rank, op="max") == comm.size - 1
    assert comm.allreduce(comm.rank, op="min") == 0
    arr = np.full((3, 4), comm.rank + 1, np.float64)
    assert comm.Allreduce(arr) is arr
    np.testing.assert_array_equal(arr, comm.size * (comm.size + 1) // 2)
    with pytest.raises(ValueError, match="C-contiguous"):
        comm.Allreduce(np.zeros((4, 4))[:, ::2])


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.complex64, np.int64, np.uint16, np.bool_, np.float16]
)
def test_bcast_array_any_dtype(comm, dtype):
    want = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    got = comm.bcast_array(want if comm.rank == 0 else None)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    scalar = comm.bcast_array(np.float64(2.5) if comm.rank == 0 else None)
    assert scalar.shape == () and scalar == 2.5


def test_bcast_array_of_objects_fails_on_every_rank(comm):
    arr = np.array([{"a": 1}], dtype=object) if comm.rank == 0 else None
    with pytest.raises(ValueError, match="object arrays"):
        comm.bcast_array(arr)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.int32, np.bool_])
def test_gather_rows_uneven_and_empty(comm, dtype):
    def rows(r):  # rank r holds r rows (rank 0 none), row k filled with 10 * r + k
        return ((10 * r + np.arange(r))[:, None, None] + np.zeros((r, 2, 3))).astype(dtype)

    got = comm.gather_rows(rows(comm.rank), root=0)
    if comm.rank != 0:
        assert got is None
        return
    want = np.concatenate([rows(r) for r in range(comm.size)])
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_gather_rows_to_another_root(comm):
    root = comm.size - 1
    got = comm.gather_rows(np.full((1, 2), comm.rank, np.int64), root=root)
    if comm.rank == root:
        np.testing.assert_array_equal(got[:, 0], np.arange(comm.size))
    else:
        assert got is None


def test_gather_rows_mismatch_fails_on_every_rank(comm):
    shape = (2, 5) if comm.rank == 1 else (2, 4)
    with pytest.raises(ValueError, match="same dtype and row shape"):
        comm.gather_rows(np.zeros(shape, np.float32))
    comm.barrier()


def test_scatter_rows_round_trip(comm):
    counts = [r % 3 for r in range(comm.size)]
    total = sum(counts)
    full = np.arange(total * 6, dtype=np.float32).reshape(total, 2, 3) if comm.rank == 0 else None
    mine = comm.scatter_rows(full, counts)
    start = sum(counts[: comm.rank])
    want = np.arange(total * 6, dtype=np.float32).reshape(total, 2, 3)[
        start : start + counts[comm.rank]
    ]
    np.testing.assert_array_equal(mine, want)
    back = comm.gather_rows(mine)
    if comm.rank == 0:
        np.testing.assert_array_equal(back, full)


def test_scatter_rows_bad_counts_fail_on_every_rank(comm):
    full = np.zeros((5, 2)) if comm.rank == 0 else None
    with pytest.raises(ValueError, match="add up"):
        comm.scatter_rows(full, [1] * comm.size)
    comm.barrier()


def test_share_common_arrays_by_buffer(comm):
    obj = None
    if comm.rank == 0:
        obj = {
            "dark": np.arange(6.0).reshape(2, 3),
            "list": [np.ones(2, np.int8), "x", 3],
            "nested": {"flat": np.float32(1.5), "none": None},
        }
    got = share_common(comm, obj)
    np.testing.assert_array_equal(got["dark"], np.arange(6.0).reshape(2, 3))
    assert got["list"][1:] == ["x", 3] and got["list"][0].dtype == np.int8
    assert got["nested"]["none"] is None and got["nested"]["flat"] == np.float32(1.5)
    assert share_common(SerialComm(), obj) is obj


def test_collective_error_reaches_every_rank(comm):
    def fail_on_last():
        if comm.rank == comm.size - 1:
            raise KeyError("missing key on the last rank")
        return comm.rank

    with pytest.raises(Exception, match="missing key on the last rank") as info:
        collective(comm, fail_on_last)
    if comm.rank == comm.size - 1:
        assert info.type is KeyError
    else:
        assert f"rank {comm.size - 1} failed" in str(info.value)
    assert collective(comm, lambda: comm.rank * 2) == comm.rank * 2
    assert collective(comm, lambda: "root", root_only=True) == ("root" if comm.rank == 0 else None)


def test_idle_barrier_waits_for_the_slowest_rank(comm):
    start = time.perf_counter()
    if comm.rank == 0:
        time.sleep(0.2)
    comm.idle_barrier(poll_s=0.001)
    assert time.perf_counter() - start >= 0.19


def test_collective_idle_waits_without_spinning(comm):
    def slow_root():
        time.sleep(0.2)
        return "written"

    cpu = time.process_time()
    got = collective(comm, slow_root, root_only=True, idle=True)
    assert got == ("written" if comm.rank == 0 else None)
    if comm.rank != 0:  # slept through most of rank 0's 0.2 s instead of spinning
        assert time.process_time() - cpu < 0.15
