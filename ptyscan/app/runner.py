"""Drive a scan chunk by chunk: ``prepare`` (save a .ptyd) and ``run_recipe`` (reconstruct)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
from tqdm.contrib.logging import logging_redirect_tqdm

from ..engines.initial import place_part
from ..errors import PtyScanError, RecipeError, RunInterruptedError
from ..io.atomic import check_writable, keep_previous
from ..io.plots import save_plots, save_preview
from ..io.results import make_result, read_ptyr, write_ptyr
from ..io.sinks import result_sinks
from ..parallel import get_comm
from ..plausibility import check_object_memory
from ..scan_support import collective
from .live import LatencyClock, PreviewTimer
from .loader_ranks import check_loader_ranks, run_split
from .stopping import StopRequest
from .streaming import iterate_chunks, stream_to_end

__all__ = ["PrepareSummary", "RunSummary", "check_outputs", "prepare", "run_recipe"]

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
    _check_dfile(recipe.dfile, comm)
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
    streaming_iterations: int = 0
    """Of ``iterations``, those made while frames streamed in (before the last frame)."""
    latency: dict | None = None
    """Per-frame latency (write to first use) on rank 0 of a live run: ``p50``, ``p95``,
    ``max`` (s), ``indices``, ``seconds``; None when the scan gives no write times."""

    @property
    def after_last_frame(self) -> int:
        """Iterations after the last frame: the engines' ``numiter`` summed."""
        return self.iterations - self.streaming_iterations

    loader_ranks: int = 0
    """Of ``ranks``, those that only prepared frames (``run.loader_ranks``)."""


class _StopError(Exception):
    """Raised inside the run when a stop was requested (SIGINT/SIGTERM)."""


