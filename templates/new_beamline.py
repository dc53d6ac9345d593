"""Template: a PtyScan subclass for a new instrument. Copy it, rename it, edit the hooks.

This example reads a folder of detector frames saved as ``frame_00000.npy``,
``frame_00001.npy``, ... plus ``positions.csv`` (one line per frame: ``y_um, x_um``)
and an optional ``dark.npy`` and ``mask.npy``. It is a complete, working scan:

    python templates/new_beamline.py FOLDER OUT.ptyd      # prepare FOLDER into OUT.ptyd

What a subclass does NOT do: MPI, chunking, centring, cropping, orientation,
rebinning, saving. The PtyScan base class does all of that; hooks are called on
the right rank(s) and their results are shared. Hook names and return values
follow ptypy; a ptypy loader file runs unmodified (README "Porting from ptypy").

To use it from a recipe (``scan: {name: NpyFolderScan, folder: ...}``), register
the class in your package's ``pyproject.toml``::

    [project.entry-points."ptyscan.scans"]
    NpyFolderScan = "mybeamline.scan:NpyFolderScan"
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np

from ptyscan import PtyScan, PtyScanParams
from ptyscan.errors import ScanError


class NpyFolderParams(PtyScanParams):
    """Parameters of :class:`NpyFolderScan` (PtyScan's, plus the two below)."""

    # The defaults of PtyScanParams (shape, psize, energy, distance, ...) can be
    # changed here by re-declaring them, e.g. ``shape: Shape2 = (128, 128)``.
    name: str = "NpyFolderScan"
    folder: str = "."
    """Folder holding frame_NNNNN.npy, positions.csv and optionally dark.npy / mask.npy."""
    position_unit_m: float = 1e-6
    """Metres per unit of the numbers in positions.csv (1e-6: micrometres)."""


class NpyFolderScan(PtyScan):
    """Frames from a folder of .npy files with a positions CSV (template example)."""

    Params = NpyFolderParams  # unknown keys and bad values are rejected with clear messages

    # --- called once, on rank 0 (or every rank with load_parallel='common'/'all') ---

    def load_positions(self):
        """(N, 2) positions in metres, column 0 slow (y), column 1 fast (x)."""
        path = os.path.join(self.info.folder, "positions.csv")
        if not os.path.exists(path):
            raise ScanError(f"NpyFolderScan: {path} not found; write one 'y, x' line per frame")
        return np.loadtxt(path, delimiter=",", ndmin=2) * self.info.position_unit_m

    def load_weight(self):
        """2-D mask for all frames (> 0 = valid pixel), or None for all ones."""
        path = os.path.join(self.info.folder, "mask.npy")
        return np.load(path).astype(np.float32) if os.path.exists(path) else None

    def load_common(self):
        """Anything shared by all frames; broadcast to every rank."""
        path = os.path.join(self.info.folder, "dark.npy")
        return {"dark": np.load(path) if os.path.exists(path) else None}

    # --- called per chunk on the rank that owns the frames --------------------------

    def check(self, frames=None, start=None):
        """How many frames exist beyond ``start`` (a live scan grows while it runs)."""
        start = self.framestart if start is None else start
        written = len(glob.glob(os.path.join(self.info.folder, "frame_*.npy")))
        # end_of_scan None: the base class compares with num_frames (from positions)
        return max(0, min(frames, written - start)), None

    def load(self, indices):
        """Raw frames for ``indices`` as {index: 2-D array}; positions/weights dicts may be empty."""
        raw = {}
        for i in indices:
            raw[int(i)] = np.load(os.path.join(self.info.folder, f"frame_{int(i):05d}.npy"))
        return raw, {}, {}

    def correct(self, raw, weights, common):
        """Dark subtraction, clipped at zero (the default only clips)."""
        dark = common.get("dark")
        data = {}
        for i, frame in raw.items():
            frame = frame.astype(np.float32)
            if dark is not None:
                frame = frame - dark
            data[i] = np.clip(frame, 0, None)
        return data, weights


def main(argv=None):
    """Prepare FOLDER into OUT.ptyd (frames cropped to 64x64 around the auto-found centre)."""
    from ptyscan.app.streaming import iterate_chunks

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.exit("usage: python templates/new_beamline.py FOLDER OUT.ptyd")
    scan = NpyFolderScan(folder=argv[0], dfile=argv[1], save="append", shape=64, center=None)
    frames = sum(len(c.all_indices) for c in iterate_chunks(scan, frames_per_chunk=100))
    print(f"prepared {frames} frames -> {argv[1]} (centre {scan.meta.center})")


if __name__ == "__main__":
    main()
