"""Communicators, frame-to-rank assignment and abort-on-error.

Only the PtyScan base class, the runner and the engines talk to a communicator;
scan hooks never do.  :class:`SerialComm` is a null object with the methods of
:class:`MPIComm`, so the same code runs with one process and without mpi4py.

Arrays travel with mpi4py's buffer methods (``Bcast``, ``Allreduce``,
``Gatherv``, ``Scatterv``); pickled transfers are used only for small
objects (pickled bcast of large arrays measured 25–60× slower).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Comm",
    "MPIComm",
    "SerialComm",
    "abort_job",
    "abort_on_error",
    "assign_counts",
    "assign_frames",
    "get_comm",
    "thread_count",
]

log = logging.getLogger(__name__)

_OPS = ("sum", "max", "min")


@runtime_checkable
class Comm(Protocol):
    """What ptyscan needs from a communicator."""

    rank: int
    size: int

    def barrier(self) -> None: ...
    def idle_barrier(self, poll_s: float = 0.002) -> None: ...
    def bcast(self, obj, root: int = 0): ...
    def bcast_array(self, arr, root: int = 0) -> np.ndarray: ...
    def allreduce(self, value, op: str = "sum"): ...
    def Allreduce(self, arr: np.ndarray, op: str = "sum") -> np.ndarray: ...
    def allgather(self, obj) -> list: ...
    def gather(self, obj, root: int = 0) -> list | None: ...
    def gather_rows(self, arr: np.ndarray, root: int = 0) -> np.ndarray | None: ...
    def scatter_rows(self, arr, counts, root: int = 0) -> np.ndarray: ...
    def abort(self, code: int = 1) -> None: ...


class SerialComm:
    """A communicator of one process: every collective returns its input."""

    rank = 0
    size = 1

    def __repr__(self):
        return "SerialComm()"

    def barrier(self):
        return None

    def idle_barrier(self, poll_s=0.002):
        return None

    def bcast(self, obj, root=0):
        return obj

    def bcast_array(self, arr, root=0):
        return np.asarray(arr)

    def allreduce(self, value, op="sum"):
        _check_op(op)
        return value

    def Allreduce(self, arr, op="sum"):
        _check_op(op)
        _check_contiguous(arr)
        return arr

    def allgather(self, obj):
        return [obj]

    def gather(self, obj, root=0):
        return [obj]

    def gather_rows(self, arr, root=0):
        return np.asarray(arr)

    def scatter_rows(self, arr, counts, root=0):
        arr = np.asarray(arr)
        problem = _scatter_problem(arr, counts, self.size)
        if problem:
            raise ValueError(problem)
        return arr

    def abort(self, code=1):
        raise SystemExit(code)


def _check_op(op):
    if op not in _OPS:
        raise ValueError(f"op: must be one of {_OPS}, got {op!r}")


def _check_contiguous(arr):
    if not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous and arr.flags.writeable):
        raise ValueError(
            "Allreduce: needs a writeable C-contiguous numpy array (it is reduced in place), "
            f"got {type(arr).__name__}; hint: pass np.ascontiguousarray(x) and use the result"
        )


def _scatter_problem(arr, counts, size):
    """Why root's ``arr`` cannot be split into ``counts`` rows per rank (None if it can)."""
    counts = [int(c) for c in counts]
    if len(counts) != size or min(counts) < 0:
        return f"scatter_rows: counts must be {size} numbers >= 0, got {counts}"
    if arr.ndim < 1 or sum(counts) != arr.shape[0]:
        return (
            f"scatter_rows: counts {counts} sum to {sum(counts)} but the array has shape "
            f"{arr.shape}; the counts must add up to its number of rows"
        )
    if arr.dtype.hasobject:
        return "scatter_rows: object arrays cannot travel by buffer; use bcast"
    return None


