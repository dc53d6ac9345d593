"""Conformance: every registered scan class honours the Chunk/WAIT/EOS and .ptyd contracts.

A new scan class must add a factory to FACTORIES (the first test fails until it does).
"""

import math

import h5py
import numpy as np
import pytest
from _helpers import drain

from ptyscan import EOS, Chunk
from ptyscan.errors import PtyScanError
from ptyscan.io import read_ptyd
from ptyscan.scans import available_scans, get_scan

N_FRAMES = 13


def _moonflower(tmp_path, **kw):
    return get_scan("MoonFlowerScan")(num_frames=N_FRAMES, shape=32, seed=2, **kw)


def _quick(tmp_path, **kw):
    return get_scan("QuickScan")(num_frames=N_FRAMES, shape=32, seed=2, **kw)


def _ptyd(tmp_path, **kw):
    source = tmp_path / "source.ptyd"
    if not source.exists():
        src = get_scan("MoonFlowerScan")(
            num_frames=N_FRAMES, shape=32, seed=2, save="append", dfile=str(source)
        )
        while src.auto(5) is not EOS:
            pass
    if "dfile" in kw:
        return get_scan("PtydScan")(source=str(source), **kw)
    return get_scan("PtydScan")(dfile=str(source), **kw)


def _id16a(tmp_path, **kw):
    from fabio.edfimage import EdfImage

    folder = tmp_path / "id16a"
    if not folder.exists():
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(N_FRAMES):
            header = {"motor_mne": "spy spz", "motor_pos": f"{i * 0.5} {-i * 0.25}"}
            frame = rng.integers(200, 4000, (16, 16)).astype(np.uint16)
            EdfImage(data=frame, header=header).write(str(folder / f"cell_{i + 1:04d}.edf"))
        for k in range(2):
            EdfImage(data=np.full((16, 16), 100 + k, np.uint16)).write(
                str(folder / f"dark_{k}.edf")
            )
            EdfImage(data=np.full((16, 16), 5000 + k, np.uint16)).write(
                str(folder / f"ref_{k}.edf")
            )
    kw = {"energy": 7.2, "distance": 7.19, "psize": 3e-6, **kw}  # no defaults: the recipe's
    return get_scan("ID16AScan")(
        base_path=str(folder), sample_name="cell", shape=16, flat_division=True, **kw
    )


def _flispec(tmp_path, **kw):
    root = tmp_path / "optiklabor"
    if not root.exists():
        times = (0.1, 1.0)  # two exposures per point

        def raw(path, image, t):
            head = f"rows = {image.shape[0]}\ncols = {image.shape[1]}\nexp_time = {t}\nEOH\n"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(head.encode() + image.astype("<u2").tobytes())

        scans = root / "ccdfli" / "S00000-00999"
        rng = np.random.default_rng(0)
        for e, t in enumerate(times):
            raw(scans / "S00072" / f"ccdfli_00000_{e:02d}.raw", np.full((8, 8), 100), t)
            for j in range(N_FRAMES):
                counts = rng.integers(0, 100_000, (8, 8)) * t + 100
                raw(scans / "S00074" / f"ccdfli_{j:05d}_{e:02d}.raw", np.minimum(counts, 65535), t)
        rows = "\n".join(f"{0.01 * (j // 2)} {0.02 * (j % 3)} 0" for j in range(2 * N_FRAMES))
        log = root / "spec" / "dat-files" / "spec_started_2013_11_21_1659.dat"
        log.parent.mkdir(parents=True)
        log.write_text(
            f"#O0 samx  samy\n\n#S 74  ascan\n#P0 0 0\n#N 3\n#L samy  samx  det\n{rows}\n"
        )
    return get_scan("FliSpecScanMultexp")(base_path=f"{root}/", shape=8, **kw)


def _plugin(tmp_path, **kw):
    path = tmp_path / "ramp_scan.py"
    if not path.exists():
        path.write_text(
            "import numpy as np\n"
            "from ptyscan import PtyScan\n\n\n"
            "class RampScan(PtyScan):\n"
            "    def load_positions(self):\n"
            "        i = np.arange(13)\n"
            "        return np.stack([i, -i], axis=1) * 1e-6\n\n"
            "    def load(self, indices):\n"
            "        return {int(i): np.full((8, 8), i, np.float32) for i in indices}, {}, {}\n"
        )
    return get_scan("plugin")(file=str(path), shape=8, **kw)  # measured-like: no seed


