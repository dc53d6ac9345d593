"""Loader ranks apart from engine ranks (``run.loader_ranks``).

With ``run.loader_ranks: N`` under ``mpiexec -n M`` the last N ranks run the scan
(a :class:`~ptyscan.scan.PtyScan` on their own communicator) and prepare frames;
the first M-N ranks (world rank 0, which writes the results, among them) run the
engines on theirs. Each prepared frame travels point to point, by buffer, from the
loader rank that prepared it to the engine rank that owns it (frames are given to
engine ranks in contiguous blocks balanced over the whole scan, as
:func:`~ptyscan.parallel.assign_counts` does for the ranks of a scan).

Messages, world communicator:

* ``HEAD`` (first loader rank → first engine rank, pickled, small): one per chunk
  (indices, positions, meta, frames per loader and per engine rank, the shared mask,
  write times), then exactly one last header: ``eos``, ``stop`` (a signal on a loader
  rank, or the engines asked) or ``error`` (the loaders' message).
* ``DATA`` / ``WEIGHTS`` (loader rank → engine rank, buffers): the frames (and
  per-frame weights) of one chunk that the engine rank owns.
* ``CTRL`` (first engine rank → first loader rank), exactly one at the end of the
  engines' streaming (EOS or a stop): prepare no more. The loaders wait for it, so
  no message is left unreceived (MPICH may then kill a rank at exit).

The engine ranks poll for headers between iterations (:class:`ChunkReceiver` answers
``auto`` like a scan: a Chunk, ``WAIT`` or ``EOS``), so they keep iterating on what
they have. After stopping they take every message sent to them up to the last header,
so no send is left pending. Waits sleep instead of spinning (the loaders idle while
the engines reconstruct).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from ..chunk import EOS, WAIT, Chunk
from ..errors import PeerError, RecipeError, RunInterruptedError
from ..parallel import MPIComm, assign_counts
from .stopping import StopRequest
from .streaming import iterate_chunks

__all__ = ["ChunkReceiver", "Roles", "check_loader_ranks", "feed_engines", "run_split"]

log = logging.getLogger(__name__)

HEAD, DATA, WEIGHTS, CTRL = 7301, 7302, 7303, 7304
POLL_S = 0.002
"""Sleep between tests of a pending message or request (leaves the cores to busy ranks)."""
AHEAD_CHUNKS = 2
"""Chunks a loader rank may have sent that the engine ranks have not yet taken: before it
prepares more it waits for them (backpressure: a loader's memory stays at about this many
chunks of its frames however much faster it prepares than the engines iterate)."""


def check_loader_ranks(n: int, size: int) -> int:
    """The loader ranks to use for ``run.loader_ranks: n`` in a job of ``size`` ranks.

    0 when ``n`` is 0, or (with a warning: the recipe still runs on a laptop) in a
    single process; a :class:`~ptyscan.errors.RecipeError` when ``n >= size > 1``
    (no rank would be left to reconstruct).
    """
    n = int(n)
    if n == 0:
        return 0
    if size == 1:
        log.warning(
            "run.loader_ranks: %d ignored in a single process (every frame is loaded and "
            "reconstructed here); start with mpiexec -n %d or more to use loader ranks",
            n,
            n + 1,
        )
        return 0
    if n >= size:
        raise RecipeError(
            [
                f"run.loader_ranks: {n} with {size} MPI ranks leaves no rank to run the "
                f"engines; expected at most {size - 1}; hint: start more ranks "
                f"(mpiexec -n {n + 1} or more) or lower run.loader_ranks (0: every rank "
                "loads and reconstructs)"
            ]
        )
    return n


@dataclasses.dataclass
class Roles:
    """Who does what: world ranks of the loaders and of the engines, and this rank's group."""

    world: MPIComm
    group: MPIComm
    loaders: tuple
    engines: tuple

    @classmethod
    def split(cls, world, n):
        """The last ``n`` ranks of ``world`` load, the others reconstruct."""
        engines = tuple(range(world.size - n))
        loaders = tuple(range(world.size - n, world.size))
        is_loader = world.rank in loaders
        group = MPIComm(world.comm.Split(int(is_loader), world.rank))
        return cls(world, group, loaders, engines)

    @property
    def is_loader(self) -> bool:
        return self.world.rank in self.loaders

    def share(self, outcome):
        """Rank 0's ``outcome`` on every rank; waits without spinning."""
        self.world.idle_barrier()
        return self.world.bcast(outcome)

    def free(self):
        self.group.comm.Free()


