"""Tests of ptyscan.io.ptyd_write and ptyd_read: ptypy compatibility, round trips, links, crash consistency."""

import importlib.util
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptyscan.errors import PtydError
from ptyscan.io import (
    PtydWriter,
    ptyd_chunk_ids,
    read_chunk,
    read_info,
    read_meta,
    read_ptyd,
)
from ptyscan.io.h5typed import read_typed, write_typed

HERE = Path(__file__).parent
REFERENCE = HERE / "data" / "moonflower_ptypy_append.ptyd"
CHILD = HERE / "_ptyd_writer_proc.py"

_spec = importlib.util.spec_from_file_location("_ptyd_writer_proc", CHILD)
_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_child)
chunk_arrays = _child.chunk_arrays

META = {
    "center": np.array([31.5, 40.0]),
    "distance": 7.19,
    "energy": 7.2,
    "label": None,
    "num_frames": 11,
    "psize": np.array([172e-6, 172e-6]),
    "shape": np.array([48, 40]),
    "version": 0.1,
}


def make_chunk(n, frames, shape=(48, 40)):
    """Float32 data and weights, non-contiguous indices, rectangular frames."""
    rng = np.random.default_rng(100 + n)
    return {
        "indices": np.arange(frames, dtype=np.int64) * 3 + 1000 * n,
        "data": rng.poisson(2.0, (frames, *shape)).astype(np.float32) + 0.25,
        "weights": rng.random((frames, *shape), dtype=np.float32),
        "positions": rng.normal(0.0, 1e-6, (frames, 2)),
    }


def write_file(path, save, chunks=(4, 5, 2), compression="gzip"):
    written = {}
    with PtydWriter(path, save=save, compression=compression) as writer:
        writer.write_meta(META)
        for n, frames in enumerate(chunks):
            written[n] = make_chunk(n, frames)
            writer.write_chunk(n, **written[n])
    return written


