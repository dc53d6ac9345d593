"""Sub-pixel positions (``subpixel: linear`` and ``fourier``): integer positions give the
rounded views' results; data simulated at fractional positions are fitted better; the
Fourier views of a band-limited object are exact; the CuPy path agrees; StemScan recipes
default to Fourier views."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _engine_helpers import model_probe, moonflower

from ptyscan.engines import DM, EPIE, ML, get_backend
from ptyscan.engines.operator import Operator
from ptyscan.errors import ParameterError
from ptyscan.geometry import sample_pixel_m, view_pixels
from ptyscan.propagation import propagator_for


@pytest.fixture(scope="module")
def scan_chunk():
    scan = moonflower(60, 32, density=0.25)
    return scan, scan.auto(60)


@pytest.fixture(scope="module")
def fractional_chunk(scan_chunk):
    """The MoonFlower views moved by random fractions of a pixel, data simulated by the
    bilinear forward model from the true object and probe."""
    scan, chunk = scan_chunk
    bk = get_backend("numpy", precision="double", threads=1)
    prop = propagator_for(chunk.meta, backend=bk)
    corners = scan.true_positions_px + np.random.default_rng(0).uniform(0, 1, (60, 2))
    op = Operator(bk, prop, (32, 32))
    far = op.forward(scan.true_object[None], scan.true_probe[None], corners)[:, 0, 0]
    data = prop.detector_order(np.abs(far) ** 2).astype(np.float32)
    positions = (corners + 16) * sample_pixel_m(chunk.meta)
    return dataclasses.replace(chunk, data=data, positions=positions, all_positions=positions)


def test_view_pixels_round_or_keep_the_fraction():
    pos = np.array([[10.0, 20.4], [3.6, -1.25]])
    whole, frac = view_pixels(pos, np.array([1.0, 1.0]), (4, 4))
    np.testing.assert_array_equal(whole, [[8, 18], [2, -3]])
    assert frac is None
    whole, frac = view_pixels(pos, np.array([1.0, 1.0]), (4, 4), subpixel=True)
    np.testing.assert_array_equal(whole, [[8, 18], [1, -4]])
    np.testing.assert_allclose(frac, [[0, 0.4], [0.6, 0.75]])
    assert frac[0, 0] == 0.0  # whole pixels stay exact


@pytest.mark.parametrize(("cls", "kw"), [(DM, {}), (EPIE, {}), (ML, {"ML_type": "poisson"})])
def test_integer_positions_give_the_rounded_results(scan_chunk, cls, kw):
    chunk = scan_chunk[1]
    runs = []
    for mode in ("none", "linear", "fourier") if cls is not DM else ("none", "linear"):
        engine = cls(
            backend="numpy", probe=model_probe(32), precision="double", subpixel=mode, **kw
        )
        engine.add_views(chunk)
        engine.iterate(5)
        runs.append(engine)
    plain = runs[0]
    oy, ox = plain.object.shape[-2:]
    for sub in runs[1:]:
        assert sub.object.shape[-2:] == (oy + 1, ox + 1)  # room for the interpolation
        np.testing.assert_allclose(sub.object[:, :oy, :ox], plain.object, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(sub.probe, plain.probe, rtol=1e-9, atol=1e-9)


def _truth_fourier_error(scan, chunk, mode):
    """Mean Fourier error of the true object and probe on the engine's view grid."""
    dm = DM(backend="numpy", probe=scan.true_probe, precision="double", subpixel=mode)
    dm.add_views(chunk)
    st = dm.state
    off = st.offsets(st.viewsets[0])
    shift = np.floor(off[0]).astype(int) - scan.true_positions_px[0]  # state − truth pixels
    oy, ox = st.object.shape[-2:]
    ty, tx = np.mgrid[0:oy, 0:ox] - shift[:, None, None]
    truth = scan.true_object
    ok = (ty >= 0) & (ty < truth.shape[0]) & (tx >= 0) & (tx < truth.shape[1])
    st.object[0][ok] = truth[ty[ok], tx[ok]]
    st.ensure_probe()
    far = st.operator.forward(st.object, st.probe, off)
    amp = np.sqrt((np.abs(far) ** 2).sum(axis=(1, 2)))
    return float(np.mean((amp - np.sqrt(st.viewsets[0].data)) ** 2))


def test_fractional_positions_fit_better_with_subpixel_views(scan_chunk, fractional_chunk):
    scan = scan_chunk[0]
    # the truth fits the data exactly only where the views sit at the exact positions
    assert _truth_fourier_error(scan, fractional_chunk, "linear") < 1e-6
    assert _truth_fourier_error(scan, fractional_chunk, "none") > 50
    final = {}
    for mode in ("none", "linear"):
        epie = EPIE(backend="numpy", probe=model_probe(32), subpixel=mode)
        epie.add_views(fractional_chunk)
        final[mode] = epie.iterate(100)[-1]["fourier"]
    assert final["linear"] < 0.8 * final["none"]


