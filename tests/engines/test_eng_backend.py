"""Backend selection: NumPy here, CuPy's absence reported with the install hint."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ptyscan.engines import Backend, get_backend
from ptyscan.errors import BackendError, PtyScanError

ROOT = Path(__file__).resolve().parents[2]


def _run(code):
    """Run ``code`` in a fresh interpreter with cupy made unimportable."""
    block = "import sys; sys.modules['cupy'] = None; sys.modules['cupyx'] = None\n"
    proc = subprocess.run(
        [sys.executable, "-c", block + textwrap.dedent(code)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_numpy_backend_fields_and_fft():
    bk = get_backend("numpy", threads=1)
    assert isinstance(bk, Backend) and bk.name == "numpy" and bk.xp is np
    assert bk.complex_dtype == np.complex64 and bk.real_dtype == np.float32
    assert bk.threads == 1 and not bk.is_gpu
    x = np.random.default_rng(0).standard_normal((2, 8, 8)).astype(np.complex64)
    y = bk.fft.fft2(x)
    assert y.dtype == np.complex64
    np.testing.assert_allclose(y, np.fft.fft2(x, norm="ortho"), atol=1e-5)
    np.testing.assert_allclose(bk.fft.ifft2(y), x, atol=1e-5)
    assert bk.to_host(bk.to_device([1.0, 2.0])).tolist() == [1.0, 2.0]


def test_double_precision():
    bk = get_backend("numpy", precision="double")
    assert bk.complex_dtype == np.complex128 and bk.real_dtype == np.float64


def test_unknown_name_and_precision():
    with pytest.raises(BackendError, match="expected 'auto', 'numpy' or 'cupy'"):
        get_backend("torch")
    with pytest.raises(BackendError, match="'single' or 'double'"):
        get_backend("numpy", precision="half")
    assert issubclass(BackendError, PtyScanError)


def test_cupy_missing_raises_install_hint_and_auto_falls_back():
    out = _run(
        """
        from ptyscan.engines import get_backend
        from ptyscan.errors import BackendError
        try:
            get_backend("cupy")
        except BackendError as exc:
            print("ERROR:", exc)
        print("AUTO:", get_backend("auto").name)
        """
    )
    assert "pip install 'ptyscan[gpu]'" in out
    assert "AUTO: numpy" in out


def test_importing_the_engines_does_not_import_cupy():
    out = _run(
        """
        import sys
        del sys.modules['cupy'], sys.modules['cupyx']
        import ptyscan.engines, ptyscan.engines.dm, ptyscan.engines.ml, ptyscan.propagation
        print("CUPY:", "cupy" in sys.modules)
        """
    )
    assert "CUPY: False" in out
