"""The house rules of ``ptyscan/``, checked on the source: floors, sizes, private names.

The floors (README "Architecture") from the ground up; an import may point to
its own floor or below, never up, and ``simulate/`` and ``engines/`` (one floor)
never import each other.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ptyscan"

FLOORS = [
    ("ptyscan._version", "ptyscan._env", "ptyscan.errors", "ptyscan.registry"),
    (
        "ptyscan.parallel",
        "ptyscan.geometry",
        "ptyscan.plausibility",
        "ptyscan.io",
        "ptyscan.preprocess",
    ),
    ("ptyscan.backend", "ptyscan.chunk", "ptyscan.params"),
    ("ptyscan.scan_params", "ptyscan.recipe", "ptyscan.propagation"),
    ("ptyscan.scan", "ptyscan.scan_checks", "ptyscan.scan_support"),
    ("ptyscan.simulate", "ptyscan.engines"),
    ("ptyscan.scans", "ptyscan.compat"),
    ("ptyscan.app",),
    ("ptyscan", "ptyscan.__main__"),
]
APART = [("ptyscan.simulate", "ptyscan.engines")]
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def group_of(name: str) -> str:
    """The FLOORS entry that ``name`` belongs to (longest matching prefix)."""
    groups = [g for floor in FLOORS for g in floor]
    hits = [g for g in groups if name == g or name.startswith(g + ".")]
    if not hits:
        raise AssertionError(f"{name}: on no floor; add it to FLOORS and README's Architecture")
    return max(hits, key=len)


def floor_of(name: str) -> int:
    group = group_of(name)
    return next(k for k, floor in enumerate(FLOORS) if group in floor)


def imports(name: str):
    """(line, imported module, names) of every import of ptyscan in module ``name``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ptyscan":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ptyscan":
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for sub in submodules:  # from . import preprocess
                yield node.lineno, sub, []
            rest = [n for n in names if f"{target}.{n}" not in MODULES]
            if rest:
                yield node.lineno, target, rest


def test_every_module_is_on_a_floor():
    for name in MODULES:
        floor_of(name)


def floor_problems(name: str) -> list[str]:
    """Imports of module ``name`` that point up a floor or across APART."""
    problems = []
    for line, target, _ in imports(name):
        if floor_of(target) > floor_of(name):
            problems.append(
                f"{name}:{line} imports {target} (floor {floor_of(target)} > {floor_of(name)})"
            )
        for a, b in APART:
            if {group_of(name), group_of(target)} == {a, b}:
                problems.append(f"{name}:{line} imports {target}: {a} and {b} stay apart")
    return problems


def test_no_import_points_up_a_floor():
    assert [p for name in MODULES for p in floor_problems(name)] == []


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(p.read_text(encoding="utf-8").splitlines()) for name, p in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_no_private_name_crosses_a_module():
    problems = []
    for name, path in MODULES.items():
        for line, target, names in imports(name):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != name:
                problems.append(f"{name}:{line} imports {private} from {target}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # self.<something>._private: another object's private member
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"
            ):
                problems.append(f"{name}:{node.lineno} reads {ast.unparse(node)}")
    assert problems == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from ..app.runner import run_recipe\n", "floor 7 > 5"),
        ("from .. import __version__\n", "floor 8 > 5"),
        ("def f():\n    from ..scans import get_scan\n", "floor 6 > 5"),
        ("from ..simulate import moonflower_object\n", "stay apart"),
        ("from ..io.results import read_ptyr\nfrom . import ops\n", None),
    ],
)
def test_the_floor_check_finds_a_bad_import(tmp_path, monkeypatch, source, found):
    """The checker itself, on a made-up module of engines/."""
    (tmp_path / "probe.py").write_text(source)
    monkeypatch.setitem(MODULES, "ptyscan.engines.probe", tmp_path / "probe.py")
    problems = floor_problems("ptyscan.engines.probe")
    if found is None:
        assert problems == []
    else:
        assert len(problems) == 1 and found in problems[0]
