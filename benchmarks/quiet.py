"""Is the machine quiet enough to time on? Shared by the timing benchmarks.

A run counts as quiet when the 1-minute load average is below :data:`QUIET_LOAD` when it
starts: no other job is using the cores. :func:`settle` waits (up to a limit) for that,
so runs started back to back do not count each other's tail of load. The load at the end
is recorded too, but it includes the benchmark's own threads (a 2-thread run ends near
2), so it does not decide.
"""

from __future__ import annotations

import os
import time

QUIET_LOAD = 1.3


def load_average() -> float:
    """The 1-minute load average (NaN where the system has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def settle(limit: float = QUIET_LOAD, timeout_s: float = 180.0, poll_s: float = 5.0) -> float:
    """Wait until the 1-minute load is below ``limit`` or ``timeout_s`` passed; the load then."""
    deadline = time.monotonic() + timeout_s
    load = load_average()
    while not load < limit and time.monotonic() < deadline:
        time.sleep(poll_s)
        load = load_average()
    return load


def is_quiet(load_before: float) -> bool:
    return load_before < QUIET_LOAD
