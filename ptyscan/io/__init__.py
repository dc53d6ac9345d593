"""Files: prepared data (``.ptyd``), results (``.ptyr``), pictures, atomic writes.

Floor 1: imports only :mod:`ptyscan.errors`, :mod:`ptyscan._version`,
:mod:`ptyscan.registry` and :mod:`ptyscan.geometry`, so every other part of ptyscan
may use it.

- :mod:`~ptyscan.io.atomic`: write beside, fsync, rename over.
- :mod:`~ptyscan.io.h5typed`, :mod:`~ptyscan.io.h5frames`: ptypy's typed HDF5
  values; frame stacks compressed in parallel.
- :mod:`~ptyscan.io.ptyd_format`, :mod:`~ptyscan.io.ptyd_write`,
  :mod:`~ptyscan.io.ptyd_read`: the ``.ptyd`` layout, its writer and reader.
- :mod:`~ptyscan.io.results`, :mod:`~ptyscan.io.plots`: ``.ptyr`` results and PNGs.
- :mod:`~ptyscan.io.ptyrad`: PtyRAD's model files (positions, a result to start from).
- :mod:`~ptyscan.io.sinks`: the writer interface; a new format is one module.
- :mod:`~ptyscan.io.exports`: CXI/NeXus, ptypy's ``.ptyr``, npz and TIFF results.
"""

from .atomic import atomic_path
from .ptyd_read import (
    PtydContents,
    describe_ptyd,
    ptyd_chunk_ids,
    ptyd_chunk_sizes,
    read_chunk,
    read_info,
    read_meta,
    read_ptyd,
)
from .ptyd_write import PtydWriter
from .results import PtyrSink, Result, make_result, read_ptyr, write_ptyr

__all__ = [
    "PtydContents",
    "PtydWriter",
    "PtyrSink",
    "Result",
    "atomic_path",
    "describe_ptyd",
    "make_result",
    "ptyd_chunk_ids",
    "ptyd_chunk_sizes",
    "read_chunk",
    "read_info",
    "read_meta",
    "read_ptyd",
    "read_ptyr",
    "write_ptyr",
]
