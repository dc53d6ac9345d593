"""PtyRAD's model files as a result to start from (``start_from``, ``read_result``).

The files are written here in the layout PtyRAD 1.0 saves (``ptyrad.io.save``:
``make_save_dict`` then ``save_dict_to_hdf5``, one HDF5 group per nested dict), with
only the datasets the reader uses. Where each one sits, and why:

- ``optimizable_tensors/obja``, ``objp``: PtyRAD optimises the object's amplitude and
  phase as two float32 tensors of shape (omode, Nz, Ny, Nx); its object is
  ``obja * exp(1j * objp)`` (its ``_load_obj_from_ptyrad``).
- ``optimizable_tensors/probe``: saved as the complex view of the probe tensor,
  (pmode, Ny, Nx) complex64.
- ``optimizable_tensors/probe_pos_shifts``: the refined sub-pixel rest of each position,
  (N, 2) float32 (y, x) in object pixels.
- ``model_attributes/crop_pos``: integer object pixel (y, x) of each view's top-left
  corner (the view is ``crop_pos + [0, Ny) x [0, Nx)``); ``crop_pos + probe_pos_shifts``
  is what PtyRAD's ``pos_source: PtyRAD`` reads back.
- ``model_attributes/dx``: the object pixel, float32, in Å for electrons (m for X-rays);
  ``model_attributes/omode_occu``: the weight of each object mode in the forward model.
- ``params/init_params/probe_illum_type``: 'electron' or 'xray' (decides the unit of dx).
- ``ptyrad_version``, a top-level string, as PtyRAD writes it (not needed to read).
"""

import h5py
import numpy as np
import pytest
from _helpers import job_recipe

from ptyscan import EOS
from ptyscan.app.runner import run_recipe
from ptyscan.errors import PtyScanError
from ptyscan.geometry import view_pixels
from ptyscan.io import read_ptyr
from ptyscan.io.results import read_result
from ptyscan.scans import get_scan


def write_ptyrad(path, *, obja, objp, probe, crop_pos, shifts, dx, occu=None, kind="electron"):
    """A PtyRAD model file (see the module notes for each dataset's place)."""
    with h5py.File(path, "w") as f:
        f["ptyrad_version"] = "1.0.0"
        t = f.create_group("optimizable_tensors")
        t["obja"] = np.asarray(obja, np.float32)
        t["objp"] = np.asarray(objp, np.float32)
        t["probe"] = np.asarray(probe, np.complex64)
        t["probe_pos_shifts"] = np.asarray(shifts, np.float32)
        a = f.create_group("model_attributes")
        a["crop_pos"] = np.asarray(crop_pos, np.int16)
        a["dx"] = np.float32(dx)
        if occu is not None:
            a["omode_occu"] = np.asarray(occu, np.float32)
        f["params/init_params/probe_illum_type"] = kind
    return str(path)


def test_ptyrad_object_probe_and_positions_map_to_a_result(tmp_path):
    rng = np.random.default_rng(0)
    obja = 0.5 + rng.random((2, 3, 20, 24))  # 2 object modes, 3 slices
    objp = rng.uniform(-1, 1, (2, 3, 20, 24))
    probe = rng.normal(size=(2, 8, 8)) + 1j * rng.normal(size=(2, 8, 8))
    crop = np.array([[0, 0], [2, 5], [7, 11], [12, 16]])
    shifts = rng.uniform(-0.5, 0.5, (4, 2)).astype(np.float32)
    path = write_ptyrad(
        tmp_path / "model_iter0010.hdf5",
        obja=obja,
        objp=objp,
        probe=probe,
        crop_pos=crop,
        shifts=shifts,
        dx=0.25,
        occu=[0.75, 0.25],
    )
    res = read_result(path)  # told apart from our .ptyr by content
    a32, p32 = obja.astype(np.float32), objp.astype(np.float32)
    # the projection of the slices: amplitudes multiply, phases add; modes weighted √occu
    expected = np.prod(a32, axis=1) * np.exp(1j * np.sum(p32, axis=1))
    expected *= np.sqrt([0.75, 0.25])[:, None, None]
    np.testing.assert_allclose(res.object, expected, rtol=1e-5)
    np.testing.assert_allclose(res.probe, probe.astype(np.complex64))
    np.testing.assert_allclose(res.sample_pixel_m, [0.25e-10, 0.25e-10], rtol=1e-7)
    positions = (crop + shifts.astype(np.float64)) * np.float32(0.25) * 1e-10
    np.testing.assert_allclose(res.positions_final, positions, rtol=1e-12)
    np.testing.assert_array_equal(res.indices, np.arange(4))
    # each view lands on the object pixels PtyRAD used: crop_pos = round(position) corner
    corner, _ = view_pixels(res.positions_final, res.sample_pixel_m, (8, 8))
    np.testing.assert_array_equal(corner - res.object_origin_px, np.round(crop + shifts))
    assert res.attrs["status"] == "PtyRAD"


