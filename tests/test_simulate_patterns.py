"""Scan patterns and position transforms: counts, spacing, extents, affine round trips, errors."""

import numpy as np
import pytest

from ptyscan.errors import ParameterError
from ptyscan.simulate import (
    add_jitter,
    affine_matrix,
    apply_affine,
    decompose_affine,
    flip_transpose,
    positions_by_model,
    positions_from_array,
    positions_from_pars,
    raster_grid,
    reported_positions,
    spiral_positions,
)
from ptyscan.simulate.patterns import round_within, spiral_within


def nearest(points):
    d = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def test_spiral_count_spacing_and_uniformity():
    spacing = 1e-6
    pos = spiral_positions(300, spacing_m=spacing)
    assert pos.shape == (300, 2) and np.all(pos[0] == 0)
    nn = nearest(pos)
    assert np.median(nn) == pytest.approx(spacing, rel=0.02)
    assert nn.min() > 0.5 * spacing
    r = np.hypot(*pos.T)  # equal area per point: r_k**2 grows linearly with k
    np.testing.assert_allclose(np.diff(r**2), r[1] ** 2, rtol=1e-9)
    np.testing.assert_array_equal(positions_by_model("spiral", 300, spacing_m=spacing), pos)


def test_raster_grid_counts_order_and_spacing():
    pos = raster_grid((3, 5), spacing_m=(2e-6, 1e-6))
    assert pos.shape == (15, 2)
    np.testing.assert_allclose(pos[:5, 0], -2e-6)  # first row: y slow
    np.testing.assert_allclose(np.diff(pos[:5, 1]), 1e-6)  # x fast
    np.testing.assert_allclose(np.unique(pos[:, 0]), [-2e-6, 0, 2e-6])
    np.testing.assert_allclose(pos.mean(axis=0), 0, atol=1e-20)
    with pytest.raises(ParameterError, match="steps"):
        raster_grid(2.5, spacing_m=1e-6)


def test_round_and_spiral_within_a_radius():
    pos = round_within(3e-6, spacing_m=1e-6)
    assert len(pos) == 1 + 6 + 13 + 19
    assert np.hypot(*pos.T).max() == pytest.approx(3e-6)
    spiral = spiral_within(5e-6, spacing_m=1e-6)
    assert np.hypot(*spiral.T).max() <= 5e-6
    assert len(spiral) == pytest.approx(25 * 1.68**2, rel=0.05)  # area pi r**2 / (pi c**2)


def test_positions_from_pars_follows_ptypy_rules():
    # steps and spacing given: the pattern; extent crops it
    pos = positions_from_pars(model="raster", spacing=1e-6, steps=10, extent=5e-6)
    assert len(pos) == 36 and np.abs(pos).max() <= 2.5e-6
    # extent and spacing: steps = extent / spacing
    assert len(positions_from_pars(model="raster", spacing=1e-6, steps=None, extent=4e-6)) == 16
    # extent and steps: spacing = extent / steps
    pos = positions_from_pars(model="raster", spacing=None, steps=(2, 4), extent=(4e-6, 8e-6))
    np.testing.assert_allclose(np.unique(pos[:, 0]), [-1e-6, 1e-6])
    np.testing.assert_allclose(np.diff(np.unique(pos[:, 1])), 2e-6)
    # offset, count, override, arrays
    pos = positions_from_pars(model="round", spacing=1e-6, steps=6, offset=(1e-6, -2e-6), count=5)
    assert len(pos) == 5 and np.allclose(pos[0], [1e-6, -2e-6])
    override = [[0, 0], [1e-6, 2e-6]]
    np.testing.assert_array_equal(positions_from_pars(model="round", override=override), override)
    np.testing.assert_array_equal(positions_from_pars(model=np.array(override)), override)
    with pytest.raises(ParameterError, match="two of"):
        positions_from_pars(model="raster", spacing=1e-6, steps=None, extent=None)
    with pytest.raises(ParameterError, match="no positions"):
        positions_from_pars(model="raster", spacing=1e-6, steps=2, extent=1e-7)
    with pytest.raises(ParameterError, match=r"xy\.model"):
        positions_from_pars(model="zigzag", spacing=1e-6, steps=3)
    with pytest.raises(ParameterError, match=r"\(N, 2\)"):
        positions_from_array([1, 2, 3])


