"""The ``plugin`` scan: a user's PtyScan subclass loaded from a .py file named in the recipe."""

import textwrap

import numpy as np
import pytest
from _helpers import drain

from ptyscan.errors import RecipeError, ScanError
from ptyscan.io import read_ptyd
from ptyscan.params import validate_params
from ptyscan.scans.moonflower import MoonFlowerScan
from ptyscan.scans.plugin import PluginParams, PluginScan

RAMP = '''
from __future__ import annotations  # annotations resolved through sys.modules

import numpy as np

from ptyscan import PtyScan, PtyScanParams
from ptyscan.params import Shape2


class RampParams(PtyScanParams):
    name: str = "RampScan"
    num_frames: int | None = 13
    shape: Shape2 = (8, 8)
    step_m: float = 1e-6
    offset: float = 0.0


class RampScan(PtyScan):
    """Frame i is filled with i + offset; positions (i, -i) * step_m."""

    Params = RampParams

    def load_positions(self):
        i = np.arange(self.info.num_frames)
        return np.stack([i, -i], axis=1) * self.info.step_m

    def load(self, indices):
        raw = {int(i): np.full((8, 8), i + self.info.offset, np.float32) for i in indices}
        return raw, {}, {}
'''


def write(tmp_path, text, name="my_scan.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_loads_the_only_scan_class_with_recipe_and_scan_keys(tmp_path):
    path = write(tmp_path, RAMP)
    scan = PluginScan(file=path, recipe={"offset": 0.5, "num_frames": 4}, center="fftshift")
    assert type(scan).__name__ == "RampScan"
    assert not isinstance(scan, PluginScan)
    assert scan.info.name == "RampScan"
    assert scan.info.shape == (8, 8)  # the class's own default, not PtyScan's 256
    assert (scan.info.offset, scan.info.num_frames) == (0.5, 4)
    chunks = drain(scan, 5)
    data = np.concatenate([c.data for c in chunks])
    np.testing.assert_array_equal(data[:, 0, 0], [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_array_equal(chunks[0].positions[1], [1e-6, -1e-6])


def test_validated_recipe_params_and_overrides_reach_the_class(tmp_path):
    # what load_recipe + runner.prepare do: validate PluginParams, then cls(p, save=, dfile=)
    path = write(tmp_path, RAMP)
    p = validate_params(
        PluginParams,
        {"name": "plugin", "file": path, "shape": 4, "recipe": {"step_m": 2e-6}},
        prefix="scan",
    )
    out = tmp_path / "ramp.ptyd"
    scan = PluginScan(p, save="append", dfile=str(out))
    assert scan.info.shape == (4, 4) and scan.info.step_m == 2e-6
    chunks = drain(scan, 5)
    stored = read_ptyd(out)
    np.testing.assert_array_equal(stored.data, np.concatenate([c.data for c in chunks]))
    assert stored.info["name"] == "RampScan" and stored.data.shape == (13, 4, 4)


def test_classname_picks_one_of_several(tmp_path):
    text = RAMP + "\n\nclass OtherScan(RampScan):\n    pass\n"
    path = write(tmp_path, text)
    with pytest.raises(
        ScanError,
        match=r"exactly one PtyScan subclass .* found \['OtherScan', 'RampScan'\]; set scan.classname",
    ):
        PluginScan(file=path)
    assert type(PluginScan(file=path, classname="OtherScan")).__name__ == "OtherScan"


def test_imported_scan_classes_do_not_count(tmp_path):
    path = write(
        tmp_path,
        """
        from ptyscan.scans.moonflower import MoonFlowerScan, QuickScan

        class Tiny(MoonFlowerScan):
            pass
        """,
    )
    scan = PluginScan(file=path, recipe={"num_frames": 3, "shape": 16})
    assert type(scan).__name__ == "Tiny" and isinstance(scan, MoonFlowerScan)


def test_class_errors_list_what_exists(tmp_path):
    path = write(tmp_path, RAMP)
    with pytest.raises(
        ScanError,
        match=r"scan.classname 'Nope' is not defined in .*my_scan.py; PtyScan subclasses defined there: \['RampScan'\]",
    ):
        PluginScan(file=path, classname="Nope")
    with pytest.raises(ScanError, match=r"scan.classname 'RampParams' is not a PtyScan subclass"):
        PluginScan(file=path, classname="RampParams")
    empty = write(tmp_path, "x = 1\n", name="empty.py")
    with pytest.raises(ScanError, match=r"exactly one PtyScan subclass .* found none"):
        PluginScan(file=empty)


def test_file_errors(tmp_path):
    with pytest.raises(RecipeError, match=r"scan.file: required for the plugin scan"):
        PluginScan()
    with pytest.raises(ScanError, match=r"scan.file .*missing.py does not exist"):
        PluginScan(file=str(tmp_path / "missing.py"))
    (tmp_path / "scan.txt").write_text("")
    with pytest.raises(ScanError, match=r"is not a Python file"):
        PluginScan(file=str(tmp_path / "scan.txt"))
    broken = write(tmp_path, "def broken(:\n", name="broken.py")
    with pytest.raises(ScanError, match=r"importing .*broken.py failed: SyntaxError"):
        PluginScan(file=broken)


def test_parameter_errors_point_at_the_recipe(tmp_path):
    path = write(tmp_path, RAMP)
    with pytest.raises(RecipeError) as info:
        PluginScan(file=path, recipe={"ofset": 1.0})
    assert info.value.problems == ["scan.recipe.ofset: unknown key (did you mean 'offset'?)"]
    with pytest.raises(RecipeError, match=r"scan.recipe.shape: 4 differs from scan.shape: 8"):
        PluginScan(file=path, shape=8, recipe={"shape": 4})
    same = validate_params(PluginParams, {"file": path, "shape": 4, "recipe": {"shape": [4, 4]}})
    assert PluginScan(same).info.shape == (4, 4)  # (4, 4) and [4, 4] agree
    with pytest.raises(RecipeError, match=r"scan\.file: must be a file path \(text\), got 3"):
        PluginScan(file=3)


def test_a_recipe_field_receives_the_recipe_as_in_ptypy(tmp_path):
    path = write(
        tmp_path,
        RAMP
        + """

class PtypyStyleParams(RampParams):
    recipe: dict = {}


class PtypyStyle(RampScan):
    Params = PtypyStyleParams
""",
    )
    scan = PluginScan(file=path, classname="PtypyStyle", recipe={"offset": 2, "anything": 1})
    assert scan.info.recipe == {"offset": 2, "anything": 1}
    assert scan.info.offset == 0.0


def test_edited_file_is_reloaded(tmp_path):
    path = write(tmp_path, RAMP)
    first = type(PluginScan(file=path))
    assert type(PluginScan(file=path)) is first  # same file version: module reused
    import os

    write(tmp_path, RAMP.replace('"RampScan"', '"Renamed"'))
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert PluginScan(file=path).info.name == "Renamed"
