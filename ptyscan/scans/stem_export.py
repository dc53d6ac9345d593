"""``meas_export``: the prepared patterns of a StemScan written to one file as they stream.

Each chunk is gathered on rank 0 (memory: one chunk) and written at its frame indices
into an ``(N, ky, kx)`` float32 HDF5 dataset ``meas`` or ``.npy`` array, the layout
PtyRAD exports (py4DGUI reads it as (Ny, Nx, ky, kx) after a reshape). The file is
``file_dir/file_name[_N_ky_kx].{h5,npy}``; ``file_dir`` None is the folder of the data.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

__all__ = ["MeasExporter"]

SUFFIXES = {"hdf5": ".h5", "npy": ".npy"}


class MeasExporter:
    """Write every chunk's frames on rank 0; :meth:`close` at the end of the scan."""

    def __init__(self, spec, *, default_dir, comm):
        self.spec, self.default_dir, self.comm = spec, default_dir, comm
        self.path = None
        self._out = None
        self._handle = None

    def _open(self, shape):
        spec = self.spec
        folder = spec.file_dir or self.default_dir or "."
        name = spec.file_name
        if spec.append_shape:
            name += "_" + "_".join(str(s) for s in shape)
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, name + SUFFIXES[spec.file_format])
        if spec.file_format == "npy":
            self._out = np.lib.format.open_memmap(self.path, "w+", np.float32, shape)
        else:
            self._handle = h5py.File(self.path, "w")
            self._out = self._handle.create_dataset(
                "meas", shape, np.float32, chunks=(1, *shape[1:])
            )

    def write(self, chunk, num_frames):
        """Gather ``chunk`` (collective) and write it on rank 0."""
        rows = self.comm.gather_rows(np.ascontiguousarray(chunk.data, np.float32))
        if self.comm.rank != 0:
            return
        if self._out is None:
            self._open((int(num_frames), *rows.shape[1:]))
        start = int(chunk.all_indices[0])
        self._out[start : start + len(rows)] = rows

    def close(self):
        if self._handle is not None:
            self._handle.close()
        elif self._out is not None:
            self._out.flush()
        self._out = self._handle = None