def assert_chunk_equal(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def type_attributes(group):
    """{relative path: (attribute names, type)} for a group and every node below it."""

    def describe(node):
        return tuple(sorted(node.attrs)), node.attrs.get("type")

    found = {".": describe(group)}
    group.visititems(lambda name, node: found.__setitem__(name, describe(node)))
    return found


# --- (1) the ptypy reference file ----------------------------------------------


def test_reference_file_reads_exactly():
    contents = read_ptyd(REFERENCE)
    assert contents.chunk_ids == (0, 1, 2)
    assert contents.data.shape == (39, 64, 64)
    assert contents.data.dtype == np.int32
    assert contents.weights.dtype == np.float64
    assert contents.positions.shape == (39, 2)
    np.testing.assert_array_equal(contents.indices, np.arange(39))
    sizes = [len(read_chunk(REFERENCE, n)["indices"]) for n in ptyd_chunk_ids(REFERENCE)]
    assert sizes == [16, 16, 7]
    with h5py.File(REFERENCE, "r") as f:
        np.testing.assert_array_equal(contents.data[16:32], f["chunks/1/data"][()])
        np.testing.assert_array_equal(contents.positions[32:], f["chunks/2/positions"][()])


def test_reference_meta_and_info():
    meta = read_meta(REFERENCE)
    np.testing.assert_array_equal(meta["shape"], [64, 64])
    np.testing.assert_array_equal(meta["psize"], [172e-6, 172e-6])
    np.testing.assert_array_equal(meta["center"], [32, 32])
    assert (meta["distance"], meta["energy"], meta["version"]) == (7.19, 7.2, 0.1)
    assert meta["num_frames"] == 39 and isinstance(meta["num_frames"], int)
    assert meta["label"] is None
    info = read_info(REFERENCE)
    assert info["name"] == "MoonFlowerScan"
    assert info["save"] == "append"
    assert info["dfile"] == "moonflower_ptypy_append.ptyd"
    assert info["orientation"] is None
    assert info["add_poisson_noise"] is True
    assert info["num_frames"] == 40
    assert info["positions_scan"].shape == (39, 2)


# --- (2) round trips -------------------------------------------------------------


@pytest.mark.parametrize("save", ["append", "link"])
@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_round_trip(tmp_path, save, compression):
    path = tmp_path / "scan.ptyd"
    written = write_file(path, save, compression=compression)
    assert ptyd_chunk_ids(path) == [0, 1, 2]
    for n, expected in written.items():
        assert_chunk_equal(read_chunk(path, n), expected)
    contents = read_ptyd(path)
    for key in ("indices", "data", "weights", "positions"):
        expected = np.concatenate([written[n][key] for n in range(3)])
        np.testing.assert_array_equal(getattr(contents, key), expected)
        assert getattr(contents, key).dtype == expected.dtype
    assert set(contents.meta) == set(META)
    assert contents.meta["label"] is None
    for key in ("center", "distance", "energy", "num_frames", "psize", "shape", "version"):
        np.testing.assert_array_equal(contents.meta[key], META[key])
    with h5py.File(path, "r") as f:
        data = f["chunks/1/data"]
        assert data.compression == compression
        if compression:
            assert data.chunks == (1, 48, 40)


@pytest.mark.parametrize("save", ["append", "link"])
def test_same_type_attributes_as_ptypy(tmp_path, save):
    path = tmp_path / "scan.ptyd"
    write_file(path, save)
    with h5py.File(REFERENCE, "r") as ref, h5py.File(path, "r") as ours:
        assert set(ours.attrs) == set(ref.attrs) == {"ctime", "mtime", "h5rw_version"}
        assert ours.attrs["h5rw_version"] == "0.1"
        for key in ("meta", "chunks/0", "info"):
            assert ours[key].attrs["type"] == ref[key].attrs["type"] == "dict"
        assert type_attributes(ours["meta"]) == type_attributes(ref["meta"])
        assert type_attributes(ours["chunks/0"]) == type_attributes(ref["chunks/0"])
        assert ours["chunks"].attrs["type"] == ref["chunks"].attrs["type"]
        for key in ("indices", "positions"):
            assert ours[f"chunks/2/{key}"].dtype == ref[f"chunks/2/{key}"].dtype
        assert ours.id.get_create_plist().get_version()[0] == 0  # superblock v0, no open flags


def test_shared_2d_weights_and_int_data(tmp_path):
    path = tmp_path / "scan.ptyd"
    mask = np.ones((6, 8), np.float32)
    mask[0, 0] = 0
    data = np.arange(2 * 6 * 8, dtype=np.int32).reshape(2, 6, 8)
    with PtydWriter(path) as writer:
        writer.write_meta({"shape": 6})
        writer.write_chunk(0, indices=[5, 9], data=data, weights=mask, positions=np.zeros((2, 2)))
    chunk = read_chunk(path, 0)
    assert chunk["data"].dtype == np.int32
    np.testing.assert_array_equal(chunk["weights"], np.stack([mask, mask]))
    np.testing.assert_array_equal(read_meta(path)["shape"], [6, 6])


def test_meta_rewritten_and_chunks_written_once(tmp_path):
    path = tmp_path / "scan.ptyd"
    with PtydWriter(path) as writer:
        writer.write_meta({"num_frames": None, "label": "a"})
        writer.write_chunk(0, **make_chunk(0, 2))
        writer.write_meta({"num_frames": 2, "label": "a"})
        with pytest.raises(PtydError, match="chunks/0 already written"):
            writer.write_chunk(0, **make_chunk(0, 2))
        assert writer.chunk_ids == [0]
    assert read_meta(path) == {"num_frames": 2, "label": "a"}


# --- (3) info and typed values ---------------------------------------------------------

INFO = {
    "name": "MoonFlowerScan",
    "nested": {"deeper": {"x": 1.5, "flag": False}, "empty": {}},
    "nothing": None,
    "flag": True,
    "distance": 7.19,
    "count": 40,
    "psize": (172e-6, 172e-6),
    "names": ["a", "bb", "ccc"],
    "mixed": [1, "two", None, 3.0],
    "shape": np.array([64, 32]),
    "path/with/slash": "kept",
    "ints": [1, 2, 3],
    "empty_list": [],
    "unicode": "Å µm",
    "numpy_scalar": np.float32(0.5),
}


def test_info_round_trip(tmp_path):
    path = tmp_path / "scan.ptyd"
    with PtydWriter(path) as writer:
        writer.write_meta({})
        writer.write_info({"old": 1})
        writer.write_info(INFO)
    info = read_info(path)
    shape = info.pop("shape")
    np.testing.assert_array_equal(shape, INFO["shape"])
    assert info == {k: v for k, v in INFO.items() if k != "shape"}
    assert isinstance(info["psize"], tuple) and isinstance(info["names"], list)
    with h5py.File(path, "r") as f:
        assert f["info/names"].attrs["type"] == "list"  # as ptypy stores lists of str
        assert f["info/psize"].attrs["type"] == "arraytuple"
        assert f["info/ints"].attrs["type"] == "arraylist"
        assert f["info/nothing"].attrs["type"] == "None"


def test_bad_info_keeps_previous_info(tmp_path):
    path = tmp_path / "scan.ptyd"
    with PtydWriter(path) as writer:
        writer.write_meta({})
        writer.write_info({"good": 1})
        with pytest.raises(PtydError, match=r"info.new/bad.*got object"):
            writer.write_info({"fine": 2, "bad": object()})
        with pytest.raises(PtydError, match="embedded NUL"):
            writer.write_info({"nul": "a\x00b"})
    assert read_info(path) == {"good": 1}


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False)
    | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
)
_keys = st.text("abcxyz_019/", min_size=1, max_size=6).filter(lambda k: k not in (".", ".."))
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_keys, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(value=_values)
def test_typed_values_round_trip(value):
    with h5py.File("mem.h5", "w", driver="core", backing_store=False) as f:
        write_typed(f, "value", value)
        assert read_typed(f["value"]) == value