def _wait_all(requests):
    """Wait for MPI requests, sleeping between tests."""
    from mpi4py import MPI

    reqs = [r for r, _ in requests]
    while not MPI.Request.Testall(reqs):
        time.sleep(POLL_S)


def _edges(counts):
    return np.concatenate([[0], np.cumsum(np.asarray(counts, np.int64))])


def _is_last(scan) -> bool:
    """The chunk just prepared is the scan's last (its next answer is EOS), so the
    engines go on to the iterations after the last frame at once, as without loader
    ranks (else they wait for the ``eos`` header)."""
    n = scan.num_frames
    return bool(scan.end_of_scan) and n is not None and scan.framestart >= n


class _StopFeedingError(Exception):
    """The loader ranks stop preparing (a signal here, or the engines asked)."""


class _Feeder:
    """Loader side: send each prepared chunk to the engine ranks."""

    def __init__(self, roles, stop):
        self.roles, self.stop = roles, stop
        self.world = roles.world.comm
        self.totals = np.zeros(len(roles.engines), np.int64)
        self.pending: list = []  # (request, buffer) of sends not known to be complete
        self.sent: list = []  # per chunk sent, the (request, buffer) pairs of its sends
        self.asked = False  # the engine ranks sent CTRL
        self.first = True

    def check(self) -> bool:
        """Raise :class:`_StopFeedingError` when any loader rank got a signal or the engines
        asked (collective over the loader ranks); else False (nothing done)."""
        group = self.roles.group
        if group.rank == 0 and not self.asked:
            self._take_ctrl()
        wanted = int(self.asked or self.stop.signal_name is not None)
        if group.size > 1:
            wanted = group.allreduce(wanted, op="max")
        if wanted:
            raise _StopFeedingError
        return False

    def send(self, scan, chunk):
        """Send this rank's frames of ``chunk`` to their engine ranks (and, on the first
        loader rank, the chunk's header to the first engine rank); then wait until the
        engine ranks have taken all but the last :data:`AHEAD_CHUNKS` chunks sent."""
        group = self.roles.group
        start = len(self.pending)
        shared = len(chunk) == 0 or chunk.weights.strides[0] == 0
        facts = group.allgather((len(chunk), shared)) if group.size > 1 else [(len(chunk), shared)]
        from_loaders = [n for n, _ in facts]
        mask_shared = all(s for _, s in facts)
        to_engines = assign_counts(len(chunk.all_indices), len(self.roles.engines), self.totals)
        self.totals += to_engines
        if group.rank == 0:
            times = getattr(scan, "frame_times", None)
            head = {
                "kind": "chunk",
                "number": chunk.number,
                "all_indices": np.asarray(chunk.all_indices),
                "all_positions": np.asarray(chunk.all_positions),
                "meta": chunk.meta,
                "from_loaders": from_loaders,
                "to_engines": to_engines.tolist(),
                "dtypes": (chunk.data.dtype.str, chunk.weights.dtype.str),
                "mask": scan.prepared_mask() if mask_shared else None,
                "written": None if times is None else times(chunk.all_indices),
                "last": _is_last(scan),
            }
            if self.first:
                head.update(probe=chunk.probe, geometry=scan.geometry)
            self._post(self.world.isend(head, dest=self.roles.engines[0], tag=HEAD), head)
        self.first = False
        lo = sum(from_loaders[: group.rank])
        edges = _edges(to_engines)
        for r, dest in enumerate(self.roles.engines):
            a, b = max(lo, edges[r]), min(lo + len(chunk), edges[r + 1])
            if a >= b:
                continue
            data = np.ascontiguousarray(chunk.data[a - lo : b - lo])
            self._post(self.world.Isend(data, dest=dest, tag=DATA), data)
            if not mask_shared:
                weights = np.ascontiguousarray(chunk.weights[a - lo : b - lo])
                self._post(self.world.Isend(weights, dest=dest, tag=WEIGHTS), weights)
        self.sent.append(self.pending[start:])
        if len(self.sent) > AHEAD_CHUNKS:  # the engines take chunks in order: wait for the oldest
            _wait_all(self.sent.pop(0))
        self.pending = [(r, buf) for r, buf in self.pending if not r.Test()]

    def _post(self, request, buffer):
        self.pending.append((request, buffer))

    def end(self, kind, *, wait=True, **info):
        """Send the last header; with ``wait``, until every send is taken (the engine
        ranks take everything up to the last header) and the engines' one ``CTRL``
        message is in (no message may be left unreceived when the job ends)."""
        group = self.roles.group
        if group.rank == 0:
            head = {"kind": kind, **info}
            self._post(self.world.isend(head, dest=self.roles.engines[0], tag=HEAD), head)
        if not wait:
            return
        _wait_all(self.pending)
        self.pending.clear()
        self.sent.clear()
        if group.rank == 0:
            while not self.asked:
                self._take_ctrl()
                time.sleep(0 if self.asked else POLL_S)

    def _take_ctrl(self):
        if self.world.Iprobe(source=self.roles.engines[0], tag=CTRL):
            self.world.recv(source=self.roles.engines[0], tag=CTRL)
            self.asked = True


