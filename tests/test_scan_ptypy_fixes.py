"""What ptypy's own behaviour showed the lifecycle must do (issue 11): rebin None, hook
order, the .ptyd created by initialize, recorded meta checked per hook, frameorder arrays."""

import h5py
import numpy as np
import pytest

from ptyscan import PtyScan
from ptyscan.errors import ScanError
from ptyscan.params import validate_params
from ptyscan.scans.hdf5_params import Hdf5LoaderParams


class MetaScan(PtyScan):
    """Four 8×8 frames; ``record`` maps a hook name to the meta values it records."""

    record: dict = {}

    def __init__(self, pars=None, **kwargs):
        self.calls = []
        super().__init__(pars, **kwargs)

    def _hook(self, name):
        self.calls.append(name)
        self.recorded_meta.update(self.record.get(name, {}))

    def load_positions(self):
        self._hook("load_positions")
        return np.zeros((4, 2))

    def load_weight(self):
        self._hook("load_weight")

    def load_common(self):
        self._hook("load_common")
        return {}

    def load(self, indices):
        return {int(i): np.full((8, 8), float(i)) for i in indices}, {}, {}


def test_rebin_none_means_one():
    scan = MetaScan(shape=8, rebin=None)
    assert scan.info.rebin == 1
    assert scan.auto(4).data.shape == (4, 8, 8)


def test_hooks_run_in_ptypys_order():
    scan = MetaScan(shape=8)
    scan.initialize()
    assert scan.calls == ["load_positions", "load_weight", "load_common"]


def test_initialize_creates_the_ptyd_when_save_is_set(tmp_path):
    dfile = tmp_path / "out.ptyd"
    scan = MetaScan(shape=8, save="append", dfile=str(dfile))
    scan.initialize()
    assert dfile.is_file()
    with h5py.File(dfile, "r") as f:
        assert "meta" in f and "info" in f


def test_a_nexus_1_array_recorded_as_meta_becomes_a_scalar():
    class Nexus(MetaScan):
        record = {"load_common": {"energy": np.array([8.7]), "psize": np.array([75e-6])}}

    meta = Nexus(shape=8).auto(4).meta
    assert meta.energy == 8.7 and meta.psize == (75e-6, 75e-6)


@pytest.mark.parametrize("hook", ["load_positions", "load_weight", "load_common"])
def test_a_recorded_meta_value_of_the_wrong_shape_names_the_hook(hook):
    class Bad(MetaScan):
        record = {hook: {"distance": np.array([1.0, 2.0, 3.0])}}

    with pytest.raises(ScanError, match=rf"Bad\.{hook}: recorded meta distance must be 1"):
        Bad(shape=8).initialize()


def test_frameorder_indices_accepts_a_numpy_array():
    p = validate_params(Hdf5LoaderParams, {"frameorder": {"indices": np.array([2, 0, 1])}})
    assert p.frameorder.indices == (2, 0, 1)
