"""Engine tests that run UNDER ``mpiexec -n 2`` (launched by test_eng_mpi.py).

Each rank reconstructs the same noise-free MoonFlower scan twice: alone
(SerialComm, all frames) and together with the other rank (each holding its own
frames, object and probe updates summed over ranks). Both must agree to rounding.
The first chunk has a single frame, so rank 0 starts with no frame at all.
RAAR and ePIE (whose ranks run the serial algorithm together) are checked the same way,
and position refinement (each rank moves its own views), and a multislice ML.
"""

from __future__ import annotations

import numpy as np
import pytest
from _engine_helpers import misplaced_moonflower, model_probe, moonflower

from ptyscan.engines import DM, EPIE, ML, RAAR
from ptyscan.parallel import SerialComm, get_comm

pytestmark = pytest.mark.mpi

CHUNKS = (1, 29, 30)


def reconstruct(comm, precision):
    scan = moonflower(60, 32, comm=comm, density=0.25)
    dm = DM(backend="numpy", comm=comm, probe=model_probe(32), precision=precision)
    for size in CHUNKS[:2]:
        dm.add_views(scan.auto(size))
    hist = dm.iterate(5)
    dm.add_views(scan.auto(CHUNKS[2]))  # more frames while reconstructing
    hist += dm.iterate(15)
    ml = ML(
        state=dm.state,
        reg_del2=True,
        scale_precond=True,
        smooth_gradient=2.0,
        smooth_gradient_decay=0.1,
    )
    hist += ml.iterate(10)
    return dm.object, dm.probe, hist, dm.state.n_views


def relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# Double precision shows the sums over ranks are exact up to rounding. In single
# precision, DM amplifies the rounding of differently ordered sums: the same job in
# one process with another block size differs by 1.4e-3 after these iterations.
@pytest.mark.parametrize(("precision", "tol"), [("double", 1e-9), ("single", 5e-3)])
def test_one_and_two_ranks_give_the_same_reconstruction(precision, tol):
    comm = get_comm()
    assert comm.size == 2
    obj1, probe1, hist1, n1 = reconstruct(SerialComm(), precision)
    obj2, probe2, hist2, n2 = reconstruct(comm, precision)
    assert n1 == 60 and n2 < 60 and comm.allreduce(n2) == 60
    assert relative(obj2, obj1) < tol
    assert relative(probe2, probe1) < tol
    for a, b in zip(hist1, hist2, strict=True):
        for key in ("fourier", "photons", "exit"):
            assert b[key] == pytest.approx(a[key], rel=10 * tol, abs=1e-12)
    # every rank ends with the same object
    gathered = comm.allgather(obj2)
    np.testing.assert_array_equal(gathered[0], gathered[1])


@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        (RAAR, {}),
        (EPIE, {"rpie_alpha": 0.5, "object_norm_is_global": True}),
        (EPIE, {"subpixel": "linear"}),
    ],
)
def test_raar_and_epie_on_one_and_two_ranks(cls, kw):
    comm = get_comm()
    results = []
    for c in (SerialComm(), comm):
        scan = moonflower(60, 32, comm=c, density=0.25)
        engine = cls(backend="numpy", comm=c, probe=model_probe(32), precision="double", **kw)
        for size in CHUNKS[:2]:
            engine.add_views(scan.auto(size))
        hist = engine.iterate(4)
        engine.add_views(scan.auto(CHUNKS[2]))
        hist += engine.iterate(6)
        results.append((engine.object, engine.probe, hist))
    (obj1, probe1, hist1), (obj2, probe2, hist2) = results
    assert relative(obj2, obj1) < 1e-9
    assert relative(probe2, probe1) < 1e-9
    for a, b in zip(hist1, hist2, strict=True):
        for key in ("fourier", "photons", "exit"):
            assert b[key] == pytest.approx(a[key], rel=1e-8, abs=1e-12)
    gathered = comm.allgather(obj2)
    np.testing.assert_array_equal(gathered[0], gathered[1])


@pytest.mark.parametrize("subpixel", ["none", "linear"])
def test_position_refinement_on_one_and_two_ranks(subpixel):
    comm = get_comm()
    results = []
    for c in (SerialComm(), comm):
        scan, _, pixel = misplaced_moonflower(60, comm=c)
        step = {"amplitude": 2 * pixel[0], "max_shift": 4 * pixel[0]}
        dm = DM(
            backend="numpy",
            comm=c,
            probe=model_probe(32),
            precision="double",
            subpixel=subpixel,
            numiter=8,
            position_refinement=step,
        )
        for size in CHUNKS[:2]:
            dm.add_views(scan.auto(size))
        hist = dm.iterate(3)
        dm.add_views(scan.auto(CHUNKS[2]))
        hist += dm.iterate(5)
        ml = ML(state=dm.state, numiter=5, position_refinement={**step, "method": "gradient"})
        hist += ml.iterate()
        results.append((ml.object, ml.positions, hist))
    (obj1, (idx1, pos1), hist1), (obj2, (idx2, pos2), hist2) = results
    np.testing.assert_array_equal(idx2, idx1)
    assert not np.array_equal(pos1, scan.positions)  # refinement moved views
    np.testing.assert_allclose(pos2, pos1, rtol=0, atol=1e-9 * pixel[0])
    assert relative(obj2, obj1) < 1e-9
    for a, b in zip(hist1, hist2, strict=True):
        assert b["position_shift_px"] == pytest.approx(a["position_shift_px"], rel=1e-9)
    gathered = comm.allgather(pos2)
    np.testing.assert_array_equal(gathered[0], gathered[1])


def test_multislice_ml_and_grid_search_on_one_and_two_ranks():
    """DM with grid-search refinement, then ML splitting its object into two slices: the
    same positions, slices and errors on one and two ranks."""
    comm = get_comm()
    results = []
    for c in (SerialComm(), comm):
        scan, _, pixel = misplaced_moonflower(60, comm=c)
        dm = DM(
            backend="numpy",
            comm=c,
            probe=model_probe(32),
            precision="double",
            numiter=6,
            position_refinement={
                "method": "gridsearch",
                "amplitude": 2 * pixel[0],
                "max_shift": 4 * pixel[0],
            },
        )
        for size in CHUNKS:
            dm.add_views(scan.auto(size))
        hist = dm.iterate()
        ml = ML(state=dm.state, object_slices=2, slice_thickness=2e-6, numiter=4)
        hist += ml.iterate()
        results.append((ml.object, ml.positions, hist))
    (obj1, (_, pos1), hist1), (obj2, (_, pos2), hist2) = results
    assert obj1.shape[:2] == (1, 2) and not np.array_equal(pos1, scan.positions)
    np.testing.assert_allclose(pos2, pos1, rtol=0, atol=1e-9 * pixel[0])
    assert relative(obj2, obj1) < 1e-9
    for a, b in zip(hist1, hist2, strict=True):
        assert b["fourier"] == pytest.approx(a["fourier"], rel=1e-8, abs=1e-12)
    gathered = comm.allgather(obj2)
    np.testing.assert_array_equal(gathered[0], gathered[1])
