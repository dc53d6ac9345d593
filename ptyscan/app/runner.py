"""Drive a scan chunk by chunk: ``prepare`` (save a .ptyd) and ``run_recipe`` (reconstruct)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from tqdm.contrib.logging import logging_redirect_tqdm

from ..errors import PtyScanError, RecipeError
from ..io.atomic import keep_previous
from ..io.plots import save_plots
from ..io.results import make_result, read_ptyr, write_ptyr
from ..io.sinks import result_sinks
from ..parallel import get_comm
from ..plausibility import check_object_memory
from ..scan_support import collective
from .streaming import iterate_chunks, stream_to_end

__all__ = ["PrepareSummary", "RunSummary", "prepare", "run_recipe"]

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


def prepare(recipe, *, comm=None, **overrides) -> PrepareSummary:
    """Prepare the recipe's scan and save it as a ``.ptyd`` file.

    When the recipe does not set ``scan.save``, chunks are appended to
    :attr:`Recipe.dfile <ptyscan.recipe.Recipe.dfile>`. ``overrides`` are scan
    parameters replacing the recipe's.
    """
    comm = comm if comm is not None else get_comm()
    if recipe.scan.save is None:
        overrides.setdefault("save", "append")
        overrides.setdefault("dfile", recipe.dfile)
    scan = recipe.scan_class(recipe.scan, comm=comm, **overrides)
    start = time.perf_counter()
    frames, chunks = stream_to_end(scan, recipe.run)
    seconds = time.perf_counter() - start
    summary = PrepareSummary(frames, chunks, seconds, scan.info.dfile, comm.size)
    if comm.rank == 0:
        log.debug(  # the CLI prints the summary
            "prepared %d frames in %d chunks in %.2f s (%.0f frames/s) -> %s",
            frames,
            chunks,
            seconds,
            summary.frames_per_s,
            scan.info.dfile,
        )
    return summary


# --- reconstruction -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """What a reconstruction did (the same on every rank)."""

    result: str
    frames: int
    iterations: int
    seconds: float
    ranks: int
    last_errors: dict


class _Run:
    """State of one ``run_recipe`` call: scan, engines, frames seen, outputs."""

    def __init__(self, recipe, comm, snapshot):
        self.recipe, self.comm, self.snapshot = recipe, comm, snapshot
        self.scan = recipe.make_scan(comm=comm)
        self.classes = recipe.engine_classes
        self.engines = [self.classes[0](recipe.engines[0], backend=recipe.run.backend, comm=comm)]
        device = self.engines[0].backend.device
        self.devices = comm.allgather(-1 if device is None else device)  # GPU of each rank
        self.done = [0] * len(recipe.engines)  # iterations after EOS, per engine
        self.indices, self.positions = [], []
        self.history: list[dict] = []
        self.want_bar = recipe.run.progress and comm.rank == 0
        self.bar = None

    @property
    def frames(self) -> int:
        return sum(len(i) for i in self.indices)

    def stream(self):
        """Feed chunks to the first engine until EOS, iterating while frames arrive."""
        run, engine = self.recipe.run, self.engines[0]
        chunks = iterate_chunks(
            self.scan,
            frames_per_chunk=run.frames_per_chunk,
            poll_interval=run.poll_interval,
            on_wait=self.iterate_while_streaming,
        )
        for chunk in chunks:
            if not self.indices:  # before the engine sizes its object
                collective(self.comm, self.check_memory)
            engine.add_views(chunk)
            self.indices.append(chunk.all_indices)
            self.positions.append(chunk.all_positions)
            self.iterate_while_streaming()

    def check_memory(self):
        """Refuse an object that would not fit in memory (positions in a wrong unit)."""
        modes = self.engines[0].params.object_modes
        check_object_memory(self.scan.geometry, modes=modes)

    def iterate_while_streaming(self) -> bool:
        """``run.numiter_contiguous`` iterations of the first engine once enough frames
        are in (not when resuming: the checkpoint's object comes first); True if it ran."""
        run = self.recipe.run
        if self.snapshot is not None or self.frames < run.min_frames_for_recon:
            return False
        self._record(self.engines[0].iterate(run.numiter_contiguous), streaming=True)
        return True

    def restore(self):
        """Put the checkpoint's object, probe and progress into the engines (--resume)."""
        snap, state = self.snapshot, self.engines[0].state
        if state.object.shape != snap.object.shape or not np.array_equal(
            state.origin_px, snap.object_origin_px
        ):
            raise PtyScanError(
                f"--resume: the checkpoint's object {snap.object.shape} at "
                f"{snap.object_origin_px.tolist()} does not match this scan's "
                f"{state.object.shape} at {np.asarray(state.origin_px).tolist()}; "
                "was the recipe changed? Run without --resume"
            )
        state.object = state.backend.to_device(snap.object)
        state.probe = state.backend.to_device(snap.probe)
        self.done = [int(e["iterations_done"]) for e in snap.engines]
        self.history = _history_records(snap.history)

    def reconstruct(self):
        """Run every engine's remaining iterations, checkpointing on the way."""
        every = self.recipe.run.checkpoint_every
        for k, cls in enumerate(self.classes):
            if k > 0:
                state = self.engines[-1].state
                self.engines.append(cls(self.recipe.engines[k], state=state))
            engine = self.engines[k]
            while self.done[k] < engine.params.numiter:
                todo = engine.params.numiter - self.done[k]
                if every:
                    todo = min(todo, every - sum(self.done) % every)
                self._record(engine.iterate(todo))
                self.done[k] += todo
                if every and sum(self.done) % every == 0:
                    self.write(status="checkpoint")

    def _record(self, records, streaming=False):
        for record in records:
            record["streaming"] = float(streaming)
        self.history += records
        if self.want_bar and self.bar is None and records:  # opened once there is progress
            from tqdm import tqdm

            total = sum(e.numiter for e in self.recipe.engines)
            self.bar = tqdm(total=total, unit="it", desc="reconstruct", leave=True)
            self.bar.update(sum(self.done))
        if self.bar is not None and records:
            self.bar.update(0 if streaming else len(records))
            last = records[-1]
            shown = {"engine": last["engine"], "fourier": f"{last['fourier']:.3g}"}
            if last.get("exit"):  # engines without exit waves (ML) report none
                shown["exit"] = f"{last['exit']:.3g}"
            self.bar.set_postfix(shown)

    def write(self, *, status):
        """Write the result (``status='final'``: every ``run.result_formats``) or the
        checkpoint on rank 0; return the :class:`~ptyscan.io.results.Result`."""
        engine = self.engines[-1]
        result = make_result(
            engine=engine,
            engines_progress=[
                {"name": e.name, "iterations_done": d}
                for e, d in zip(self.recipe.engines, self.done, strict=True)
            ],
            history=self.history,
            indices=np.concatenate(self.indices),
            positions=np.concatenate(self.positions),
            refined=engine.positions,  # collective: refined positions from every rank
            meta=self.scan.current_meta(),
            recipe_yaml=self.recipe.to_yaml(),
            status=status,
            ranks=self.comm.size,
            devices=self.devices,
        )
        if self.comm.rank == 0:
            if status == "checkpoint":
                write_ptyr(self.recipe.checkpoint_path, result)
            else:
                for sink, path in result_sinks(
                    self.recipe.run.result_formats, self.recipe.result_path
                ):
                    keep_previous(path)  # as the .ptyd: one earlier result is kept
                    sink.write(path, result)
        return result


def _history_records(history: dict) -> list[dict]:
    keys = list(history)
    n = len(history[keys[0]]) if keys else 0
    return [
        {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in history.items()}
        for i in range(n)
    ]


def run_recipe(recipe, *, comm=None, resume=False) -> RunSummary:
    """Prepare the recipe's scan chunk by chunk and reconstruct with its engines.

    The first engine starts iterating once ``run.min_frames_for_recon`` frames
    are in and keeps iterating between polls of the scan; after EOS each engine
    performs its full ``numiter`` (the next engine continues from the previous
    one's state). The result ``.ptyr`` (and PNG pictures with ``run.plot``) is
    written to ``run.output_dir`` on rank 0; ``run.checkpoint_every`` writes a
    checkpoint that ``resume=True`` continues from.
    """
    comm = comm if comm is not None else get_comm()
    if not recipe.engines:
        raise RecipeError(["engines: the recipe names no engine; add e.g. engines: [{name: DM}]"])
    snapshot = None
    if resume:
        path = recipe.checkpoint_path
        if not os.path.exists(path):
            raise PtyScanError(f"--resume: no checkpoint {path}; set run.checkpoint_every first")
        snapshot = read_ptyr(path)
    job = _Run(recipe, comm, snapshot)
    start = time.perf_counter()
    try:
        with logging_redirect_tqdm():  # log lines above the bar, not through it
            job.stream()
            if job.frames == 0:
                raise PtyScanError(f"{type(job.scan).__name__}: the scan delivered no frame")
            if snapshot is not None:
                job.restore()
            job.reconstruct()
    finally:
        if job.bar is not None:
            job.bar.close()
    out = recipe.result_path
    result = job.write(status="final")
    if comm.rank == 0:
        if os.path.exists(recipe.checkpoint_path):
            os.remove(recipe.checkpoint_path)
        if recipe.run.plot:
            save_plots(result, out)
    last = {k: v for k, v in (job.history[-1] if job.history else {}).items()}
    seconds = time.perf_counter() - start
    if comm.rank == 0:
        log.debug(  # the CLI prints the summary
            "reconstructed %d frames, %d iterations in %.1f s -> %s",
            job.frames,
            len(job.history),
            seconds,
            out,
        )
    return RunSummary(out, job.frames, len(job.history), seconds, comm.size, last)
