"""The sink interface: what a prepared-data writer and a result writer must offer.

A new file format is one module holding one class, registered by name in
:mod:`ptyscan.registry` (built-ins) or through an entry point of another
package::

    [project.entry-points."ptyscan.result_formats"]
    cxi = "mypackage.cxi:CxiSink"

Prepared-data writers are chosen by the suffix of ``scan.dfile`` (``.ptyd``
and any unregistered suffix: :class:`~ptyscan.io.ptyd_write.PtydWriter`);
result writers by the recipe's ``run.result_formats`` (default ``[ptyr]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..registry import PREPARED_FORMATS, RESULT_FORMATS

__all__ = ["PreparedSink", "ResultSink", "prepared_sink_class", "result_sinks"]


@runtime_checkable
class PreparedSink(Protocol):
    """Writes prepared frames chunk by chunk (rank 0 only; see ``ChunkSaver``).

    Constructed as ``cls(path, *, save, compression, chunk_format, threads)``
    (the scan's ``save``, ``compression`` and ``chunk_format`` parameters);
    every call leaves a readable file behind (crash consistency).
    """

    def write_meta(self, meta) -> None:
        """Write or replace the scan's meta (ptypy's keys: shape, psize, energy, ...)."""

    def write_info(self, info) -> None:
        """Write or replace the scan parameters (a dict)."""

    def write_chunk(self, n, *, indices, data, weights, positions) -> None:
        """Write chunk ``n``: (k,) indices, (k, ny, nx) data and weights, (k, 2) positions in m."""

    def close(self) -> None:
        """Finish writing."""


@runtime_checkable
class ResultSink(Protocol):
    """Writes a :class:`~ptyscan.io.results.Result` atomically to ``<stem><suffix>``."""

    suffix: str

    def write(self, path, result) -> Path:
        """Write ``result`` to ``path`` (whose suffix is :attr:`suffix`)."""


def prepared_sink_class(path) -> type:
    """The prepared-data writer for ``path``, by suffix (default: ``.ptyd``)."""
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    return PREPARED_FORMATS.get(suffix if suffix in PREPARED_FORMATS.names() else "ptyd")


def result_sinks(names, path) -> list[tuple[ResultSink, Path]]:
    """``(sink, file)`` for each result format in ``names``; ``path``'s suffix is replaced."""
    stem = os.path.splitext(os.fspath(path))[0]
    sinks = [RESULT_FORMATS.get(name, key="run.result_formats") for name in names]
    return [(sink, Path(stem + sink.suffix)) for sink in sinks]
