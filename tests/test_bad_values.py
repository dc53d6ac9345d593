"""Bad values anywhere give a PtyScanError that names the key, never a raw traceback.

Every field of every registered scan's parameters and of the DM and ML engines is
given values of the wrong kind or absurd size; construction must either accept the
value or raise a :class:`PtyScanError`. The synthetic scans (which need no files)
are also initialised and asked for chunks, where grids no experiment has (a sample
pixel of 1e-40 m, an object of 1e12 pixels) must be refused before anything is
allocated.
"""

from __future__ import annotations

import math
import warnings

import pytest

from ptyscan.errors import ParameterError, PtyScanError, RecipeError
from ptyscan.parallel import SerialComm
from ptyscan.registry import ENGINES
from ptyscan.scans import BUILTIN_SCANS, get_scan

BAD = [
    "zzz",
    -3,
    0,
    1e30,
    math.nan,
    math.inf,
    {"a": 1},
    [1, 2, 3],
    [[1, 2], [3]],
    None,
    True,
    -1.5,
    "",
]


def _construct(cls, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notes of ptypy-style aliases
        return cls(**kwargs)


@pytest.mark.parametrize("name", sorted(BUILTIN_SCANS))
def test_scan_parameters_fail_cleanly(name):
    cls = get_scan(name)
    for field in cls.Params.model_fields:
        for bad in BAD:
            try:
                _construct(cls, comm=SerialComm(), **{field: bad})
            except PtyScanError as exc:
                assert str(exc).strip(), (field, bad)
            except Exception as exc:  # pragma: no cover - the failure report
                pytest.fail(f"{name}.{field}={bad!r}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("engine", ["DM", "ML"])
def test_engine_parameters_fail_cleanly(engine):
    cls = ENGINES.get(engine)
    for field in cls.Params.model_fields:
        for bad in BAD:
            try:
                _construct(cls, backend="numpy", **{field: bad})
            except PtyScanError:
                pass
            except Exception as exc:  # pragma: no cover - the failure report
                pytest.fail(f"{engine}.{field}={bad!r}: {type(exc).__name__}: {exc}")


def test_engine_name_of_the_wrong_type_is_named():
    with pytest.raises(RecipeError, match=r"DM\.name: input should be a valid string, got -3"):
        ENGINES.get("DM")(name=-3, backend="numpy")


@pytest.mark.parametrize("name", ["MoonFlowerScan", "QuickScan"])
def test_synthetic_scans_run_or_fail_cleanly(name):
    """Initialise and take chunks (6 frames of 32² unless the field is one of those)."""
    cls = get_scan(name)
    for field in cls.Params.model_fields:
        for bad in [*BAD, 1, 7, [2, 3], 0.5]:
            try:
                kwargs = {"num_frames": 6, "shape": 32, field: bad}
                scan = _construct(cls, comm=SerialComm(), **kwargs)
                scan.initialize()
                for _ in range(3):
                    scan.auto(4)
            except PtyScanError:
                pass
            except Exception as exc:  # pragma: no cover - the failure report
                pytest.fail(f"{name}.{field}={bad!r}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("MoonFlowerScan", {"density": 20}, "density: input should be less than or equal to 10"),
        ("MoonFlowerScan", {"photons": 1e30}, "photons: input should be less than or equal"),
        ("MoonFlowerScan", {"psf": math.inf}, "psf: input should be a finite number"),
        ("SimScan", {"psf": 1e30}, "psf: must be None, a Gaussian sigma in pixels"),
    ],
)
def test_absurd_sizes_are_refused_with_the_key(name, kwargs, match):
    with pytest.raises(RecipeError, match=match):
        _construct(get_scan(name), **kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        # 1 m detector pixels (a sample pixel of 2e-10 m): caught as a unit slip first
        ("SimScan", {"psize": 1.0}, r"scan\.psize: 1 m is outside 1e-07–0\.01 m .* in µm\?"),
        ("SimScan", {"psize": 1e30}, r"the sample pixel would be .* m; expected between 1e-14"),
        ("MoonFlowerScan", {"density": 10, "num_frames": 400_000}, r"object would be \d+×\d+"),
    ],
)
def test_simulation_grids_no_experiment_has_are_refused(name, kwargs, match):
    scan = _construct(get_scan(name), comm=SerialComm(), **kwargs)
    with pytest.raises(ParameterError, match=match):
        scan.initialize()
        scan.auto(4)
