"""Drive a scan chunk by chunk: the streaming loop shared by ``prepare`` (and later ``run``)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from .chunk import EOS, WAIT
from .parallel import get_comm

__all__ = ["PrepareSummary", "default_dfile", "iterate_chunks", "prepare"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareSummary:
    """What a preparation did (the same on every rank)."""

    frames: int
    chunks: int
    seconds: float
    dfile: str | None
    ranks: int

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def default_dfile(recipe) -> str:
    """``<run.output_dir>/<recipe file stem or scan name>.ptyd``."""
    stem = recipe.scan.label or recipe.scan.name
    if recipe.source:
        stem = os.path.splitext(os.path.basename(recipe.source))[0]
    return os.path.join(recipe.run.output_dir, f"{stem}.ptyd")


def iterate_chunks(scan, *, frames_per_chunk, poll_interval=0.2, progress=False):
    """Yield every chunk of ``scan`` until EOS, sleeping ``poll_interval`` s on WAIT.

    A tqdm progress bar (frames, frames/s) is shown on rank 0 when ``progress``.
    """
    bar = None
    if progress and scan.comm.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=scan.num_frames, unit="frame", desc=type(scan).__name__, leave=True)
    try:
        while True:
            chunk = scan.auto(frames_per_chunk)
            if chunk is EOS:
                return
            if chunk is WAIT:
                time.sleep(poll_interval)
                continue
            if bar is not None:
                if scan.num_frames is not None and bar.total != scan.num_frames:
                    bar.total = scan.num_frames
                bar.update(len(chunk.all_indices))
            yield chunk
    finally:
        if bar is not None:
            bar.close()


def prepare(recipe, *, comm=None, **overrides) -> PrepareSummary:
    """Prepare the recipe's scan and save it as a ``.ptyd`` file.

    When the recipe does not set ``scan.save``, chunks are appended to
    ``scan.dfile`` (default: :func:`default_dfile`). ``overrides`` are scan
    parameters replacing the recipe's.
    """
    comm = comm if comm is not None else get_comm()
    p = recipe.scan
    if p.save is None:
        overrides.setdefault("save", "append")
        overrides.setdefault("dfile", p.dfile or default_dfile(recipe))
    scan = recipe.scan_class(p, comm=comm, **overrides)
    start = time.perf_counter()
    frames = chunks = 0
    for chunk in iterate_chunks(
        scan,
        frames_per_chunk=recipe.run.frames_per_chunk,
        poll_interval=recipe.run.poll_interval,
        progress=recipe.run.progress,
    ):
        frames += len(chunk.all_indices)
        chunks += 1
    seconds = time.perf_counter() - start
    summary = PrepareSummary(frames, chunks, seconds, scan.info.dfile, comm.size)
    if comm.rank == 0:
        log.info(
            "prepared %d frames in %d chunks in %.2f s (%.0f frames/s) -> %s",
            frames,
            chunks,
            seconds,
            summary.frames_per_s,
            scan.info.dfile,
        )
    return summary