# --- (4) an existing file is kept as .old ------------------------------------------------


def test_existing_file_moved_to_old(tmp_path, caplog):
    path = tmp_path / "scan.ptyd"
    first = write_file(path, "append", chunks=(2,))
    (tmp_path / "scan.ptyd.old").write_bytes(b"an older backup")
    with caplog.at_level(logging.WARNING, logger="ptyscan.io"):
        write_file(path, "append", chunks=(3, 1))
    assert "renamed" in caplog.text
    assert ptyd_chunk_ids(path.with_name("scan.ptyd.old")) == [0]
    assert_chunk_equal(read_chunk(path.with_name("scan.ptyd.old"), 0), first[0])
    assert ptyd_chunk_ids(path) == [0, 1]


def test_link_mode_backs_up_part_files(tmp_path):
    path = tmp_path / "scan.ptyd"
    write_file(path, "link", chunks=(1, 1, 1))
    first = write_file(path, "link", chunks=(2, 3))
    (tmp_path / "scan.chunk07.h5.partial").write_bytes(b"left by a killed writer")
    write_file(path, "link", chunks=(4,))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "scan.chunk00.h5",
        "scan.chunk00.h5.old",
        "scan.chunk01.h5.old",
        "scan.ptyd",
        "scan.ptyd.old",
    ]
    old = tmp_path / "scan.ptyd.old"
    assert ptyd_chunk_ids(old) == [0, 1]
    assert_chunk_equal(read_chunk(old, 1), first[1])
    assert ptyd_chunk_ids(path) == [0]


# --- (5) link mode ----------------------------------------------------------------------


def test_link_mode_relative_links_survive_a_move(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    written = write_file(folder / "scan.ptyd", "link")
    with h5py.File(folder / "scan.ptyd", "r") as f:
        links = [f["chunks"].get(str(n), getlink=True) for n in range(3)]
    assert [link.filename for link in links] == [f"scan.chunk{n:02d}.h5" for n in range(3)]
    assert [link.path for link in links] == [f"/chunks/{n}" for n in range(3)]
    moved = tmp_path / "elsewhere" / "moved"
    shutil.move(folder, moved)
    monkeypatch.chdir(tmp_path)
    assert ptyd_chunk_ids(moved / "scan.ptyd") == [0, 1, 2]
    assert_chunk_equal(read_chunk(moved / "scan.ptyd", 2), written[2])
    with h5py.File(moved / "scan.chunk01.h5", "r") as part:
        assert part["chunks/1"].attrs["type"] == "dict"


def test_link_mode_missing_part_file_is_skipped(tmp_path, monkeypatch, caplog):
    path = tmp_path / "run" / "scan.ptyd"
    written = write_file(path, "link")
    other = tmp_path / "cwd"
    shutil.copytree(path.parent, other)  # a same-named part file in the working directory
    monkeypatch.chdir(other)
    (path.parent / "scan.chunk01.h5").unlink()
    with caplog.at_level(logging.WARNING, logger="ptyscan.io"):
        assert ptyd_chunk_ids(path) == [0, 2]
    assert "scan.chunk01.h5 missing" in caplog.text
    contents = read_ptyd(path)
    assert contents.chunk_ids == (0, 2)
    np.testing.assert_array_equal(contents.data[4:], written[2]["data"])
    with pytest.raises(PtydError, match=r"chunks/1: part file scan.chunk01.h5 missing"):
        read_chunk(path, 1)


def test_incomplete_chunk_groups_are_skipped(tmp_path, caplog):
    path = tmp_path / "scan.ptyd"
    write_file(path, "append")
    with h5py.File(path, "a") as f:
        del f["chunks/1/weights"]
        f["chunks/2/positions"][...] = 0  # still consistent
        del f["chunks/2/indices"]
        f["chunks/2/indices"] = np.arange(5)  # 5 indices for 2 frames
    with caplog.at_level(logging.WARNING, logger="ptyscan.io"):
        assert ptyd_chunk_ids(path) == [0]
    assert "chunks/1: lacks weights" in caplog.text
    assert "chunks/2: shapes" in caplog.text


# --- (6) crash consistency --------------------------------------------------------------


def _run_child(path, save, frames, size, sleep_s):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), *sys.path]))
    args = [sys.executable, str(CHILD), str(path), save, "1000", str(frames), str(size)]
    proc = subprocess.Popen([*args, str(sleep_s)], stdout=subprocess.PIPE, text=True, env=env)
    lines = queue.Queue()

    def forward():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=forward, daemon=True).start()
    return proc, lines


