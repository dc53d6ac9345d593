"""Recipes: YAML reading, ``--set`` overrides, validation and the error messages users see."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from ptyscan.errors import PtyScanError, RecipeError
from ptyscan.recipe import Recipe, RunParams, apply_overrides, load_recipe, parse_override
from ptyscan.scans import available_scans, get_scan

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
RECIPE_PARAMS = [pytest.param(p, id=p.name) for p in RECIPES]

SHAPE_EXPECTED = "must be a positive int or a pair (ny, nx) of positive ints"
ORIENTATION_EXPECTED = (
    "must be None, an int 0-7 (4 = transpose, 2 = flipud, 1 = fliplr, summed) "
    "or 3 bools [transpose, flipud, fliplr]"
)
CENTER_EXPECTED = (
    "must be None, one of 'fftshift', 'geometric', 'fft' or a pair (cy, cx) of pixel coordinates"
)
POSITIONS_EXPECTED = "must be an (N, 2) array of positions in metres (slow, fast)"


def quick(**scan):
    """A minimal valid recipe (QuickScan) with ``scan`` keys added or replaced."""
    return {"scan": {"name": "QuickScan", **scan}}


def problems_of(recipe, overrides=()):
    """The problem lines of the RecipeError that loading ``recipe`` must raise."""
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe, overrides)
    return info.value.problems


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- bad recipes: one problem each, with its exact message ---------------------------------

BAD = {
    "unknown-key-did-you-mean": (
        quick(engery=7.2),
        "scan.engery: unknown key (did you mean 'energy'?)",
    ),
    "unknown-run-key-did-you-mean": (
        {**quick(), "run": {"ouput_dir": "out"}},
        "run.ouput_dir: unknown key (did you mean 'output_dir'?)",
    ),
    "unknown-section-did-you-mean": (
        {**quick(), "rnu": {}},
        "rnu: unknown section (did you mean 'run'?)",
    ),
    "unknown-section-lists-valid": (
        {**quick(), "plots": {}},
        "plots: unknown section (valid sections: scan, engines, run)",
    ),
    "unknown-scan-name": (
        {"scan": {"name": "MoonFlowerScn"}},
        "scan.name: unknown scan class 'MoonFlowerScn' (did you mean 'MoonFlowerScan'?); "
        f"available: {', '.join(available_scans())}",
    ),
    "missing-scan-name": (
        {"scan": {"shape": 64}},
        "scan.name: required key is missing (e.g. name: MoonFlowerScan)",
    ),
    "missing-scan-section": (
        {"run": {"output_dir": "out"}},
        "scan: required section is missing (e.g. scan: {name: MoonFlowerScan})",
    ),
    "scan-not-a-mapping": (
        {"scan": "QuickScan"},
        "scan: must be a mapping with at least 'name', got 'QuickScan'",
    ),
    "negative-shape": (quick(shape=-3), f"scan.shape: {SHAPE_EXPECTED}, got -3"),
    "non-int-shape": (quick(shape=64.5), f"scan.shape: {SHAPE_EXPECTED}, got 64.5"),
    "shape-pair-with-zero": (quick(shape=[64, 0]), f"scan.shape: {SHAPE_EXPECTED}, got [64, 0]"),
    "rebin-does-not-divide-shape": (
        quick(shape=64, rebin=3),
        "scan.rebin: must divide both sides of shape (64, 64), got 3; "
        "choose another rebin or shape",
    ),
    "rebin-zero": (
        quick(rebin=0),
        "scan.rebin: input should be greater than or equal to 1, got 0",
    ),
    "rebin-too-large": (
        quick(shape=128, rebin=64),
        "scan.rebin: input should be less than or equal to 32, got 64",
    ),
    "orientation-out-of-range": (
        quick(orientation=8),
        f"scan.orientation: {ORIENTATION_EXPECTED}, got 8",
    ),
    "orientation-ints-not-bools": (
        quick(orientation=[1, 0, 1]),
        f"scan.orientation: {ORIENTATION_EXPECTED}, got [1, 0, 1]",
    ),
    "center-misspelt": (
        quick(center="fftshit"),
        f"scan.center: {CENTER_EXPECTED}, got 'fftshit' (did you mean 'fftshift'?)",
    ),
    "save-without-dfile": (
        quick(save="append"),
        "scan.save: needs dfile (the .ptyd path) to be set, got save='append'",
    ),
    "bad-save-mode": (
        quick(save="apend", dfile="x.ptyd"),
        "scan.save: input should be 'append' or 'link', got 'apend'",
    ),
    "negative-energy": (quick(energy=-1), "scan.energy: must be a positive finite number, got -1"),
    "energy-with-unit-text": (
        quick(energy="7 keV"),
        "scan.energy: must be a positive finite number, got '7 keV'",
    ),
    "psize-zero": (
        quick(psize=[0, 75e-6]),
        "scan.psize: must be a positive number or a pair (y, x) of positive numbers, "
        "got [0, 7.5e-05]",
    ),
    "positions-theory-three-columns": (
        quick(positions_theory=[[0.0, 1e-6, 2e-6]]),
        f"scan.positions_theory: {POSITIONS_EXPECTED}, got shape (1, 3)",
    ),
    "positions-theory-flat": (
        quick(positions_theory=[0.0, 1e-6]),
        f"scan.positions_theory: {POSITIONS_EXPECTED}, got shape (2,)",
    ),
    "num-frames-zero": (
        quick(num_frames=0),
        "scan.num_frames: input should be greater than or equal to 1, got 0",
    ),
    "chunk-format-without-placeholder": (
        quick(chunk_format=".part"),
        "scan.chunk_format: must contain one integer placeholder such as '.chunk%02d', "
        "got '.part'",
    ),
    "frames-per-chunk-zero": (
        {**quick(), "run": {"frames_per_chunk": 0}},
        "run.frames_per_chunk: input should be greater than or equal to 1, got 0",
    ),
    "run-backend-invalid": (
        {**quick(), "run": {"backend": "cuda"}},
        "run.backend: input should be 'auto', 'numpy' or 'cupy', got 'cuda'",
    ),
    "run-not-a-mapping": (
        {**quick(), "run": 5},
        "run: must be a mapping of keys to values, got 5",
    ),
    "engines-not-a-list": (
        {**quick(), "engines": {"name": "DM"}},
        "engines: must be a list of engine sections, got {'name': 'DM'}",
    ),
    "engine-without-name": (
        {**quick(), "engines": [{"numiter": 10}]},
        "engines[0]: must be a mapping with a 'name' key, got {'numiter': 10}",
    ),
}


@pytest.mark.parametrize(("recipe", "expected"), list(BAD.values()), ids=list(BAD))
def test_bad_recipe_reports_its_problem(recipe, expected):
    assert problems_of(recipe) == [expected]


def test_unknown_key_far_from_any_lists_the_valid_keys():
    (line,) = problems_of(quick(zzzzzz=1))
    assert line.startswith("scan.zzzzzz: unknown key; valid keys: add_poisson_noise, ")
    assert "energy" in line
    assert "num_frames" in line


def test_unknown_engine_is_named_with_what_is_available():
    (line,) = problems_of({**quick(), "engines": [{"name": "NoSuchEngine"}]})
    assert line.startswith("engines[0].name: unknown engine 'NoSuchEngine'")
    assert "available: " in line


@pytest.mark.parametrize("scan", ["QuickScan", "StemScan"])  # StemScan has ENGINE_DEFAULTS
def test_an_engine_name_that_is_not_a_string_is_a_named_problem(scan):
    recipe = {**quick(), "engines": [{"name": ["DM"]}]}
    if scan == "StemScan":
        recipe["scan"] = {"name": "StemScan", "probe_kv": 80, "probe_conv_angle": 20}
    lines = problems_of(recipe)
    assert any(line.startswith("engines[0].name: unknown engine") for line in lines), lines


def test_several_problems_are_all_reported_together():
    recipe = {
        "scan": {"name": "QuickScan", "engery": 7, "shape": -1, "rebin": 0, "center": "fftshit"},
        "run": {"frames_per_chunk": 0, "backend": "gpu"},
        "bogus": 1,
    }
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    problems = info.value.problems
    assert len(problems) == 7
    assert set(problems) == {
        "bogus: unknown section (valid sections: scan, engines, run)",
        f"scan.shape: {SHAPE_EXPECTED}, got -1",
        "scan.rebin: input should be greater than or equal to 1, got 0",
        f"scan.center: {CENTER_EXPECTED}, got 'fftshit' (did you mean 'fftshift'?)",
        "scan.engery: unknown key (did you mean 'energy'?)",
        "run.backend: input should be 'auto', 'numpy' or 'cupy', got 'gpu'",
        "run.frames_per_chunk: input should be greater than or equal to 1, got 0",
    }
    # The message: a header with the count, then one indented line per problem.
    lines = str(info.value).splitlines()
    assert lines[0] == "7 problems:"
    assert lines[1:] == ["  " + p for p in problems]


def test_error_message_names_the_file(tmp_path):
    path = write(tmp_path, "scan:\n  name: QuickScan\n  engery: 7.2\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.source == str(path)
    assert str(info.value).splitlines() == [
        f"1 problem in {path}:",
        "  scan.engery: unknown key (did you mean 'energy'?)",
    ]


def test_recipe_error_is_a_value_error():
    with pytest.raises(ValueError, match="unknown key"):
        load_recipe(quick(engery=1))


# --- YAML files ------------------------------------------------------------------------------


def test_malformed_yaml_gives_file_line_and_column(tmp_path):
    path = write(tmp_path, "scan:\n  name: QuickScan\n  shape: [64\nrun: {}\n")
    (line,) = problems_of(path)
    assert line.startswith(f"{path}:4:4: invalid YAML: ")
    assert "expected ',' or ']'" in line


def test_tab_indentation_gives_line_and_column(tmp_path):
    path = write(tmp_path, "scan:\n\tname: QuickScan\n")
    (line,) = problems_of(path)
    assert line.startswith(f"{path}:2:1: invalid YAML: ")


def test_duplicate_yaml_key_is_rejected(tmp_path):
    path = write(tmp_path, "scan:\n  name: QuickScan\n  shape: 64\n  shape: 32\n")
    assert problems_of(path) == [
        f"{path}:4:3: invalid YAML: duplicate key 'shape' (first given on line 3)"
    ]


def test_duplicate_section_is_rejected(tmp_path):
    path = write(tmp_path, "scan: {name: QuickScan}\nrun: {frames_per_chunk: 3}\nrun: {}\n")
    assert problems_of(path) == [
        f"{path}:3:1: invalid YAML: duplicate key 'run' (first given on line 2)"
    ]


def test_recipe_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "- scan\n- run\n")
    assert problems_of(path) == [
        f"{path}: a recipe must be a mapping with sections ('scan', 'engines', 'run'), got list"
    ]


def test_missing_recipe_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert problems_of(path) == [f"{path}: cannot read recipe: No such file or directory"]


def test_empty_recipe_file_needs_a_scan(tmp_path):
    path = write(tmp_path, "")
    assert problems_of(path) == [
        "scan: required section is missing (e.g. scan: {name: MoonFlowerScan})"
    ]


def test_exponent_floats_without_dot_or_sign_are_numbers(tmp_path):
    # Plain YAML 1.1 reads these as strings, which then fail validation.
    path = write(tmp_path, "scan:\n  name: QuickScan\n  psize: 75e-6\n  photons: 1e8\n")
    recipe = load_recipe(path)
    assert recipe.scan.psize == (75e-6, 75e-6)
    assert recipe.scan.photons == 1e8


def test_recipe_from_path_object_and_str(tmp_path):
    path = write(tmp_path, "scan: {name: QuickScan, num_frames: 5}\n")
    assert load_recipe(path) == load_recipe(str(path))
    assert load_recipe(path).source == str(path)


# --- --set overrides ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["scan.shape", "=64", "scan shape=64", "scan..shape=64", ""])
def test_override_without_key_path_and_value(text):
    assert problems_of(quick(), [text]) == [
        f"--set {text!r}: expected KEY.PATH=VALUE such as scan.shape=128 or run.output_dir=out"
    ]


def test_override_into_an_unknown_key():
    assert problems_of(quick(), ["scan.engery=7"]) == [
        "scan.engery: unknown key (did you mean 'energy'?)"
    ]


def test_override_into_an_unknown_section():
    assert problems_of(quick(), ["rnu.output_dir=x"]) == [
        "rnu: unknown section (did you mean 'run'?)"
    ]


def test_override_below_a_plain_value():
    assert problems_of(quick(), ["scan.name.x=3"]) == [
        "--set 'scan.name.x=3': 'name' holds a value, not keys"
    ]


def test_override_of_a_missing_list_item():
    recipe = {**quick(), "engines": [{"name": "DM"}]}
    assert problems_of(recipe, ["engines.3.numiter=5"]) == [
        "--set 'engines.3.numiter=5': no list item 3 (have 1)"
    ]


def test_bad_overrides_are_reported_together_with_unknown_sections():
    recipe = {**quick(), "plots": {}}
    expected = "expected KEY.PATH=VALUE such as scan.shape=128 or run.output_dir=out"
    assert problems_of(recipe, ["scan.shape", "run.frames_per_chunk=2", "=1"]) == [
        "plots: unknown section (valid sections: scan, engines, run)",
        f"--set 'scan.shape': {expected}",
        f"--set '=1': {expected}",
    ]


def test_override_fixes_a_bad_recipe(tmp_path):
    path = write(tmp_path, "scan:\n  name: QuickScan\n  shape: -3\n  save: link\n")
    assert len(problems_of(path)) == 2
    recipe = load_recipe(path, ["scan.shape=32", "scan.dfile=" + str(tmp_path / "x.ptyd")])
    assert recipe.scan.shape == (32, 32)
    assert recipe.scan.save == "link"


def test_merge_order_defaults_then_recipe_then_overrides(tmp_path):
    path = write(
        tmp_path,
        "scan:\n  name: QuickScan\n  shape: 32\n  energy: 8.0\nrun:\n  frames_per_chunk: 10\n",
    )
    recipe = load_recipe(path, ["scan.energy=9.5", "run.output_dir=results"])
    assert recipe.scan.energy == 9.5  # --set beats the recipe
    assert recipe.scan.shape == (32, 32)  # the recipe beats QuickScan's default (64, 64)
    assert recipe.scan.density == 0.05  # QuickScan's default beats MoonFlowerScan's 0.2
    assert recipe.scan.distance == 7.19  # PtyScan's default
    assert recipe.run.frames_per_chunk == 10
    assert recipe.run.output_dir == "results"
    assert recipe.run.backend == "auto"


def test_later_override_wins():
    recipe = load_recipe(quick(), ["scan.num_frames=5", "scan.num_frames=6"])
    assert recipe.scan.num_frames == 6


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("scan.num_frames=12", ["scan", "num_frames"], 12),
        ("scan.energy=7.5", ["scan", "energy"], 7.5),
        ("scan.psize=1e-4", ["scan", "psize"], 1e-4),  # a string in plain YAML 1.1
        ("scan.psize=1.0e-4", ["scan", "psize"], 1.0e-4),
        ("scan.photons=1.0e8", ["scan", "photons"], 1e8),
        ("scan.shape=[32, 16]", ["scan", "shape"], [32, 16]),
        ("scan.dfile=null", ["scan", "dfile"], None),
        ("scan.dfile=", ["scan", "dfile"], None),
        ("run.progress=false", ["run", "progress"], False),
        ("scan.add_poisson_noise=true", ["scan", "add_poisson_noise"], True),
        ("run.output_dir=my results", ["run", "output_dir"], "my results"),
        ("scan.label='007'", ["scan", "label"], "007"),
        ("scan.label=a=b", ["scan", "label"], "a=b"),
        (" scan.seed = 3", ["scan", "seed"], 3),
        ("scan.label=[unclosed", ["scan", "label"], "[unclosed"),
        ("engines.0.numiter=5", ["engines", 0, "numiter"], 5),
        ("engines[1].name=ML", ["engines", 1, "name"], "ML"),
    ],
)
def test_parse_override(text, key, value):
    assert parse_override(text) == (key, value)


def test_override_values_reach_validated_params():
    recipe = load_recipe(
        quick(dfile="x.ptyd", save="append"),
        [
            "scan.num_frames=12",
            "scan.shape=[32, 16]",
            "scan.save=null",
            "scan.add_poisson_noise=false",
            "scan.label=run 7",
            "scan.orientation=[true, false, true]",
        ],
    )
    assert recipe.scan.num_frames == 12
    assert recipe.scan.shape == (32, 16)
    assert recipe.scan.save is None
    assert recipe.scan.add_poisson_noise is False
    assert recipe.scan.label == "run 7"
    assert recipe.scan.orientation == 5


@pytest.mark.parametrize("key", ["engines.0.numiter", "engines[0].numiter"])
def test_override_into_a_list_item(key):
    data = {"engines": [{"name": "DM", "numiter": 10}, {"name": "ML", "numiter": 20}]}
    out = apply_overrides(data, [f"{key}=5", "engines[1].name=ML2"])
    assert out["engines"] == [{"name": "DM", "numiter": 5}, {"name": "ML2", "numiter": 20}]
    assert data["engines"][0]["numiter"] == 10  # the input is not modified


def test_override_creates_missing_sections_and_keys():
    out = apply_overrides({}, ["scan.name=QuickScan", "run.output_dir=o"])
    assert out == {"scan": {"name": "QuickScan"}, "run": {"output_dir": "o"}}


def test_load_recipe_does_not_modify_its_input():
    data = quick(num_frames=5)
    load_recipe(data, ["scan.num_frames=9"])
    assert data == quick(num_frames=5)


# --- valid recipes ----------------------------------------------------------------------------


def test_available_scans_include_the_builtins():
    assert {"MoonFlowerScan", "QuickScan", "PtydScan"} <= set(available_scans())


def test_recipes_are_found():
    assert {p.name for p in RECIPES} >= {"moonflower.yaml", "quick.yaml"}


@pytest.mark.parametrize("path", RECIPE_PARAMS)
def test_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    assert get_scan(recipe.scan.name) is recipe.scan_class
    assert recipe.source == str(path)


def test_validation_does_no_io(tmp_path):
    # A re-processing recipe whose input does not exist yet still validates.
    recipe = load_recipe(
        {
            "scan": {
                "name": "PtydScan",
                "source": str(tmp_path / "not_there.ptyd"),
                "dfile": str(tmp_path / "out.ptyd"),
                "save": "append",
            }
        }
    )
    assert recipe.scan.source.endswith("not_there.ptyd")
    assert not (tmp_path / "out.ptyd").exists()


def test_defaults_are_filled_in():
    recipe = load_recipe(quick())
    assert recipe.scan_class is get_scan("QuickScan")
    assert recipe.scan == get_scan("QuickScan").Params()
    assert recipe.run == RunParams()
    assert recipe.engines == ()
    assert recipe.source is None


def test_recipe_is_frozen():
    recipe = load_recipe(quick())
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.scan = None
    with pytest.raises(ValueError, match="frozen"):
        recipe.scan.shape = (32, 32)


@pytest.mark.parametrize(
    "value", [[True, False, True], (True, False, True), 5], ids=["list", "tuple", "int"]
)
def test_orientation_bools_normalise_to_int(value):
    assert load_recipe(quick(orientation=value)).scan.orientation == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [([False, False, False], 0), ([True, True, True], 7), ([False, True, False], 2), (None, None)],
)
def test_orientation_values(value, expected):
    assert load_recipe(quick(orientation=value)).scan.orientation == expected


def test_orientation_bools_from_yaml(tmp_path):
    path = write(tmp_path, "scan:\n  name: QuickScan\n  orientation: [true, false, true]\n")
    assert load_recipe(path).scan.orientation == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("fftshift", "fftshift"), ("geometric", "geometric"), ([31.5, 30], (31.5, 30.0))],
)
def test_center_values(value, expected):
    assert load_recipe(quick(center=value)).scan.center == expected


def test_positions_theory_becomes_a_read_only_array():
    recipe = load_recipe(quick(positions_theory=[[0, 0], [1e-6, 2e-6], [3e-6, -1e-6]]))
    pos = recipe.scan.positions_theory
    assert isinstance(pos, np.ndarray)
    assert pos.shape == (3, 2)
    assert pos.dtype == np.float64
    assert not pos.flags.writeable


# --- round trip -------------------------------------------------------------------------------


def _round_trip(recipe, tmp_path):
    path = write(tmp_path, recipe.to_yaml(), name="resolved.yaml")
    return load_recipe(path)


@pytest.mark.parametrize("path", RECIPE_PARAMS)
def test_shipped_recipe_round_trips(path, tmp_path):
    recipe = load_recipe(path)
    again = _round_trip(recipe, tmp_path)
    assert again == recipe
    assert again.to_dict() == recipe.to_dict()
    assert load_recipe(recipe.to_dict()) == recipe


def test_round_trip_keeps_arrays_pairs_and_orientation(tmp_path):
    recipe = load_recipe(
        {
            "scan": {
                "name": "MoonFlowerScan",
                "shape": [48, 32],
                "psize": 75e-6,
                "center": [23.5, 15],
                "orientation": [True, True, False],
                "positions_theory": [[0.0, 0.0], [1e-6, -2e-6]],
                "dfile": str(tmp_path / "x.ptyd"),
                "save": "link",
            },
            "run": {"backend": "numpy", "progress": False},
        }
    )
    again = _round_trip(recipe, tmp_path)
    assert again == recipe
    assert again.scan.orientation == 6
    assert again.scan.psize == (75e-6, 75e-6)
    assert again.scan.center == (23.5, 15.0)
    np.testing.assert_array_equal(again.scan.positions_theory, recipe.scan.positions_theory)


def test_recipes_with_different_values_are_not_equal():
    assert load_recipe(quick(num_frames=5)) != load_recipe(quick(num_frames=6))
    assert load_recipe(quick(positions_theory=[[0, 0]])) != load_recipe(
        quick(positions_theory=[[0, 1e-6]])
    )


def test_to_dict_is_plain_data():
    data = load_recipe(quick(positions_theory=[[0, 0]])).to_dict()
    assert list(data) == ["scan", "engines", "run"]
    assert data["scan"]["shape"] == [64, 64]
    assert data["scan"]["positions_theory"] == [[0.0, 0.0]]
    assert data["engines"] == []


# --- scan construction: kwargs override pars -----------------------------------------------


def test_kwargs_override_pars_and_reach_validated_params():
    cls = get_scan("QuickScan")
    scan = cls({"num_frames": 5, "shape": 32}, num_frames=9, energy=8.0)
    assert scan.info.num_frames == 9
    assert scan.info.energy == 8.0
    assert scan.info.shape == (32, 32)


def test_kwargs_override_a_params_model():
    recipe = load_recipe(quick(num_frames=5, seed=1))
    scan = recipe.scan_class(recipe.scan, num_frames=7, orientation=[False, True, True])
    assert scan.info.num_frames == 7
    assert scan.info.orientation == 3
    assert scan.info.seed == 1
    assert recipe.scan.num_frames == 5  # the recipe's params are untouched


def test_bad_kwargs_are_reported_like_recipe_keys():
    with pytest.raises(RecipeError) as info:
        get_scan("QuickScan")(engery=7.2, shape=-3)
    assert set(info.value.problems) == {
        "scan.engery: unknown key (did you mean 'energy'?)",
        f"scan.shape: {SHAPE_EXPECTED}, got -3",
    }


def test_make_scan_uses_the_validated_params():
    recipe = load_recipe(quick(num_frames=4, seed=2))
    scan = recipe.make_scan()
    assert type(scan) is recipe.scan_class
    assert scan.info == recipe.scan


def test_input_files_are_found_next_to_the_recipe(tmp_path, monkeypatch):
    """A relative data path means 'next to the recipe' (else the working directory, where
    only that has it); a missing file is named with its .file key and the searched path."""
    import h5py

    beamtime, elsewhere = tmp_path / "beamtime", tmp_path / "elsewhere"
    beamtime.mkdir()
    elsewhere.mkdir()
    for folder in (beamtime, elsewhere):
        with h5py.File(folder / "scan.h5", "w") as f:
            f["entry/data"] = np.ones((3, 8, 8), np.uint16)
    (elsewhere / "only_here.h5").write_bytes((elsewhere / "scan.h5").read_bytes())
    data = {
        "scan": {
            "name": "Hdf5Loader",
            "intensities": {"file": "scan.h5", "key": "entry/data"},
            "positions": {"file": "only_here.h5", "slow_key": "y", "fast_key": "x"},
            "mask": {"file": "missing.h5", "key": "m"},
            "energy": 8.0,
            "distance": 2.0,
            "psize": 75e-6,
        },
        "engines": [{"name": "DM", "start_from": "earlier.ptyr"}],
    }
    (beamtime / "job.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(beamtime / "job.yaml")
    assert recipe.scan.intensities.file == str(beamtime / "scan.h5")  # beside the recipe
    assert recipe.scan.positions.file == "only_here.h5"  # only in the working directory
    assert recipe.scan.mask.file == str(beamtime / "missing.h5")  # neither: beside the recipe
    assert recipe.engines[0].start_from == str(beamtime / "earlier.ptyr")
    with pytest.raises(PtyScanError) as err:
        recipe.make_scan().initialize()
    assert f"scan.mask.file: no such file '{beamtime / 'missing.h5'}'" in str(err.value)
