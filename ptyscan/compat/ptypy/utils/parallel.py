"""ptypy's ``parallel`` module, backed by the communicator of the ptypy-style scan in use.

ptypy keeps ``rank``, ``size``, ``master`` and ``MPIenabled`` as module globals
of one world communicator. Here they are read, on every access, from the
:class:`~ptyscan.parallel.Comm` of the ptypy-style scan that is running in this
context (set by :class:`ptyscan.compat.ptypy.core.data.PtyScan`; outside any
scan: :func:`ptyscan.parallel.get_comm`). So a loader calling
``parallel.bcast`` inside a hook talks to exactly the ranks of its scan, and a
serial run needs no MPI at all.
"""

from __future__ import annotations

import contextvars
import sys

import numpy as np

from ....parallel import get_comm

__all__ = [
    "allgather_dict",
    "allreduce",
    "barrier",
    "bcast",
    "bcast_dict",
    "current_comm",
    "gather_dict",
    "use_comm",
]

# Read through __getattr__ (PEP 562), so not in __all__: rank, size, master, MPIenabled,
# comm (the mpi4py communicator or None), MPI (mpi4py.MPI or None).

ACTIVE = contextvars.ContextVar("ptyscan_compat_comm", default=None)
"""The Comm of the ptypy-style scan running in this context (None: the world's)."""

OPS = {None: "sum", "sum": "sum", "max": "max", "min": "min"}


def use_comm(comm):
    """Make ``comm`` the communicator behind this module (in this context)."""
    ACTIVE.set(comm)


def current_comm():
    """The Comm behind this module now."""
    comm = ACTIVE.get()
    return comm if comm is not None else get_comm()


def __getattr__(name):
    """``rank``, ``size``, ``master``, ``MPIenabled``, ``comm``: read from the Comm in use."""
    comm = current_comm()
    if name == "rank":
        return comm.rank
    if name == "size":
        return comm.size
    if name == "master":
        return comm.rank == 0
    if name == "MPIenabled":
        return comm.size > 1
    if name == "comm":
        return getattr(comm, "comm", None)
    if name == "MPI":
        return sys.modules.get("mpi4py.MPI") if comm.size > 1 else None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def barrier():
    """Wait for every rank."""
    current_comm().barrier()


def bcast(data, source=0):
    """``data`` of rank ``source`` on every rank (arrays travel by buffer)."""
    comm = current_comm()
    if comm.size == 1:
        return data
    is_array = comm.bcast(isinstance(data, np.ndarray) if comm.rank == source else None, source)
    if is_array:
        return comm.bcast_array(data if comm.rank == source else None, root=source)
    return comm.bcast(data, root=source)


def allreduce(a, op=None):
    """Sum (or ``op``: 'max', 'min') of ``a`` over ranks; arrays in place."""
    comm = current_comm()
    if comm.size == 1:
        return a
    name = OPS.get(op if op is None or isinstance(op, str) else _mpi_op_name(op))
    if name is None:
        raise ValueError(
            f"parallel.allreduce: op must be None, 'sum', 'max' or 'min' (or MPI.SUM, MPI.MAX, "
            f"MPI.MIN), got {op!r}"
        )
    if np.isscalar(a):
        return comm.allreduce(a, op=name)
    return comm.Allreduce(a, op=name)


def _mpi_op_name(op):
    """'sum', 'max' or 'min' for mpi4py's MPI.SUM, MPI.MAX, MPI.MIN; else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        return None
    return next((n.lower() for n in ("SUM", "MAX", "MIN") if op == getattr(mpi, n)), None)


def gather_dict(dct, target=0):
    """Every rank's ``dct`` merged on rank ``target`` (an empty dict elsewhere)."""
    comm = current_comm()
    if comm.size == 1:
        return dict(dct)
    parts = comm.gather(dict(dct), root=target)
    out = {}
    if comm.rank == target:
        for part in parts:
            out.update(part)
    return out


def bcast_dict(dct, keys="all", source=0):
    """``dct`` of rank ``source`` on every rank; with ``keys`` a list, only those keys."""
    comm = current_comm()
    full = dict(dct) if comm.rank == source or comm.size == 1 else None
    full = full if comm.size == 1 else comm.bcast(full, root=source)
    if keys == "all":
        return full
    return {k: v for k, v in full.items() if k in keys}


def allgather_dict(dct):
    """Every rank's ``dct`` merged into ``dct`` on every rank (in place)."""
    dct.update(bcast_dict(gather_dict(dct)))
