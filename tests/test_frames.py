"""Tests of ptyscan.preprocess: expectations are written out by hand or taken from plain NumPy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptyscan.errors import ParameterError
from ptyscan.preprocess import (
    center_of_mass,
    crop_pad,
    crop_pad_slices,
    geometric_center,
    orient,
    orientation_flags,
    rebin,
    rebin_center,
    rebin_weights,
    resolve_center,
)

FAST = settings(max_examples=60, deadline=None)

# ------------------------------------------------------------------------ orientation

# For each ptypy orientation int: its 3 flags and the explicit NumPy sequence it stands for.
ORIENTATIONS = {
    0: ((False, False, False), lambda a: a),
    1: ((False, False, True), lambda a: np.fliplr(a)),
    2: ((False, True, False), lambda a: np.flipud(a)),
    3: ((False, True, True), lambda a: np.fliplr(np.flipud(a))),
    4: ((True, False, False), lambda a: np.transpose(a)),
    5: ((True, False, True), lambda a: np.fliplr(np.transpose(a))),
    6: ((True, True, False), lambda a: np.flipud(np.transpose(a))),
    7: ((True, True, True), lambda a: np.fliplr(np.flipud(np.transpose(a)))),
}


@pytest.mark.parametrize("code", range(8))
def test_orientation_flags_ints_follow_ptypy_bits(code):
    flags, _ = ORIENTATIONS[code]
    assert orientation_flags(code) == flags
    assert orientation_flags(np.int64(code)) == flags
    assert orientation_flags(list(flags)) == flags
    assert orientation_flags(tuple(int(f) for f in flags)) == flags


def test_orientation_flags_none_is_no_change():
    assert orientation_flags(None) == (False, False, False)
    assert orientation_flags(np.array([True, False, True])) == (True, False, True)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (8, r"orientation 8 is outside 0\.\.7.*4 = transpose"),
        (-1, r"orientation -1 is outside 0\.\.7"),
        (True, r"orientation True is a single bool.*e\.g\. 4"),
        (2.0, r"orientation 2\.0 is not understood; expected None, an int from 0 to 7"),
        ("101", r"orientation '101' is not understood"),
        ((True, False), r"orientation \(True, False\) is not understood.*3 bools"),
        ((True, False, 2), r"orientation \(True, False, 2\) is not understood"),
    ],
)
def test_orientation_flags_rejects(value, match):
    with pytest.raises(ParameterError, match=match):
        orientation_flags(value)


@pytest.mark.parametrize("code", range(8))
def test_orient_matches_explicit_numpy_sequence(code):
    image = np.arange(12).reshape(3, 4)
    flags, explicit = ORIENTATIONS[code]
    expected = explicit(image)
    for spec in (code, flags):
        out, center = orient(image, orientation=spec)
        np.testing.assert_array_equal(out, expected)
        assert center is None
        assert out.flags.c_contiguous
    stack = np.stack([image, image + 100])
    out, _ = orient(stack, orientation=code)
    np.testing.assert_array_equal(out, np.stack([expected, expected + 100]))


def test_orient_literal_values():
    image = np.arange(6).reshape(2, 3)  # [[0 1 2] [3 4 5]]
    np.testing.assert_array_equal(orient(image, orientation=5)[0], [[3, 0], [4, 1], [5, 2]])
    np.testing.assert_array_equal(orient(image, orientation=6)[0], [[2, 5], [1, 4], [0, 3]])
    np.testing.assert_array_equal(orient(image, orientation=3)[0], [[5, 4, 3], [2, 1, 0]])


def test_orient_returns_fresh_contiguous_arrays():
    image = np.arange(12.0).reshape(3, 4)
    for code in range(1, 8):
        out, _ = orient(image, orientation=code)
        assert out.flags.c_contiguous
        assert not np.shares_memory(out, image)
    column = np.arange(3.0).reshape(3, 1)  # transposed view would already be contiguous
    out, _ = orient(column, orientation=4)
    assert not np.shares_memory(out, column)
    same, _ = orient(image, orientation=0)
    assert same is image
    strided = np.arange(24.0).reshape(3, 8)[:, ::2]
    out, _ = orient(strided, orientation=None)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, strided)


# Bright pixel position after each orientation, by hand, for a 5x7 frame.
CENTER_TABLE = {
    (1, 3): [(1, 3), (1, 3), (3, 3), (3, 3), (3, 1), (3, 3), (3, 1), (3, 3)],
    (1, 2): [(1, 2), (1, 4), (3, 2), (3, 4), (2, 1), (2, 3), (4, 1), (4, 3)],
}


@pytest.mark.parametrize("pixel", sorted(CENTER_TABLE))
@pytest.mark.parametrize("code", range(8))
def test_orient_center_follows_bright_pixel(pixel, code):
    frame = np.zeros((5, 7))
    frame[pixel] = 1.0
    out, center = orient(frame, orientation=code, center=pixel)
    found = np.unravel_index(np.argmax(out), out.shape)
    np.testing.assert_array_equal(center, found)
    np.testing.assert_array_equal(center, CENTER_TABLE[pixel][code])
    assert center.dtype == np.float64


@FAST
@given(
    image=st.integers(2, 7).flatmap(
        lambda ny: st.integers(2, 7).flatmap(
            lambda nx: st.lists(st.floats(0.0, 10.0), min_size=ny * nx, max_size=ny * nx).map(
                lambda v: np.array(v).reshape(ny, nx)
            )
        )
    ),
    code=st.integers(0, 7),
)
def test_orient_center_tracks_center_of_mass(image, code):
    image = image + 0.5  # strictly positive
    out, center = orient(image, orientation=code, center=center_of_mass(image))
    np.testing.assert_allclose(center, center_of_mass(out), atol=1e-9)


def test_orient_rejects_1d():
    with pytest.raises(ParameterError, match=r"orient: frames has shape \(5,\); expected a frame"):
        orient(np.zeros(5), orientation=1)


def test_orient_rejects_bad_center():
    with pytest.raises(ParameterError, match=r"orient: center \(1, 2, 3\) is not a pixel"):
        orient(np.zeros((3, 3)), orientation=1, center=(1, 2, 3))


# ----------------------------------------------------------------------------- centre


@pytest.mark.parametrize(
    ("shape", "fftshift", "geometric"),
    [
        ((4, 6), (2, 3), (1.5, 2.5)),
        ((5, 7), (2, 3), (2.0, 3.0)),
        ((10, 4, 5), (2, 2), (1.5, 2.0)),
    ],
)
def test_named_centers(shape, fftshift, geometric):
    np.testing.assert_array_equal(resolve_center("fftshift", shape), fftshift)
    np.testing.assert_array_equal(resolve_center("geometric", shape), geometric)
    np.testing.assert_array_equal(geometric_center(shape), geometric)
    np.testing.assert_array_equal(resolve_center("fft", shape), (0, 0))
    assert resolve_center("fftshift", shape).dtype == np.float64


def test_resolve_center_pair_and_none():
    assert resolve_center(None, (4, 4)) is None
    c = resolve_center((3, 0.25), (4, 6))
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, (3.0, 0.25))
    np.testing.assert_array_equal(resolve_center([0, 5], (4, 6)), (0, 5))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            (4, 0),
            r"center \(4\.0, 0\.0\) lies outside the frame of shape \(4, 6\); "
            r"expected 0 <= cy <= 3 and 0 <= cx <= 5; give the centre",
        ),
        ((0, -0.5), r"center \(0\.0, -0\.5\) lies outside the frame"),
        ("fftshfit", r"center 'fftshfit' is not a known name.*did you mean 'fftshift'\?"),
        ("middle", r"center 'middle' is not a known name; expected one of 'fftshift'"),
        ((1, np.nan), r"resolve_center: center \(1, nan\) is not a pixel position"),
        ((1, 2, 3), r"center \(1, 2, 3\) is not a pixel position; expected a pair"),
    ],
)
def test_resolve_center_rejects(spec, match):
    with pytest.raises(ParameterError, match=match):
        resolve_center(spec, (4, 6))


@pytest.mark.parametrize("shape", [(4,), 4, (4, 0), (4.0, 4)])
def test_geometric_center_rejects_bad_shape(shape):
    with pytest.raises(ParameterError, match=r"geometric_center: shape .* is not a valid frame"):
        geometric_center(shape)


def test_center_of_mass_single_and_pair_of_pixels():
    image = np.zeros((6, 9), dtype=np.uint8)
    image[4, 2] = 7
    np.testing.assert_array_equal(center_of_mass(image), (4, 2))
    image[1, 7] = 7
    np.testing.assert_allclose(center_of_mass(image), (2.5, 4.5))
    image[1, 7] = 21  # three times heavier: a quarter of the way from it
    np.testing.assert_allclose(center_of_mass(image), (1.75, 5.75))


def test_center_of_mass_weights_exclude_pixels():
    image = np.zeros((5, 5))
    image[1, 1] = 1.0
    image[3, 4] = 1e6  # hot pixel
    weights = np.ones((5, 5))
    weights[3, 4] = 0
    np.testing.assert_array_equal(center_of_mass(image, weights=weights), (1, 1))
    weights[3, 4] = -1
    np.testing.assert_array_equal(center_of_mass(image, weights=weights), (1, 1))
    np.testing.assert_array_equal(center_of_mass(image, weights=weights > 0), (1, 1))


def test_center_of_mass_accumulates_in_float64():
    image = np.zeros((64, 64), dtype=np.int16)
    image[50, 60] = 30000  # 30000 * 60 overflows int16
    image[10, 20] = 30000
    np.testing.assert_allclose(center_of_mass(image), (30, 40))
    big = np.full((300, 300), 1.0, dtype=np.float32)
    big[0, 0] = 1e8  # float32 sums would lose the ones next to this
    expected_cy = (np.arange(300) * 300.0).sum() / (1e8 - 1 + 300 * 300)
    np.testing.assert_allclose(center_of_mass(big)[0], expected_cy, rtol=1e-12)


@pytest.mark.parametrize(
    ("image", "weights", "match"),
    [
        (
            np.zeros((4, 4)),
            None,
            r"total intensity 0\.0.*all frames are empty or masked; "
            r"set center explicitly",
        ),
        (np.ones((4, 4)), np.zeros((4, 4)), r"all frames are empty or masked"),
        (np.full((2, 2), np.nan), None, r"total intensity nan"),
        (
            np.ones((2, 4, 4)),
            None,
            r"image has shape \(2, 4, 4\); expected a 2-D image.*"
            r"frames\.sum\(axis=0\)",
        ),
        (np.ones((4, 4)), np.ones((4, 5)), r"weights have shape \(4, 5\); expected the image"),
        (np.ones((4, 4), dtype=complex), None, r"image has dtype complex128; expected real"),
    ],
)
def test_center_of_mass_rejects(image, weights, match):
    with pytest.raises(ParameterError, match=match):
        center_of_mass(image, weights=weights)


# -------------------------------------------------------------------------- crop, pad

CROP_CASES = [
    # in_shape, center, out_shape
    ((9, 9), (4, 4), (5, 5)),  # crop, odd
    ((8, 8), (3, 5), (4, 4)),  # crop, even
    ((5, 5), (2, 2), (9, 9)),  # pad
    ((4, 6), (1, 4), (8, 10)),  # pad, even, off-centre
    ((6, 10), (2, 7), (10, 4)),  # pad rows, crop columns
    ((12, 3), (9, 1), (5, 7)),  # crop rows, pad columns
    ((7, 11), (0, 10), (3, 5)),  # centre in a corner
    ((6, 6), (3, 3), (6, 6)),  # nothing to do
    ((1, 1), (0, 0), (2, 3)),  # one pixel
]


@pytest.mark.parametrize(("in_shape", "center", "out_shape"), CROP_CASES)
def test_crop_pad_puts_center_pixel_at_half_shape(in_shape, center, out_shape):
    frames = np.zeros((2, *in_shape), dtype=np.float32)
    frames[0][center] = 5.0
    frames[1][center] = 7.0
    out, new_center = crop_pad(frames, shape=out_shape, center=center)
    mid = (out_shape[0] // 2, out_shape[1] // 2)
    assert out.shape == (2, *out_shape)
    assert out.dtype == np.float32
    assert out[(0, *mid)] == 5.0
    assert out[(1, *mid)] == 7.0
    assert out.sum() == 12.0
    np.testing.assert_array_equal(new_center, mid)
    single, single_center = crop_pad(frames[1], shape=out_shape, center=center)
    np.testing.assert_array_equal(single, out[1])
    np.testing.assert_array_equal(single_center, new_center)


def test_crop_pad_padding_uses_fill():
    frames = np.ones((3, 3), dtype=np.int32)
    out, center = crop_pad(frames, shape=(5, 6), center=(1, 1), fill=-1)
    expected = np.array(
        [
            [-1, -1, -1, -1, -1, -1],
            [-1, -1, 1, 1, 1, -1],
            [-1, -1, 1, 1, 1, -1],
            [-1, -1, 1, 1, 1, -1],
            [-1, -1, -1, -1, -1, -1],
        ]
    )
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(center, (2, 3))
    out, _ = crop_pad(np.ones((2, 2)), shape=4, center=(0.5, 0.5), fill=np.nan)
    assert np.isnan(out).sum() == 12


def test_crop_pad_mixed_literal():
    frames = np.arange(12).reshape(2, 6)
    out, center = crop_pad(frames, shape=(4, 3), center=(1, 2), fill=-1)
    expected = [[-1, -1, -1], [1, 2, 3], [7, 8, 9], [-1, -1, -1]]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(center, (2, 1))


def test_crop_pad_keeps_subpixel_offset_and_rounds_half_up():
    frames = np.zeros((10, 10))
    _, center = crop_pad(frames, shape=(6, 6), center=(4.3, 5.7))
    np.testing.assert_allclose(center, (3.3, 2.7))
    out, center = crop_pad(np.arange(100).reshape(10, 10), shape=(4, 4), center=(2.5, 3.5))
    assert out[2, 2] == 34  # pixel (3, 4): halves round up
    np.testing.assert_allclose(center, (1.5, 1.5))
    out, center = crop_pad(np.arange(100).reshape(10, 10), shape=(4, 4), center=(2.49, 3.51))
    assert out[2, 2] == 24
    np.testing.assert_allclose(center, (2.49, 1.51))


def test_crop_pad_returns_fresh_contiguous_array():
    frames = np.arange(36.0).reshape(6, 6)
    out, _ = crop_pad(frames, shape=(6, 6), center=(3, 3))
    np.testing.assert_array_equal(out, frames)
    assert out.flags.c_contiguous
    assert not np.shares_memory(out, frames)


@pytest.mark.parametrize(("in_shape", "center", "out_shape"), CROP_CASES)
def test_crop_pad_slices_reproduce_crop_pad(in_shape, center, out_shape):
    rng = np.random.default_rng(0)
    frames = rng.integers(1, 100, size=(3, *in_shape))
    src, dst = crop_pad_slices(frames.shape, shape=out_shape, center=center)
    assert len(src) == len(dst) == 2
    region = frames[(..., *src)]  # what a reader would load from disk
    out = np.full((3, *out_shape), -7)
    out[(..., *dst)] = region
    expected, _ = crop_pad(frames, shape=out_shape, center=center, fill=-7)
    np.testing.assert_array_equal(out, expected)
    assert region.size == (expected != -7).sum()
    assert crop_pad_slices(in_shape, shape=out_shape, center=center) == (src, dst)


def test_crop_pad_slices_literal():
    src, dst = crop_pad_slices((100, 8, 10), shape=(4, 16), center=(5, 2))
    assert src == (slice(3, 7), slice(0, 10))
    assert dst == (slice(0, 4), slice(6, 16))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"shape": (0, 4), "center": (1, 1)},
            r"crop_pad: shape \(0, 4\) is not a valid frame "
            r"shape; expected an int or a pair \(ny, nx\) of positive integers",
        ),
        ({"shape": 2.5, "center": (1, 1)}, r"shape 2\.5 is not a valid frame shape"),
        ({"shape": (4, 4, 4), "center": (1, 1)}, r"shape \(4, 4, 4\) has 3 entries; expected 2"),
        ({"shape": (4, 4), "center": (1, np.inf)}, r"center \(1, inf\) is not a pixel position"),
        (
            {"shape": (4, 4), "center": (1, 40)},
            r"center \(1\.0, 40\.0\) is so far from the "
            r"frame of shape \(6, 6\) that an output of shape \(4, 4\).*resolve_center",
        ),
        (
            {"shape": (4, 4), "center": (1, 1), "fill": 0.5},
            r"fill 0\.5 cannot be stored in "
            r"frames of dtype int16; expected a real scalar in range \(and a whole number "
            r"for integer frames\), e\.g\. 0",
        ),
        ({"shape": (4, 4), "center": (1, 1), "fill": 40000}, r"fill 40000 cannot be stored"),
        ({"shape": (4, 4), "center": (1, 1), "fill": np.nan}, r"fill nan cannot be stored"),
        ({"shape": (4, 4), "center": (1, 1), "fill": [0, 0]}, r"fill \[0, 0\] cannot be"),
    ],
)
def test_crop_pad_rejects(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        crop_pad(np.ones((6, 6), dtype=np.int16), **kwargs)


def test_crop_pad_rejects_float32_overflowing_fill_and_1d():
    with pytest.raises(ParameterError, match=r"fill 1e\+300 cannot be stored .* float32"):
        crop_pad(np.ones((4, 4), np.float32), shape=4, center=(2, 2), fill=1e300)
    with pytest.raises(ParameterError, match=r"crop_pad: frames has shape \(4,\)"):
        crop_pad(np.ones(4), shape=4, center=(2, 2))


def test_crop_pad_slices_rejects():
    with pytest.raises(ParameterError, match=r"crop_pad_slices: in_shape \(4,\) is not a valid"):
        crop_pad_slices((4,), shape=4, center=(1, 1))
    with pytest.raises(ParameterError, match=r"crop_pad_slices: center \(-9\.0, 1\.0\) is so"):
        crop_pad_slices((4, 4), shape=4, center=(-9, 1))


def _coordinate(n):
    """Sub-pixel positions rounding into 0..n-1, multiples of 1/16 (exact sums, halves)."""
    return st.integers(-8, 16 * n - 9).map(lambda k: k / 16)


def _crop_case():
    dims = st.tuples(st.integers(1, 9), st.integers(1, 9))
    return dims.flatmap(
        lambda in_shape: st.tuples(
            st.just(in_shape),
            dims,
            st.tuples(_coordinate(in_shape[0]), _coordinate(in_shape[1])),
        )
    )


@FAST
@given(case=_crop_case())
def test_crop_pad_round_trip_restores_kept_region(case):
    in_shape, out_shape, center = case
    frames = np.arange(1, 1 + in_shape[0] * in_shape[1]).reshape(in_shape)
    out, new_center = crop_pad(frames, shape=out_shape, center=center)
    shift = new_center - np.asarray(center)
    np.testing.assert_array_equal(shift, np.round(shift))  # whole pixels only
    # the original middle pixel sits at in_shape // 2 + shift in `out`: put it back there
    middle = np.array(in_shape) // 2 + shift
    back, back_center = crop_pad(out, shape=in_shape, center=middle)
    assert back.shape == in_shape
    # the centre we passed is that original middle pixel, and it is back where it started
    np.testing.assert_array_equal(back_center, np.array(in_shape) // 2)
    np.testing.assert_allclose(new_center + (back_center - middle), center)  # so is `center`
    kept = back != 0
    np.testing.assert_array_equal(back[kept], frames[kept])
    rounded = tuple(int(np.floor(c + 0.5)) for c in center)
    assert kept[rounded]  # the centre pixel always survives
    rows, cols = np.nonzero(kept)  # what is kept is one rectangle
    assert kept.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert kept.sum() == np.count_nonzero(out)  # everything `out` kept comes back


@FAST
@given(case=_crop_case())
def test_crop_pad_is_idempotent_around_returned_center(case):
    in_shape, out_shape, center = case
    frames = np.arange(1.0, 1 + in_shape[0] * in_shape[1]).reshape(in_shape)
    out, new_center = crop_pad(frames, shape=out_shape, center=center)
    again, again_center = crop_pad(out, shape=out_shape, center=new_center)
    np.testing.assert_array_equal(again, out)
    np.testing.assert_array_equal(again_center, new_center)


# ------------------------------------------------------------------------------ rebin


def _numpy_block_sum(a, f):
    ny, nx = a.shape[-2:]
    return a.reshape(*a.shape[:-2], ny // f, f, nx // f, f).sum(axis=(-3, -1))


def test_rebin_literal():
    out = rebin(np.arange(16).reshape(4, 4), 2)
    np.testing.assert_array_equal(out, [[10, 18], [42, 50]])


@pytest.mark.parametrize("factor", [2, 3, 6])
def test_rebin_equals_reshape_sum(factor):
    rng = np.random.default_rng(1)
    stack = rng.poisson(3.0, size=(4, 12, 18)).astype(np.float32)
    out = rebin(stack, factor)
    assert out.shape == (4, 12 // factor, 18 // factor)
    np.testing.assert_array_equal(out, _numpy_block_sum(stack, factor))
    np.testing.assert_array_equal(rebin(stack[2], factor), out[2])
    np.testing.assert_array_equal(rebin(stack, factor=factor), out)


@pytest.mark.parametrize(
    ("dtype", "out_dtype"),
    [
        (np.float32, np.float32),
        (np.float64, np.float32),
        (np.int16, np.int64),
        (np.uint16, np.int64),
        (np.int64, np.int64),
        (np.uint64, np.uint64),
        (bool, np.int64),
    ],
)
def test_rebin_dtypes(dtype, out_dtype):
    frames = np.ones((2, 4, 4), dtype=dtype)
    out = rebin(frames, 2)
    assert out.dtype == out_dtype
    np.testing.assert_array_equal(out, np.full((2, 2, 2), 4))


def test_rebin_does_not_overflow_small_ints():
    frames = np.full((4, 4), 30000, dtype=np.int16)
    np.testing.assert_array_equal(rebin(frames, 4), [[480000]])


def test_rebin_factor_one_returns_input():
    frames = np.ones((3, 5), dtype=np.int16)
    assert rebin(frames, 1) is frames
    assert rebin_weights(frames, 1) is frames


@pytest.mark.parametrize("func", [rebin, rebin_weights])
@pytest.mark.parametrize(
    ("shape", "factor", "match"),
    [
        (
            (128, 128),
            3,
            r"factor 3 does not divide frame shape \(128, 128\); choose a divisor "
            r"of both sides, e\.g\. 2 or 4",
        ),
        (
            (6, 9),
            2,
            r"factor 2 does not divide frame shape \(6, 9\); choose a divisor of both "
            r"sides, e\.g\. 3$",
        ),
        (
            (7, 11),
            2,
            r"factor 2 does not divide frame shape \(7, 11\); crop_pad to a shape "
            r"divisible by 2 first",
        ),
        ((4, 4), 0, r"factor 0 is outside 1\.\.32; expected an integer from 1"),
        ((64, 64), 64, r"factor 64 is outside 1\.\.32"),
        ((4, 4), 2.0, r"factor 2\.0 is not an integer; expected an integer from 1 to 32"),
        ((4, 4), True, r"factor True is not an integer"),
        ((4, 4), "2", r"factor '2' is not an integer"),
    ],
)
def test_rebin_rejects_factor(func, shape, factor, match):
    with pytest.raises(ParameterError, match=rf"{func.__name__}: {match}"):
        func(np.ones(shape), factor)


@pytest.mark.parametrize("func", [rebin, rebin_weights])
def test_rebin_rejects_arrays(func):
    with pytest.raises(ParameterError, match=r"has dtype complex128; expected real numbers"):
        func(np.ones((4, 4), dtype=complex), 2)
    with pytest.raises(ParameterError, match=r"has shape \(4,\); expected a frame"):
        func(np.ones(4), 2)


@FAST
@given(
    n=st.integers(1, 3),
    blocks=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    factor=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_rebin_preserves_total(n, blocks, factor, seed):
    shape = (n, blocks[0] * factor, blocks[1] * factor)
    counts = np.random.default_rng(seed).integers(0, 1000, size=shape, dtype=np.int32)
    out = rebin(counts, factor)
    assert out.sum() == counts.sum()
    np.testing.assert_array_equal(out.sum(axis=(-2, -1)), counts.sum(axis=(-2, -1)))


def test_rebin_weights_validity_rule():
    weights = np.array(
        [
            [1.0, 1.0, 0.5, 0.5],
            [1.0, 1.0, 0.5, 0.0],
            [2.0, 4.0, 1.0, 1.0],
            [1.0, 1.0, 1.0, -1.0],
        ]
    )
    out = rebin_weights(weights, 2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.0, 0.0], [2.0, 0.0]])
    stack = np.stack([weights, np.ones_like(weights)]).astype(np.float32)
    np.testing.assert_array_equal(rebin_weights(stack, 2), [[[1, 0], [2, 0]], [[1, 1], [1, 1]]])


def test_rebin_weights_dtypes():
    mask = np.ones((4, 6), dtype=bool)
    mask[3, 5] = False
    out = rebin_weights(mask, 2)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, [[True, True, True], [True, True, False]])
    ints = np.array([[1, 2], [3, 0]], dtype=np.uint8)
    assert rebin_weights(ints, 2).dtype == np.float32
    np.testing.assert_array_equal(rebin_weights(ints, 2), [[0.0]])
    ints[1, 1] = 2
    np.testing.assert_array_equal(rebin_weights(ints, 2), [[2.0]])
    nan_block = np.array([[1.0, np.nan], [1.0, 1.0]])
    np.testing.assert_array_equal(rebin_weights(nan_block, 2), [[0.0]])


def test_rebin_center():
    out = rebin_center((64, 64), 2)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, (32, 32))
    np.testing.assert_array_equal(rebin_center((63.5, 10.25), 4), (15.875, 2.5625))
    for n, factor in [(128, 2), (128, 4), (96, 8), (12, 3)]:
        before = resolve_center("fftshift", (n, n))
        after = resolve_center("fftshift", (n // factor, n // factor))
        np.testing.assert_array_equal(rebin_center(before, factor), after)


def test_rebin_center_rejects():
    with pytest.raises(ParameterError, match=r"rebin_center: factor 0 is outside 1\.\.32"):
        rebin_center((1, 1), 0)
    with pytest.raises(ParameterError, match=r"rebin_center: center 'mid' is not a pixel"):
        rebin_center("mid", 2)
