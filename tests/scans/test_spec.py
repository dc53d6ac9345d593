"""SpecInfo (SPEC .dat files) and FliSpecScanMultexp (multi-exposure FLI frames, SPEC positions)."""

from datetime import datetime

import numpy as np
import pytest
import yaml
from _helpers import drain

from ptyscan import EOS, WAIT
from ptyscan.errors import RecipeError, ScanError, short_repr
from ptyscan.geometry import photon_energy_kev
from ptyscan.scans.optiklabor import FliSpecScanMultexp, merge_exposures, read_fli_raw
from ptyscan.scans.spec import SpecInfo

SPEC = """\
#F /data/spec/dat-files/spec_started_2013_11_21_1659.dat
#E 1385049552
#D Thu Nov 21 16:59:12 2013
#C opticslab  User = cdi
#O0 samx  samy  Two Theta
#O1 det z

#S 72  loopscan 4 0.1
#D Thu Nov 21 17:01:00 2013
#T 0.1  (Seconds)
#P0 0.5 1.25 -3
#P1 12 0.158
#N 3
#L Epoch  Seconds  det
1.5 0.1 120
2.5 0.1 118
3.5 0.1 121
4.5 0.1 119

#S 74  mesh  samy 0 0.2 1  samx 0 0.1 1  0.5
#D Thu Nov  7 17:02:11 2013
#P0 0.5 1.25 -3
#P1 12 0.158
#N 4
#L samy  samx  Seconds  det
0 0 0.5 1200
0 0 5 12000
0.2 0 0.5 1300
0.2 0 5 13000
@A 1 2 3 4
0 0.1 0.5 1400
0 0.1 5 14000
#C Thu Nov 21 17:03:40 2013.  Scan aborted after 6 points.

#S 75  ascan  Two Theta 1 2 1 1
#D Thu Nov 21 17:05:00 2013
#P0 0.5 1.25 -3.5
#P1 12 0.158
#N 2
#L Two Theta  det
1 5
2 6
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.dat"
    path.write_text(SPEC)
    return path


def test_file_header(spec_file):
    info = SpecInfo(spec_file)
    assert info.file_name == "/data/spec/dat-files/spec_started_2013_11_21_1659.dat"
    assert info.epoch == 1385049552
    assert info.date == datetime(2013, 11, 21, 16, 59, 12)
    assert info.motor_names == ["samx", "samy", "Two Theta", "det", "z"]
    assert sorted(info.scans) == [72, 74, 75]


def test_scans_exact(spec_file):
    info = SpecInfo(spec_file)
    s72, s74, s75 = info.scans[72], info.scans[74], info.scans[75]
    assert s72.command == "loopscan 4 0.1"
    assert s72.date == datetime(2013, 11, 21, 17, 1, 0)
    assert s72.motors == {"samx": 0.5, "samy": 1.25, "Two Theta": -3.0, "det": 12.0, "z": 0.158}
    assert s72.counters == ["Epoch", "Seconds", "det"]
    np.testing.assert_array_equal(s72.data["det"], [120, 118, 121, 119])
    assert not s72.aborted and s72.num_points == 4
    assert s72.lineno == 8

    assert s74.command == "mesh  samy 0 0.2 1  samx 0 0.1 1  0.5"
    assert s74.date == datetime(2013, 11, 7, 17, 2, 11)
    assert s74.counters == ["samy", "samx", "Seconds", "det"]
    np.testing.assert_array_equal(s74.data["samy"], [0, 0, 0.2, 0.2, 0, 0])
    np.testing.assert_array_equal(s74.data["samx"], [0, 0, 0, 0, 0.1, 0.1])
    np.testing.assert_array_equal(s74.data["det"], [1200, 12000, 1300, 13000, 1400, 14000])
    assert s74.data["det"].dtype == np.float64
    assert s74.aborted
    assert s74.comments == ["Thu Nov 21 17:03:40 2013.  Scan aborted after 6 points."]

    # a counter name holding one space ("Two Theta"), split by two spaces
    assert s75.counters == ["Two Theta", "det"]
    np.testing.assert_array_equal(s75.data["Two Theta"], [1, 2])
    assert s75.motors["Two Theta"] == -3.5


def test_single_space_names_are_read(tmp_path):
    path = tmp_path / "narrow.dat"
    path.write_text("#O0 a b\n\n#S 1 ascan a 0 1 1 1\n#P0 1 2\n#L a b det\n0 1 2\n1 1 3\n")
    scan = SpecInfo(path).scans[1]
    assert scan.motors == {"a": 1.0, "b": 2.0}
    assert scan.counters == ["a", "b", "det"]
    np.testing.assert_array_equal(scan.data["det"], [2, 3])


def test_parse_picks_up_appended_scans(spec_file):
    info = SpecInfo(spec_file)
    with open(spec_file, "a") as fh:
        fh.write("\n#S 76  timescan\n#D Thu Nov 21 17:09:00 2013\n#N 1\n#L det\n7\n")
    info.parse()
    assert sorted(info.scans) == [72, 74, 75, 76]
    np.testing.assert_array_equal(info.scans[76].data["det"], [7])


@pytest.mark.parametrize(
    ("replace", "lineno", "what"),
    [
        ("1.5 0.1 120", 15, "data row with a value that is not a number"),
        ("2.5 0.1 118", 16, "has 2 values, expected 3"),
        ("#S 72  loopscan 4 0.1", 8, "#S scan number must be an integer"),
        ("#P1 12 0.158", 12, "#P motor position that is not a number"),
        ("#N 3", 13, "#N column count must be an integer"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, replace, lineno, what):
    broken = {
        "1.5 0.1 120": "1.5 0.1 x120",
        "2.5 0.1 118": "2.5 0.1",
        "#S 72  loopscan 4 0.1": "#S seventy-two loopscan",
        "#P1 12 0.158": "#P1 12 zero",
        "#N 3": "#N three",
    }[replace]
    path = tmp_path / "bad.dat"
    path.write_text(SPEC.replace(replace, broken, 1))
    with pytest.raises(ScanError) as info:
        SpecInfo(path)
    message = str(info.value)
    assert f"{path}, line {lineno}: " in message
    assert what in message


def test_row_outside_a_scan_and_wrong_motor_count(tmp_path):
    path = tmp_path / "bad.dat"
    path.write_text("#F x\n1 2 3\n")
    with pytest.raises(ScanError, match=r"line 2: data row outside a scan"):
        SpecInfo(path)
    path.write_text("#O0 a  b\n\n#S 1 x\n#P0 1 2 3\n#L det\n1\n")
    with pytest.raises(ScanError, match=r"line 4: scan 1 has 3 motor positions but the #O"):
        SpecInfo(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ScanError, match=r"cannot read SPEC file .*nope.dat"):
        SpecInfo(tmp_path / "nope.dat")


# --- FliSpecScanMultexp ---------------------------------------------------------------------

FRAME = (8, 10)
TIMES = (0.1, 1.0)  # exposure 00 short, 01 long
LEVELS = np.array([0, 10, 3000, 20000, 100000, 1_000_000])
# what each level gives: long only (0, 10: below the low threshold in the short one),
# long only (3000), both averaged (20000), short only (100000: long saturated), none (1e6)


def write_raw(path, image, exp_time):
    rows, cols = image.shape
    header = (
        "cam_server_version = 1.4 fli\nccd_model = PL09000\n"
        f"rows = {rows}\ncols = {cols}\nexp_time_theory = {exp_time}\n"
        f"exp_time_measured = {exp_time}\nexp_time = {exp_time}\nEOH\n"
    )
    path.write_bytes(header.encode() + np.asarray(image, "<u2").tobytes())


def truth(n_frames, seed=0):
    rng = np.random.default_rng(seed)
    return LEVELS[rng.integers(0, len(LEVELS), size=(n_frames, *FRAME))].astype(np.float64)


def dark_level(e):
    return np.array([100.0, 300.0])[e] + np.arange(FRAME[1])  # per exposure, per column


def fli_setup(root, n_frames=3, spec_text=None, written=None):
    """base_path=root/: SPEC log, dark scan S00072 (2 frames), data scan S00074."""
    base = root / "ccdfli" / "S00000-00999"
    for e in range(2):
        for k, offset in enumerate((-1, 1)):  # two darks per exposure, mean = dark_level
            (base / "S00072").mkdir(parents=True, exist_ok=True)
            image = np.broadcast_to(dark_level(e) + offset, FRAME)
            write_raw(base / "S00072" / f"ccdfli_{k:05d}_{e:02d}.raw", image, TIMES[e])
    intensity = truth(n_frames)
    (base / "S00074").mkdir(parents=True, exist_ok=True)
    for j in range(n_frames if written is None else written):
        for e, t in enumerate(TIMES):
            raw = np.minimum(intensity[j] * t + dark_level(e), 65535)
            write_raw(base / "S00074" / f"ccdfli_{j:05d}_{e:02d}.raw", raw, t)
    logs = root / "spec" / "dat-files"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "spec_started_2013_11_21_1659.dat").write_text(spec_text or SPEC)
    return intensity


def fli(root, **kw):
    kw.setdefault("orientation", None)
    kw.setdefault("center", "fftshift")
    return FliSpecScanMultexp(base_path=f"{root}/", shape=FRAME, **kw)


def test_read_fli_raw(tmp_path):
    image = np.arange(80, dtype=np.uint16).reshape(FRAME) * 700
    write_raw(tmp_path / "a.raw", image, 0.25)
    got, header = read_fli_raw(tmp_path / "a.raw")
    np.testing.assert_array_equal(got, image)
    assert header["exposure"] == 0.25 and header["ccd_model"] == "PL09000"
    (tmp_path / "b.raw").write_bytes(b"rows = 8\ncols = 10\nexp_time = 1\nEOH\n" + b"\0" * 10)
    with pytest.raises(ScanError, match=r"too short for a 8x10 uint16 image"):
        read_fli_raw(tmp_path / "b.raw")


def test_merge_exposures_rules():
    darks = np.array([np.full((1, 6), 10.0), np.full((1, 6), 20.0)])
    counts = np.array([[0, 400, 600, 2000, 60000, 60000], [5, 4000, 6000, 60000, 60000, 2000]])
    frames = counts[:, None, :] + darks
    data, weight = merge_exposures(frames, [0.1, 1.0], darks=darks, thresholds=(500, 50000))
    # col 0/1: short below low -> long; col 2: both -> mean(6000, 6000); col 3: short only;
    # col 4: saturated in both -> weight 0; col 5: short saturated -> long
    np.testing.assert_array_equal(data[0], [5, 4000, 6000, 20000, 0, 2000])
    np.testing.assert_array_equal(weight[0], [1, 1, 1, 1, 0, 1])
    assert data.dtype == np.float32 and weight.dtype == np.float32
    with pytest.raises(ScanError, match=r"exposure times must be positive"):
        merge_exposures(frames, [0, 1.0])


def test_hdr_frames_positions_and_meta(tmp_path):
    intensity = fli_setup(tmp_path)
    scan = fli(tmp_path)
    chunks = drain(scan, 2)
    data = np.concatenate([c.data for c in chunks])
    weights = np.concatenate([c.weights for c in chunks])
    positions = np.concatenate([c.positions for c in chunks])
    saturated = intensity == LEVELS[-1]
    assert saturated.any() and (intensity == 100000).any() and (intensity == 10).any()
    np.testing.assert_array_equal(data, np.where(saturated, 0, intensity).astype(np.float32))
    np.testing.assert_array_equal(weights, (~saturated).astype(np.float32))
    # scan 74 logs 6 rows for 3 points of 2 exposures: every 2nd row, mm -> m
    np.testing.assert_allclose(positions, [[0, 0], [0.2e-3, 0], [0, 0.1e-3]], rtol=1e-15)
    meta = chunks[0].meta
    assert meta.energy == pytest.approx(photon_energy_kev(650e-9))
    assert (meta.distance, meta.psize, meta.num_frames) == (0.158, (24e-6, 24e-6), 3)
    assert scan.info.orientation is None
    assert FliSpecScanMultexp(base_path="/x/").info.orientation == 6  # ptypy's (T, T, F)


def test_live_frames_wait_for_the_last_exposure(tmp_path):
    fli_setup(tmp_path, written=2)
    scan = fli(tmp_path)
    assert len(scan.auto(5)) == 2
    assert scan.auto(5) is WAIT
    fli_setup(tmp_path)  # the third point arrives
    assert len(scan.auto(5)) == 1
    assert scan.auto(5) is EOS


def test_fli_errors(tmp_path):
    fli_setup(tmp_path)
    with pytest.raises(
        ScanError, match=r"scan 99 is not in the SPEC file .*; scans there: \[72, 74, 75\]"
    ):
        fli(tmp_path, scan_number=99).initialize()
    with pytest.raises(ScanError, match=r"no column 'samz' \(scan.motors\)"):
        fli(tmp_path, motors=("samy", "samz")).initialize()
    with pytest.raises(ScanError, match=r"no exposures of frame 0 in .*S00071"):
        fli(tmp_path, dark_number=71).initialize()
    with pytest.raises(RecipeError, match=r"scan.hdr_thresholds: must be \(low, high\)"):
        fli(tmp_path, hdr_thresholds=(500, 100))
    with pytest.raises(RecipeError, match=r"scan.data_dir_pattern: must be a %-pattern"):
        fli(tmp_path, data_dir_pattern="%(base)s/S%(scan_number)05d")
    # a data folder that does not exist is a wrong path, not a scan still running
    wrong = fli(tmp_path, data_dir_pattern="%(base_path)sccd/S%(scan_number)05d/")
    with pytest.raises(ScanError, match=r"the data folder .*ccd/S00074/ does not exist"):
        wrong.initialize()
        wrong.auto(2)


def test_no_darks_uses_frame_zero_exposures(tmp_path):
    intensity = fli_setup(tmp_path)
    scan = fli(tmp_path, dark_number=None, hdr_thresholds=(0, 70000))
    data = np.concatenate([c.data for c in drain(scan, 2)])
    raw = [np.minimum(intensity * t + dark_level(e), 65535) for e, t in enumerate(TIMES)]
    expected = (raw[0] * 10 + raw[1]) / 2  # nothing masked: mean of both, scaled to 1 s
    np.testing.assert_allclose(data, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Thu Nov 21 2013", datetime(2013, 11, 21)),  # no time: ptypy accepts it too
        ("Thu Nov 21 17:01 2013", datetime(2013, 11, 21, 17, 1)),
        ("2013-11-21T17:01:00", datetime(2013, 11, 21, 17, 1)),
        ("yesterday", "yesterday"),  # kept as text, with a warning
    ],
)
def test_a_date_never_stops_the_file(tmp_path, caplog, date, expected):
    path = tmp_path / "dates.dat"
    path.write_text(SPEC.replace("#D Thu Nov 21 17:01:00 2013", f"#D {date}", 1))
    with caplog.at_level("WARNING", logger="ptyscan.scans.spec"):
        info = SpecInfo(path)
    assert info.scans[72].date == expected
    warned = [r.getMessage() for r in caplog.records]
    if isinstance(expected, str):
        assert warned == [
            f"{path}:9: #D date 'yesterday' not understood (expected e.g. 'Thu Nov 21 16:59:12 2013'); kept as text"
        ]
    else:
        assert warned == []


def test_patterns_resolve_next_to_the_recipe_then_the_working_directory(tmp_path, monkeypatch):
    """A relative base_path (any relative pattern) is looked for next to the recipe, then
    in the working directory; in neither, each pattern's error names both paths."""
    from ptyscan.recipe import load_recipe

    beamtime, elsewhere = tmp_path / "beamtime", tmp_path / "elsewhere"
    intensity = fli_setup(beamtime / "exp")
    fli_setup(elsewhere / "cwd_exp")
    scan = {
        "name": "FliSpecScanMultexp",
        "base_path": "exp/",
        "shape": list(FRAME),
        "orientation": None,
        "center": "fftshift",
        "hdr_thresholds": [0, 70000],
    }
    (beamtime / "fli.yaml").write_text(yaml.safe_dump({"scan": scan}))
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(beamtime / "fli.yaml")
    assert (
        recipe.scan.data_dir_pattern == f"{beamtime}/%(base_path)s%(scan_dir)sS%(scan_number)05d/"
    )
    data = np.concatenate([c.data for c in drain(recipe.make_scan(), 2)])
    expected = np.concatenate(
        [c.data for c in drain(fli(beamtime / "exp", hdr_thresholds=(0, 70000)), 2)]
    )
    np.testing.assert_array_equal(data, expected)
    assert data.shape == intensity.shape
    # only in the working directory: the pattern stays relative and is read there
    (beamtime / "fli.yaml").write_text(yaml.safe_dump({"scan": {**scan, "base_path": "cwd_exp/"}}))
    recipe = load_recipe(beamtime / "fli.yaml")
    assert recipe.scan.log_file_pattern.startswith("%(base_path)s")
    assert len(np.concatenate([c.data for c in drain(recipe.make_scan(), 2)])) == 3
    # in neither: named with both places
    (beamtime / "fli.yaml").write_text(yaml.safe_dump({"scan": {**scan, "base_path": "nope/"}}))
    with pytest.raises(RecipeError) as info:
        load_recipe(beamtime / "fli.yaml")
    log = "nope/spec/dat-files/spec_started_2013_11_21_1659.dat"
    assert info.value.problems[0] == (
        f"scan.log_file_pattern: no such file or folder (searched {beamtime / log}, "
        f"{elsewhere / log}), got {short_repr(FliSpecScanMultexp.Params().log_file_pattern)}"
    )
    assert [p.split(":")[0] for p in info.value.problems] == [
        "scan.log_file_pattern",
        "scan.data_dir_pattern",
        "scan.dark_dir_pattern",
    ]
