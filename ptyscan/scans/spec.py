"""Reader of SPEC ``.dat`` log files (the scan log of SPEC-controlled instruments).

A SPEC file is a text file of blocks separated by blank lines. A *file header*
(``#F`` file name, ``#E`` epoch, ``#D`` date, ``#O0``, ``#O1``, ... motor names)
is followed by *scans*::

    #S 74  ascan  samy 0 1 10 0.5      scan number and command
    #D Thu Nov 21 17:02:11 2013        date
    #P0 0.5 1.25 -3                    motor positions, in #O order
    #N 4                               number of columns
    #L samy  samx  Seconds  det        column names (two spaces between names)
    0 0.1 0.5 1200                     data rows, one per point
    #C Thu Nov 21 17:03:40 2013.  Scan aborted after 1 points.

:class:`SpecInfo` reads a whole file into ``scans[number]``, each a
:class:`SpecScan` with ``.command``, ``.date``, ``.motors`` (name → value),
``.counters`` (column names), ``.data`` (column name → array) and ``.aborted``.
A line that cannot be read is an error naming the file and line number; other
header lines (``#G``, ``#Q``, ``#U``, ``#o``, ...) and MCA lines (``@A``) are
skipped.

Names in ``#O`` and ``#L`` lines are separated by two spaces in SPEC (a name may
hold one space, as in ``Two Theta``); files that separate them by single spaces
are read too: the split that matches the number of values (``#P``) or columns
(``#N``) is used.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..errors import ScanError

__all__ = ["SpecInfo", "SpecScan"]

log = logging.getLogger(__name__)

DATE_FORMATS = ("%a %b %d %H:%M:%S %Y", "%a %b %d %Y", "%a %b %d %H:%M %Y", "%d.%m.%Y %H:%M:%S")
"""``#D`` forms understood besides ISO 8601 (SPEC writes the first)."""

_HEADER_KEY = re.compile(r"#([A-Za-z@]+)(\d*)")


@dataclass
class SpecScan:
    """One scan of a SPEC file.

    Attributes
    ----------
    number : int
        Scan number (``#S``).
    command : str
        The command that ran the scan, e.g. ``'ascan  samy 0 1 10 0.5'``.
    date : datetime.datetime, str or None
        Start time (``#D``); the raw text when it is not a date form we know.
    motors : dict of str to float
        Motor positions at the start of the scan (``#P`` lines named by ``#O``).
    counters : list of str
        Column names (``#L``), scanned motors included.
    data : dict of str to (n_points,) float64 ndarray
        One array per column.
    aborted : bool
        A ``#C`` comment says the scan was aborted (``data`` holds the points done).
    comments : list of str
        The ``#C`` lines' text.
    lineno : int
        Line number (1-based) of the ``#S`` line.
    """

    number: int
    command: str
    date: datetime | str | None = None
    motors: dict = field(default_factory=dict)
    counters: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    aborted: bool = False
    comments: list = field(default_factory=list)
    lineno: int = 0

    @property
    def num_points(self) -> int:
        """Number of data rows."""
        return len(next(iter(self.data.values()))) if self.data else 0


class SpecInfo:
    """A parsed SPEC ``.dat`` file: ``scans[number]`` → :class:`SpecScan`.

    Parameters
    ----------
    path : str or os.PathLike
        The SPEC file. It is read at construction; call :meth:`parse` again to
        pick up scans appended since (a file still being written).

    Attributes
    ----------
    scans : dict of int to SpecScan
        Every scan in the file; a repeated scan number keeps the last one.
    file_name : str or None
        ``#F`` of the (last) file header.
    epoch : int or None
        ``#E`` of the (last) file header (Unix time of the file's start).
    date : datetime.datetime, str or None
        ``#D`` of the (last) file header (raw text when not understood).
    motor_names : list of str
        ``#O`` names of the (last) file header.

    Raises
    ------
    ScanError
        The file is missing, or a line cannot be read (the message gives the line number).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.scans: dict[int, SpecScan] = {}
        self.file_name = None
        self.epoch = None
        self.date = None
        self.motor_names: list[str] = []
        self.parse()

    def __repr__(self):
        return f"SpecInfo({self.path!r}, scans={sorted(self.scans)})"

    def parse(self):
        """(Re-)read the whole file."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ScanError(
                f"SpecInfo: cannot read SPEC file {self.path}: {exc.strerror or exc}; "
                "check the log file path (scan.log_file_pattern)"
            ) from None
        _Parser(self, lines).run()


