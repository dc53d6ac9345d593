"""The one plugin registry: built-in lists against pyproject.toml, lookups, errors, plugins."""

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ptyscan import registry
from ptyscan.errors import RecipeError, ScanError
from ptyscan.registry import ENGINES, PREPARED_FORMATS, RESULT_FORMATS, SCANS, Registry

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

BUILTINS = {
    "ptyscan.scans": registry.BUILTIN_SCANS,
    "ptyscan.engines": registry.BUILTIN_ENGINES,
    "ptyscan.prepared_formats": registry.BUILTIN_PREPARED_FORMATS,
    "ptyscan.result_formats": registry.BUILTIN_RESULT_FORMATS,
}


@pytest.mark.parametrize("group", sorted(BUILTINS))
def test_builtins_are_the_entry_points_of_pyproject(group):
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][group]
    assert declared == BUILTINS[group]


@pytest.mark.parametrize(
    ("reg", "needs"),
    [
        (SCANS, "Params"),
        (ENGINES, "Params"),
        (PREPARED_FORMATS, "write_chunk"),
        (RESULT_FORMATS, "suffix"),
    ],
)
def test_every_builtin_loads(reg, needs):
    for name in reg.builtins:
        if name == "ID16AScan":
            pytest.importorskip("fabio")
        assert hasattr(reg.get(name), needs), name


def test_the_registries_are_one_class_with_their_groups():
    assert {r.group for r in (SCANS, ENGINES, PREPARED_FORMATS, RESULT_FORMATS)} == set(BUILTINS)
    assert all(isinstance(r, Registry) for r in (SCANS, ENGINES, PREPARED_FORMATS, RESULT_FORMATS))


def test_unknown_name_lists_what_exists_and_the_closest():
    with pytest.raises(RecipeError) as err:
        ENGINES.get("DMM", key="engines[0].name")
    (line,) = err.value.problems
    assert line.startswith("engines[0].name: unknown engine 'DMM' (did you mean 'DM'?)")
    assert line.endswith("available: DM, EPIE, ML, RAAR, ePIE")


def test_entry_point_plugin_is_found_and_a_broken_one_says_what_to_install(monkeypatch):
    reg = Registry(
        "ptyscan.test_group", {"Builtin": "ptyscan.errors:ScanError"}, kind="thing", key="k"
    )
    points = [
        EntryPoint("Plugin", "ptyscan.errors:RecipeError", "ptyscan.test_group"),
        EntryPoint("Builtin", "ptyscan.errors:PtydError", "ptyscan.test_group"),  # shadowed
        EntryPoint("Broken", "no_such_package_xyz.mod:Thing", "ptyscan.test_group"),
    ]
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [p for p in points if p.group == group]
    )
    assert reg.names() == ["Broken", "Builtin", "Plugin"]
    assert reg.get("Plugin") is RecipeError
    assert reg.get("Builtin") is ScanError  # built-ins win over a same-named entry point
    with pytest.raises(ScanError, match=r"thing 'Broken' .* cannot be imported: .*pip install"):
        reg.get("Broken")
    assert reg.summary("Broken").startswith("(unavailable: No module named 'no_such_package_xyz'")
    assert reg.summary("Plugin") == "A recipe or parameter set is invalid."


def test_scans_and_recipe_use_the_same_registry(monkeypatch):
    from ptyscan import load_recipe
    from ptyscan.scans import available_scans, get_scan

    monkeypatch.setitem(registry.BUILTIN_SCANS, "Renamed", "ptyscan.scans.moonflower:QuickScan")
    assert "Renamed" in available_scans()
    recipe = load_recipe({"scan": {"name": "Renamed"}, "engines": [{"name": "DM"}]})
    assert recipe.scan_class is get_scan("Renamed") is get_scan("QuickScan")
    assert recipe.engine_classes == (ENGINES.get("DM"),)
