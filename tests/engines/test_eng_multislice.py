"""Multislice objects (``object_slices``, engines/multislice.py; the operator's dot-product
tests are in test_eng_operator.py): its line-search terms, one slice giving today's ML exactly, ML
separating a simulated two-layer electron object, the refusals, and the result file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ptyscan.chunk import Chunk, ScanMeta
from ptyscan.engines import DM, EPIE, ML, RAAR, get_backend
from ptyscan.engines.multislice import MultisliceOperator
from ptyscan.errors import ParameterError, RecipeError
from ptyscan.geometry import electron_wavelength_m, photon_energy_kev
from ptyscan.propagation import FarField, NearField

FRAME = (12, 10)
OFFSETS = np.array([[0, 0], [3, 4], [9, 12], [3, 4], [6, 1]])


def _random(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _operator(backend, slices):
    between = NearField(
        FRAME, distance_m=2e-9, wavelength_m=2.5e-12, psize_m=3e-11, backend=backend
    )
    detector = FarField(FRAME, center=(5.5, 5), backend=backend)
    return MultisliceOperator(backend, detector, FRAME, slices=slices, between=between)


def test_taylor_terms_are_the_exit_waves_polynomial():
    """The exit wave of (O + t h, P + t hP) through S slices is a polynomial of degree
    S + 1 in t; its t and t² coefficients (fitted from S + 2 exact samples) are the
    operator's first- and second-order terms."""
    backend = get_backend("numpy", precision="double", threads=1)
    rng = np.random.default_rng(3)
    slices = 3
    op = _operator(backend, slices)
    obj, h = _random(rng, (2, slices, 22, 25)), _random(rng, (2, slices, 22, 25))
    probe, hp = _random(rng, (2, *FRAME)), _random(rng, (2, *FRAME))
    first, second = op.taylor(op.views(obj, OFFSETS), op.views(h, OFFSETS), probe, hp)
    ts = np.array([-1.0, -0.5, 0.5, 1.0, 2.0])
    waves = np.stack([op.exit_waves(obj + t * h, probe + t * hp, OFFSETS) for t in ts])
    coeffs = np.linalg.solve(np.vander(ts, slices + 2, increasing=True), waves.reshape(5, -1))
    np.testing.assert_allclose(coeffs[1], first.ravel(), rtol=0, atol=1e-11 * abs(first).max())
    np.testing.assert_allclose(coeffs[2], second.ravel(), rtol=0, atol=1e-11 * abs(second).max())


# --- one slice -----------------------------------------------------------------------------


def _small_chunk():
    from _engine_helpers import moonflower

    scan = moonflower(40, 32, noise=True)
    return scan.auto(100)


@pytest.mark.parametrize(
    "options",
    [{}, {"ML_type": "poisson", "reg_del2": True}, {"poly_line_coeffs": "all"}],
    ids=["gaussian", "poisson-del2", "all"],
)
def test_one_slice_through_the_multislice_operator_is_todays_ml(options):
    """object_slices: 1 keeps the plain operator (today's code, so today's results); the
    multislice code (slice axis, back-propagation through the slices, Taylor terms)
    with one slice gives the same ML iterations to rounding (BLAS sums may round in
    another order on other addresses, hence not bit for bit)."""
    chunk = _small_chunk()
    runs = []
    for multislice in (False, True):
        ml = ML(
            backend="numpy",
            precision="double",
            probe_modes=2,
            object_modes=2,
            object_slices=1,
            **options,
        )
        ml.add_views(chunk)
        st = ml.state
        assert type(st.operator).__name__ == "Operator" and st.object.ndim == 3
        if multislice:
            st.operator = _operator_like(st, 1)
            st.object = st.object[:, None].copy()
        hist = ml.iterate(6)
        runs.append((ml.object.reshape(2, *ml.object.shape[-2:]), ml.probe, hist))
    (o0, p0, h0), (o1, p1, h1) = runs
    np.testing.assert_allclose(o1, o0, rtol=0, atol=1e-10 * abs(o0).max())
    np.testing.assert_allclose(p1, p0, rtol=0, atol=1e-10 * abs(p0).max())
    for a, b in zip(h1, h0, strict=True):
        assert a["loglik"] == pytest.approx(b["loglik"], rel=1e-10)
        assert a["step"] == pytest.approx(b["step"], rel=1e-8)


