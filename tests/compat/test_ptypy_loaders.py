"""ptypy-style loader files run unmodified through the ``ptypy`` scan (issue 11)."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from _helpers import drain
from _ptypy_loaders import N_FRAMES, NativeLoader, write_data, write_loaders

from ptyscan.errors import RecipeError, ScanError
from ptyscan.io import read_ptyd
from ptyscan.recipe import load_recipe
from ptyscan.scans import get_scan


@pytest.fixture
def files(tmp_path):
    rel, absolute = write_loaders(tmp_path)
    return {"data": write_data(tmp_path / "scan.h5"), "relative": rel, "absolute": absolute}


def stacked(chunks):
    return {
        "data": np.concatenate([c.data for c in chunks]),
        "weights": np.concatenate([np.asarray(c.weights) for c in chunks]),
        "positions": np.concatenate([c.positions for c in chunks]),
        "indices": np.concatenate([c.indices for c in chunks]),
    }


def test_native_reference_is_what_it_claims(files):
    chunks = drain(NativeLoader(path=files["data"]), 4)
    out = stacked(chunks)
    assert out["data"].shape == (N_FRAMES, 16, 16) and (out["data"] < 0).any()
    assert chunks[0].meta.energy == 8.7


@pytest.mark.parametrize("style", ["relative", "absolute"])
def test_unmodified_ptypy_style_loader_gives_the_native_frames(files, style):
    scan = get_scan("ptypy")(file=files[style], path=files["data"])
    assert type(scan).__name__ == "StyleLoader"
    got_chunks = drain(scan, 4)
    want_chunks = drain(NativeLoader(path=files["data"]), 4)
    got, want = stacked(got_chunks), stacked(want_chunks)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert got_chunks[-1].meta == want_chunks[-1].meta
    assert scan.meta.energy == 8.7 and scan.meta.psize == (75e-6, 75e-6)
    assert scan.ranks_seen == 1


def test_recipe_names_the_file_and_class(files, tmp_path):
    text = {
        "scan": {
            "name": "ptypy",
            "file": files["relative"],
            "class": "StyleLoader",
            "path": files["data"],
            "positions": {"flip_x": True},
            "shape": [16, 16],  # a list in YAML, a tuple for the loader
            "save": "append",
            "dfile": str(tmp_path / "out.ptyd"),
        }
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(text))
    recipe = load_recipe(path)
    scan = recipe.scan_class(recipe.scan)
    assert scan.info.positions.flip_x is True and scan.info.positions.multiplier == 1e-6
    chunks = drain(scan, 5)
    stored = read_ptyd(tmp_path / "out.ptyd")
    np.testing.assert_array_equal(stored.data, np.concatenate([c.data for c in chunks]))
    assert stored.positions[:, 1] @ stacked(chunks)["positions"][:, 1] > 0


def test_unknown_keys_and_wrong_types_are_one_line_errors(files, tmp_path):
    bad = {
        "name": "ptypy",
        "file": files["relative"],
        "path": files["data"],
        "scanNumbr": 2,
        "scanNumber": -1,
        "detector": 3,
        "positions": {"multiplier": "x", "flipx": True},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"scan": bad}))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    problems = "\n".join(err.value.problems)
    assert "scan.scanNumbr: unknown key (did you mean 'scanNumber'?)" in problems
    assert "scan.scanNumber: must be >= 0, got -1" in problems
    assert "scan.detector: must be of type str, got 3" in problems
    assert "scan.positions.multiplier: must be of type float, got 'x'" in problems
    assert "scan.positions.flipx: unknown key (did you mean 'flip_x'?)" in problems


def test_class_is_needed_when_the_file_defines_several(files, tmp_path):
    two = tmp_path / "two.py"
    text = Path(files["relative"]).read_text()
    two.write_text(text + "\n\n@register()\nclass Other(StyleLoader):\n    pass\n")
    with pytest.raises(
        ScanError, match=r"exactly one PtyScan subclass.*\['Other', 'StyleLoader'\]"
    ):
        get_scan("ptypy")(file=str(two), path=files["data"])
    scan = get_scan("ptypy")(file=str(two), path=files["data"], **{"class": "Other"})
    assert type(scan).__name__ == "Other"
    assert scan.info.name == "StyleLoader"  # as in ptypy: the [name] default is inherited


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("import zmq", "pip install pyzmq"),
        ("import fabio_not_here", "pip install fabio_not_here"),
        ("from ptypy.core import geometry_bragg", "compatibility layer does not provide"),
    ],
)
def test_missing_imports_give_a_hint_not_a_traceback(files, tmp_path, line, hint, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "zmq", None)  # as if pyzmq were not installed
    path = tmp_path / "needs.py"
    path.write_text(line + "\n" + Path(files["absolute"]).read_text())
    with pytest.raises(ScanError, match=hint):
        get_scan("ptypy")(file=str(path), path=files["data"])


def test_an_installed_ptypy_is_never_imported(files, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ptypy", None)  # importing the real one would fail
    scan = get_scan("ptypy")(file=files["absolute"], path=files["data"])
    assert len(drain(scan, 20)) >= 1


@pytest.mark.parametrize(
    "line",
    [
        "from .style_relative import StyleLoader",
        "from ptypy.experiment.style_relative import StyleLoader",
        "from . import style_relative\nStyleLoader = style_relative.StyleLoader",
    ],
)
def test_a_loader_importing_a_loader_next_to_it(files, tmp_path, line):
    """As epsic_loader.py (``from .hdf5_loader import Hdf5Loader``) and optiklabor.py do."""
    path = tmp_path / "derived.py"
    path.write_text(
        "from ptypy.experiment import register\n"
        f"{line}\n\n\n"
        "@register()\n"
        "class Derived(StyleLoader):\n"
        '    """\n    Defaults:\n\n    [energy]\n    default = 0.820\n    """\n'
    )
    scan = get_scan("ptypy")(file=str(path), path=files["data"], **{"class": "Derived"})
    assert scan.info.energy == 0.82  # an untyped section of a PtyScan key is evaluated
    assert len(stacked(drain(scan, 20))["indices"]) == N_FRAMES


def test_a_dumped_recipe_loads_back_to_the_same_scan(files, tmp_path):
    """The resolved recipe (stored in results) holds the loader's own defaults."""
    section = {"name": "ptypy", "file": files["relative"], "path": files["data"]}
    recipe = load_recipe({"scan": section})
    dumped = recipe.to_dict()["scan"]
    assert dumped["shape"] == [16, 16] and dumped["detector"] == "eiger"  # the loader's
    again = load_recipe({"scan": dumped})
    a, b = recipe.scan_class(recipe.scan), again.scan_class(again.scan)
    assert a.params == b.params and a.info.name == "StyleLoader"


