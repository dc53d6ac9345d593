"""ptyscan.compat.ptypy's pieces on their own: Param, expect2, io, parallel, Defaults blocks,
self.info and self.meta of the ptypy-flavoured PtyScan (issue 11)."""

import logging

import numpy as np
import pytest

from ptyscan.compat.ptypy import io
from ptyscan.compat.ptypy import utils as u
from ptyscan.compat.ptypy.core.data import PtyScan
from ptyscan.compat.ptypy.experiment import register
from ptyscan.compat.ptypy.utils import parallel
from ptyscan.errors import RecipeError, ScanError
from ptyscan.parallel import SerialComm

# --- Param ------------------------------------------------------------------------------


def test_param_is_an_attribute_dict_with_dotted_keys():
    p = u.Param(a=1, b={"c": 2})
    p.d = 3
    p["e.f"] = 4
    assert (p.a, p["b"]["c"], p.d, p.e.f, p["e.f"]) == (1, 2, 3, 4, 4)
    assert "e.f" in p and "e.g" not in p
    with pytest.raises(AttributeError, match="no key 'zz'"):
        _ = p.zz


def test_param_copy_depth_and_update_in_place_depth():
    p = u.Param(g=u.Param(x=1, y=2))
    shallow, deep = p.copy(), p.copy(99)
    assert shallow.g is p.g and deep.g is not p.g
    inner = p.g
    p.update({"g": {"x": 5}}, in_place_depth=1)
    assert p.g is inner and (p.g.x, p.g.y) == (5, 2)
    p.update({"g": {"x": 6}})  # depth 0: replaced, as in ptypy
    assert p.g == {"x": 6}


def test_expect2_expect3_and_units():
    np.testing.assert_array_equal(u.expect2(3.0), [3.0, 3.0])
    np.testing.assert_array_equal(u.expect2((1, 2, 3)), [1, 2])
    np.testing.assert_array_equal(u.expect3((1, 2)), [1, 2, 2])
    assert u.m2keV(u.keV2m(8.0)) == pytest.approx(8.0)
    assert u.electron_wavelength(300.0) == pytest.approx(1.9687e-12, rel=1e-3)


def test_log_levels_map_to_logging(caplog):
    with caplog.at_level(logging.DEBUG, logger="ptyscan.compat.ptypy"):
        u.log(2, "careful")
        u.verbose.log(5, "detail")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "careful"),
        (logging.DEBUG, "detail"),
    ]


def test_h5write_h5read_round_trip(tmp_path):
    path = str(tmp_path / "f.h5")
    io.h5write(path, {"entry": {"data": np.arange(6).reshape(2, 3), "name": "x"}, "e": 8.5})
    everything = io.h5read(path)
    np.testing.assert_array_equal(everything["entry"]["data"], np.arange(6).reshape(2, 3))
    assert everything["entry"]["name"] == "x" and everything["e"] == 8.5
    part = io.h5read(path, "entry/data", slice=(1,))
    np.testing.assert_array_equal(part["entry/data"], [3, 4, 5])
    with pytest.raises(KeyError, match="has no 'nope'"):
        io.h5read(path, "nope")


def test_parallel_without_mpi_is_one_rank():
    parallel.use_comm(SerialComm())
    assert (parallel.rank, parallel.size, parallel.master, parallel.MPIenabled) == (
        0,
        1,
        True,
        False,
    )
    a = np.ones(3)
    assert parallel.allreduce(a) is a and parallel.bcast({"k": 1}) == {"k": 1}
    assert parallel.gather_dict({1: "a"}) == {1: "a"}
    assert parallel.bcast_dict({1: "a", 2: "b"}, keys=[2]) == {2: "b"}
    parallel.barrier()


# --- Defaults blocks --------------------------------------------------------------------


@register()
class Base(PtyScan):
    """
    A base loader.

    Defaults:

    [name]
    default = Base
    type = str
    help =

    [count]
    default = 3
    type = int
    help = How many
    lowlim = 1
    uplim = 10

    [ratio]
    default = 0.5
    type = float
    help = A ratio

    [mode]
    default = 'fast'
    type = str
    help = A quoted string default

    [numbers]
    default = [1, 2]
    type = list, tuple
    help = Evaluated list

    [group.sub.leaf]
    default = None
    type = str
    help = Deep, with implicit parents

    [shape]
    default = None
    type = int, tuple
    help = ptypy's shape None: the full frame
    """

    def load(self, indices):
        return {int(i): np.ones((6, 6)) for i in indices}, {}, {}


@register()
class Child(Base):
    """
    Defaults:

    [count]
    default = 5

    [extra]
    default = True
    type = bool
    help = Only in the child
    """


