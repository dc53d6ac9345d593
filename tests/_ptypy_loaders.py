"""Loaders written in ptypy 0.9's style for the tests (not ptypy's code), their data file,
and the same logic written natively for ptyscan, to compare frames.

``RELATIVE`` imports like the loaders shipped inside ptypy/experiment/ (``from ..core.data
import PtyScan``); ``ABSOLUTE`` like the newer ones (``from ptypy.core.data import
PtyScan``). Both use the docstring ``Defaults:`` block, ``register()``, ``DEFAULT.copy(99)``,
``u.Param``, ``u.expect2``, ``io.h5read``, ``log``, ``parallel`` and mutate ``self.info`` and
``self.meta`` as ptypy loaders do.
"""

from __future__ import annotations

import h5py
import numpy as np

from ptyscan import PtyScan, PtyScanParams
from ptyscan.params import Shape2

RAW = (20, 24)
N_FRAMES = 11

RELATIVE = '''
"""A ptypy-style loader (relative imports), written for ptyscan's tests."""

import h5py
import numpy as np

from ..core.data import PtyScan
from .. import utils as u
from .. import io
from . import register
from ..utils import parallel
from ..utils.verbose import log

logger = u.verbose.logger


@register()
class StyleLoader(PtyScan):
    """
    Frames from one HDF5 file, dark-subtracted, normalised by a monitor.

    Defaults:

    [name]
    default = StyleLoader
    type = str
    help =

    [path]
    default = None
    type = str
    help = The HDF5 file

    [scanNumber]
    default = 1
    type = int, list, tuple
    help = Scan number
    lowlim = 0

    [detector]
    default = 'eiger'
    type = str
    help = Detector group

    [positions]
    default =
    type = Param
    help = Where the positions are

    [positions.multiplier]
    default = 1e-6
    type = float
    help = Motor units to metres

    [positions.flip_x]
    default = False
    type = bool
    help = Flip the fast axis

    [shape]
    default = 16
    type = int, tuple
    help = Frame shape
    """

    def __init__(self, pars=None, **kwargs):
        self.p = self.DEFAULT.copy(99)
        self.p.update(pars, in_place_depth=99)
        super(StyleLoader, self).__init__(self.p, **kwargs)
        entry = "entry%d" % self.p.scanNumber
        nexus = io.h5read(self.p.path, entry + "/instrument")[entry + "/instrument"]
        self.meta.energy = nexus["energy"]  # a NeXus (1,) array
        self.meta.distance = float(nexus["distance"])
        self.info.psize = float(nexus["psize"])
        self.ranks_seen = parallel.allreduce(1)
        log(3, "StyleLoader on rank %d of %d" % (parallel.rank, parallel.size))
        self.extra = u.Param()
        self.extra.entry = entry

    def load_positions(self):
        assert isinstance(self.p.shape, (int, tuple))  # never a YAML list: ptypy's type
        with h5py.File(self.info.path, "r") as f:
            xy = np.array(f[self.extra.entry + "/measurement/xy"], dtype=float)
        if self.info.positions.flip_x:
            xy[:, 1] *= -1
        self.info.center = u.expect2(self.info.shape) // 2 + 1
        return xy * self.info.positions.multiplier

    def load_weight(self):
        with h5py.File(self.info.path, "r") as f:
            return np.array(f[self.extra.entry + "/mask"])

    def load_common(self):
        common = u.Param()
        with h5py.File(self.info.path, "r") as f:
            common.dark = np.array(f[self.extra.entry + "/dark"], dtype=float)
            common.monitor = np.array(f[self.extra.entry + "/measurement/monitor"], dtype=float)
        return common

    def load(self, indices):
        raw, positions, weights = {}, {}, {}
        key = "%s/%s/data" % (self.extra.entry, self.info.detector)
        with h5py.File(self.info.path, "r") as f:
            for i in indices:
                raw[i] = np.array(f[key][i], dtype=float)
        return raw, positions, weights

    def correct(self, raw, weights, common):
        data = {i: (frame - common.dark) / common.monitor[i] for i, frame in raw.items()}
        return data, weights
'''

ABSOLUTE = (
    RELATIVE.replace("from ..core.data import PtyScan", "from ptypy.core.data import PtyScan")
    .replace("from .. import utils as u", "import ptypy.utils as u")
    .replace("from .. import io", "from ptypy import io")
    .replace("from . import register", "from ptypy.experiment import register")
    .replace("from ..utils import parallel", "from ptypy.utils import parallel")
    .replace("from ..utils.verbose import log", "from ptypy.utils.verbose import log")
)


def write_data(path, *, seed=0, dark=15.0):
    """The HDF5 file the loaders read: frames, dark (mean ``dark``: some corrected values are
    negative), monitor, mask, xy (µm), NeXus meta."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["entry1/eiger/data"] = rng.poisson(20.0, (N_FRAMES, *RAW)).astype(np.uint16)
        f["entry1/dark"] = rng.poisson(dark, RAW).astype(np.uint16)
        mask = np.ones(RAW, np.uint8)
        mask[3, 4] = 0
        f["entry1/mask"] = mask
        f["entry1/measurement/xy"] = rng.uniform(-5, 5, (N_FRAMES, 2))
        f["entry1/measurement/monitor"] = rng.uniform(0.8, 1.2, N_FRAMES)
        f["entry1/instrument/energy"] = np.array([8.7])
        f["entry1/instrument/distance"] = 3.5
        f["entry1/instrument/psize"] = 75e-6
    return str(path)


class NativeParams(PtyScanParams):
    name: str = "NativeLoader"
    path: str | None = None
    shape: Shape2 = (16, 16)


class NativeLoader(PtyScan):
    """The same logic as the ptypy-style loaders, written for ptyscan."""

    Params = NativeParams

    def load_positions(self):
        with h5py.File(self.info.path, "r") as f:
            self.recorded_meta["energy"] = float(f["entry1/instrument/energy"][0])
            self.recorded_meta["distance"] = float(f["entry1/instrument/distance"][()])
            self.recorded_meta["psize"] = float(f["entry1/instrument/psize"][()])
            self.recorded_meta["center"] = (9.0, 9.0)
            return np.array(f["entry1/measurement/xy"], dtype=float) * 1e-6

    def load_weight(self):
        with h5py.File(self.info.path, "r") as f:
            return np.array(f["entry1/mask"])

    def load_common(self):
        with h5py.File(self.info.path, "r") as f:
            return {
                "dark": np.array(f["entry1/dark"], dtype=float),
                "monitor": np.array(f["entry1/measurement/monitor"], dtype=float),
            }

    def load(self, indices):
        with h5py.File(self.info.path, "r") as f:
            raw = {int(i): np.array(f["entry1/eiger/data"][i], dtype=float) for i in indices}
        return raw, {}, {}

    def correct(self, raw, weights, common):
        data = {i: (v - common["dark"]) / common["monitor"][i] for i, v in raw.items()}
        return data, weights


def write_loaders(folder):
    """Write both loader files into ``folder``; return their paths (relative, absolute)."""
    rel, absolute = folder / "style_relative.py", folder / "style_absolute.py"
    rel.write_text(RELATIVE)
    absolute.write_text(ABSOLUTE)
    return str(rel), str(absolute)