class _Run:
    """State of one ``run_recipe`` call: scan, engines, frames seen, outputs."""

    def __init__(self, recipe, comm, snapshot, stop, scan):
        self.recipe, self.comm, self.snapshot, self.stop = recipe, comm, snapshot, stop
        self.scan = scan  # the recipe's scan, or the loader ranks' chunks (ChunkReceiver)
        self.classes = recipe.engine_classes
        self.engines = [self.classes[0](recipe.engines[0], backend=recipe.run.backend, comm=comm)]
        device = self.engines[0].backend.device
        self.devices = comm.allgather(-1 if device is None else device)  # GPU of each rank
        self.done = [0] * len(recipe.engines)  # iterations after EOS, per engine
        self.streamed = 0  # iterations while frames streamed in (first engine)
        self.indices, self.positions = [], []
        self.history: list[dict] = []
        self.want_bar = recipe.run.progress and comm.rank == 0
        self.bar = None
        self.latency = LatencyClock()
        self.preview = PreviewTimer(recipe.run.preview_every, comm)
        self.previewed = False  # a preview of this run is at result_path

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
            self.latency.added(chunk.all_indices)
            self.indices.append(chunk.all_indices)
            self.positions.append(chunk.all_positions)
            self.iterate_while_streaming()

    def check_memory(self):
        """Refuse an object that would not fit in memory (positions in a wrong unit)."""
        modes = self.engines[0].params.object_modes
        check_object_memory(self.scan.geometry, modes=modes)

    def iterate_while_streaming(self) -> bool:
        """``run.numiter_contiguous`` iterations of the first engine once enough frames
        are in (not when resuming: the checkpoint's object comes first; not when the
        first engine has ``numiter: 0``); True if it ran. Raises :class:`_StopError` when
        a stop was requested."""
        if self.stop.requested():
            raise _StopError
        run = self.recipe.run
        if (
            self.snapshot is not None
            or self.frames < run.min_frames_for_recon
            or self.recipe.engines[0].numiter == 0
        ):
            return False
        self.engines[0].iterate(run.numiter_contiguous, callback=self.on_streaming_iteration)
        if self.stop.requested():
            raise _StopError
        return True

    def restore(self):
        """Put the checkpoint's object, probe and progress into the engines (--resume).

        A checkpoint written while frames still streamed in (a stopped live run) holds a
        smaller object: it is pasted where it lies in this scan's object."""
        snap, state = self.snapshot, self.engines[0].state
        sliced = [e for e in self.recipe.engines if getattr(e, "object_slices", 1) > 1]
        if np.ndim(snap.object) == 4 and state.object_slices == 1 and sliced:
            state.set_slices(snap.object.shape[1], sliced[0].slice_thickness)  # ML's slices
        obj = place_part(snap.object, snap.object_origin_px, state.object_host, state.origin_px)
        if obj is None:
            raise PtyScanError(
                f"--resume: the checkpoint's object {snap.object.shape} at "
                f"{snap.object_origin_px.tolist()} does not match this scan's "
                f"{state.object.shape} at {np.asarray(state.origin_px).tolist()}; "
                "was the recipe changed? Run without --resume"
            )
        state.object = state.backend.to_device(obj)
        state.probe = state.backend.to_device(snap.probe)
        self.done = [int(e["iterations_done"]) for e in snap.engines]
        self.history = _history_records(snap.history)
        self.streamed = sum(int(r.get("streaming", 0)) for r in self.history)

    def reconstruct(self):
        """Run every engine's remaining iterations, checkpointing on the way; raises
        :class:`_StopError` after the iteration during which a stop was requested."""
        for k, cls in enumerate(self.classes):
            if k > 0:
                state = self.engines[-1].state
                self.engines.append(cls(self.recipe.engines[k], state=state))
            engine, numiter = self.engines[k], self.recipe.engines[k].numiter
            self.engine_index = k
            while self.done[k] < numiter:
                engine.iterate(numiter - self.done[k], callback=self.on_iteration)
                if self.stop.requested():
                    raise _StopError

    def on_streaming_iteration(self, record) -> bool:
        """Per-iteration callback while frames stream in; True asks the engine to stop."""
        record["streaming"] = 1.0
        self.streamed += 1
        self._record(record)
        return self.stop.requested()

    def on_iteration(self, record) -> bool:
        """Per-iteration callback after the last frame: progress, checkpoints, stop."""
        record["streaming"] = 0.0
        self.done[self.engine_index] += 1
        self._record(record)
        every = self.recipe.run.checkpoint_every
        if every and sum(self.done) % every == 0:
            self.write(status="checkpoint")
        return self.stop.requested()

    def _record(self, record):
        self.latency.iteration_done()
        self.history.append(record)
        if self.want_bar and self.bar is None:  # opened once there is progress
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_iterations, unit="it", desc="reconstruct", leave=True)
            self.bar.update(sum(self.done) + self.streamed - 1)
        if self.bar is not None:
            self.bar.total = self.total_iterations  # grows while frames stream in
            self.bar.update(1)
            shown = {"engine": record["engine"], "frames": self.frames}
            if self.streamed:
                shown["streaming"] = self.streamed
            shown["fourier"] = f"{record['fourier']:.3g}"
            if record.get("exit"):  # engines without exit waves (ML) report none
                shown["exit"] = f"{record['exit']:.3g}"
            self.bar.set_postfix(shown, refresh=False)
        if self.preview.due():
            self.write_preview()

    def write_preview(self):
        """The result so far at ``result_path`` (status ``preview``) and its pictures."""
        result = self.write(status="preview")
        if self.comm.rank == 0:
            if self.recipe.run.plot:
                save_preview(result, self.recipe.result_path)
            log.info("preview: %d frames, %d iterations", self.frames, len(self.history))

    @property
    def total_iterations(self) -> int:
        """Iterations this run will have made: streaming ones + every engine's numiter."""
        return self.streamed + sum(e.numiter for e in self.recipe.engines)

    def write(self, *, status):
        """Write the result (``status='final'`` or ``'interrupted'``: every
        ``run.result_formats``) or the checkpoint on rank 0; return the
        :class:`~ptyscan.io.results.Result`."""
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
        if status != "checkpoint":
            result = dataclasses.replace(result, latency=self.latency.result(self.scan, self.comm))
        if self.comm.rank == 0:
            if status == "checkpoint":
                write_ptyr(self.recipe.checkpoint_path, result)
            elif status == "preview":
                if not self.previewed:
                    keep_previous(self.recipe.result_path)
                write_ptyr(self.recipe.result_path, result)  # atomic: never half-written
            else:
                for sink, path in result_sinks(
                    self.recipe.run.result_formats, self.recipe.result_path
                ):
                    if not (self.previewed and _same(path, self.recipe.result_path)):
                        keep_previous(path)  # as the .ptyd: one earlier result is kept
                    sink.write(path, result)
        self.previewed = self.previewed or status == "preview"
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
    are in and keeps iterating between polls of the scan (unless its ``numiter``
    is 0); these streaming iterations are counted apart. After the last frame
    each engine performs exactly its ``numiter`` (the next engine continues from
    the previous one's state). The result ``.ptyr`` (and PNG pictures with
    ``run.plot``) is written to ``run.output_dir`` on rank 0, which is checked to
    be writable before any work; ``run.checkpoint_every`` writes a checkpoint
    that ``resume=True`` continues from.

    SIGINT (Ctrl-C) or SIGTERM finishes the current iteration, writes the result
    with status ``interrupted`` and a checkpoint, and raises
    :class:`~ptyscan.errors.RunInterruptedError` (the command line exits with 130).

    With ``run.loader_ranks: N`` (N > 0, under MPI) the last N ranks only prepare
    frames and send them to the other ranks, which only reconstruct (module
    :mod:`~ptyscan.app.loader_ranks`).
    """
    comm = comm if comm is not None else get_comm()
    if not recipe.engines:
        raise RecipeError(["engines: the recipe names no engine; add e.g. engines: [{name: DM}]"])
    loaders = check_loader_ranks(recipe.run.loader_ranks, comm.size)
    check_outputs(recipe, comm)
    snapshot = None
    if resume:
        path = recipe.checkpoint_path
        if not os.path.exists(path):
            raise PtyScanError(
                f"--resume: no checkpoint {path}; run without --resume (checkpoints are "
                "written every run.checkpoint_every iterations and when a run is interrupted)"
            )
        snapshot = read_ptyr(path)
    if loaders:  # engine ranks: _reconstruct(recipe, engine comm, ChunkReceiver, stop)
        return run_split(recipe, comm, loaders, partial(_reconstruct, recipe, snapshot=snapshot))
    with StopRequest(comm) as stop:
        return _reconstruct(recipe, comm, recipe.make_scan(comm=comm), stop, snapshot=snapshot)


def _reconstruct(recipe, comm, scan, stop, *, snapshot) -> RunSummary:
    """Stream ``scan`` into the engines, reconstruct, write the result; the summary."""
    start = time.perf_counter()
    job = _Run(recipe, comm, snapshot, stop, scan)
    try:
        with logging_redirect_tqdm():  # log lines above the bar, not through it
            job.stream()
            if job.frames == 0:
                raise PtyScanError(f"{type(job.scan).__name__}: the scan delivered no frame")
            if snapshot is not None:
                job.restore()
            job.reconstruct()
    except _StopError:
        _finish_interrupted(job, recipe, comm)
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
            "reconstructed %d frames, %d iterations (%d while streaming) in %.1f s -> %s",
            job.frames,
            len(job.history),
            job.streamed,
            seconds,
            out,
        )
    return RunSummary(
        out,
        job.frames,
        len(job.history),
        seconds,
        comm.size,
        last,
        streaming_iterations=job.streamed,
        latency=result.latency,
    )


def check_outputs(recipe, comm) -> None:
    """Check (rank 0) that ``run.output_dir`` and the ``.ptyd`` folder can be written;
    every rank raises :class:`~ptyscan.errors.OutputError` if not."""

    def check():
        check_writable(recipe.run.output_dir, key="run.output_dir")
        if recipe.scan.dfile and recipe.scan.save is not None:
            check_writable(os.path.dirname(recipe.scan.dfile), key="scan.dfile")

    collective(comm, check, root_only=True)


def _check_dfile(dfile, comm):
    collective(
        comm, lambda: check_writable(os.path.dirname(dfile), key="scan.dfile"), root_only=True
    )


def _finish_interrupted(job, recipe, comm):
    """Write the interrupted result and a checkpoint; raise RunInterruptedError (exit 130)."""
    name = job.stop.signal_name or "a signal on another rank"
    if job.frames == 0 or job.engines[-1].state is None:
        raise RunInterruptedError(
            f"interrupted by {name} before any frame was used; nothing written"
        )
    job.write(status="interrupted")
    job.write(status="checkpoint")
    again = f"ptyscan run {recipe.source or 'RECIPE'} --resume"
    raise RunInterruptedError(
        f"interrupted by {name} after {len(job.history)} iterations: wrote "
        f"{recipe.result_path} (status interrupted) and {recipe.checkpoint_path}; "
        f"continue with: {again}"
    )


def _same(a, b) -> bool:
    return os.path.normpath(os.fspath(a)) == os.path.normpath(os.fspath(b))
