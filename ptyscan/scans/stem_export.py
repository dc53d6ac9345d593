"""``meas_export``: the prepared patterns of a StemScan written to one file as they stream.

Each chunk is gathered on rank 0 (memory: one chunk) and written at its frame indices
into an ``(N, ky, kx)`` float32 array, the layout PtyRAD exports (py4DGUI reads it as
(Ny, Nx, ky, kx) after a reshape), or into ``output_shape`` (its leading axes regroup
the N frames, e.g. ``[Ny, Nx, ky, kx]``): an HDF5 dataset ``meas`` (``hdf5``, and
``mat``: the same HDF5 file named ``.mat``, as PtyRAD writes it), a ``.npy`` array or a
multi-page TIFF (``tif``: chunks must come in order, one page per frame). The file is
``file_dir/file_name[_shape].<file_format>``; ``file_dir`` None is the folder of the data.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..errors import ScanError
from .stem_sources import slab_runs

__all__ = ["MeasExporter"]


class MeasExporter:
    """Write every chunk's frames on rank 0; :meth:`close` at the end of the scan."""

    def __init__(self, spec, *, default_dir, comm):
        self.spec, self.default_dir, self.comm = spec, default_dir, comm
        self.path = None
        self._out = None
        self._handle = None
        self._lead = None
        self._written = 0

    def _shape(self, shape):
        """``output_shape`` (one -1 allowed) checked against the (N, ky, kx) frames."""
        wanted = self.spec.output_shape
        if wanted is None:
            return shape
        wanted = list(wanted)
        known = int(np.prod([s for s in wanted if s != -1]))
        if wanted.count(-1) == 1 and known and int(np.prod(shape)) % known == 0:
            wanted[wanted.index(-1)] = int(np.prod(shape)) // known
        if int(np.prod(wanted)) != int(np.prod(shape)) or tuple(wanted[-2:]) != shape[1:]:
            raise ScanError(
                f"scan.meas_export.output_shape: got {list(self.spec.output_shape)}; expected "
                f"a shape of the {shape[0]} frames ending in the detector {list(shape[1:])}, "
                f"e.g. [Ny, Nx, {shape[1]}, {shape[2]}] with Ny·Nx = {shape[0]}"
            )
        return tuple(wanted)

    def _open(self, shape):
        spec = self.spec
        shape = self._shape(shape)
        self._lead = shape[:-2]
        folder = spec.file_dir or self.default_dir or "."
        name = spec.file_name
        if spec.append_shape:
            name += "_" + "_".join(str(s) for s in shape)
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, f"{name}.{spec.file_format}")
        if spec.file_format == "npy":
            self._out = np.lib.format.open_memmap(self.path, "w+", np.float32, shape)
        elif spec.file_format == "tif":
            import tifffile

            self._handle = tifffile.TiffWriter(self.path)
        else:  # hdf5, and mat (HDF5 named .mat, as PtyRAD)
            self._handle = h5py.File(self.path, "w")
            chunks = (*[1] * len(self._lead), *shape[-2:])
            self._out = self._handle.create_dataset("meas", shape, np.float32, chunks=chunks)

    def write(self, chunk, num_frames):
        """Gather ``chunk`` (collective) and write it on rank 0."""
        rows = self.comm.gather_rows(np.ascontiguousarray(chunk.data, np.float32))
        if self.comm.rank != 0:
            return
        if self.path is None:
            self._open((int(num_frames), *rows.shape[1:]))
        start = int(chunk.all_indices[0])
        if self.spec.file_format == "tif":
            if start != self._written:
                raise ScanError(
                    f"scan.meas_export: frames {start}.. arrived after {self._written} "
                    "frames; a tif export needs them in order (use hdf5 or npy)"
                )
            metadata = {"shape": (*self._lead, *rows.shape[1:])} if start == 0 else None
            self._handle.write(rows, contiguous=True, photometric="minisblack", metadata=metadata)
            self._written += len(rows)
            return
        leads = np.stack(np.unravel_index(np.arange(start, start + len(rows)), self._lead), 1)
        for first, stop, sel in slab_runs(leads):
            self._out[sel] = rows[first:stop]

    def close(self):
        if self._handle is not None:
            self._handle.close()
        elif self._out is not None:
            self._out.flush()
        self._out = self._handle = None
