"""Fixtures and hooks shared by every test module.

Under ``mpiexec`` (tests/mpi, tests/engines/mpi_engines.py, launched by
tests/test_mpi.py and tests/engines/test_eng_mpi.py), a test marked ``mpi`` that
fails on one rank prints the failure and aborts the whole job, so no other rank
waits forever in a collective (the launcher's timeout is the last resort).
"""

import logging
import os

import pytest

# One FFT and block thread per process, as .ci/run and tests/_mpi_launch.py give the MPI
# ranks: several tests compare runs bit for bit (host-streamed against device-resident
# views, loader ranks against one process), and the block threads sum in an order that
# depends on their count. Tests of several threads ask for them (get_backend(threads=N)).
os.environ["OMP_NUM_THREADS"] = "1"

from ptyscan.parallel import _launched_size

UNDER_MPI = _launched_size() > 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Abort every rank when a test marked ``mpi`` fails on this rank under MPI."""
    outcome = yield
    report = outcome.get_result()
    if not (report.failed and UNDER_MPI and item.get_closest_marker("mpi")):
        return
    from mpi4py import MPI

    from ptyscan.parallel import MPIComm, abort_job

    comm = MPIComm(MPI.COMM_WORLD)
    capman = item.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.suspend_global_capture(in_=True)
    text = (
        f"\n[rank {comm.rank}/{comm.size}] {item.nodeid} FAILED during {report.when}; "
        f"calling MPI_Abort(1) so that no rank hangs\n{report.longreprtext}\n"
    )
    for name, content in report.sections:
        text += f"--- {name} ---\n{content}\n"
    abort_job(comm, text)


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """``main`` calls logging.basicConfig(force=True); drop its handler and level afterwards."""
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _cuda_device_count(cupy):
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver / no device
        return 0


def _cuda_cupy():
    """The real CuPy with a CUDA device visible to it; else the test is skipped."""
    cupy = pytest.importorskip("cupy", reason="cupy is not installed (pip install 'ptyscan[gpu]')")
    if _cuda_device_count(cupy) == 0:
        pytest.skip("no CUDA device visible to cupy")
    return cupy


@pytest.fixture
def cuda_cupy():
    """The real CuPy on a CUDA device (tests taking it are marked ``gpu``); skipped without."""
    return _cuda_cupy()


@pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.gpu), "standin"])
def cupy_module(request, monkeypatch):
    """The ``cupy`` module the CuPy backend will import, twice over: the real CuPy on a
    CUDA device (marked ``gpu``; skipped without one) and the strict CPU stand-in of
    ``tests/cupy_standin.py`` (always), installed in ``sys.modules`` for the test."""
    if request.param == "cuda":
        return _cuda_cupy()
    import cupy_standin

    from ptyscan import backend

    backend._default_fft.cache_clear()  # the FFT object is cached per array module
    request.addfinalizer(backend._default_fft.cache_clear)
    return cupy_standin.install(monkeypatch.setitem)