def test_xray_ptyrad_files_give_dx_in_metres(tmp_path):
    path = write_ptyrad(
        tmp_path / "x.h5",
        obja=np.ones((1, 1, 6, 6)),
        objp=np.zeros((1, 1, 6, 6)),
        probe=np.ones((1, 4, 4)),
        crop_pos=[[0, 0], [1, 1]],
        shifts=np.zeros((2, 2)),
        dx=20e-9,
        kind="xray",
    )
    res = read_result(path)
    np.testing.assert_allclose(res.sample_pixel_m, [20e-9, 20e-9], rtol=1e-7)
    np.testing.assert_allclose(res.positions_final[1], [20e-9, 20e-9], rtol=1e-7)
    np.testing.assert_array_equal(res.object, np.ones((1, 6, 6)))


def test_an_incomplete_ptyrad_file_names_what_is_missing(tmp_path):
    path = tmp_path / "half.hdf5"
    with h5py.File(path, "w") as f:
        f["optimizable_tensors/obja"] = np.ones((1, 1, 4, 4), np.float32)
        f["model_attributes/dx"] = np.float32(0.3)
    with pytest.raises(PtyScanError, match=r"half\.hdf5: a PtyRAD result without .*objp"):
        read_result(path)


def as_ptyrad(result, path):
    """Our .ptyr written as PtyRAD would hold the same reconstruction: each view's corner
    in object pixels (round(position / pixel) - frame // 2 - object origin) split into
    PtyRAD's integer crop_pos and its sub-pixel rest."""
    pixel = result.sample_pixel_m
    frame = np.array(result.probe.shape[-2:])
    exact = result.positions_final / pixel - frame // 2 - result.object_origin_px
    crop = np.round(exact)
    return write_ptyrad(
        path,
        obja=np.abs(result.object)[:, None],
        objp=np.angle(result.object)[:, None],
        probe=result.probe,
        crop_pos=crop,
        shifts=exact - crop,
        dx=pixel[0] / 1e-10,
    )


def test_start_from_a_ptyrad_file_round_trip(tmp_path):
    """Our result → PtyRAD's layout → start_from: with PtyRAD's positions (its object
    frame), every view starts on the earlier object, and the run starts far lower."""
    from ptyscan.engines import DM

    first = read_ptyr(
        run_recipe(job_recipe(tmp_path, engines=[{"name": "DM", "numiter": 15}])).result
    )
    (tmp_path / "again").mkdir()
    path = as_ptyrad(first, tmp_path / "again" / "model.hdf5")
    theirs = read_result(path)
    pars = {"num_frames": 24, "shape": 32, "seed": 3, "positions_theory": theirs.positions_final}

    def views_and_first_error(**engine):
        dm = DM(numiter=2, backend="numpy", **engine)
        scan = get_scan("MoonFlowerScan")(**pars)
        while (chunk := scan.auto(10)) is not EOS:
            dm.add_views(chunk)
        start = dm.object.copy()
        return dm, start, dm.iterate(1)[0]["fourier"]

    dm, start, err = views_and_first_error(start_from=path)
    # the earlier object sits under the same views: compare each view's patch
    ours, _ = view_pixels(first.positions_final, first.sample_pixel_m, (32, 32))
    now, _ = view_pixels(theirs.positions_final, theirs.sample_pixel_m, (32, 32))
    a, b = ours - first.object_origin_px, now - dm.state.origin_px
    for (y0, x0), (y1, x1) in zip(a, b, strict=True):
        np.testing.assert_allclose(
            start[0, y1 : y1 + 32, x1 : x1 + 32],
            first.object[0, y0 : y0 + 32, x0 : x0 + 32],
            rtol=1e-5,
            atol=1e-6,
        )
    np.testing.assert_allclose(dm.probe.shape, first.probe.shape)
    _, _, fresh = views_and_first_error()
    assert err < 0.5 * fresh
    # and through a recipe: start_from resolves next to the recipe, the run finishes
    again = run_recipe(
        job_recipe(
            tmp_path / "again",
            engines=[{"name": "DM", "numiter": 1, "start_from": "model.hdf5"}],
            scan={"positions_theory": theirs.positions_final.tolist()},
        )
    )
    assert read_ptyr(again.result).history["fourier"][0] < 0.5 * fresh
