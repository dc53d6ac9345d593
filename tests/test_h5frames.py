"""Frame-stack writing: parallel gzip via direct chunks and fill-value stacks read back by HDF5."""

import h5py
import numpy as np
import pytest

from ptyscan.io.h5frames import GZIP_LEVEL, create_frames_dataset


@pytest.fixture
def h5(tmp_path):
    with h5py.File(tmp_path / "frames.h5", "w") as f:
        yield f


def poisson_stack(dtype, n=5, shape=(16, 24)):
    rng = np.random.default_rng(7)
    return rng.poisson(30.0, size=(n, *shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint16, np.float64])
@pytest.mark.parametrize("threads", [1, 3])
def test_gzip_direct_chunks_decode_with_hdf5s_own_filters(h5, dtype, threads):
    stack = poisson_stack(dtype)
    dset = create_frames_dataset(h5, "d", stack, compression="gzip", threads=threads)
    assert (dset.compression, dset.compression_opts, dset.shuffle) == ("gzip", GZIP_LEVEL, True)
    assert dset.chunks == (1, 16, 24)
    assert dset.id.get_num_chunks() == 5
    h5.flush()
    np.testing.assert_array_equal(dset[()], stack)  # decoded by HDF5, not by us
    assert dset.id.get_storage_size() < stack.nbytes  # really compressed


@pytest.mark.parametrize("compression", ["lzf", None])
def test_other_compressions_round_trip(h5, compression):
    stack = poisson_stack(np.float32)
    dset = create_frames_dataset(h5, "d", stack, compression=compression)
    assert dset.compression == compression
    np.testing.assert_array_equal(dset[()], stack)


@pytest.mark.parametrize("value", [1.0, 0.0, 0.25])
def test_uniform_stack_is_a_fill_value_with_no_chunk_written(h5, value):
    stack = np.broadcast_to(np.float32(value), (7, 8, 9))
    dset = create_frames_dataset(h5, "w", stack, compression="gzip")
    assert dset.id.get_num_chunks() == 0
    assert dset.fillvalue == value
    np.testing.assert_array_equal(dset[()], np.full((7, 8, 9), value, np.float32))
    np.testing.assert_array_equal(dset[3], np.full((8, 9), value, np.float32))


def test_repeated_frame_written_for_every_row(h5):
    mask = np.ones((8, 9), np.float32)
    mask[2:4, 5] = 0
    stack = np.broadcast_to(mask, (4, 8, 9))
    dset = create_frames_dataset(h5, "w", stack, compression="gzip")
    assert dset.id.get_num_chunks() == 4
    np.testing.assert_array_equal(dset[()], stack)


def test_nan_stack_is_not_taken_for_uniform(h5):
    stack = np.full((2, 4, 4), np.nan, np.float32)
    dset = create_frames_dataset(h5, "n", stack, compression=None)
    assert np.isnan(dset[()]).all()


def test_anonymous_dataset(h5):
    stack = poisson_stack(np.float32, n=2)
    dset = create_frames_dataset(h5, None, stack, compression="gzip", threads=2)
    h5["named"] = dset
    np.testing.assert_array_equal(h5["named"][()], stack)


def test_pre_deflated_stack_is_written_as_is(h5):
    from ptyscan.io.h5frames import Deflated, deflate_frames

    stack = poisson_stack(np.float32, n=6)
    halves = deflate_frames(stack[:4], threads=2) + deflate_frames(stack[4:])  # two "ranks"
    pre = Deflated(shape=stack.shape, dtype=stack.dtype, blobs=halves)
    a = create_frames_dataset(h5, "pre", pre, compression="gzip")
    b = create_frames_dataset(h5, "direct", stack, compression="gzip")
    np.testing.assert_array_equal(a[()], stack)
    for row in range(6):  # the same bytes on disk as a serial write
        assert a.id.read_direct_chunk((row, 0, 0)) == b.id.read_direct_chunk((row, 0, 0))