def feed_engines(recipe, roles, stop) -> None:
    """Loader ranks: prepare the recipe's scan chunk by chunk and send every frame to
    the engine rank that owns it, until EOS, a stop or an error (which is sent on
    to the engine ranks, then raised here)."""
    feeder = _Feeder(roles, stop)
    run = recipe.run
    try:
        scan = recipe.make_scan(comm=roles.group)
        chunks = iterate_chunks(
            scan,
            frames_per_chunk=run.frames_per_chunk,
            poll_interval=run.poll_interval,
            on_wait=feeder.check,
        )
        for chunk in chunks:
            feeder.send(scan, chunk)
            feeder.check()
    except _StopFeedingError:
        feeder.end("stop", signal=stop.signal_name)
    except Exception as exc:
        feeder.end("error", wait=False, message=f"{type(exc).__name__}: {exc}")
        raise
    else:
        feeder.end("eos")


class ChunkReceiver:
    """Engine side: the chunks the loader ranks prepared, handed out like a scan's.

    :meth:`auto` answers a :class:`~ptyscan.chunk.Chunk` (this engine rank's frames),
    ``WAIT`` (nothing new yet) or ``EOS``; collective over the engine ranks. A ``stop``
    from the loaders sets the run's stop request; an ``error`` raises
    :class:`~ptyscan.errors.PeerError` with the loaders' message. ``geometry``,
    :meth:`current_meta` and :meth:`frame_times` stand in for the scan's.
    """

    def __init__(self, roles, stop):
        self.roles, self.stop = roles, stop
        self.comm = roles.group
        self.world = roles.world.comm
        self.lead = roles.loaders[0]
        self.num_frames = None
        self.geometry = None
        self.ended = False  # the loaders' last header was taken
        self.last = False  # the scan's last chunk was taken: EOS from now on
        self._meta = None
        self._probe = None
        self._written: dict[int, float] = {}
        self._timed = False

    def __repr__(self):
        return f"ChunkReceiver(loader ranks {list(self.roles.loaders)})"

    def auto(self, frames=None):
        """The next chunk the loaders sent, ``WAIT`` or ``EOS`` (``frames`` is the
        loaders' ``run.frames_per_chunk``; ignored here)."""
        if self.ended or self.last:
            return EOS
        head = self._head(block=False)
        if head is None:
            return WAIT
        kind = head["kind"]
        if kind == "chunk":
            return self._receive(head)
        self.ended = True
        if kind == "eos":
            return EOS
        if kind == "stop":
            if self.stop.signal_name is None:
                self.stop.signal_name = head.get("signal") or "a signal on a loader rank"
            return WAIT  # the runner sees the stop request at once
        raise PeerError(f"a loader rank failed: {head['message']}")

    def drain(self):
        """At the end (EOS or a stop): send the loaders the one ``CTRL`` message (stop
        preparing, if they still do), and take every message they sent up to their last
        header."""
        if self.comm.rank == 0:
            self.world.send("done", dest=self.lead, tag=CTRL)  # small: does not block
        while not self.ended:
            head = self._head(block=True)
            if head["kind"] == "chunk":
                self._receive(head)
            else:
                self.ended = True

    def _head(self, *, block):
        head = None
        if self.comm.rank == 0:
            while head is None:
                if self.world.Iprobe(source=self.lead, tag=HEAD):
                    head = self.world.recv(source=self.lead, tag=HEAD)
                elif not block:
                    break
                else:
                    time.sleep(POLL_S)
        return self.comm.bcast(head) if self.comm.size > 1 else head

    def _receive(self, head) -> Chunk:
        meta, r = head["meta"], self.comm.rank
        all_indices = np.asarray(head["all_indices"], np.int64)
        edges, ledges = _edges(head["to_engines"]), _edges(head["from_loaders"])
        lo, hi = int(edges[r]), int(edges[r + 1])
        ddtype, wdtype = head["dtypes"]
        data = np.empty((hi - lo, *meta.shape), np.dtype(ddtype))
        mask = head["mask"]
        weights = None if mask is not None else np.empty(data.shape, np.dtype(wdtype))
        for k, src in enumerate(self.roles.loaders):
            a, b = max(lo, ledges[k]), min(hi, ledges[k + 1])
            if a < b:
                self.world.Recv(data[a - lo : b - lo], source=src, tag=DATA)
                if weights is not None:
                    self.world.Recv(weights[a - lo : b - lo], source=src, tag=WEIGHTS)
        if weights is None:
            weights = np.broadcast_to(np.asarray(mask, data.dtype), data.shape)
        if "geometry" in head:
            self.geometry, self._probe = head["geometry"], head["probe"]
        if head["written"] is not None:
            self._timed = True
            written = np.asarray(head["written"], np.float64).tolist()
            self._written.update(zip(all_indices.tolist(), written, strict=True))
        self._meta, self.num_frames, self.last = meta, meta.num_frames, head["last"]
        positions = np.asarray(head["all_positions"], np.float64)
        return Chunk(
            indices=all_indices[lo:hi],
            data=data,
            weights=weights,
            positions=positions[lo:hi],
            meta=meta,
            number=head["number"],
            all_indices=all_indices,
            all_positions=positions,
            probe=self._probe,
        )

    def current_meta(self):
        """The meta of the last chunk received (the loaders' scan's, as known then)."""
        return self._meta

    def frame_times(self, indices):
        """When the frames were written (the loaders' scan's ``frame_times``), or None."""
        if not self._timed:
            return None
        return np.array([self._written.get(int(i), np.nan) for i in indices], np.float64)


def run_split(recipe, world, n, reconstruct):
    """Run the recipe with ``n`` loader ranks; ``reconstruct(comm, receiver, stop)``
    runs the engines on the engine ranks and returns the run's summary.

    Every rank returns the first engine rank's summary (with the world's rank count
    and ``loader_ranks``), or raises :class:`~ptyscan.errors.RunInterruptedError`
    with its message after a stop.
    """
    roles = Roles.split(world, n)
    with StopRequest(roles.group) as stop:
        if roles.is_loader:
            feed_engines(recipe, roles, stop)
            outcome = None
        else:
            receiver = ChunkReceiver(roles, stop)
            try:
                outcome = ("done", reconstruct(roles.group, receiver, stop))
            except RunInterruptedError as exc:
                outcome = ("interrupted", str(exc))
            receiver.drain()
        kind, value = roles.share(outcome)  # (a signal meanwhile: the engines have it too)
    roles.free()  # (after an error the job ends: no collective free then)
    if kind == "interrupted":
        raise RunInterruptedError(value)
    return dataclasses.replace(value, ranks=world.size, loader_ranks=n)
