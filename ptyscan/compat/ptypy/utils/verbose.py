"""``log(level, message)`` and ``logger``: ptypy's logging calls on Python's logging.

ptypy's verbosity levels map to logging levels: 0 critical, 1 error, 2 warning,
3 info, 4 and 5 debug. Messages go to the ``ptyscan.compat.ptypy`` logger; as
everywhere in ptyscan, only rank 0 shows info-level summaries when the
application configures logging.
"""

from __future__ import annotations

import logging
import pprint

__all__ = ["log", "logger", "report", "set_level"]

logger = logging.getLogger("ptyscan.compat.ptypy")

LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}


def log(level, message, parallel=False):
    """Log ``message`` at ptypy verbosity ``level`` (0 critical ... 5 debug).

    ``parallel`` (ptypy: log on every rank) is accepted and ignored: the
    application's logging configuration decides which ranks show messages.
    """
    logger.log(LEVELS.get(int(level), logging.DEBUG), "%s", message)


def report(thing, depth=4, noheader=False, **kwargs):
    """A readable multi-line text of ``thing`` (a Param, dict or any value)."""
    todict = getattr(thing, "todict", None)
    return pprint.pformat(todict() if callable(todict) else thing, depth=depth, width=100)


def set_level(level):
    """Show messages up to ptypy verbosity ``level`` (0 critical ... 5 debug)."""
    logger.setLevel(LEVELS.get(int(level), logging.DEBUG))
