"""Unit slips caught before anything is allocated: energy, distance, pixel, positions."""

import logging

import numpy as np
import pytest

from ptyscan.app.cli import main
from ptyscan.chunk import ScanMeta
from ptyscan.errors import ParameterError
from ptyscan.geometry import electron_wavelength_m, farfield_sample_pixel_m, photon_energy_kev
from ptyscan.plausibility import (
    check_geometry,
    check_object_memory,
    describe_geometry,
    make_geometry,
)
from ptyscan.scans import get_scan


def meta(**kw):
    values = dict(shape=(128, 128), psize=(172e-6, 172e-6), energy=7.2, distance=7.19)
    values.update(kw)
    return ScanMeta(**values)


def grid(step_m, n=5):
    yy, xx = np.mgrid[:n, :n]
    return np.stack([yy.ravel(), xx.ravel()], axis=1) * step_m


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            dict(energy=8000.0),
            "scan.energy: 8000 keV is outside 0.1–100 keV for X-rays; was it given in eV?",
        ),
        (
            dict(psize=(75.0, 75.0)),
            "scan.psize: 75 m is outside 1e-07–0.01 m for a detector pixel; was it given in µm?",
        ),
        (
            dict(distance=3500.0),
            "scan.distance: 3500 m is outside 0.001–100 m for a far-field sample-detector distance; was it given in mm?",
        ),
        (
            dict(energy=0.01),
            "scan.energy: 0.01 keV is outside 0.1–100 keV for X-rays; was it given in MeV?",
        ),
        (dict(energy=1e-6), "scan.energy: 1e-06 keV is outside 0.1–100 keV for X-rays"),
    ],
)
def test_a_unit_slip_is_named_with_its_likely_cause(changes, message):
    g = make_geometry(meta(**changes), grid(1e-6))
    with pytest.raises(ParameterError) as err:
        check_geometry(g)
    assert str(err.value) == message


def test_electron_energies_are_checked_in_kv():
    """80 kV electrons (photon-equivalent energy 297 keV in meta) pass; 80000 'kV' does not."""
    photon = float(photon_energy_kev(electron_wavelength_m(80.0)))
    good = make_geometry(
        meta(energy=photon, distance=1.0, psize=(150e-6, 150e-6)),
        grid(4e-11),
        radiation="electron",
    )
    assert good.energy_kev == pytest.approx(80.0)
    check_geometry(good)
    bad = make_geometry(meta(distance=1.0), None, radiation="electron", energy_kev=80000.0)
    with pytest.raises(
        ParameterError,
        match=r"scan.energy: 80000 kV is outside 1–1000 kV for electrons; was it given in V \(eV\)\?",
    ):
        check_geometry(bad)
    assert "electrons" in describe_geometry(good) and "80 kV" in describe_geometry(good)


def test_the_sample_pixel_and_object_are_the_engines_numbers():
    m = meta()
    g = make_geometry(m, grid(1e-6))
    pixel = farfield_sample_pixel_m(
        energy_kev=7.2, distance_m=7.19, shape=(128, 128), psize_m=172e-6
    )
    np.testing.assert_allclose(g.sample_pixel_m, pixel)
    assert g.step_px == pytest.approx(1e-6 / pixel[0])
    assert g.object_px == tuple(int(np.ceil(4e-6 / p)) + 128 for p in pixel)
    assert g.object_bytes == 8 * g.object_px[0] * g.object_px[1]


def test_positions_in_angstrom_left_unmultiplied_are_an_error_not_an_allocation():
    g = make_geometry(meta(), grid(4.0))  # a 4 Å step read as 4 m
    with pytest.raises(
        ParameterError,
        match=r"scan: the object would be \d+×\d+ pixels .* GiB.*multiplier missing",
    ):
        check_object_memory(g, memory_bytes=8 * 2**30)


def test_steps_too_small_or_too_large_warn(caplog):
    pixel = float(make_geometry(meta(), None).sample_pixel_m[0])
    with caplog.at_level(logging.WARNING, logger="ptyscan.plausibility"):
        tiny = check_geometry(make_geometry(meta(), grid(0.01 * pixel)))
        huge = check_geometry(make_geometry(meta(), grid(200 * pixel)))
        fine = check_geometry(make_geometry(meta(), grid(20 * pixel)))
    assert len(tiny) == 1 and "0.01 sample pixels apart (below 0.05)" in tiny[0]
    assert len(huge) == 1 and "more than the 128-pixel frame" in huge[0]
    assert fine == []
    assert len(caplog.records) == 2


def test_a_scan_checks_its_geometry_at_initialize():
    scan = get_scan("MoonFlowerScan")(num_frames=20, shape=64, seed=1)
    scan.initialize()
    assert scan.geometry.sample_pixel_m == pytest.approx(tuple(scan.sample_pixel_m))
    assert scan.geometry.object_px[0] >= scan.true_object.shape[0] - 4
    with pytest.raises(ParameterError, match=r"scan\.energy: 7200 keV"):
        get_scan("MoonFlowerScan")(num_frames=20, shape=64, energy=7200).initialize()


@pytest.mark.parametrize(
    ("key", "value", "start"),
    [
        ("scan.energy", "8000", "error: scan.energy: 8000 keV is outside"),
        ("scan.psize", "75", "error: scan.psize: 75 m is outside"),
        ("scan.distance", "3500", "error: scan.distance: 3500 m is outside"),
    ],
)
def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, key, value, start):
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "recipes/moonflower.yaml",
            "--no-progress",
            "--set",
            f"run.output_dir={out}",
            "--set",
            f"scan.dfile={out / 'x.ptyd'}",
            "--set",
            f"{key}={value}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(start), err
    assert not out.exists()


def test_real_data_scans_have_no_invented_geometry(tmp_path):
    """Hdf5Loader and ID16A take energy, distance and psize from the files or the recipe;
    without either, a named error (MoonFlower's 7.2 keV is not used behind the user's back)."""
    import h5py

    from ptyscan.scans.hdf5_loader import Hdf5Loader

    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f["entry/data"] = np.ones((4, 8, 8), np.uint16)
        f["entry/y"] = np.arange(4) * 1e-7
        f["entry/x"] = np.arange(4) * 1e-7
        f["entry/energy"] = 8.7
    pars = {
        "intensities": {"file": str(path), "key": "entry/data"},
        "positions": {"slow_key": "entry/y", "fast_key": "entry/x"},
    }
    for cls in (Hdf5Loader, get_scan("ID16AScan")):
        assert cls.DEFAULT["energy"] is None and cls.DEFAULT["distance"] is None
    with pytest.raises(ParameterError) as err:
        Hdf5Loader(pars, distance=2.0, psize=75e-6).initialize()
    assert str(err.value) == (
        "scan.energy: not given in the recipe and not recorded in the files of Hdf5Loader; "
        "expected the photon energy in keV, e.g. energy: 8.7"
    )
    scan = Hdf5Loader(pars, distance=2.0, psize=75e-6, recorded_energy={"key": "entry/energy"})
    scan.initialize()
    assert scan.meta.energy == 8.7 and scan.geometry.energy_kev == 8.7


def test_focussed_and_focused_are_both_accepted():
    """ptypy spells the lens 'focussed', our engines 'focused': both work in both places."""
    from ptyscan.engines import DM
    from ptyscan.simulate.config import ProbePropagationParams

    assert ProbePropagationParams(focused=0.2).focussed == 0.2
    assert ProbePropagationParams(focussed=0.2).focussed == 0.2
    assert DM.Params(probe_model="focussed").probe_model == "focused"