class _Parser:
    """Line-by-line state machine filling a :class:`SpecInfo`."""

    def __init__(self, info, lines):
        self.info = info
        self.lines = lines
        self.scans = {}
        self.motor_lines: list[tuple[int, str]] = []  # (lineno, text) of #O lines
        self.scan = None  # the SpecScan being read, or None in a file header
        self.rows: list[tuple[int, list[float]]] = []  # (lineno, values) of the scan
        self.blocks: dict = {}  # header key → [(lineno, text)] of the scan

    def error(self, lineno, what):
        text = self.lines[lineno - 1].strip()
        shown = text if len(text) <= 70 else text[:67] + "..."
        raise ScanError(f"SpecInfo: {self.info.path}, line {lineno}: {what}: {shown!r}")

    def run(self):
        for lineno, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            if not line:
                self.end_scan()
            elif line.startswith("@") or line.startswith("\\"):
                continue  # MCA data and its continuation lines
            elif line.startswith("#"):
                self.header(lineno, line)
            elif self.scan is None:
                self.error(lineno, "data row outside a scan (no #S line before it)")
            else:
                self.row(lineno, line)
        self.end_scan()
        info = self.info
        info.scans = self.scans
        info.motor_names = self.motor_names(None)

    # --- header lines -------------------------------------------------------------------

    def header(self, lineno, line):
        match = _HEADER_KEY.match(line)
        if match is None:
            self.error(lineno, "expected a header key such as #S or #L after '#'")
        key, text = match.group(1), line[match.end() :].strip()
        if key == "S":
            self.start_scan(lineno, text)
        elif key == "F":
            self.end_scan()
            self.info.file_name, self.motor_lines = text, []
        elif key == "E":
            self.info.epoch = self.number(lineno, text, int, "#E epoch must be an integer")
        elif key == "D":
            date = self.parse_date(lineno, text)
            if self.scan is None:
                self.info.date = date
            else:
                self.scan.date = date
        elif key == "O":
            if match.group(2) in ("", "0"):
                self.motor_lines = []
            self.motor_lines.append((lineno, text))
        elif self.scan is not None and key in ("P", "N", "L", "C"):
            self.blocks.setdefault(key, []).append((lineno, text))

    def start_scan(self, lineno, text):
        self.end_scan()
        parts = text.split(None, 1)
        if not parts:
            self.error(lineno, "#S needs a scan number and a command")
        number = self.number(lineno, parts[0], int, "#S scan number must be an integer")
        self.scan = SpecScan(number=number, command=parts[1] if len(parts) > 1 else "")
        self.scan.lineno = lineno
        self.rows = []
        self.blocks = {}

    def row(self, lineno, line):
        try:
            values = [float(tok) for tok in line.split()]
        except ValueError:
            self.error(lineno, "data row with a value that is not a number")
        self.rows.append((lineno, values))

    def end_scan(self):
        scan = self.scan
        if scan is None:
            return
        self.scan = None
        scan.comments = [text for _, text in self.blocks.get("C", [])]
        scan.aborted = any("aborted" in c.lower() for c in scan.comments)
        scan.motors = self.scan_motors(scan)
        scan.counters = self.column_names(scan)
        columns = np.empty((len(self.rows), len(scan.counters)), np.float64)
        for k, (lineno, values) in enumerate(self.rows):
            if len(values) != len(scan.counters):
                self.error(
                    lineno,
                    f"data row of scan {scan.number} has {len(values)} values, expected "
                    f"{len(scan.counters)} (one per #L column)",
                )
            columns[k] = values
        scan.data = {name: columns[:, j].copy() for j, name in enumerate(scan.counters)}
        if scan.number in self.scans:
            log.warning(
                "SPEC file %s: scan number %d appears again at line %d; keeping the later one",
                self.info.path,
                scan.number,
                scan.lineno,
            )
        self.scans[scan.number] = scan

    # --- the pieces of a scan -----------------------------------------------------------

    def scan_motors(self, scan):
        p_lines = self.blocks.get("P", [])
        if not p_lines:
            return {}
        values = []
        for lineno, text in p_lines:
            try:
                values += [float(tok) for tok in text.split()]
            except ValueError:
                self.error(lineno, "#P motor position that is not a number")
        names = self.motor_names(len(values))
        if names is None:
            self.error(
                p_lines[0][0],
                f"scan {scan.number} has {len(values)} motor positions but the #O lines "
                f"name {len(self.motor_names(None))} motors",
            )
        return dict(zip(names, values, strict=True))

    def motor_names(self, expected):
        """#O names split by two spaces or by any space, whichever gives ``expected``."""
        texts = [text for _, text in self.motor_lines]
        auto = [n for t in texts for n in (_split_wide(t) if "  " in t else t.split())]
        if expected is None:
            return auto
        wide = [n for t in texts for n in _split_wide(t)]
        narrow = [n for t in texts for n in t.split()]
        for names in (auto, wide, narrow):
            if len(names) == expected:
                return names
        return None

    def column_names(self, scan):
        l_lines = self.blocks.get("L", [])
        n_lines = self.blocks.get("N", [])
        if not l_lines:
            if self.rows:
                self.error(self.rows[0][0], f"data rows of scan {scan.number} before any #L line")
            return []
        lineno, text = l_lines[-1]
        expected = None
        if n_lines:
            n_lineno, n_text = n_lines[-1]
            n_text = n_text.split()[0] if n_text.split() else n_text
            expected = self.number(n_lineno, n_text, int, "#N column count must be an integer")
        elif self.rows:
            expected = len(self.rows[0][1])
        wide, narrow = _split_wide(text), text.split()
        for names in (wide, narrow):
            if expected is None or len(names) == expected:
                return names
        self.error(
            lineno,
            f"#L names {len(narrow)} columns (or {len(wide)} split by two spaces), "
            f"expected {expected}",
        )

    def number(self, lineno, text, kind, what):
        try:
            return kind(text)
        except ValueError:
            self.error(lineno, what)

    def parse_date(self, lineno, text):
        """``#D`` as a datetime (SPEC's ctime form, with or without the time, or ISO
        8601); other text is kept as it is, with a warning (a date never stops a scan)."""
        compact = " ".join(text.split())
        for fmt in DATE_FORMATS:
            try:
                return datetime.strptime(compact, fmt)
            except ValueError:
                pass
        try:
            return datetime.fromisoformat(text.strip())
        except ValueError:
            log.warning(
                "%s:%d: #D date %r not understood (expected e.g. 'Thu Nov 21 16:59:12 "
                "2013'); kept as text",
                self.info.path,
                lineno,
                text.strip(),
            )
            return text.strip()


def _split_wide(text):
    return [n for n in re.split(r"\s{2,}", text.strip()) if n]
