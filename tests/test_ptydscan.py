"""PtydScan: ptypy's and our .ptyd files read back as scans; live files; re-processing."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from _helpers import drain

from ptyscan import EOS, WAIT
from ptyscan.errors import PtydError, ScanError
from ptyscan.io import PtydWriter, ptyd_chunk_ids, read_chunk, read_ptyd
from ptyscan.scans import get_scan

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "moonflower_ptypy_append.ptyd"
PtydScan = get_scan("PtydScan")


def test_reads_ptypys_reference_file_exactly():
    scan = PtydScan(dfile=str(REFERENCE))
    chunks = drain(scan, 10)
    ref = read_ptyd(REFERENCE)
    data = np.concatenate([c.data for c in chunks])
    assert data.shape == (39, 64, 64)
    np.testing.assert_array_equal(data, ref.data.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([c.positions for c in chunks]), ref.positions)
    np.testing.assert_array_equal(np.concatenate([c.indices for c in chunks]), np.arange(39))
    meta = chunks[0].meta
    assert meta.shape == (64, 64)
    assert meta.psize == (172e-6, 172e-6)
    assert meta.center == (32.0, 32.0)
    assert (meta.energy, meta.distance, meta.num_frames) == (7.2, 7.19, 39)


def prepare_moonflower(path, n=20, save="append", **kw):
    scan = get_scan("MoonFlowerScan")(
        num_frames=n, shape=32, seed=4, save=save, dfile=str(path), **kw
    )
    chunks = drain(scan, 8)
    return np.concatenate([c.data for c in chunks]), scan


@pytest.mark.parametrize("save", ["append", "link"])
def test_round_trip_of_our_files_keeps_frames_as_stored(tmp_path, save):
    data, source = prepare_moonflower(tmp_path / "mf.ptyd", save=save, orientation=3, rebin=2)
    scan = PtydScan(dfile=str(tmp_path / "mf.ptyd"))
    chunks = drain(scan, 6)
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks]), data)
    assert chunks[0].meta == source.meta


def test_reprocessing_into_a_new_file(tmp_path):
    data, _ = prepare_moonflower(tmp_path / "in.ptyd")
    out = tmp_path / "out.ptyd"
    scan = PtydScan(
        source=str(tmp_path / "in.ptyd"),
        dfile=str(out),
        save="append",
        shape=16,
        center="fftshift",
        rebin=2,
        orientation=2,
    )
    drain(scan, 7)
    result = read_ptyd(out)
    want = data[:, 8:24, 8:24].reshape(20, 8, 2, 8, 2).sum(axis=(2, 4))[:, ::-1, :]
    np.testing.assert_array_equal(result.data, want)
    assert tuple(result.meta["shape"]) == (8, 8)
    np.testing.assert_allclose(result.meta["psize"], 2 * 172e-6)
    # crop: (8, 8); flipud in 16 rows: (7, 8); rebin 2 divides the centre: (3.5, 4)
    np.testing.assert_allclose(result.meta["center"], (3.5, 4.0))
    assert result.info["source"] == str(tmp_path / "in.ptyd")


def test_saving_into_the_file_it_reads_is_refused(tmp_path):
    prepare_moonflower(tmp_path / "in.ptyd")
    with pytest.raises(ScanError, match="cannot save into the file it reads"):
        PtydScan(dfile=str(tmp_path / "in.ptyd"), save="append")


def test_missing_chunks_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.ptyd"
    with h5py.File(path, "w") as f:
        f.create_group("meta")
    with pytest.raises(PtydError, match="no 'chunks' group"):
        PtydScan(dfile=str(path)).auto(5)
    with pytest.raises(PtydError, match=r"no such \.ptyd file"):
        PtydScan(dfile=str(tmp_path / "nope.ptyd")).auto(5)


def test_partially_written_file_waits_then_continues(tmp_path):
    _, source = prepare_moonflower(tmp_path / "full.ptyd", n=20)
    full = read_ptyd(tmp_path / "full.ptyd")
    path = tmp_path / "live.ptyd"
    writer = PtydWriter(path, save="append")
    meta = source.meta.to_ptyd()
    writer.write_meta(meta)

    def write(n, rows):
        writer.write_chunk(
            n,
            indices=full.indices[rows],
            data=full.data[rows],
            weights=full.weights[rows],
            positions=full.positions[rows],
        )

    write(0, slice(0, 8))
    scan = PtydScan(dfile=str(path), min_frames=4)
    assert len(scan.auto(6)) == 6
    assert scan.auto(6) is WAIT  # 2 new frames < min_frames, 12 still to come
    write(1, slice(8, 16))
    assert len(scan.auto(6)) == 6
    assert len(scan.auto(6)) == 4
    assert scan.auto(6) is WAIT
    write(2, slice(16, 20))
    assert len(scan.auto(6)) == 4
    assert scan.auto(6) is EOS


def test_dangling_link_part_is_skipped(tmp_path):
    prepare_moonflower(tmp_path / "mf.ptyd", n=20, save="link")
    parts = sorted(tmp_path.glob("mf.chunk*.h5"))
    assert len(parts) == 3
    parts[-1].unlink()
    assert ptyd_chunk_ids(tmp_path / "mf.ptyd") == [0, 1]
    scan = PtydScan(dfile=str(tmp_path / "mf.ptyd"))
    assert sum(len(c) for c in drain_until_wait(scan)) == 16


def drain_until_wait(scan):
    chunks = []
    while (msg := scan.auto(8)) not in (WAIT, EOS):
        chunks.append(msg)
    return chunks


def test_link_folder_can_be_moved(tmp_path):
    data, _ = prepare_moonflower(tmp_path / "a" / "mf.ptyd", save="link")
    shutil.move(tmp_path / "a", tmp_path / "b")
    scan = PtydScan(dfile=str(tmp_path / "b" / "mf.ptyd"))
    np.testing.assert_array_equal(np.concatenate([c.data for c in drain(scan, 8)]), data)


KILL_SCRIPT = """
import sys, time
import numpy as np
from ptyscan import EOS, WAIT
from ptyscan.scans import get_scan

