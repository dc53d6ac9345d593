"""Results others can read: CXI/NeXus, ptypy's .ptyr, NumPy, TIFF; ptypy's .ptyr to start from."""

import h5py
import numpy as np
import pytest
from _helpers import job_recipe as recipe

from ptyscan.app.cli import main
from ptyscan.app.runner import run_recipe
from ptyscan.geometry import HC_KEV_M
from ptyscan.io import read_ptyr
from ptyscan.io.h5typed import read_typed
from ptyscan.io.results import read_result


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    return run_recipe(recipe(tmp, run={"plot": False})).result


def test_cxi_holds_object_probe_positions_and_geometry_with_units(result_file, tmp_path):
    res = read_ptyr(result_file)
    out = tmp_path / "r.cxi"
    assert main(["export", result_file, "--format", "cxi", "-o", str(out)]) == 0
    with h5py.File(out, "r") as f:
        assert f["cxi_version"][()] == 160 and f["entry_1"].attrs["NX_class"] == "NXentry"
        image = f["entry_1/image_1"]
        assert image.attrs["NX_class"] == "NXdata" and image.attrs["signal"] == "data"
        np.testing.assert_array_equal(image["data"][()], res.object)
        np.testing.assert_array_equal(f["entry_1/image_2/data"][()], res.probe)
        assert image["x_pixel_size"][()] == res.sample_pixel_m[1]
        assert image["x_pixel_size"].attrs["units"] == "m"
        t = f["entry_1/sample_1/geometry_1/translation"][()]
        np.testing.assert_array_equal(t[:, :2], res.positions_final[:, ::-1])
        energy = f["entry_1/instrument_1/source_1/energy"]
        assert energy.attrs["units"] == "J"
        assert energy[()] == pytest.approx(res.meta["energy"] * 1.602176634e-16)
        wavelength = f["entry_1/instrument_1/source_1/wavelength"][()]
        assert wavelength == pytest.approx(HC_KEV_M / res.meta["energy"])
        assert f["entry_1/instrument_1/detector_1/distance"][()] == res.meta["distance"]


def test_ptypy_ptyr_has_ptypys_minimal_layout_and_starts_a_run(result_file, tmp_path):
    res = read_ptyr(result_file)
    assert main(["export", result_file, "--format", "ptypy"]) == 0
    out = result_file.removesuffix(".ptyr") + ".ptypy.ptyr"
    with h5py.File(out, "r") as f:
        header = read_typed(f["header"])
        obj = read_typed(f["content/obj/S00G00"])
        info = read_typed(f["content/runtime"])["iter_info"]
        assert f["content"].attrs["type"] == "dict"
    assert header["kind"] == "minimal"
    np.testing.assert_array_equal(obj["data"], res.object)
    np.testing.assert_allclose(obj["_psize"], res.sample_pixel_m)
    assert len(info) == len(res.history["fourier"])
    back = read_result(out)  # start_from reads ptypy's files
    np.testing.assert_array_equal(back.object, res.object)
    np.testing.assert_array_equal(back.probe, res.probe)
    np.testing.assert_array_equal(back.object_origin_px, res.object_origin_px)
    again = run_recipe(recipe(tmp_path, engines=[{"name": "DM", "numiter": 1, "start_from": out}]))
    start = read_ptyr(again.result)
    assert start.probe.shape == res.probe.shape


def test_npz_and_tiff_for_quick_use(result_file, tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    res = read_ptyr(result_file)
    assert main(["export", result_file, "--format", "npz", "--format", "tiff"]) == 0
    stem = result_file.removesuffix(".ptyr")
    npz = np.load(stem + ".npz")
    np.testing.assert_array_equal(npz["object"], res.object)
    np.testing.assert_array_equal(npz["history_fourier"], res.history["fourier"])
    phase = np.asarray(Image.open(stem + "_phase.tif"))
    np.testing.assert_allclose(phase, np.angle(res.object[0]).astype(np.float32))


def test_an_unknown_format_is_named(result_file, capsys):
    assert main(["export", result_file, "--format", "cxii"]) == 2
    assert "unknown result format 'cxii' (did you mean 'cxi'?)" in capsys.readouterr().err
