"""PtyScan lifecycle: hooks, WAIT/EOS, centring, crop/pad, orientation, rebin, weights."""

import logging

import numpy as np
import pytest

from ptyscan import EOS, WAIT, Chunk, PtyScan
from ptyscan.errors import ParameterError, RecipeError, ScanError
from ptyscan.scans import get_scan


class DotScan(PtyScan):
    """Frames of zeros with one bright pixel at ``DOT`` (+ frame index in pixel (0, 0))."""

    RAW = (40, 50)
    DOT = (13, 31)

    def __init__(self, pars=None, **kwargs):
        self.calls = []
        super().__init__(pars, **kwargs)

    def load_positions(self):
        self.calls.append("load_positions")
        n = self.num_frames or 10
        return np.stack([np.arange(n) * 1e-6, np.arange(n) * -2e-6], axis=1)

    def load_common(self):
        self.calls.append("load_common")
        return {"dark": 1.0}

    def load_weight(self):
        self.calls.append("load_weight")
        return None

    def load(self, indices):
        self.calls.append(("load", [int(i) for i in indices]))
        raw = {}
        for i in indices:
            frame = np.zeros(self.RAW, np.float32)
            frame[self.DOT] = 100.0
            frame[0, 0] = i
            raw[int(i)] = frame
        return raw, {}, {}

    def correct(self, raw, weights, common):
        self.calls.append("correct")
        return super().correct(raw, weights, common)


def drain(scan, frames):
    """Call auto until EOS; return the list of chunk sizes / messages (two EOS at the end)."""
    out = []
    for _ in range(100):
        msg = scan.auto(frames)
        out.append(msg if msg in (WAIT, EOS) else len(msg))
        if msg is EOS:
            out.append(scan.auto(frames))
            return out
    raise AssertionError(f"no EOS after 100 calls: {out}")


def chunks_of(scan, frames=100):
    out = []
    while (msg := scan.auto(frames)) is not EOS:
        if msg is not WAIT:
            out.append(msg)
    return out


# --- WAIT / EOS traces (ptypy 0.9's measured behaviour) -----------------------------------


def test_trace_50_frames_by_30():
    scan = get_scan("MoonFlowerScan")(num_frames=50, shape=32, seed=0)
    assert drain(scan, 30) == [30, 20, EOS, EOS]


def test_trace_min_frames_delivers_short_final_chunk():
    scan = get_scan("MoonFlowerScan")(num_frames=25, min_frames=10, shape=32, seed=0)
    assert drain(scan, 10) == [10, 10, 5, EOS, EOS]


def test_trace_block_wait_count():
    scan = get_scan("MoonFlowerScan")(num_frames=30, block_wait_count=1, shape=32, seed=0)
    assert drain(scan, 10) == [10, WAIT, 10, WAIT, 10, EOS, EOS]


def test_wait_while_fewer_than_min_frames_and_not_at_end():
    class Live(DotScan):
        available = 3

        def check(self, frames=None, start=None):
            return max(0, min(frames, self.available - start)), self.available >= 20

    scan = Live(num_frames=20, min_frames=5)
    assert scan.auto(10) is WAIT
    scan.available = 8
    assert len(scan.auto(10)) == 8
    scan.available = 20
    assert len(scan.auto(10)) == 10
    assert len(scan.auto(10)) == 2
    assert scan.auto(10) is EOS


def test_unknown_end_is_an_error_not_endless_wait():
    class NoEnd(DotScan):
        def load_positions(self):
            return None

    scan = NoEnd(positions_theory=None)
    with pytest.raises(ScanError, match="end_of_scan is None but num_frames is unknown"):
        scan.auto(5)


def test_abort_ends_the_scan():
    scan = DotScan(num_frames=10)
    assert len(scan.auto(4)) == 4
    scan.abort = True
    assert scan.auto(4) is EOS


def test_get_data_chunk_with_explicit_start():
    scan = DotScan(num_frames=10, shape=DotScan.RAW)
    chunk = scan.get_data_chunk(3, start=5)
    assert chunk.indices.tolist() == [5, 6, 7]
    assert chunk.data[:, 0, 0].tolist() == [5, 6, 7]
    assert scan.get_data_chunk(3).indices.tolist() == [8, 9]


