"""Helpers shared by test modules (tests/ is on sys.path through tests/conftest.py)."""

from ptyscan import EOS, WAIT


def drain(scan, per_chunk=5, *, max_calls=200, allow_wait=True):
    """Every chunk ``scan.auto(per_chunk)`` delivers until EOS (WAITs skipped).

    Fails after ``max_calls`` calls without EOS, or at a WAIT when not ``allow_wait``.
    """
    chunks = []
    for _ in range(max_calls):
        msg = scan.auto(per_chunk)
        if msg is EOS:
            return chunks
        if msg is WAIT:
            assert allow_wait, "unexpected WAIT"
            continue
        chunks.append(msg)
    raise AssertionError(f"no EOS after {max_calls} calls")
