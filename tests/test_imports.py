"""``import ptyscan`` must work without mpi4py, cupy or fabio (optional dependencies)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = """
import importlib.abc, sys
BLOCKED = {"mpi4py", "cupy", "cupyx", "fabio", "hdf5plugin", "matplotlib"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} blocked for this test")
sys.meta_path.insert(0, Block())
"""


def run(code):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, env=env, timeout=60
    )


def test_import_and_prepare_without_optional_dependencies(tmp_path):
    code = f"""
import ptyscan, ptyscan.scans, ptyscan.app.cli, ptyscan.parallel
from ptyscan.scans import get_scan
assert isinstance(ptyscan.parallel.get_comm(), ptyscan.parallel.SerialComm)
scan = get_scan("QuickScan")(num_frames=3, save="append", dfile={str(tmp_path / "q.ptyd")!r})
while scan.auto(3) is not ptyscan.EOS:
    pass
blocked = [m for m in ("mpi4py", "cupy", "fabio") if m in sys.modules]
assert not blocked, blocked
print("ok")
"""
    out = run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_blocker_really_blocks():
    out = run("import mpi4py")
    assert out.returncode != 0 and "blocked for this test" in out.stderr
