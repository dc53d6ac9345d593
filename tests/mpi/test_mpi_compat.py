"""ptypy-style loaders under mpiexec (issue 11): the frames of the serial native loader,
``ptypy.utils.parallel`` on the scan's communicator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _ptypy_loaders import NativeLoader, write_data, write_loaders
from mpi_helpers import assert_same_arrays, chunks_of, local_parts, merge_parts, run

from ptyscan.parallel import SerialComm
from ptyscan.scans import get_scan

pytestmark = pytest.mark.mpi


@pytest.fixture
def files(comm, shared_dir):
    folder = Path(shared_dir)
    if comm.rank == 0:
        write_loaders(folder)
        write_data(folder / "scan.h5")
    comm.barrier()
    return {
        "data": str(folder / "scan.h5"),
        "relative": str(folder / "style_relative.py"),
        "absolute": str(folder / "style_absolute.py"),
    }


@pytest.mark.parametrize(
    ("style", "mode"), [("relative", "data"), ("absolute", None), ("relative", "all")]
)
def test_ptypy_style_loader_matches_the_serial_native_one(comm, files, style, mode):
    scan = get_scan("ptypy")(file=files[style], path=files["data"], load_parallel=mode, comm=comm)
    assert scan.ranks_seen == comm.size  # parallel.allreduce(1) on the scan's comm
    chunks = chunks_of(run(scan, 4))
    reference = chunks_of(run(NativeLoader(path=files["data"], comm=SerialComm()), 4))
    assert len(chunks) == len(reference)
    for chunk, want in zip(chunks, reference, strict=True):
        parts = comm.comm.gather(local_parts(chunk), root=0)
        if comm.rank == 0:
            assert_same_arrays(merge_parts(parts), local_parts(want), f"chunk {want.number}")
        assert chunk.meta == want.meta
    assert scan.params.center == (9.0, 9.0)  # set by load_positions on rank 0, shared


def test_ptypy_style_loader_saves_the_same_ptyd(comm, files, shared_dir):
    out = os.path.join(shared_dir, "mpi.ptyd")
    scan = get_scan("ptypy")(
        file=files["relative"], path=files["data"], save="append", dfile=out, comm=comm
    )
    answers = run(scan, 5)
    comm.barrier()
    if comm.rank == 0:
        ref = os.path.join(shared_dir, "serial.ptyd")
        run(NativeLoader(path=files["data"], save="append", dfile=ref, comm=SerialComm()), 5)
        from ptyscan.io import read_ptyd

        a, b = read_ptyd(out), read_ptyd(ref)
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.positions, b.positions)
    assert len(chunks_of(answers)) == 3