# --- hooks and parameters -----------------------------------------------------------------


def test_construction_loads_nothing_and_hooks_run_in_order():
    scan = DotScan(num_frames=6)
    assert scan.calls == []
    chunk = scan.auto(4)
    assert scan.calls[:3] == ["load_positions", "load_weight", "load_common"]  # ptypy's order
    assert scan.calls[3:] == [("load", [0, 1, 2, 3]), "correct"]
    assert isinstance(chunk, Chunk)


def test_kwargs_override_pars_and_reach_subclass_logic():
    scan = get_scan("MoonFlowerScan")({"num_frames": 50, "shape": 64}, num_frames=7, seed=0)
    assert scan.info.num_frames == 7
    assert sum(len(c) for c in chunks_of(scan)) == 7
    assert scan.true_probe.shape == (64, 64)


def test_default_dict_is_the_documented_surface():
    cls = get_scan("MoonFlowerScan")
    assert cls.DEFAULT["shape"] == [128, 128]
    assert cls.DEFAULT["num_frames"] == 100
    assert PtyScan.DEFAULT["shape"] == [256, 256]
    assert set(PtyScan.DEFAULT) < set(cls.DEFAULT)


def test_bad_parameter_names_key_value_and_hint():
    with pytest.raises(RecipeError) as err:
        DotScan(shape=-3, engery=7.0)
    text = str(err.value)
    assert "scan.shape: must be a positive int or a pair (ny, nx) of positive ints, got -3" in text
    assert "scan.engery: unknown key (did you mean 'energy'?)" in text


def test_positions_theory_overrides_positions_and_num_frames():
    theory = np.array([[0.0, 0.0], [1e-6, 0.0], [2e-6, 1e-6]])
    scan = DotScan(num_frames=10, positions_theory=theory)
    (chunk,) = chunks_of(scan)
    assert scan.num_frames == 3
    np.testing.assert_array_equal(chunk.positions, theory)
    assert "load_positions" not in scan.calls


def test_fewer_positions_lower_num_frames(caplog):
    class Few(DotScan):
        def load_positions(self):
            return np.zeros((4, 2))

    scan = Few(num_frames=10)
    with caplog.at_level(logging.WARNING):
        scan.initialize()
    assert scan.num_frames == 4
    assert "num_frames lowered to 4" in caplog.text


def test_positions_from_load_win_and_missing_positions_are_an_error():
    class PosInLoad(DotScan):
        def load(self, indices):
            raw, _, w = super().load(indices)
            return raw, {int(i): (float(i), -float(i)) for i in indices}, w

    chunk = PosInLoad(num_frames=3).auto(3)
    np.testing.assert_array_equal(chunk.positions, [[0, 0], [1, -1], [2, -2]])

    class NoPos(DotScan):
        def load_positions(self):
            return None

    with pytest.raises(ScanError, match="no position for frame 0"):
        NoPos(num_frames=3).auto(3)


def test_load_errors_are_clear():
    class Missing(DotScan):
        def load(self, indices):
            raw, p, w = super().load(indices)
            raw.pop(int(indices[-1]))
            return raw, p, w

    with pytest.raises(ScanError, match=r"returned no frame for indices \[2\]"):
        Missing(num_frames=3).auto(3)

    class Wrong(DotScan):
        def load(self, indices):
            return {}

    with pytest.raises(ScanError, match=r"must return \(raw, positions, weights\)"):
        Wrong(num_frames=3).auto(3)

    with pytest.raises(ScanError, match="override load"):
        PtyScan(num_frames=2, positions_theory=[[0, 0], [1, 1]]).auto(2)


def test_frame_shape_change_is_detected():
    class Grows(DotScan):
        def load(self, indices):
            raw, p, w = super().load(indices)
            if indices[0] > 0:
                raw = {k: np.pad(v, 1) for k, v in raw.items()}
            return raw, p, w

    scan = Grows(num_frames=4)
    scan.auto(2)
    with pytest.raises(ScanError, match=r"frame shape changed from \(40, 50\) to \(42, 52\)"):
        scan.auto(2)


