"""templates/new_beamline.py is a working scan: run it on files made here."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ptyscan import EOS
from ptyscan.errors import ScanError
from ptyscan.io import read_ptyd

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def template():
    spec = importlib.util.spec_from_file_location(
        "new_beamline", ROOT / "templates" / "new_beamline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_folder(folder, n=9, shape=(70, 80), peak=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    frames = []
    for i in range(n):
        frame = (1000 + 100 * i) * np.exp(-((yy - peak[0]) ** 2 + (xx - peak[1]) ** 2) / 20.0)
        frame = np.round(frame) + 10 - (i % 2)  # odd frames sit below the dark: clipped
        frames.append(frame.astype(np.uint16))
        np.save(folder / f"frame_{i:05d}.npy", frames[-1])
    np.save(folder / "dark.npy", np.full(shape, 10, np.uint16))
    positions_um = np.stack([np.arange(n) * 0.5, -np.arange(n) * 0.25], axis=1)
    np.savetxt(folder / "positions.csv", positions_um, delimiter=",")
    return np.array(frames), positions_um


def test_template_scan_corrects_centres_and_converts_units(tmp_path, template):
    frames, positions_um = make_folder(tmp_path / "run1")
    scan = template.NpyFolderScan(folder=str(tmp_path / "run1"), shape=32, center=None)
    chunks = []
    while (chunk := scan.auto(4)) is not EOS:
        chunks.append(chunk)
    data = np.concatenate([c.data for c in chunks])
    assert data.shape == (9, 32, 32)
    # dark (10) subtracted and clipped at 0; the peak at (40, 30) is the centre
    assert scan.meta.center == pytest.approx((16.0, 16.0), abs=1e-3)
    assert data[3, 16, 16] == frames[3, 40, 30] - 10.0 == 1299
    assert data[1, 0, 0] == 0.0 and data[2, 0, 0] == 0.0
    np.testing.assert_allclose(np.concatenate([c.positions for c in chunks]), positions_um * 1e-6)


def test_template_main_writes_a_ptyd(tmp_path, template, capsys):
    make_folder(tmp_path / "run2", n=5)
    template.main([str(tmp_path / "run2"), str(tmp_path / "out.ptyd")])
    assert "prepared 5 frames" in capsys.readouterr().out
    stored = read_ptyd(tmp_path / "out.ptyd")
    assert stored.data.shape == (5, 64, 64)


def test_template_missing_positions_is_a_clear_error(tmp_path, template):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScanError, match=r"positions\.csv not found"):
        template.NpyFolderScan(folder=str(tmp_path / "empty")).auto(5)
