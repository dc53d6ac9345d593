"""Reconstruction state: view geometry, object extent and growth, data layout, initial probe."""

from __future__ import annotations

import numpy as np
import pytest

from ptyscan.chunk import Chunk, ScanMeta
from ptyscan.engines import ReconstructionState, get_backend
from ptyscan.engines.initial import initial_probe
from ptyscan.errors import ParameterError
from ptyscan.geometry import sample_pixel_m

BK = get_backend("numpy", precision="double", threads=1)
META = ScanMeta(shape=(16, 16), psize=(1e-4, 1e-4), energy=7.2, distance=7.0, center=(8.0, 8.0))
PIX = sample_pixel_m(META)


def make_chunk(pos_px, *, weights=None, number=0, value=None, meta=META):
    n = len(pos_px)
    rng = np.random.default_rng(number)
    data = rng.poisson(50, (n, *meta.shape)).astype(np.float32) if value is None else value
    if weights is None:
        weights = np.broadcast_to(np.ones(meta.shape, np.float32), (n, *meta.shape))
    pos = np.asarray(pos_px, float) * sample_pixel_m(meta)
    return Chunk(
        indices=np.arange(n) + 100 * number,
        data=data,
        weights=weights,
        positions=pos,
        meta=meta,
        number=number,
    )


def test_sample_pixel_far_and_near():
    expected = META.wavelength_m * META.distance / (16 * 1e-4)
    np.testing.assert_allclose(PIX, [expected, expected])
    near = ScanMeta(
        shape=(8, 8), psize=(3e-8, 2e-8), energy=7.2, distance=0.01, propagation="nearfield"
    )
    np.testing.assert_allclose(sample_pixel_m(near), [3e-8, 2e-8])


def test_view_offsets_and_object_extent():
    st = ReconstructionState(BK, margin_px=3)
    st.add_views(make_chunk([[0, 0], [5, -4], [-2, 10]]))
    vs = st.viewsets[0]
    # top-left = centre pixel - frame // 2
    np.testing.assert_array_equal(vs.pos_px, [[-8, -8], [-3, -12], [-10, 2]])
    np.testing.assert_array_equal(st.origin_px, [-13, -15])
    assert st.object.shape == (1, 7 + 16 + 6, 14 + 16 + 6)
    np.testing.assert_array_equal(st.offsets(vs), vs.pos_px - st.origin_px)
    assert st.object.dtype == np.complex128 and np.all(st.object == 1)


def test_object_grows_and_keeps_values_and_matches_one_chunk_extent():
    first, second = [[0, 0], [3, 3]], [[-9, 2], [4, 30]]
    st = ReconstructionState(BK, margin_px=2)
    assert st.add_views(make_chunk(first))
    rng = np.random.default_rng(5)
    st.object = rng.standard_normal(st.object.shape) + 1j
    before, origin = st.object.copy(), st.origin_px.copy()
    assert st.add_views(make_chunk(second, number=1))
    y0, x0 = origin - st.origin_px
    oy, ox = before.shape[-2:]
    np.testing.assert_array_equal(st.object[:, y0 : y0 + oy, x0 : x0 + ox], before)
    assert np.sum(st.object == 1) == st.object.size - before.size
    one = ReconstructionState(BK, margin_px=2)
    one.add_views(make_chunk(first + second))
    assert one.object.shape == st.object.shape
    np.testing.assert_array_equal(one.origin_px, st.origin_px)
    assert not st.add_views(make_chunk([[1, 1]], number=2))  # inside: no growth
    assert st.n_views_total == 5 and st.n_views == 5


def test_object_extent_uses_all_ranks_positions():
    c = make_chunk([[0, 0]])
    everyone = Chunk(
        indices=c.indices,
        data=c.data,
        weights=c.weights,
        positions=c.positions,
        meta=META,
        all_indices=np.arange(3),
        all_positions=np.array([[0, 0], [0, 40], [30, 0]]) * PIX,
    )
    st = ReconstructionState(BK, margin_px=0)
    st.add_views(everyone)
    assert st.object.shape == (1, 46, 56)


def test_data_in_fft_order_and_masks():
    data = np.zeros((2, 16, 16), np.float32)
    data[:, 8, 8] = 7  # zero frequency at the centre
    st = ReconstructionState(BK)
    st.add_views(make_chunk([[0, 0], [1, 1]], value=data))
    vs = st.viewsets[0]
    assert vs.data[0, 0, 0] == 7 and vs.data.dtype == np.float64
    assert vs.mask.shape == (1, 16, 16)  # one shared mask
    w = np.ones((2, 16, 16), np.float32)
    w[1, 8, 9] = 0
    st.add_views(make_chunk([[0, 0], [1, 1]], weights=w, number=1))
    mask = st.viewsets[1].mask
    assert mask.shape == (2, 16, 16) and mask[1, 0, 1] == 0 and mask.sum() == 2 * 256 - 1
    np.testing.assert_allclose(
        st.viewsets[1].power, [np.sum(st.viewsets[1].data[i] * mask[i]) for i in range(2)]
    )


