"""BLAS threads are limited per MPI rank unless the user chose a count."""

from ptyscan._env import limit_blas_threads_under_mpi


def test_two_local_ranks_share_the_cores():
    env = {"MPI_LOCALNRANKS": "2"}
    threads = limit_blas_threads_under_mpi(env)
    assert threads is not None and threads >= 1
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == str(threads)


def test_user_choice_and_serial_runs_are_left_alone():
    env = {"MPI_LOCALNRANKS": "2", "OMP_NUM_THREADS": "3"}
    assert limit_blas_threads_under_mpi(env) is None
    assert "OPENBLAS_NUM_THREADS" not in env
    for env in ({}, {"PMI_SIZE": "1"}):
        assert limit_blas_threads_under_mpi(env) is None
        assert "OMP_NUM_THREADS" not in env
