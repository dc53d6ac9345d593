"""README's "Writing an engine" example runs, converges, and runs on the CuPy path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from _engine_helpers import model_probe, moonflower

README = Path(__file__).resolve().parents[2] / "README.rst"


def readme_engine():
    """The AP class of README's example, executed from the README text."""
    text = README.read_text()
    start = text.index("Parallel alternating projections in 40 lines::")
    body = text[start:].split("::\n", 1)[1]
    code = textwrap.dedent(body.split("\n``AP(numiter", 1)[0])
    assert len(code.strip().splitlines()) <= 45
    namespace = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace["AP"]


def test_readme_engine_converges():
    AP = readme_engine()
    scan = moonflower(60, 32, density=0.25)
    engine = AP(numiter=40, backend="numpy", probe=model_probe(32))
    engine.add_views(scan.auto(60))
    hist = engine.iterate()
    assert hist[-1]["fourier"] < 0.2 * hist[0]["fourier"]


def test_readme_engine_on_the_cupy_path(cupy_module):
    AP = readme_engine()
    chunk = moonflower(30, 32, density=0.25).auto(30)
    results = []
    for name in ("numpy", "cupy"):
        engine = AP(numiter=5, backend=name, probe=model_probe(32), precision="double")
        engine.add_views(chunk)
        engine.iterate()
        results.append(engine.object)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-9, atol=1e-9)