class Slow(get_scan("MoonFlowerScan")):
    def load(self, indices):
        time.sleep(0.05)
        return super().load(indices)

scan = Slow(num_frames=400, shape=32, seed=9, save=sys.argv[2], dfile=sys.argv[1])
while (chunk := scan.auto(10)) is not EOS:
    if chunk is not WAIT:
        print("chunk", chunk.number, flush=True)
"""


@pytest.mark.parametrize("save", ["append", "link"])
def test_preparation_killed_after_k_chunks_keeps_them(tmp_path, save):
    path = tmp_path / "killed.ptyd"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path), save],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    done = -1
    deadline = time.monotonic() + 60
    try:
        while done < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("chunk"):
                done = int(line.split()[1])
        # the saver writes a chunk before auto() returns it, so chunks 0..done are on disk
        time.sleep(0.03)  # kill somewhere inside a later chunk
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert done >= 4
    ids = ptyd_chunk_ids(path)
    assert ids[: done + 1] == list(range(done + 1))
    clean = get_scan("MoonFlowerScan")(num_frames=400, shape=32, seed=9)
    for n in range(done + 1):
        chunk = read_chunk(path, n)
        expected = clean.get_data_chunk(10, start=10 * n)
        np.testing.assert_array_equal(chunk["data"], expected.data)
        np.testing.assert_array_equal(chunk["indices"], expected.indices)


def test_meta_keys_are_exactly_ptypys_and_propagation_survives_in_info(tmp_path):
    prepare_moonflower(tmp_path / "nf.ptyd", propagation="nearfield", label="lab")
    with h5py.File(tmp_path / "nf.ptyd", "r") as ours, h5py.File(REFERENCE, "r") as ref:
        assert set(ours["meta"]) == set(ref["meta"])
    chunk = PtydScan(dfile=str(tmp_path / "nf.ptyd")).auto(50)
    assert chunk.meta.propagation == "nearfield"
    assert chunk.meta.label == "lab"
    explicit = PtydScan(dfile=str(tmp_path / "nf.ptyd"), propagation="farfield").auto(50)
    assert explicit.meta.propagation == "farfield"