def _operator_like(state, slices, thickness=1e-9):
    between = NearField(
        state.frame,
        distance_m=thickness,
        wavelength_m=state.meta.wavelength_m,
        psize_m=state.sample_pixel_m,
        backend=state.backend,
    )
    return MultisliceOperator(
        state.backend, state.propagator, state.frame, slices=slices, between=between
    )


# --- two layers ----------------------------------------------------------------------------

N, DX, KV = 32, 3e-11, 200.0


def _two_layers(dz, *, seed=0):
    """Noise-free 4D-STEM frames (200 kV, 25 mrad, 8 nm defocus, 0.3 Å pixels) of two
    weak phase objects ``dz`` apart, simulated here with NumPy's FFTs: returns the chunk,
    the two layers and the probe."""
    lam = electron_wavelength_m(KV)
    f = np.fft.fftfreq(N, DX)
    fy, fx = f[:, None], f[None, :]
    aperture = np.hypot(fy, fx) * lam < 0.025
    probe = np.fft.fftshift(
        np.fft.ifft2(aperture * np.exp(-1j * np.pi * lam * 8e-9 * (fy**2 + fx**2)))
    )
    probe *= np.sqrt(1e5 / np.sum(np.abs(probe) ** 2))
    kz = np.sqrt(1 / lam**2 - fy**2 - fx**2) - 1 / lam  # angular spectrum
    transfer = np.exp(2j * np.pi * dz * kz)
    pos = np.array([(3 * i, 3 * j) for i in range(10) for j in range(10)])
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(2):
        phase = gaussian_filter(rng.standard_normal(pos.max(axis=0) + N), 1.0)
        layers.append(np.exp(0.3j * phase / phase.std()))
    frames = []
    for y, x in pos:
        wave = np.fft.ifft2(np.fft.fft2(probe * layers[0][y : y + N, x : x + N]) * transfer)
        wave *= layers[1][y : y + N, x : x + N]
        frames.append(np.abs(np.fft.fftshift(np.fft.fft2(wave, norm="ortho"))) ** 2)
    psize = 1e-3
    meta = ScanMeta(
        shape=(N, N),
        psize=(psize, psize),
        energy=float(photon_energy_kev(lam)),
        distance=DX * N * psize / lam,  # sample pixel λz/(N psize) = DX
    )
    chunk = Chunk(
        indices=np.arange(len(pos)),
        data=np.array(frames, np.float32),
        weights=np.ones((len(pos), N, N), np.float32),
        positions=(pos - 13) * DX,
        meta=meta,
    )
    return chunk, layers, probe, pos


def _slice_correlations(ml, chunk, layers, pos):
    """(S, 2) correlations of each reconstructed slice's phase with each layer's, over
    the views' inner parts."""
    st = ml.state
    obj = ml.object.reshape(-1, *ml.object.shape[-2:])  # one object mode: (S, oy, ox)
    off = st.offsets(st.viewsets[0])
    shift = off[0] - pos[0]
    inner = np.zeros(obj.shape[-2:], bool)
    for y, x in off:
        inner[y + 8 : y + N - 8, x + 8 : x + N - 8] = True
    ys, xs = np.nonzero(inner)
    truths = [np.angle(layer[ys - shift[0], xs - shift[1]]) for layer in layers]
    out = np.empty((len(obj), len(layers)))
    for s, plane in enumerate(obj):
        for j, truth in enumerate(truths):
            out[s, j] = np.corrcoef(np.angle(plane[ys, xs]), truth)[0, 1]
    return out


def _ml(backend="numpy", **kwargs):
    return ML(
        backend=backend,
        precision="double",
        probe_update_start=10**6,  # the probe is known
        probe_support=None,
        object_margin_px=2,
        **kwargs,
    )


