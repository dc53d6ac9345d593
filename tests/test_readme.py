"""README's Quick start and .ci/run agree, and the recipes README names exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands():
    text = (ROOT / "README.rst").read_text()
    section = text.split("Quick start", 1)[1].split("\nRecipes\n", 1)[0]
    return [
        line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()
    ]


def test_quick_start_has_exactly_two_commands_and_ci_runs_them_verbatim():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "pip install -e" in commands[0] and "ptyscan run recipes/moonflower.yaml" in commands[0]
    assert commands[1] == ".venv/bin/python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci


def test_files_named_in_readme_exist():
    text = (ROOT / "README.rst").read_text()
    for path in set(
        re.findall(r"((?:recipes|templates|benchmarks)/[\w./]+\.(?:yaml|py|md))", text)
    ):
        assert (ROOT / path).exists(), path


def test_readme_error_example_is_what_ptyscan_prints(tmp_path, capsys):
    from ptyscan.app.cli import main

    text = (ROOT / "README.rst").read_text()
    block = text.split("$ ptyscan prepare bad.yaml\n", 1)[1].split("\n\n", 1)[0]
    expected = [line.strip() for line in block.splitlines()]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scan:\n  name: MoonFlowerScan\n  engery: 7.2\n  shape: -3\n  center: fftshit\n"
    )
    assert main(["prepare", str(bad)]) == 2
    printed = [line.strip() for line in capsys.readouterr().err.splitlines()]
    assert printed == [expected[0].replace("bad.yaml", str(bad)), *expected[1:]]
