"""The streaming loop: every chunk of a scan until EOS, waiting politely on WAIT."""

from __future__ import annotations

import time

from ..chunk import EOS, WAIT

__all__ = ["iterate_chunks", "stream_to_end"]


def iterate_chunks(scan, *, frames_per_chunk, poll_interval=0.2, progress=False, on_wait=None):
    """Yield every chunk of ``scan`` until EOS, sleeping ``poll_interval`` s on WAIT.

    A tqdm progress bar (frames, frames/s) is shown on rank 0 when ``progress``.
    ``on_wait``: called on WAIT (on every rank alike); when it returns True (it
    did useful work, e.g. reconstruction iterations) the scan is asked again at
    once instead of after ``poll_interval``.
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
                if on_wait is None or not on_wait():
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


def stream_to_end(scan, run) -> tuple[int, int]:
    """Drive ``scan`` to EOS with a recipe's ``run`` settings; return (frames, chunks).

    ``run`` is a :class:`~ptyscan.recipe.RunParams` (frames_per_chunk,
    poll_interval, progress). What a chunk is used for (saving, simulation) is
    the scan's business; this only keeps it flowing.
    """
    frames = chunks = 0
    for chunk in iterate_chunks(
        scan,
        frames_per_chunk=run.frames_per_chunk,
        poll_interval=run.poll_interval,
        progress=run.progress,
    ):
        frames += len(chunk.all_indices)
        chunks += 1
    return frames, chunks