def _kill_when(proc, lines, wanted, delay_s, timeout_s=30.0):
    """SIGKILL ``proc`` ``delay_s`` after it printed ``wanted``; return the chunks it reported."""
    seen = []
    try:
        deadline = time.monotonic() + timeout_s
        while wanted not in seen:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"the writer exited early after {seen}"
            seen.append(line.strip())
        time.sleep(delay_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    while (line := lines.get(timeout=10)) is not None:  # the reader thread ends with None
        seen.append(line.strip())
    proc.stdout.close()
    return [int(x.split()[1]) for x in seen if x.startswith("done")]


@pytest.mark.parametrize("save", ["append", "link"])
@pytest.mark.parametrize(
    ("when", "frames", "size", "sleep_s", "delay_s"),
    [
        ("done 3", 4, 32, 0.05, 0.02),  # while it sleeps after reporting chunk 3
        ("done 4", 4, 32, 0.0, 0.0),  # right after a report
        ("start 2", 16, 256, 0.0, 0.03),  # while compressing and writing a large chunk
    ],
)
def test_killed_writer_leaves_reported_chunks(
    tmp_path, save, when, frames, size, sleep_s, delay_s
):
    path = tmp_path / "scan.ptyd"
    proc, lines = _run_child(path, save, frames, size, sleep_s)
    reported = _kill_when(proc, lines, when, delay_s)
    k = max(reported) + 1
    assert k >= 2 and reported == list(range(k))
    ids = ptyd_chunk_ids(path)
    assert ids[:k] == list(range(k)) and len(ids) <= k + 1  # at most the one being written
    for n in ids:
        assert_chunk_equal(read_chunk(path, n), chunk_arrays(n, frames, size))
    assert read_ptyd(path).chunk_ids == tuple(ids)
    if save == "append":
        assert not list(tmp_path.glob("*.partial"))


# --- (7) errors -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.ptyd"
    for read in (read_ptyd, read_meta, read_info, ptyd_chunk_ids):
        with pytest.raises(PtydError, match=r"nope.ptyd: no such .ptyd file") as info:
            read(path)
        assert isinstance(info.value, OSError)


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.ptyd"
    path.write_text("hello")
    with pytest.raises(PtydError, match="not an HDF5 file"):
        read_ptyd(path)


def test_file_without_chunks_group(tmp_path):
    path = tmp_path / "meta_only.ptyd"
    with h5py.File(path, "w") as f:
        f.create_group("meta")
    with pytest.raises(PtydError, match=r"meta_only.ptyd: no 'chunks' group"):
        read_ptyd(path)


def test_file_without_any_chunk(tmp_path):
    path = tmp_path / "scan.ptyd"
    with PtydWriter(path, save="link") as writer:
        writer.write_meta(META)
    assert ptyd_chunk_ids(path) == []
    with pytest.raises(PtydError, match=r"has no chunks/0.*stopped before its first chunk"):
        read_ptyd(path)
    with pytest.raises(PtydError, match=r"no chunks/3; complete chunks: \[\]"):
        read_chunk(path, 3)


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(PtydError, match="save: got 'merge'"):
        PtydWriter(tmp_path / "a.ptyd", save="merge")
    with pytest.raises(PtydError, match="chunk_format"):
        PtydWriter(tmp_path / "a.ptyd", chunk_format="/x%d")
    good = make_chunk(0, 3)
    with PtydWriter(tmp_path / "a.ptyd") as writer:
        with pytest.raises(PtydError, match=r"chunks/0: positions: got shape \(2, 2\)"):
            writer.write_chunk(0, **{**good, "positions": np.zeros((2, 2))})
        with pytest.raises(PtydError, match=r"chunks/0: weights: got shape \(3, 5, 5\)"):
            writer.write_chunk(0, **{**good, "weights": np.ones((3, 5, 5))})
        with pytest.raises(PtydError, match="chunk number: got -1"):
            writer.write_chunk(-1, **good)
    with pytest.raises(PtydError, match="writer is closed"):
        writer.write_chunk(0, **good)