PTYPY_RAMP = """
import numpy as np

from ptypy.core.data import PtyScan
from ptypy.experiment import register


@register()
class PtypyRamp(PtyScan):
    \"\"\"
    Defaults:

    [offset]
    default = 0.0
    type = float
    help = Added to every frame
    \"\"\"

    def load_positions(self):
        i = np.arange(13)
        return np.stack([i, -i], axis=1) * 1e-6

    def load(self, indices):
        raw = {int(i): np.full((8, 8), i + self.info.offset) for i in indices}
        return raw, {}, {}
"""


def _ptypy(tmp_path, **kw):
    path = tmp_path / "ptypy_ramp.py"
    if not path.exists():
        path.write_text(PTYPY_RAMP)
    return get_scan("ptypy")(file=str(path), shape=8, seed=2, **kw)


def _simscan(tmp_path, **kw):
    return get_scan("SimScan")(
        num_frames=N_FRAMES,
        shape=32,
        seed=2,
        xy={"model": "spiral", "spacing": 1e-6, "steps": 8},
        **kw,
    )


def _hdf5_file(tmp_path):
    """A small arbitrary-trajectory scan: uint16 frames, positions in metres, a 2-D mask."""
    path = tmp_path / "hdf5_scan.h5"
    if not path.exists():
        rng = np.random.default_rng(2)
        mask = np.ones((40, 44), np.uint8)
        mask[:2, :5] = 0
        with h5py.File(path, "w") as f:
            f["entry/data"] = rng.poisson(3.0, (N_FRAMES, 40, 44)).astype(np.uint16)
            f["entry/y"] = np.arange(N_FRAMES) * 1e-7
            f["entry/x"] = np.arange(N_FRAMES) * -2e-7
            f["entry/mask"] = mask
    return str(path)


def _hdf5(name, tmp_path, **kw):
    kw = {"energy": 7.2, "distance": 7.19, "psize": 172e-6, **kw}  # no defaults: the recipe's
    return get_scan(name)(
        intensities={"file": _hdf5_file(tmp_path), "key": "entry/data"},
        positions={"slow_key": "entry/y", "fast_key": "entry/x"},
        mask={"key": "entry/mask"},
        shape=32,
        center=(20, 21),
        **kw,
    )


def _hdf5_loader(tmp_path, **kw):
    return _hdf5("Hdf5Loader", tmp_path, **kw)


def _hdf5_loader_fast(tmp_path, **kw):
    return _hdf5("Hdf5LoaderFast", tmp_path, workers=2, **kw)


def _stem(tmp_path, **kw):
    """A 13 × 1 raster of 32² EMPAD-style frames (2 rows of metadata after each)."""
    from ptyscan.simulate.stem_raw import simulate_stem_raw

    path = tmp_path / "stem.raw"
    if not path.exists():
        simulate_stem_raw(path, n_slow=N_FRAMES, n_fast=1, npix=32, gap_bytes=256, dx_angstrom=0.3)
    return get_scan("StemScan")(
        meas_params={"path": str(path), "shape": [N_FRAMES, 32, 32], "gap": 256},
        pos_N_scan_slow=N_FRAMES,
        pos_N_scan_fast=1,
        pos_scan_step_size=0.8,  # simulate_stem_raw's
        probe_kv=300.0,
        probe_conv_angle=20.0,
        meas_calibration={"mode": "dx", "value": 0.3},
        seed=2,
        **kw,
    )


def _zmq(tmp_path, **kw):
    """N_FRAMES frames of 40 × 44 pushed (out of order) by a thread, then the end."""
    import threading

    zmq = pytest.importorskip("zmq", reason="pyzmq is not installed (ptyscan[zmq])")
    import json

    push = zmq.Context.instance().socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    rng = np.random.default_rng(2)
    frames = rng.poisson(3.0, (N_FRAMES, 40, 44)).astype(np.float32)

    def send():
        push.send_multipart([json.dumps({"start": True, "frames": N_FRAMES}).encode()])
        for i in [1, 0, *range(2, N_FRAMES)]:
            header = {"index": i, "position_m": [i * 1e-7, -i * 2e-7], "shape": [40, 44]}
            push.send_multipart([json.dumps(header).encode(), frames[i].tobytes()])
        push.send_multipart([json.dumps({"end": True, "frames": N_FRAMES}).encode()])
        push.close(linger=5000)

    threading.Thread(target=send, daemon=True).start()
    return get_scan("ZmqScan")(address=f"tcp://127.0.0.1:{port}", shape=32, live_timeout=20, **kw)


