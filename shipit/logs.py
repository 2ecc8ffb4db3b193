"""``shipit logs``: the app's units from journald on every host, merged in time order.

Pure: the journalctl command line (:func:`journal_script`), the parser of its JSON lines
(:func:`parse_entry`), the arguments' checks (:func:`since_arg`, :func:`grep_arg`,
:func:`unit_patterns`), the time-ordered merge of several hosts' lines (:class:`Merger`) and
the output formats (:func:`format_entry`, :func:`entry_json`). Running it on the hosts is
:mod:`shipit.streaming`'s job; printing is the CLI's.

journalctl is asked for ``-o json`` (one object per line: ``__REALTIME_TIMESTAMP`` in
microseconds since the epoch, ``MESSAGE`` as a string, or as a list of byte values when it is
not valid UTF-8, ``_SYSTEMD_UNIT`` / ``UNIT``), as ``kamal app logs`` reads ``docker logs`` and
``dep logs:app`` reads a file: here the journal is the only place an app's output goes.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipit.errors import Problem, ValidationError
from shipit.layout import Layout
from shipit.quoting import q

#: What PROCESS may name besides the app's own processes: the web slots, the release commands.
WEB, RELEASE = "web", "release"
_RELATIVE = re.compile(r"^(\d{1,6})\s*(s|sec|m|min|h|d|w)$")
_ABSOLUTE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?$")
_WORDS = {"today", "yesterday", "now"}


@dataclass(frozen=True)
class LogQuery:
    """What to read: the app, which of its units (``patterns``), how much, whether to follow.

    ``lines``: the last N entries per host (None: all, within ``since``); ``since``: a
    journalctl ``--since`` value (see :func:`since_arg`); ``grep``: a journalctl ``--grep``
    pattern (PCRE2, case-insensitive when all lowercase, as journalctl does).
    """

    app: str
    patterns: tuple[str, ...]
    follow: bool = False
    lines: int | None = 100
    since: str | None = None
    grep: str | None = None


@dataclass(frozen=True, order=True)
class LogEntry:
    """One journal line of one host. ``time`` in seconds since the epoch (UTC, µs precision);
    ``process`` is ``web@8001``, ``heartbeat@1``, ``release`` or the raw unit name."""

    time: float
    host: str = field(compare=False)
    process: str = field(compare=False)
    message: str = field(compare=False)
    unit: str = field(compare=False, default="")


def unit_patterns(layout: Layout, processes: Sequence[str], process: str | None,
                  jobs: Sequence[str] = ()) -> tuple[str, ...]:
    """journalctl ``-u`` patterns for ``process`` (None: every unit of the app).

    ``processes`` are the app spec's process names, ``jobs`` its scheduled jobs' names (their
    ``.service`` units). ``web`` names the web slots, ``release`` the release commands
    (migrations); anything else must be one of ``processes`` or ``jobs``.

    Raises:
        ValidationError: an unknown process (with the closest name, if one is close).
    """
    every = {WEB: (layout.web_unit("*"),), RELEASE: (f"{layout.migrate_unit}.service",)}
    for name in processes:
        every[name] = (layout.process_unit(name, "*"),)
    for name in jobs:
        every.setdefault(name, (layout.job_service(name),))
    if process is None:
        return tuple(p for patterns in every.values() for p in patterns)
    if process not in every:
        close = difflib.get_close_matches(process, list(every), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValidationError([Problem("PROCESS", 0, process,
                                       f"not a process of the app (expected one of: {', '.join(every)}){hint}")])
    return every[process]


def since_arg(text: str) -> str:
    """A journalctl ``--since`` value from ``10m``, ``2h``, ``1d``, ``2026-12-01``,
    ``2026-12-01 10:00[:00]``, ``today``, ``yesterday``; relative ones become ``-10m``.

    Raises:
        ValidationError: anything else (exit 2).
    """
    value = text.strip()
    m = _RELATIVE.match(value)
    if m:
        return f"-{m.group(1)}{m.group(2)}"
    if _ABSOLUTE.match(value) or value in _WORDS:
        return value
    raise ValidationError([Problem("--since", 0, text, "expected a time span back from now (30s, 10m, 2h, "
                                   "1d, 1w), a date (2026-12-01), a date and time (2026-12-01 10:00), "
                                   "today or yesterday")])


def grep_arg(pattern: str) -> str:
    """``pattern`` if it compiles as a regular expression (journalctl takes PCRE2; Python's
    ``re`` catches the usual mistakes before any connection).

    Raises:
        ValidationError: it does not compile, or is empty.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValidationError([Problem("--grep", 0, pattern, f"not a regular expression: {exc}")]) from None
    if not pattern:
        raise ValidationError([Problem("--grep", 0, pattern, "expected a regular expression, got nothing")])
    return pattern


