"""PtydScan: a ``.ptyd`` file (ours or ptypy's, append or link mode) read back as a scan.

Constructed as in ptypy, ``get_scan("PtydScan")(dfile=path)``: the default
``source='file'`` reads ``dfile``. The file's meta (shape, psize, energy,
distance, centre) is used wherever the corresponding parameter is None (the
default), so frames are delivered as stored unless re-processing is asked for
(``shape``, ``rebin``, ``orientation``, ``center``). To re-process into a new
file, give ``source`` (the input) and ``dfile`` + ``save`` (the output).

A file still being written (fewer frames than ``meta.num_frames``) gives
``WAIT`` until more chunks arrive; a dangling link part is skipped.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ScanError
from ..io.ptyd_read import ptyd_chunk_sizes, read_chunk, read_info, read_meta
from ..params import OptionalPair, OptionalPositiveFloat, OptionalShape2
from ..scan import PtyScan
from ..scan_params import Center, PtyScanParams

__all__ = ["PtydParams", "PtydScan"]


class PtydParams(PtyScanParams):
    """Parameters of :class:`PtydScan`; geometry defaults to the file's meta."""

    name: str = "PtydScan"
    source: str | None = "file"
    """'file' (or None): read ``dfile``; a path: read that .ptyd (then ``dfile`` is the output)."""
    shape: OptionalShape2 = None
    """None: keep the stored frame shape (no crop); else crop/pad to (ny, nx)."""
    center: Center = None
    """None: the file's meta centre; else as for PtyScan (re-centres when shape is set)."""
    psize: OptionalPair = None
    """Detector pixel size in metres; None: from the file."""
    distance: OptionalPositiveFloat = None
    """Sample-detector distance in metres; None: from the file."""
    energy: OptionalPositiveFloat = None
    """Photon energy in keV; None: from the file."""


class PtydScan(PtyScan):
    """Prepared data from a .ptyd file (ptyscan's or ptypy's), append or link mode."""

    Params = PtydParams

    def __init__(self, pars=None, *, comm=None, **kwargs):
        super().__init__(pars, comm=comm, **kwargs)
        p = self.info
        self.source = p.dfile if p.source in (None, "file") else p.source
        if self.source is None:
            raise ScanError("PtydScan: no input file: set scan.dfile (or scan.source) to a .ptyd")
        if p.save is not None and os.path.abspath(self.source) == os.path.abspath(p.dfile):
            raise ScanError(
                f"PtydScan: cannot save into the file it reads ({p.dfile}); set scan.source to "
                "the input .ptyd and scan.dfile to a new output file"
            )
        self._frame_map = None
        self._cached = (None, None)

    def load_common(self):
        ptyd_chunk_sizes(self.source)  # a file without the chunks layout fails here, clearly
        meta = read_meta(self.source)
        p = self.info
        for key in ("energy", "distance", "psize"):
            if getattr(p, key) is None:
                if meta.get(key) is None:
                    raise ScanError(
                        f"PtydScan: {self.source} has no meta/{key}; set scan.{key} explicitly"
                    )
                self.recorded_meta[key] = meta[key]
        if p.center is None and meta.get("center") is not None:
            self.recorded_meta["center"] = tuple(float(c) for c in meta["center"])
        if p.label is None and meta.get("label") is not None:
            self.recorded_meta["label"] = meta["label"]
        stored = read_info(self.source).get("propagation")
        if stored in ("farfield", "nearfield") and "propagation" not in self.info.model_fields_set:
            self.recorded_meta["propagation"] = stored
        if self.num_frames is None and meta.get("num_frames") is not None:
            self.num_frames = int(meta["num_frames"])
        return {}

    def _refresh(self):
        """Map scan frame k → (chunk id, row) over the complete chunks, in chunk order."""
        sizes = ptyd_chunk_sizes(self.source)
        self._frame_map = [(cid, row) for cid, n in sorted(sizes.items()) for row in range(n)]
        return self._frame_map

    def check(self, frames=None, start=None):
        start = self.framestart if start is None else start
        frames = self.info.min_frames if frames is None else frames
        available = len(self._refresh())
        accessible = max(0, min(frames, available - start))
        if self.num_frames is None:
            return accessible, start + accessible >= available
        return accessible, None

    def _chunk(self, cid):
        if self._cached[0] != cid:
            self._cached = (cid, read_chunk(self.source, cid))
        return self._cached[1]

    def load(self, indices):
        if self._frame_map is None or max(indices) >= len(self._frame_map):
            self._refresh()
        raw, positions, weights = {}, {}, {}
        for k in indices:
            cid, row = self._frame_map[int(k)]
            chunk = self._chunk(cid)
            raw[int(k)] = np.asarray(chunk["data"][row])
            positions[int(k)] = chunk["positions"][row]
            if chunk["weights"] is not None and np.size(chunk["weights"]):
                weights[int(k)] = chunk["weights"][row]
        return raw, positions, weights