def test_correct_clips_negatives_and_output_is_float32():
    class Negative(DotScan):
        def load(self, indices):
            raw, p, w = super().load(indices)
            return {k: (v - 5).astype(np.int32) for k, v in raw.items()}, p, w

    chunk = Negative(num_frames=2, shape=(40, 50), center=(20, 25)).auto(2)
    assert chunk.data.dtype == np.float32
    assert chunk.data.min() == 0
    assert chunk.data.max() == 95


# --- weights --------------------------------------------------------------------------------


def test_weights_fall_back_to_weight2d_then_ones():
    mask = np.ones(DotScan.RAW, np.float32)
    mask[5:8, 9:12] = 0

    class Masked(DotScan):
        def load_weight(self):
            return mask

    kw = dict(num_frames=3, shape=DotScan.RAW, center=(20, 25))
    chunk = Masked(**kw).auto(3)
    assert chunk.weights.shape == chunk.data.shape
    np.testing.assert_array_equal(chunk.weights[2], mask)
    np.testing.assert_array_equal(DotScan(**kw).auto(3).weights, 1.0)

    class PerFrame(Masked):
        def load(self, indices):
            raw, p, _ = super().load(indices)
            return raw, p, {int(indices[0]): np.full(self.RAW, 0.5, np.float32)}

    chunk = PerFrame(**kw).auto(3)
    np.testing.assert_array_equal(chunk.weights[0], 0.5)
    np.testing.assert_array_equal(chunk.weights[1], mask)


def test_padding_fills_data_and_weights_with_zero():
    chunk = DotScan(num_frames=1, shape=(60, 70), center=(20, 25)).auto(1)
    assert chunk.data.shape == (1, 60, 70)
    # rows 0..9 and 50..59, columns 0..9 and 60..69 are padding
    assert chunk.weights[0, :10].max() == 0 and chunk.weights[0, 50:].max() == 0
    assert chunk.weights[0, :, :10].max() == 0 and chunk.weights[0, :, 60:].max() == 0
    assert chunk.weights[0, 10:50, 10:60].min() == 1


# --- centre, crop, orientation, rebin ---------------------------------------------------


@pytest.mark.parametrize(
    ("center", "expected"),
    [("fftshift", (20, 25)), ("geometric", (19.5, 24.5)), ("fft", (0, 0)), ((13, 31), (13, 31))],
)
def test_center_choices_put_that_pixel_at_shape_half(center, expected):
    chunk = DotScan(num_frames=1, shape=(16, 18), center=center, auto_center=False).auto(1)
    # the raw pixel round(expected) lands on (8, 9) (round half up)
    ry, rx = (int(np.floor(v + 0.5)) for v in expected)
    raw = np.zeros(DotScan.RAW, np.float32)
    raw[DotScan.DOT] = 100.0
    want = np.zeros((16, 18), np.float32)
    for y in range(16):
        for x in range(18):
            sy, sx = ry - 8 + y, rx - 9 + x
            if 0 <= sy < 40 and 0 <= sx < 50 and (sy, sx) != (0, 0):
                want[y, x] = raw[sy, sx]
    np.testing.assert_array_equal(chunk.data[0], want)
    frac = np.asarray(expected) - np.floor(np.asarray(expected) + 0.5)
    np.testing.assert_allclose(chunk.meta.center, np.array([8, 9]) + frac)


def test_center_outside_frame_is_a_clear_error():
    with pytest.raises(ParameterError, match="outside"):
        DotScan(num_frames=1, center=(100, 3), shape=16).auto(1)


def test_auto_center_finds_mean_masked_centre_of_mass():
    mask = np.ones(DotScan.RAW, np.float32)
    mask[0, 0] = 0  # the index pixel would bias the centre of mass

    class Masked(DotScan):
        def load_weight(self):
            return mask

    for auto, center in ((True, "fftshift"), (None, None)):
        scan = Masked(num_frames=5, shape=16, auto_center=auto, center=center)
        chunk = scan.auto(5)
        assert chunk.meta.center == (8.0, 8.0)
        assert chunk.data[0, 8, 8] == 100.0  # the dot is the centre now
        # the centre is kept for later chunks
        assert scan._raw_center.tolist() == [13.0, 31.0]