def journal_script(query: LogQuery) -> str:
    """The shell reading ``query`` from journald on a host (run as root: the app user's
    units log to the system journal). ``exec``: a cancel's SIGTERM reaches journalctl."""
    words = ["journalctl", "--no-pager", "--quiet", "-o", "json",
             "--output-fields=MESSAGE,_SYSTEMD_UNIT,UNIT"]
    for pattern in query.patterns:
        words += ["-u", pattern]
    if query.lines is not None:
        words += ["-n", str(query.lines)]
    if query.since:
        words.append(f"--since={query.since}")
    if query.grep:
        words.append(f"--grep={query.grep}")
    if query.follow:
        words.append("--follow")
    return "exec " + " ".join(q(w) for w in words) + "\n"


def no_units_yet(stderr: str) -> bool:
    """Whether journalctl's ``stderr`` says that no unit matched the patterns (it exits 1
    with "Failed to add filter for units: No data available" when none of them has ever
    logged, e.g. a process that has not started yet): no lines, not a failure."""
    return "Failed to add filter for units" in stderr and "No data available" in stderr


def _label(layout: Layout, unit: str) -> str:
    if unit.removesuffix(".service") == layout.migrate_unit:
        return RELEASE
    if (job := layout.job_of_unit(unit)) is not None:
        return f"job:{job}"
    kind = layout.unit_kind(unit)
    return f"{kind[0]}@{kind[1]}" if kind else unit


def _message(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # journald's form for a message that is not valid UTF-8
        try:
            return bytes(int(b) & 0xFF for b in value).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return ""
    return "" if value is None else str(value)


def parse_entry(layout: Layout, host: str, line: str) -> LogEntry | None:
    """One line of ``journalctl -o json`` from ``host``, or None if it is not an entry."""
    try:
        doc = json.loads(line)
        stamp = int(doc["__REALTIME_TIMESTAMP"]) / 1e6
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(doc, dict):
        return None
    unit = doc.get("_SYSTEMD_UNIT")
    if not isinstance(unit, str) or not unit.startswith(f"{layout.app}-"):
        unit = doc.get("UNIT") if isinstance(doc.get("UNIT"), str) else (unit if isinstance(unit, str) else "")
    return LogEntry(stamp, host, _label(layout, str(unit)), _message(doc.get("MESSAGE")).rstrip("\n"), str(unit))


class Merger:
    """Merges live entries of several hosts in time order.

    Each host's entries come in order; across hosts they arrive in roughly time order. An
    entry is held ``window`` seconds (wall clock, from when it arrived) so that one written a
    little earlier on a slower host can still go before it. ``now`` is passed in (pure).
    """

    def __init__(self, window: float = 0.3) -> None:
        self.window = window
        self._held: list[tuple[float, LogEntry]] = []

    def add(self, entry: LogEntry, now: float) -> None:
        self._held.append((now, entry))

    def ready(self, now: float) -> list[LogEntry]:
        """Entries held long enough, oldest first; later ones stay held."""
        if not self._held:
            return []
        cut = [e for arrived, e in self._held if now - arrived >= self.window]
        if not cut:
            return []
        newest = max(e.time for e in cut)
        out = sorted(e for _, e in self._held if e.time <= newest)
        keep = {id(e) for e in out}
        self._held = [(a, e) for a, e in self._held if id(e) not in keep]
        return out

    def flush(self) -> list[LogEntry]:
        """Everything held, oldest first."""
        out = sorted(e for _, e in self._held)
        self._held = []
        return out


def merge(entries: Iterable[LogEntry]) -> list[LogEntry]:
    """Entries of every host in time order (stable: a host's own order is kept on ties)."""
    return sorted(entries)


def format_entry(entry: LogEntry, host_width: int = 0) -> str:
    """``2026-12-02 13:05:01.123 web2  web@8001: message`` (UTC, milliseconds)."""
    when = datetime.fromtimestamp(entry.time, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{when} {entry.host.ljust(host_width)} {entry.process}: {entry.message}"


def entry_json(entry: LogEntry) -> str:
    """One JSON object per line: ``{"time", "host", "process", "unit", "message"}`` (time in
    ISO 8601 UTC with microseconds)."""
    when = datetime.fromtimestamp(entry.time, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"time": when, "host": entry.host, "process": entry.process,
                       "unit": entry.unit, "message": entry.message}, ensure_ascii=False)