@pytest.mark.parametrize(
    "params", [(1.0, 0.0, 0.0, 0.0), (1.1, 0.05, 12.0, -4.0), (0.8, -0.2, -75.0, 20.0)]
)
def test_affine_round_trip(params):
    matrix = affine_matrix(*params)
    np.testing.assert_allclose(decompose_affine(matrix), params, atol=1e-9)
    pos = spiral_positions(50, spacing_m=1e-6)
    moved = apply_affine(pos, params)
    np.testing.assert_allclose(apply_affine(moved, np.linalg.inv(matrix)), pos, atol=1e-18)
    np.testing.assert_allclose(apply_affine(pos, matrix), moved)


def test_affine_acts_on_row_vectors_as_ptyrad_and_stemscan():
    """One convention in the project: ``pos @ A`` (PtyRAD's ``pos_scan_affine``, which
    StemScan applies too), so a rotation simulated by SimScan is undone by StemScan's."""
    pos = np.array([[1.0, 2.0], [-3.0, 0.5]])
    np.testing.assert_allclose(
        apply_affine(pos, [1.0, 0.0, 90.0, 0.0]), [[-2.0, 1.0], [-0.5, -3.0]], atol=1e-12
    )
    params = (1.1, 0.05, 12.0, -4.0)
    np.testing.assert_allclose(apply_affine(pos, params), pos @ affine_matrix(*params))


def test_affine_components_match_ptychoshelves():
    np.testing.assert_allclose(affine_matrix(2.0), 2 * np.eye(2))
    np.testing.assert_allclose(affine_matrix(1.0, 0.2), np.diag([1.1, 0.9]))
    np.testing.assert_allclose(affine_matrix(1.0, 0.0, 90.0), [[0, 1], [-1, 0]], atol=1e-15)
    np.testing.assert_allclose(affine_matrix(1.0, 0.0, 0.0, 45.0), [[1, 0], [1, 1]], atol=1e-15)
    with pytest.raises(ParameterError, match="positive determinant"):
        decompose_affine([[1, 0], [0, -1]])
    with pytest.raises(ParameterError, match="affine"):
        apply_affine([[0, 0]], [1, 2, 3])


def test_flip_transpose():
    pos = np.array([[1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(flip_transpose(pos, [1, 0, 0]), [[-1, 2], [-3, -4]])
    np.testing.assert_array_equal(flip_transpose(pos, [0, 1, 0]), [[1, -2], [3, 4]])
    np.testing.assert_array_equal(flip_transpose(pos, [1, 1, 1]), [[-2, -1], [4, -3]])
    np.testing.assert_array_equal(pos, [[1.0, 2.0], [3.0, -4.0]])  # input untouched
    with pytest.raises(ParameterError, match="flipT"):
        flip_transpose(pos, [1, 0])


def test_reported_positions_carry_scale_drift_and_noise():
    true = raster_grid(20, spacing_m=1e-6)
    exact = reported_positions(true, scale=(0.01, -0.02), drift_m=(1e-9, 0.0))
    expected = true * [1.01, 0.98] + np.arange(400)[:, None] * [1e-9, 0.0]
    np.testing.assert_allclose(exact, expected, rtol=1e-12, atol=1e-20)
    noisy = reported_positions(true, noise_m=5e-8, rng=1)
    error = noisy - true
    assert error.std() == pytest.approx(5e-8, rel=0.1) and abs(error.mean()) < 1e-8
    np.testing.assert_array_equal(noisy, reported_positions(true, noise_m=5e-8, rng=1))
    with pytest.raises(ParameterError, match="rng"):
        reported_positions(true, noise_m=1e-8)
    with pytest.raises(ParameterError, match="scale"):
        reported_positions(true, scale=-1.0)


def test_jitter_is_seeded_gaussian():
    true = np.zeros((2000, 2))
    moved = add_jitter(true, std_m=(1e-8, 2e-8), rng=np.random.default_rng(4))
    np.testing.assert_allclose(moved.std(axis=0), [1e-8, 2e-8], rtol=0.1)
    np.testing.assert_array_equal(moved, add_jitter(true, std_m=(1e-8, 2e-8), rng=4))
    with pytest.raises(ParameterError, match="std_m"):
        add_jitter(true, std_m=-1.0, rng=0)
