"""Pictures: physical units, the illuminated region, complex probes, every PNG written."""

import numpy as np
import pytest
from _helpers import job_recipe as recipe

from ptyscan.app.runner import run_recipe
from ptyscan.io import read_ptyr
from ptyscan.io.plots import (
    complex_rgb,
    illuminated_region,
    length_unit,
    plot_names,
    view_offsets_px,
)

pytest.importorskip("matplotlib")


@pytest.mark.parametrize(
    ("metres", "unit"), [(2e-3, "mm"), (3e-6, "µm"), (4.5e-8, "nm"), (5e-10, "Å")]
)
def test_length_unit_shows_a_number_from_1_to_1000(metres, unit):
    name, scale = length_unit(metres)
    assert name == unit and 1 <= metres / scale < 1000


def test_illuminated_region_is_the_summed_probe_intensity():
    probe = np.zeros((2, 4, 4), np.complex64)
    probe[0, 1:3, 1:3] = 2.0  # intensity 4 in a 2x2 core
    probe[1, 0, 0] = 0.1j  # a weak second mode: 0.01, below 10 % of the peak
    coverage, region = illuminated_region((6, 8), probe, [(0, 0), (0, 2), (5, 7)])
    expected = np.zeros((6, 8))
    for y, x in [(0, 0), (0, 2)]:
        expected[y : y + 4, x : x + 4] += np.sum(np.abs(probe) ** 2, axis=0)
    expected[5, 7] += 0.01  # the third view is cut by the object's edge
    np.testing.assert_allclose(coverage, expected, rtol=1e-6)
    assert region.sum() == 8 and region[1:3, 1:5].all()  # two 2x2 cores side by side


def test_complex_rgb_hue_is_phase_and_brightness_amplitude():
    from matplotlib.colors import rgb_to_hsv

    field = np.array([[2.0, 1j, -1.0, 0.0]])
    hsv = rgb_to_hsv(complex_rgb(field))
    np.testing.assert_allclose(hsv[0, :, 2], [1.0, 0.5, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(hsv[0, :3, 0], [0.5, 0.75, 0.0], atol=1e-6)


def test_a_run_writes_every_picture_and_the_views_lie_in_the_object(tmp_path):
    summary = run_recipe(recipe(tmp_path, run={"plot": True}))
    names = plot_names(summary.result)
    assert sorted(names) == ["errors", "object", "positions", "probe"]
    for png in names.values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    res = read_ptyr(summary.result)
    frame = np.asarray(res.probe.shape[-2:])
    offsets = view_offsets_px(res.positions_final, res.sample_pixel_m, res.object_origin_px, frame)
    assert (offsets >= 0).all() and (offsets + frame <= res.object.shape[-2:]).all()