def test_auto_center_false_without_center_uses_fftshift(caplog):
    with caplog.at_level(logging.WARNING):
        chunk = DotScan(num_frames=1, shape=(40, 50), center=None, auto_center=False).auto(1)
    assert "using 'fftshift'" in caplog.text
    assert chunk.meta.center == (20.0, 25.0)


@pytest.mark.parametrize("orientation", range(8))
def test_orientation_moves_frames_and_centre_together(orientation):
    kw = dict(num_frames=1, shape=(16, 18), center=(13, 31), auto_center=False)
    plain = DotScan(**kw).auto(1).data[0]
    chunk = DotScan(**kw, orientation=orientation).auto(1)
    want = plain
    if orientation & 4:
        want = want.T
    if orientation & 2:
        want = want[::-1]
    if orientation & 1:
        want = want[:, ::-1]
    np.testing.assert_array_equal(chunk.data[0], want)
    peak = np.unravel_index(np.argmax(chunk.data[0]), chunk.data[0].shape)
    assert tuple(float(p) for p in peak) == chunk.meta.center
    assert chunk.meta.shape == want.shape


def test_rebin_sums_and_scales_meta():
    class Ramp(DotScan):
        def load(self, indices):
            raw = {int(i): np.arange(40 * 50, dtype=np.float32).reshape(40, 50) for i in indices}
            return raw, {}, {}

    kw = dict(num_frames=2, shape=(16, 20), center=(20, 25), psize=(100e-6, 50e-6))
    plain = Ramp(**kw).auto(2)
    binned = Ramp(**kw, rebin=4).auto(2)
    want = plain.data.reshape(2, 4, 4, 5, 4).sum(axis=(2, 4))
    np.testing.assert_array_equal(binned.data, want)
    assert binned.meta.shape == (4, 5)
    assert binned.meta.psize == pytest.approx((400e-6, 200e-6))
    assert binned.meta.center == pytest.approx((2.0, 2.5))


def test_rebinned_weight_is_valid_only_if_all_subpixels_are():
    mask = np.ones(DotScan.RAW, np.float32)
    mask[12, 20] = 0  # inside the crop (rows 12..27, cols 17..32 for shape 16 at (20, 25))

    class Masked(DotScan):
        def load_weight(self):
            return mask

    chunk = Masked(num_frames=1, shape=16, center=(20, 25), rebin=2).auto(1)
    w = chunk.weights[0]
    assert w[0, 1] == 0  # block rows 12-13, cols 19-20 holds the masked pixel
    assert (w > 0).sum() == w.size - 1


def test_rectangular_frames_end_to_end():
    chunk = DotScan(
        num_frames=2, shape=(16, 24), center="fftshift", orientation=4, psize=(1e-4, 2e-4)
    ).auto(2)
    assert chunk.data.shape == (2, 24, 16)
    assert chunk.meta.shape == (24, 16)
    assert chunk.meta.psize == (2e-4, 1e-4)
    assert chunk.weights.shape == (2, 24, 16)


def test_chunk_arrays_are_read_only_with_contract_dtypes():
    chunk = DotScan(num_frames=3, shape=16).auto(3)
    assert chunk.indices.dtype == np.int64
    assert chunk.positions.dtype == np.float64
    assert chunk.weights.dtype == np.float32
    with pytest.raises(ValueError):
        chunk.data[0, 0, 0] = 1
    np.testing.assert_array_equal(chunk.all_indices, chunk.indices)


def test_report_and_meta():
    scan = DotScan(num_frames=3, shape=16, label="dots", energy=8.0)
    chunks_of(scan)
    text = scan.report()
    assert "3/3 frames in 1 chunks" in text
    assert scan.meta.label == "dots"
    assert scan.meta.wavelength_m == pytest.approx(1.5498e-10, rel=1e-4)


def test_correct_must_return_every_frame():
    class Drops(DotScan):
        def correct(self, raw, weights, common):
            return {}, weights

    with pytest.raises(ScanError, match=r"correct: returned no frame for indices \[0, 1\]"):
        Drops(num_frames=2).auto(2)