FACTORIES = {
    "MoonFlowerScan": _moonflower,
    "QuickScan": _quick,
    "PtydScan": _ptyd,
    "ID16AScan": _id16a,
    "FliSpecScanMultexp": _flispec,
    "plugin": _plugin,
    "ptypy": _ptypy,
    "SimScan": _simscan,
    "Hdf5Loader": _hdf5_loader,
    "Hdf5LoaderFast": _hdf5_loader_fast,
    "StemScan": _stem,
    "ZmqScan": _zmq,
}


def test_every_registered_scan_has_a_conformance_factory():
    missing = sorted(set(available_scans()) - set(FACTORIES))
    assert not missing, f"add conformance factories for {missing}"


@pytest.fixture(params=sorted(FACTORIES))
def make(request, tmp_path):
    return lambda **kw: FACTORIES[request.param](tmp_path, **kw)


def test_chunks_follow_the_contract(make):
    scan = make()
    chunks = drain(scan, 5)
    assert scan.auto(5) is EOS and scan.auto(5) is EOS  # EOS stays EOS
    assert all(isinstance(c, Chunk) for c in chunks)
    indices = np.concatenate([c.indices for c in chunks])
    assert indices.tolist() == list(range(scan.num_frames))  # every frame once, in order
    assert [c.number for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        n = len(c)
        assert 0 < n <= 5
        assert c.data.dtype == np.float32 and c.data.shape == (n, *c.meta.shape)
        assert c.weights.dtype == np.float32 and c.weights.shape == c.data.shape
        assert c.positions.dtype == np.float64 and c.positions.shape == (n, 2)
        assert c.indices.dtype == np.int64
        assert np.all(c.data >= 0) and np.all(np.isfinite(c.data))
        assert np.all(c.weights >= 0)
        # positions are metres: a ptychography scan spans nm to mm, never metres
        assert np.all(np.abs(c.positions) < 1e-2)
        assert c.meta.num_frames == scan.num_frames
        assert c.meta.center is not None
        assert c.meta.psize[0] > 0 and c.meta.energy > 0 and c.meta.distance > 0


def test_ptyd_round_trip(make, tmp_path):
    out = tmp_path / "conformance.ptyd"
    scan = make(save="append", dfile=str(out))
    chunks = drain(scan, 5)
    stored = read_ptyd(out)
    np.testing.assert_array_equal(stored.indices, np.concatenate([c.indices for c in chunks]))
    np.testing.assert_array_equal(stored.data, np.concatenate([c.data for c in chunks]))
    np.testing.assert_array_equal(stored.weights, np.concatenate([c.weights for c in chunks]))
    np.testing.assert_array_equal(stored.positions, np.concatenate([c.positions for c in chunks]))
    meta = chunks[0].meta
    assert tuple(stored.meta["shape"]) == meta.shape
    np.testing.assert_allclose(stored.meta["psize"], meta.psize)
    np.testing.assert_allclose(stored.meta["center"], meta.center)
    assert stored.meta["num_frames"] == scan.num_frames
    assert stored.meta["energy"] == pytest.approx(meta.energy)
    assert stored.info["name"] == scan.info.name
    assert stored.info["seed"] == scan.seed


ODD = ["zzz", -3, 0, 1, 1e30, math.nan, {"a": 1}, [1, 2, 3], [2, 3], None]


@pytest.mark.slow
def test_odd_values_run_or_fail_with_a_named_error(make):
    """Each parameter of each scan, set to a value of the wrong kind or size on top of
    a working setup: the scan either delivers its frames or stops with a PtyScanError
    (never a raw exception from numpy, h5py or fabio)."""
    cls = type(make())
    for field in cls.Params.model_fields:
        for odd in ODD:
            try:
                scan = make(**{field: odd})
            except TypeError as exc:  # the factory sets this key itself
                assert "multiple values" in str(exc)
                break
            except PtyScanError:
                continue
            try:
                drain(scan, 5, max_calls=60, poll_s=0.05)  # a stream (ZmqScan) may WAIT
            except PtyScanError:
                pass
            except Exception as exc:  # pragma: no cover - the failure report
                pytest.fail(f"{cls.__name__}.{field}={odd!r}: {type(exc).__name__}: {exc}")
