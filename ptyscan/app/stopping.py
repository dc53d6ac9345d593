"""Stop a run politely: SIGINT (Ctrl-C) and SIGTERM become a flag checked between iterations."""

from __future__ import annotations

import logging
import signal
import threading

__all__ = ["StopRequest"]

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager turning SIGINT and SIGTERM into a stop request.

    While active (main thread only; elsewhere it does nothing), the first signal
    only sets :attr:`signal_name` and logs that the run is stopping; the run
    checks :meth:`requested` after every iteration and between polls of the
    scan, finishes what it is doing and writes its results. A second signal
    ends the process at once (Python's default behaviour is restored).

    Parameters
    ----------
    comm : Comm
        With several ranks, :meth:`requested` is collective (a max-allreduce), so
        every rank stops at the same iteration when any one got the signal.
    """

    def __init__(self, comm):
        self.comm = comm
        self.signal_name: str | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signal_name is not None:  # second signal: stop now
            self.__exit__()
            raise KeyboardInterrupt(name)
        self.signal_name = name
        log.warning(
            "%s: finishing the current iteration, then writing results (again: stop now)", name
        )

    def requested(self) -> bool:
        """True once a stop was asked for (on any rank); collective with several ranks."""
        local = self.signal_name is not None
        if self.comm.size == 1:
            return local
        return bool(self.comm.allreduce(int(local), op="max"))