def test_ml_separates_two_layers():
    """Two weak phase objects 10 nm apart (depth of field λ/α² ≈ 4 nm): each slice of a
    two-slice ML reconstruction correlates with its own layer, not with the other; a
    one-slice reconstruction of the same frames misses the second layer and fits the
    data a hundred times worse."""
    chunk, layers, probe, pos = _two_layers(10e-9)
    ml = _ml(probe=probe, object_slices=2, slice_thickness=10e-9)
    ml.add_views(chunk)
    assert ml.object.shape[:2] == (1, 2)
    hist = ml.iterate(30)
    assert hist[-1]["loglik"] < 0.01 * hist[0]["loglik"]
    corr = _slice_correlations(ml, chunk, layers, pos)
    assert corr[0, 0] > 0.95 and corr[1, 1] > 0.95
    assert abs(corr[0, 1]) < 0.1 and abs(corr[1, 0]) < 0.1
    thin = _ml(probe=probe)
    thin.add_views(chunk)
    thin.iterate(30)
    one = _slice_correlations(thin, chunk, layers, pos)[0]
    assert abs(one[1]) < 0.3 < one[0] < corr[0, 0]  # the second layer is lost
    assert thin.history[-1]["loglik"] > 30 * hist[-1]["loglik"]


def test_two_layers_on_the_cupy_path(cupy_module):
    chunk, _, probe, _ = _two_layers(10e-9)
    results = []
    for name in ("numpy", "cupy"):
        ml = _ml(name, probe=probe, object_slices=2, slice_thickness=10e-9)
        ml.add_views(chunk)
        hist = ml.iterate(4)
        results.append((ml.object, [h["loglik"] for h in hist]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-9)


# --- states, refusals, results -------------------------------------------------------------


@pytest.mark.parametrize("cls", [DM, RAAR, EPIE])
def test_one_slice_engines_refuse_slices(cls):
    with pytest.raises(RecipeError, match=r"object_slices: 2: .* models one slice"):
        cls(object_slices=2, slice_thickness=1e-9)
    with pytest.raises(RecipeError, match="slice_thickness: None with object_slices 2"):
        ML(object_slices=2)
    with pytest.raises(RecipeError, match="poly_line_coeffs: 'all' with object_slices"):
        ML(object_slices=2, slice_thickness=1e-9, poly_line_coeffs="all")
    with pytest.raises(RecipeError, match="'gradient' with object_slices > 1"):
        ML(object_slices=2, slice_thickness=1e-9, position_refinement={"method": "gradient"})


def test_ml_splits_a_dm_state_and_dm_refuses_to_continue():
    chunk, _, probe, _ = _two_layers(10e-9)
    dm = DM(backend="numpy", precision="double", probe=probe, object_margin_px=2)
    dm.add_views(chunk)
    dm.iterate(2)
    before = dm.object
    ml = ML(state=dm.state, object_slices=3, slice_thickness=5e-9)
    assert ml.object.shape == (1, 3, *before.shape[-2:])
    np.testing.assert_array_equal(ml.object[:, 0], before)
    assert np.all(ml.object[:, 1:] == 1)
    ml.iterate(2)
    with pytest.raises(ParameterError, match="the state has object_slices 3"):
        DM(state=ml.state)
    with pytest.raises(ParameterError, match="object_slices 2 differs from the state's 3"):
        ML(state=ml.state, object_slices=2, slice_thickness=5e-9)
    later = ML(state=ml.state)  # follows the state's slices
    assert later.state.object_slices == 3
    with pytest.raises(RecipeError, match="poly_line_coeffs: 'all' with object_slices"):
        ML(state=ml.state, poly_line_coeffs="all")
    with pytest.raises(RecipeError, match="'gradient' with object_slices > 1"):
        ML(state=ml.state, position_refinement={"method": "gradient"})
    with pytest.raises(ParameterError, match="one-slice adjoints"):
        ml.state.operator.object_norm(ml.state.probe, np.zeros((1, 2), int), None)


def test_the_result_keeps_the_slices_pictures_them_and_starts_from_them(tmp_path):
    from ptyscan.io import read_ptyr
    from ptyscan.io.exports import NpzSink
    from ptyscan.io.plots import save_plots
    from ptyscan.io.results import make_result, projected_object, write_ptyr

    chunk, _, probe, _ = _two_layers(10e-9)
    ml = _ml(probe=probe, object_slices=2, slice_thickness=10e-9)
    ml.add_views(chunk)
    ml.iterate(3)
    result = make_result(
        engine=ml,
        engines_progress=[{"name": "ML", "iterations_done": 3}],
        history=ml.history,
        indices=chunk.indices,
        positions=chunk.positions,
        meta=chunk.meta,
        recipe_yaml="",
        status="final",
        ranks=1,
    )
    back = read_ptyr(write_ptyr(tmp_path / "r.ptyr", result))
    np.testing.assert_array_equal(back.object, ml.object)
    assert back.object.shape[:2] == (1, 2)
    np.testing.assert_allclose(
        projected_object(back.object), ml.object[:, 0] * ml.object[:, 1], rtol=1e-15
    )
    names = save_plots(back, tmp_path / "r.ptyr")
    assert names["object_slices"].exists() and names["object"].exists()
    assert np.load(NpzSink.write(tmp_path / "r.npz", back))["object"].shape == ml.object.shape
    # start_from: the slices where the slice counts agree, else the projected object
    again = _ml(
        probe=probe, object_slices=2, slice_thickness=10e-9, start_from=tmp_path / "r.ptyr"
    )
    again.add_views(chunk)
    np.testing.assert_array_equal(again.object, ml.object)
    thin = _ml(start_from=tmp_path / "r.ptyr")
    thin.add_views(chunk)
    np.testing.assert_array_equal(thin.object, projected_object(ml.object))


def test_grid_search_refines_positions_through_the_slices():
    """With the true slices and probe, one grid search puts every view (off by up to two
    pixels per axis) on its true position: the trial errors use the multislice model."""
    from ptyscan.engines.params import PositionRefinementParams
    from ptyscan.engines.posref import refine_positions

    chunk, layers, probe, pos = _two_layers(10e-9)
    k = np.random.default_rng(2).integers(-2, 3, pos.shape)
    k[0] = 0  # the truth is placed by frame 0
    moved = Chunk(
        indices=chunk.indices,
        data=chunk.data,
        weights=chunk.weights,
        positions=chunk.positions + k * DX,
        meta=chunk.meta,
    )
    ml = _ml(probe=probe, object_slices=2, slice_thickness=10e-9)
    ml.add_views(moved)
    st = ml.state
    st.ensure_probe()
    y0, x0 = st.offsets(st.viewsets[0])[0] - pos[0]  # object pixel of layer pixel (0, 0)
    oy, ox = st.object.shape[-2:]
    for s, layer in enumerate(layers):
        part = layer[max(0, -y0) : oy - y0, max(0, -x0) : ox - x0]
        ys, xs = max(0, y0), max(0, x0)
        st.object[0, s, ys : ys + part.shape[0], xs : xs + part.shape[1]] = part
    pr = PositionRefinementParams(method="gridsearch", max_shift=4 * DX)
    refine_positions(st, pr, iteration=0, amplitude_m=2 * DX, block_size=25)
    assert np.count_nonzero(k) > 100
    np.testing.assert_allclose(ml.positions[1], chunk.positions, rtol=0, atol=1e-6 * DX)


def test_a_run_resumes_a_multislice_checkpoint(tmp_path, monkeypatch):
    """DM, then ML with two slices, checkpointed inside ML and stopped by a failure:
    --resume gives DM's state ML's slices again and ML finishes on them."""
    from _helpers import job_recipe

    from ptyscan.app.runner import run_recipe
    from ptyscan.io import read_ptyr

    ml_block = {"name": "ML", "numiter": 4, "object_slices": 2, "slice_thickness": 1e-6}
    r = job_recipe(
        tmp_path,
        engines=[{"name": "DM", "numiter": 2}, ml_block],
        run={"checkpoint_every": 4},
    )
    calls = []
    step = ML._iterate_once

    def failing(self):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return step(self)

    with monkeypatch.context() as patch:
        patch.setattr(ML, "_iterate_once", failing)
        with pytest.raises(RuntimeError, match="power cut"):
            run_recipe(r)
    snap = read_ptyr(r.checkpoint_path)
    assert snap.object.ndim == 4 and snap.object.shape[1] == 2
    assert [e["iterations_done"] for e in snap.engines] == [2, 2]
    res = read_ptyr(run_recipe(r, resume=True).result)
    assert res.object.shape == snap.object.shape
    assert [e["iterations_done"] for e in res.engines] == [2, 4]
    assert not np.array_equal(res.object, snap.object)