class MPIComm:
    """Wrap an mpi4py communicator with the :class:`Comm` methods.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    """

    def __init__(self, comm):
        from mpi4py import MPI

        self._MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def __repr__(self):
        return f"MPIComm(rank={self.rank}, size={self.size})"

    def _op(self, op):
        _check_op(op)
        return {"sum": self._MPI.SUM, "max": self._MPI.MAX, "min": self._MPI.MIN}[op]

    def barrier(self):
        self.comm.Barrier()

    def idle_barrier(self, poll_s=0.002):
        """A barrier that sleeps while it waits, leaving the cores to busy ranks.

        MPI implementations spin in blocking collectives; ranks waiting for rank 0
        (writing a chunk, say) would take the cores its compression threads need.
        """
        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(poll_s)

    def bcast(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    def bcast_array(self, arr, root=0):
        """Broadcast an array by buffer; non-root ranks may pass None.

        Any non-object dtype travels (as bytes); root gets its own array back
        (made contiguous), the others a new array of the same shape and dtype.
        """
        head = None
        if self.rank == root:
            arr = np.asarray(arr, order="C")  # (ascontiguousarray would make 0-d 1-d)
            bad = "bcast_array: object arrays cannot travel by buffer; use bcast"
            head = (arr.shape, arr.dtype, bad if arr.dtype.hasobject else None)
        shape, dtype, problem = self.comm.bcast(head, root=root)
        if problem:
            raise ValueError(problem)
        out = arr if self.rank == root else np.empty(shape, dtype)
        if out.size:
            self.comm.Bcast(_bytes(out), root=root)
        return out

    def allreduce(self, value, op="sum"):
        return self.comm.allreduce(value, op=self._op(op))

    def Allreduce(self, arr, op="sum"):
        """In-place buffer allreduce of a contiguous array; returns it."""
        if not arr.flags.c_contiguous:
            raise ValueError("Allreduce: array must be C-contiguous")
        self.comm.Allreduce(self._MPI.IN_PLACE, arr, op=self._op(op))
        return arr

    def allgather(self, obj):
        return self.comm.allgather(obj)

    def gather(self, obj, root=0):
        """Pickled gather of small objects (lists of compressed frames): a list on root."""
        return self.comm.gather(obj, root=root)

    def gather_rows(self, arr, root=0):
        """Concatenate every rank's rows (axis 0) on ``root`` in rank order; None elsewhere.

        Every rank must pass the same dtype and row shape (a rank may have 0
        rows); otherwise every rank raises ValueError (no rank is left waiting).
        """
        arr = np.ascontiguousarray(arr)
        heads = self.comm.allgather((arr.shape, arr.dtype))
        tails = {(shape[1:], dtype) for shape, dtype in heads}
        if arr.ndim < 1 or len(tails) > 1 or arr.dtype.hasobject:
            raise ValueError(
                "gather_rows: every rank must pass a non-object array of the same dtype and "
                f"row shape, got (shape, dtype) per rank {[(s, str(d)) for s, d in heads]}"
            )
        counts = [shape[0] for shape, _ in heads]
        out = None
        if self.rank == root:
            out = np.empty((sum(counts), *arr.shape[1:]), dtype=arr.dtype)
        if _row_bytes(arr) == 0:  # same on every rank: nothing to send
            return out
        with self._rows(arr) as row:
            recv = None if out is None else [_bytes(out), counts, _offsets(counts), row]
            self.comm.Gatherv([_bytes(arr), len(arr), row], recv, root=root)
        return out

    def scatter_rows(self, arr, counts, root=0):
        """Send ``counts[r]`` consecutive rows of root's ``arr`` to rank r.

        ``counts`` (one per rank, summing to ``len(arr)``) must be the same on
        every rank; non-root ranks may pass None for ``arr``.
        """
        counts = [int(c) for c in counts]
        head = None
        if self.rank == root:
            arr = np.ascontiguousarray(arr)
            head = (arr.shape[1:], arr.dtype, _scatter_problem(arr, counts, self.size))
        tail, dtype, problem = self.comm.bcast(head, root=root)
        if problem:
            raise ValueError(problem)
        out = np.empty((counts[self.rank], *tail), dtype=dtype)
        if _row_bytes(out) == 0:
            return out
        with self._rows(out) as row:
            send = None
            if self.rank == root:
                send = [_bytes(arr), counts, _offsets(counts), row]
            self.comm.Scatterv(send, [_bytes(out), len(out), row], root=root)
        return out

    @contextlib.contextmanager
    def _rows(self, arr):
        """An MPI datatype of one row of ``arr`` (bytes), so counts stay small."""
        row = self._MPI.BYTE.Create_contiguous(_row_bytes(arr)).Commit()
        try:
            yield row
        finally:
            row.Free()

    def abort(self, code=1):
        self.comm.Abort(code)


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64).tolist()


def _row_bytes(arr):
    return int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize


def _bytes(arr):
    """A flat uint8 view of a C-contiguous array (any dtype travels as bytes)."""
    return arr.reshape(-1).view(np.uint8)


_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def _launched_size() -> int:
    for var in _SIZE_VARS:
        with contextlib.suppress(ValueError):
            if var in os.environ:
                return int(os.environ[var])
    return 1


_LOCAL_RANK_VARS = (
    "MPI_LOCALRANKID",  # MPICH / Hydra
    "OMPI_COMM_WORLD_LOCAL_RANK",  # Open MPI
    "PMI_LOCAL_RANK",
    "PMIX_LOCAL_RANK",
    "PALS_LOCAL_RANKID",  # Cray PALS
    "MV2_COMM_WORLD_LOCAL_RANK",  # MVAPICH
    "SLURM_LOCALID",  # srun
)