def test_ptyscan_run_with_a_ptypy_loader_and_a_ptypy_engine_block(files, tmp_path):
    from ptyscan.app.runner import run_recipe
    from ptyscan.io import read_ptyr

    data = write_data(tmp_path / "no_dark.h5", dark=0.0)  # corrected counts stay >= 0
    recipe = load_recipe(
        {
            "scan": {"name": "ptypy", "file": files["absolute"], "path": data},
            "engines": [
                {"name": "DM", "numiter": 2, "numiter_contiguous": 10, "subpix": "linear"}
            ],
            "run": {"output_dir": str(tmp_path), "backend": "numpy", "progress": False},
        }
    )
    res = read_ptyr(run_recipe(recipe).result)
    assert len(res.indices) == N_FRAMES and res.meta["energy"] == 8.7


PTYCHO_SCRIPT = '''
"""A ptypy script's habit inside a loader: build a Ptycho in load_positions."""

from ptypy.core import Ptycho
from ptypy.core.data import PtyScan


class MakesPtycho(PtyScan):
    """
    Defaults:

    [name]
    default = MakesPtycho
    type = str
    help =
    """

    def load_positions(self):
        Ptycho(self.info, level=5)
'''


def test_a_ptycho_call_is_one_line_and_exit_2_from_the_cli(tmp_path):
    """ptypy's Ptycho() is a PtyScanError (UnsupportedError): `ptyscan run` prints one line
    naming what to use instead and exits 2, with no traceback and no result written."""
    from test_cli import run_cli

    from ptyscan.compat.ptypy.core import Ptycho
    from ptyscan.errors import PtyScanError, UnsupportedError

    with pytest.raises(UnsupportedError) as err:
        Ptycho()
    assert isinstance(err.value, PtyScanError) and isinstance(err.value, NotImplementedError)
    (tmp_path / "makes_ptycho.py").write_text(PTYCHO_SCRIPT, encoding="utf-8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "scan: {name: ptypy, file: makes_ptycho.py, shape: 8}\n"
        "engines: [{name: DM, numiter: 1}]\n"
        f"run: {{output_dir: {tmp_path / 'out'}, progress: false, backend: numpy}}\n",
        encoding="utf-8",
    )
    done = run_cli("-q", "run", recipe)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ptypy.core.Ptycho:"), done.stderr
    assert "ptyscan run recipe.yaml" in lines[0] and "Traceback" not in done.stderr
    assert not list((tmp_path / "out").rglob("*.ptyr"))
