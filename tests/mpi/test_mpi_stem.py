"""StemScan over several ranks (run under mpiexec): the statistics pass is shared and
summed over MPI, and the prepared frames equal the serial ones; so does the initial
probe, normalised to the largest prepared pattern (a maximum over ranks)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from mpi_helpers import chunks_of, local_parts, merge_parts, run

from ptyscan.parallel import SerialComm
from ptyscan.scans.stem import StemScan

pytestmark = pytest.mark.mpi

PARS = {
    "meas_source": "custom",
    "meas_permute": [1, 0, 3, 2],
    "meas_crop": [[1, 5], None, [1, 15], None],
    "meas_remove_neg_values": {"mode": "subtract_min"},
    "meas_pad": {"mode": "precompute", "padding_type": "exp", "target_Npix": 20},
    "meas_add_poisson_noise": {"unit": "e_per_Ang2", "value": 5000},
    "meas_calibration": {"mode": "fitRBF"},
    "meas_add_source_size": 0.3,  # Å: 0.6 scan steps, chunks read 2 more rows each side
    "pos_scan_step_size": 0.5,
    "probe_kv": 300.0,
    "probe_conv_angle": 20.0,
    "probe_normalization": {"mode": "max_total_ints"},  # a second pass, the max over ranks
    "seed": 5,
}


def _data():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:16, :16]
    disk = (np.hypot(y - 8, x - 8) < 5).astype(np.float32) * 40
    return (disk + rng.normal(1.0, 2.0, (5, 6, 16, 16))).astype(np.float32)


@pytest.mark.parametrize("mode", ["all", "data"])
def test_stem_frames_match_serial(comm, mode):
    arr = _data()
    scan = StemScan(dict(PARS, meas_params=arr, load_parallel=mode), comm=comm)
    chunks = chunks_of(run(scan, 7))
    serial = StemScan(dict(PARS, meas_params=arr), comm=SerialComm())
    reference = chunks_of(run(serial, 7))
    assert len(chunks) == len(reference)
    for chunk, want in zip(chunks, reference, strict=True):
        parts = comm.allgather(local_parts(chunk))
        got = merge_parts(parts)
        np.testing.assert_array_equal(got["indices"], want.indices)
        np.testing.assert_allclose(got["data"], want.data, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got["positions"], want.positions)
    np.testing.assert_allclose(scan.probe, serial.probe, rtol=1e-5, atol=1e-6)
    assert scan.meta.psize == pytest.approx(serial.meta.psize)


def test_stem_zarr_frames_match_serial(comm, shared_dir):
    """A Zarr store read by every rank (its share of the statistics pass, its frames)."""
    zarr = pytest.importorskip("zarr", minversion="3")
    arr = _data()
    path = os.path.join(shared_dir, "scan.zarr")
    if comm.rank == 0:
        store = zarr.open_group(path, mode="w")
        store.create_array("entry/data", shape=arr.shape, chunks=(1, 2, 16, 16), dtype="f4")[:] = (
            arr
        )
    comm.barrier()
    params = {"path": path, "key": "entry/data"}
    scan = StemScan(dict(PARS, meas_source="zarr", meas_params=params), comm=comm)
    chunks = chunks_of(run(scan, 7))
    reference = chunks_of(run(StemScan(dict(PARS, meas_params=arr), comm=SerialComm()), 7))
    assert len(chunks) == len(reference)
    for chunk, want in zip(chunks, reference, strict=True):
        got = merge_parts(comm.allgather(local_parts(chunk)))
        np.testing.assert_allclose(got["data"], want.data, rtol=1e-5, atol=1e-6)