@pytest.mark.parametrize("cls", [DM, EPIE])
def test_subpixel_on_the_cupy_path(cupy_module, fractional_chunk, cls):
    objects = []
    for name in ("numpy", "cupy"):
        engine = cls(backend=name, probe=model_probe(32), precision="double", subpixel="linear")
        engine.add_views(fractional_chunk)
        engine.iterate(4)
        objects.append(engine.object)
    np.testing.assert_allclose(objects[1], objects[0], rtol=1e-9, atol=1e-9)


def test_later_engines_follow_the_state(scan_chunk):
    dm = DM(backend="numpy", subpixel="linear")
    dm.add_views(scan_chunk[1])
    dm.iterate(1)
    assert ML(state=dm.state).state.subpixel  # the default follows the state
    with pytest.raises(ParameterError, match="subpixel 'none' differs"):
        ML(state=dm.state, subpixel="none")


def test_a_recipe_sets_subpixel_once():
    from ptyscan.errors import RecipeError
    from ptyscan.recipe import load_recipe

    scan = {"name": "MoonFlowerScan", "num_frames": 10, "shape": 32}
    ok = load_recipe(
        {"scan": scan, "engines": [{"name": "DM", "subpixel": "linear"}, {"name": "ML"}]}
    )
    assert ok.engines[0].subpixel == "linear"
    bad = {"scan": scan, "engines": [{"name": "RAAR"}, {"name": "EPIE", "subpixel": "linear"}]}
    with pytest.raises(RecipeError, match=r"engines\[1\].subpixel: 'linear' differs"):
        load_recipe(bad)


def test_fourier_views_of_a_band_limited_object_are_exact():
    """A plane wave periodic in the view: its Fourier views at fractional offsets are the
    wave evaluated there (bilinear views are not); the adjoint moves back."""
    bk = get_backend("numpy", precision="double", threads=1)
    frame = (12, 10)
    prop = propagator_for_frame(frame, bk)
    fourier, linear = Operator(bk, prop, frame, "fourier"), Operator(bk, prop, frame)
    ys, xs = np.mgrid[0:30, 0:30]
    a, b = 5, 3  # cycles per view: high frequencies, where bilinear weights damp most
    obj = np.exp(2j * np.pi * (a * ys / 12 + b * xs / 10))[None]
    offsets = np.array([[2.5, 4.25], [7.75, 0.5], [3.0, 6.0]])
    ry, rx = np.mgrid[0:12, 0:10]
    for view, lin, (y, x) in zip(
        fourier.views(obj, offsets), linear.views(obj, offsets), offsets, strict=True
    ):
        exact = np.exp(2j * np.pi * (a * (y + ry) / 12 + b * (x + rx) / 10))
        np.testing.assert_allclose(view[0], exact, atol=1e-12)
        assert np.abs(lin[0] - exact).max() > (0.1 if (y % 1 or x % 1) else -1)
    # the adjoint moves a view back by the fraction: its window of the object again
    for y, x in offsets:
        view = fourier.views(obj, np.array([[y, x]]))
        out = fourier.adjoint_object(
            view[:, :, None], np.ones((1, *frame)), np.array([[y, x]]), np.zeros_like(obj)
        )
        n, m = int(y), int(x)
        np.testing.assert_allclose(out[0, n : n + 12, m : m + 10], obj[0, n : n + 12, m : m + 10])
        assert np.abs(out[0, n + 12 :]).max() == 0


def propagator_for_frame(frame, backend):
    from ptyscan.propagation import FarField

    return FarField(frame, center=(frame[0] / 2, frame[1] / 2), backend=backend)


def test_stem_recipes_default_to_fourier_views_and_poisson_ml():
    """StemScan's ENGINE_DEFAULTS fill the keys a recipe's ML engines leave out: subpixel
    when ML starts the reconstruction (later engines follow the state) and the noise
    model; given keys win, DM keeps its own, scans without defaults keep the engines'."""
    from ptyscan.errors import RecipeError
    from ptyscan.recipe import load_recipe

    stem = {"name": "StemScan", "meas_source": "custom", "pos_N_scan_slow": 2}
    alone = load_recipe({"scan": stem, "engines": [{"name": "ML"}]}).engines[0]
    assert (alone.subpixel, alone.ML_type) == ("fourier", "poisson")
    dm, ml = load_recipe({"scan": stem, "engines": [{"name": "DM"}, {"name": "ML"}]}).engines
    assert dm.subpixel == "none" and "subpixel" not in ml.model_fields_set
    assert ml.ML_type == "poisson"
    given = load_recipe(
        {"scan": stem, "engines": [{"name": "ML", "subpixel": "none", "ML_type": "gaussian"}]}
    )
    assert (given.engines[0].subpixel, given.engines[0].ML_type) == ("none", "gaussian")
    xray = load_recipe({"scan": {"name": "MoonFlowerScan"}, "engines": [{"name": "ML"}]})
    assert (xray.engines[0].subpixel, xray.engines[0].ML_type) == ("none", "gaussian")
    with pytest.raises(RecipeError, match=r"engines\[0\].subpixel.*'fourier' is for ML"):
        load_recipe({"scan": stem, "engines": [{"name": "DM", "subpixel": "fourier"}]})