def test_chunks_must_share_shape():
    st = ReconstructionState(BK)
    st.add_views(make_chunk([[0, 0]]))
    other = ScanMeta(shape=(8, 8), psize=(1e-4, 1e-4), energy=7.2, distance=7.0)
    with pytest.raises(ParameterError, match="share"):
        st.add_views(make_chunk([[0, 0]], meta=other))


def test_initial_probe_power_and_modes():
    st = ReconstructionState(BK, probe_modes=3, probe_mode_powers=[0.6, 0.3, 0.1])
    st.add_views(make_chunk([[0, 0], [2, 2], [4, 1]]))
    st.ensure_probe()
    p = st.probe
    assert p.shape == (3, 16, 16)
    photons = st.tot_power / 3
    power = np.sum(np.abs(p) ** 2, axis=(1, 2))
    np.testing.assert_allclose(power, np.array([0.6, 0.3, 0.1]) * photons, rtol=1e-10)
    gram = np.abs(np.einsum("kyx,lyx->kl", p.conj(), p))
    assert np.max(gram - np.diag(np.diag(gram))) < 1e-8 * photons


def test_aperture_probe_is_a_centred_disc_and_focused_matches_mean_frame():
    disc = initial_probe((32, 32), model="aperture", size=0.5, photons=100.0)[0]
    assert np.sum(np.abs(disc) ** 2) == pytest.approx(100.0)
    assert abs(disc[16, 16]) > 0 and disc[16, 2] == 0 and disc[2, 16] == 0
    assert np.allclose(np.angle(disc[np.abs(disc) > 0]), 0)
    rng = np.random.default_rng(0)
    mean = rng.uniform(1, 2, (32, 32))
    from ptyscan.propagation import FarField

    prop = FarField((32, 32))
    focused = initial_probe(
        (32, 32), model="focused", photons=mean.sum(), mean_frame=mean, propagator=prop
    )
    np.testing.assert_allclose(np.abs(prop.fw(focused[0])) ** 2, mean, rtol=1e-10)


def test_given_probe_keeps_its_power():
    given = np.full((16, 16), 2.0 + 1j)
    st = ReconstructionState(BK, probe=given)
    st.add_views(make_chunk([[0, 0]]))
    st.ensure_probe()
    np.testing.assert_allclose(st.probe[0], given)
    with pytest.raises(ParameterError, match="frame shape"):
        initial_probe((8, 8), given=given)


def test_iterating_without_views_is_an_error():
    st = ReconstructionState(BK)
    with pytest.raises(ParameterError, match="add_views"):
        st.ensure_probe()


def test_copy_is_independent():
    st = ReconstructionState(BK)
    st.add_views(make_chunk([[0, 0], [3, 3]]))
    st.ensure_exit()
    new = st.copy()
    new.object += 1
    new.viewsets[0].exit += 1
    assert np.all(st.object == 1)
    assert not np.allclose(new.viewsets[0].exit, st.viewsets[0].exit)


def test_focused_model_with_the_right_defocus_is_moonflowers_probe():
    """MoonFlower's probe: a pupil with defocus phase φ_edge (ρ/ρ_edge)², i.e. a sample
    Δz = -φ_edge λ z² / (π ρ_edge² psize²) from the focus; the 'focused' model with that
    Δz, built from the mean frame alone, reproduces it (sign and geometry conventions)."""
    from _engine_helpers import moonflower

    scan = moonflower(100, 64)
    chunk = scan.auto(100)
    meta = chunk.meta
    rho_edge, phi_edge = 16, np.pi * 0.5 * 64 / (6 * np.sqrt(2))  # focused_probe's default
    dz = (
        -phi_edge
        * meta.wavelength_m
        * meta.distance**2
        / (np.pi * (rho_edge * meta.psize[0]) ** 2)
    )
    st = ReconstructionState(BK, probe_model="focused", probe_defocus_m=dz)
    st.add_views(chunk)
    st.ensure_probe()
    probe, truth = st.probe[0], scan.true_probe
    scale = np.vdot(probe, truth) / np.vdot(probe, probe)
    assert np.sum(np.abs(scale * probe - truth) ** 2) / np.sum(np.abs(truth) ** 2) < 0.05
    other = ReconstructionState(BK, probe_model="focused", probe_defocus_m=-dz)
    other.add_views(chunk)
    other.ensure_probe()
    wrong = other.probe[0]
    scale = np.vdot(wrong, truth) / np.vdot(wrong, wrong)
    assert np.sum(np.abs(scale * wrong - truth) ** 2) / np.sum(np.abs(truth) ** 2) > 0.5
