"""Exceptions raised by ptyscan.

Every error a user can trigger derives from :class:`PtyScanError`, so one
``except PtyScanError`` catches bad input without hiding programming errors.
Messages follow one pattern: what is wrong, the value received, what was
expected and, where one exists, a hint.
"""

from __future__ import annotations

import difflib

__all__ = [
    "BackendError",
    "ParameterError",
    "PeerError",
    "PtyScanError",
    "PtydError",
    "RecipeError",
    "ScanError",
    "UnsupportedError",
    "closest_name",
    "short_repr",
]


def closest_name(name: str, candidates) -> str | None:
    """Return the candidate closest to ``name`` (for 'did you mean' hints), or None."""
    lowered = {str(c).lower(): str(c) for c in candidates}
    hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[hits[0]] if hits else None


def short_repr(value) -> str:
    """``repr(value)`` cut to 60 characters, for the 'got ...' part of a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class PtyScanError(Exception):
    """Base class of every error ptyscan raises on purpose."""


class RecipeError(PtyScanError, ValueError):
    """A recipe or parameter set is invalid.

    Parameters
    ----------
    problems : list of str
        One line per problem, each naming the parameter path, the bad value,
        what was expected and a hint.
    source : str, optional
        Where the parameters came from (a file name), shown in the header.
    """

    def __init__(self, problems, source=None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''}{where}:"
        super().__init__("\n".join([head, *("  " + p for p in self.problems)]))


class ParameterError(PtyScanError, ValueError):
    """A single argument to a function has a bad value."""


class ScanError(PtyScanError, RuntimeError):
    """A scan cannot deliver data (missing files, inconsistent frames, ...)."""


class PeerError(ScanError):
    """Another MPI rank failed in a step all ranks take together; that rank reports why."""


class PtydError(PtyScanError, OSError):
    """A ``.ptyd`` file is missing, malformed or cannot be written."""


class UnsupportedError(PtyScanError, NotImplementedError):
    """A part of another package's interface that ptyscan does not provide (such as
    ptypy's ``Ptycho`` reconstruction object); the message names what to use instead."""


class BackendError(PtyScanError, RuntimeError):
    """An array backend (NumPy or CuPy) cannot be used."""


class OutputError(PtyScanError, OSError):
    """An output folder or file cannot be created or written."""


class RunInterruptedError(PtyScanError):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM after writing what it had.

    The command line prints the message and exits with code 130.
    """

    exit_code = 130