def local_rank(comm=None) -> int:
    """This process's rank among the ranks on its node, as the MPI launcher says.

    Read from the launcher's environment (MPICH/Hydra, Open MPI, PMI/PMIx, Cray,
    MVAPICH, Slurm); where none says, ``comm.rank`` (all ranks on one node).
    Used to give each rank of a node its own GPU.
    """
    for var in _LOCAL_RANK_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return comm.rank if comm is not None else 0


def get_comm() -> SerialComm | MPIComm:
    """``MPIComm(COMM_WORLD)`` when launched with more than one rank, else ``SerialComm``.

    mpi4py is imported only when the environment says this process is one of
    several MPI ranks (or mpi4py is already imported), so serial runs never
    need it.
    """
    if _launched_size() > 1 or "mpi4py.MPI" in sys.modules:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError(
                "this process was started by mpiexec with several ranks but mpi4py is "
                "missing; install it with: pip install 'ptyscan[mpi]'"
            ) from exc
        if MPI.COMM_WORLD.Get_size() > 1:
            return MPIComm(MPI.COMM_WORLD)
    return SerialComm()


def thread_count(comm=None) -> int:
    """Threads one rank may use for its own work (FFTs, noise, compression).

    ``OMP_NUM_THREADS`` wins when set; otherwise the CPUs this process may run
    on, shared between the ranks of ``comm`` (assumed to share one node).
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    size = comm.size if comm is not None else 1
    return max(1, (cpus or 1) // max(1, size))


def assign_counts(n_frames: int, size: int, totals=None) -> np.ndarray:
    """How many of ``n_frames`` new frames each rank takes, keeping totals balanced.

    Each frame goes to the rank that holds the fewest frames so far (this
    chunk and earlier ones, ``totals``), ties to the highest rank. For balanced
    history this is ptypy's LoadManager rule: 2 ranks and chunks of 10, 7, 3, 1
    frames give 5|5, 3|4, 2|1, 0|1. Starting from no frames, totals stay within
    one frame of each other, and so do the counts of every chunk.

    Parameters
    ----------
    n_frames : int
        Frames in the new chunk, >= 0.
    size : int
        Number of ranks, >= 1.
    totals : (size,) int, optional
        Frames each rank already holds (default none).

    Returns
    -------
    counts : (size,) int64
    """
    if int(n_frames) < 0 or int(size) < 1:
        raise ValueError(
            f"assign_counts: need n_frames >= 0 and size >= 1, got {n_frames} and {size}"
        )
    have = np.zeros(size, np.int64) if totals is None else np.array(totals, np.int64)
    if have.shape != (size,):
        raise ValueError(
            f"assign_counts: totals must hold one count per rank ({size}), got {have.tolist()}"
        )
    # Water-filling, equal to giving frames one by one to the least-loaded rank:
    # raise every rank below `level` to it, then one more frame to each of the
    # `rest` highest ranks standing at `level`.
    low, high = int(have.min()), int(have.min()) + int(n_frames)
    while low < high:
        mid = (low + high + 1) // 2
        if np.maximum(mid - have, 0).sum() <= n_frames:
            low = mid
        else:
            high = mid - 1
    counts = np.maximum(low - have, 0)
    rest = int(n_frames) - int(counts.sum())
    if rest:
        at_level = np.flatnonzero(have + counts == low)
        counts[at_level[len(at_level) - rest :]] += 1
    return counts


def assign_frames(indices, size: int, totals=None) -> list[np.ndarray]:
    """Split a chunk's frame ``indices`` into contiguous per-rank blocks (rank order).

    See :func:`assign_counts` for the balance rule.
    """
    indices = np.asarray(indices, dtype=np.int64)
    counts = assign_counts(len(indices), size, totals)
    edges = np.concatenate([[0], np.cumsum(counts)])
    return [indices[edges[r] : edges[r + 1]] for r in range(size)]


def abort_job(comm, message: str, *, code: int = 1, grace_s: float = 0.5) -> None:
    """Write ``message`` to stderr, give mpiexec time to forward it, abort every rank.

    Without the short grace period the launcher may kill the job before this
    rank's last output reaches the terminal, and the user sees no reason.
    """
    if message:
        sys.stderr.write(message if message.endswith("\n") else message + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(grace_s)
    comm.abort(code)


@contextlib.contextmanager
def abort_on_error(comm):
    """Turn an exception on any rank into an abort of all ranks (no hang).

    With one rank the exception propagates unchanged. With several, the
    message is written to stderr with the rank and ``comm.abort(1)`` ends the
    whole job, so ranks waiting in a collective do not hang.
    """
    try:
        yield
    except BaseException as exc:
        if comm.size <= 1 or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            raise
        log.debug("aborting after exception", exc_info=True)
        abort_job(comm, f"[rank {comm.rank}/{comm.size}] {type(exc).__name__}: {exc}")
        raise