def test_defaults_are_read_typed_and_inherited():
    d = Base.DEFAULT
    assert isinstance(d, u.Param) and isinstance(PtyScan.DEFAULT, u.Param)
    assert (d.count, d.ratio, d.mode, d.numbers, d.shape) == (3, 0.5, "fast", [1, 2], None)
    assert d.group.sub.leaf is None and d.rebin == 1 and d.name == "Base"
    c = Child.DEFAULT
    assert (c.count, c.extra, c.mode) == (5, True, "fast")
    assert "How many" in (Child.Params.model_fields["count"].description or "")
    assert "extra" not in Base.DEFAULT


@pytest.mark.parametrize(
    ("pars", "problem"),
    [
        ({"cout": 2}, "scan.cout: unknown key (did you mean 'count'?)"),
        ({"count": 0}, "scan.count: must be >= 1, got 0"),
        ({"count": 11}, "scan.count: must be <= 10, got 11"),
        ({"count": 2.5}, "scan.count: must be of type int, got 2.5"),
        ({"ratio": "a"}, "scan.ratio: must be of type float, got 'a'"),
        (
            {"group": {"sub": {"leaf": 3}}},
            "scan.group.sub.leaf: must be of type str or None, got 3",
        ),
        ({"group": {"sub": {"leaf2": 3}}}, "scan.group.sub.leaf2: unknown key"),
        ({"shape": -3}, "scan.shape: must be a positive int"),
    ],
)
def test_bad_parameters_get_one_line_errors(pars, problem):
    with pytest.raises(RecipeError) as err:
        Base(pars)
    assert any(line.startswith(problem) for line in err.value.problems), err.value.problems


def test_a_bad_defaults_block_is_named():
    with pytest.raises(ScanError, match=r"Bad: the docstring's Defaults: block"):

        @register()
        class Bad(PtyScan):
            """
            Defaults:

            default = 1
            """


# --- info and meta ----------------------------------------------------------------------


class Mutating(Base):
    """Changes info and meta the way ptypy loaders do."""

    def __init__(self, pars=None, **kwargs):
        super().__init__(pars, **kwargs)
        self.meta.energy = np.array([9.5])  # in __init__, a NeXus (1,) array
        self.info.center = np.array([3, 3])

    def load_positions(self):
        self.info.shape = 4
        self.meta.distance = 2.0
        self.num_frames = 3
        return np.zeros((5, 2))


def test_info_is_mutable_and_read_back_validated():
    scan = Mutating()
    assert scan.info.center.tolist() == [3, 3]  # what the loader wrote, as written
    chunk = scan.auto(10)
    assert scan.params.center == (3.0, 3.0) and scan.params.shape == (4, 4)
    assert chunk.data.shape == (3, 4, 4)
    assert (chunk.meta.energy, chunk.meta.distance) == (9.5, 2.0)
    assert scan.meta.energy == 9.5 and scan.meta.shape == (4, 4)


def test_a_bad_info_value_names_where_it_was_set():
    class BadInfo(Base):
        def load_positions(self):
            self.info.count = "many"
            return np.zeros((2, 2))

    with pytest.raises(
        RecipeError,
        match=r"scan.count: must be of type int, got 'many' \(set by "
        r"BadInfo in its hooks\)",
    ):
        BadInfo().initialize()


def test_a_bad_meta_assignment_is_refused():
    scan = Base()
    with pytest.raises(ScanError, match=r"Base: meta.energy =: recorded meta energy must be 1"):
        scan.meta.energy = np.array([1.0, 2.0])
    with pytest.raises(ScanError, match=r"meta\.colour cannot be set"):
        scan.meta.colour = "red"


def test_finalize_is_called_once_at_the_end():
    class Closing(Base):
        closed = 0

        def load_positions(self):
            return np.zeros((2, 2))

        def _finalize(self):
            type(self).closed += 1

    scan = Closing(shape=6)
    while scan.auto(5) is not None and Closing.closed == 0:
        pass
    scan.auto(5)
    assert Closing.closed == 1


def test_tuple_typed_keys_reach_the_loader_as_tuples():
    """A YAML recipe has no tuples; ptypy loaders write ``(n,) + self.p.shape``."""
    from ptyscan.compat.defaults import as_tuples

    assert "shape" in Base.TUPLE_KEYS and "numbers" not in Base.TUPLE_KEYS
    values = {"shape": [4, 4], "numbers": [1], "group": {"sub": {"leaf": [1]}}}
    assert as_tuples(values, {"shape", "group.sub.leaf"}) == {
        "shape": (4, 4),
        "numbers": [1],
        "group": {"sub": {"leaf": (1,)}},
    }
