"""Pure parts of `shipit logs`: the journalctl line, the JSON parser, the merge, the checks."""

from __future__ import annotations

import json
import shlex

import pytest

from shipit import logs
from shipit.errors import ValidationError
from shipit.layout import Layout
from shipit.streaming import LineSplitter

LAY = Layout("example")


def journal(ts_us: int, unit: str, message: object, field: str = "_SYSTEMD_UNIT") -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": str(ts_us), field: unit, "MESSAGE": message})


def test_unit_patterns_name_every_unit_of_the_app_and_only_its_own() -> None:
    assert logs.unit_patterns(LAY, ["heartbeat"], None) == (
        "example-web@*.service", "example-release-command.service", "example-heartbeat@*.service")
    assert logs.unit_patterns(LAY, ["heartbeat"], "web") == ("example-web@*.service",)
    assert logs.unit_patterns(LAY, ["heartbeat"], "heartbeat") == ("example-heartbeat@*.service",)


def test_an_unknown_process_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ValidationError) as exc:
        logs.unit_patterns(LAY, ["heartbeat"], "hearbeat")
    problem = exc.value.problems[0]
    assert problem.key == "hearbeat" and "did you mean 'heartbeat'?" in problem.message
    assert exc.value.exit_code == 2


def test_journal_script_quotes_every_word_and_follows_on_request() -> None:
    query = logs.LogQuery("example", ("example-web@*.service",), follow=True, lines=20,
                          since="-10m", grep="it's $HOME")
    script = logs.journal_script(query)
    words = shlex.split(script)
    assert words[:2] == ["exec", "journalctl"]
    assert words[words.index("-u") + 1] == "example-web@*.service"  # the glob reaches journalctl
    assert "--grep=it's $HOME" in words and "--since=-10m" in words and "--follow" in words
    assert words[words.index("-n") + 1] == "20"
    assert "--follow" not in logs.journal_script(logs.LogQuery("example", ("x",), lines=None))
    assert "-n" not in shlex.split(logs.journal_script(logs.LogQuery("example", ("x",), lines=None)))


@pytest.mark.parametrize(("text", "expected"), [
    ("10m", "-10m"), ("30s", "-30s"), ("2h", "-2h"), ("1d", "-1d"), ("2026-12-01", "2026-12-01"),
    ("2026-12-01 10:00", "2026-12-01 10:00"), ("today", "today")])
def test_since_accepts_spans_dates_and_words(text: str, expected: str) -> None:
    assert logs.since_arg(text) == expected


@pytest.mark.parametrize("text", ["10 minutes ago; rm -rf /", "-10m", "yesterday-ish", "10y", ""])
def test_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValidationError) as exc:
        logs.since_arg(text)
    assert exc.value.problems[0].key == text and "expected a time span" in exc.value.problems[0].message


def test_grep_refuses_a_pattern_that_does_not_compile() -> None:
    assert logs.grep_arg("heartbeat [0-9]+") == "heartbeat [0-9]+"
    with pytest.raises(ValidationError, match="not a regular expression"):
        logs.grep_arg("heartbeat (")


def test_parse_entry_reads_journald_json() -> None:
    entry = logs.parse_entry(LAY, "web2", journal(1764680701123456, "example-web@8001.service", "GET / 200"))
    assert entry is not None
    assert (entry.host, entry.process, entry.message, entry.unit) == (
        "web2", "web@8001", "GET / 200", "example-web@8001.service")
    assert entry.time == pytest.approx(1764680701.123456)
    heartbeat = logs.parse_entry(LAY, "web1", journal(1, "example-heartbeat@1.service", "beat"))
    assert heartbeat is not None and heartbeat.process == "heartbeat@1"
    migrate = logs.parse_entry(LAY, "web1", journal(1, "example-release-command.service", "ok"))
    assert migrate is not None and migrate.process == "release"


def test_parse_entry_takes_systemd_own_lines_about_the_unit_and_binary_messages() -> None:
    # PID 1's "Started ..." has _SYSTEMD_UNIT=init.scope and UNIT=<the unit>
    doc = json.loads(journal(5, "init.scope", "Started example web, slot 8000."))
    doc["UNIT"] = "example-web@8000.service"
    started = logs.parse_entry(LAY, "web1", json.dumps(doc))
    assert started is not None and started.process == "web@8000"
    raw = logs.parse_entry(LAY, "web1", journal(6, "example-web@8000.service", list(b"caf\xc3\xa9 \xff")))
    assert raw is not None and raw.message == "café \ufffd"


@pytest.mark.parametrize("line", ["", "not json", "[]", '{"MESSAGE": "no time"}', '{"__REALTIME_TIMESTAMP": "x"}'])
def test_parse_entry_ignores_what_is_not_an_entry(line: str) -> None:
    assert logs.parse_entry(LAY, "web1", line) is None


def test_merge_orders_every_host_by_time() -> None:
    a = [logs.LogEntry(1.0, "web1", "web@8000", "a1"), logs.LogEntry(3.0, "web1", "web@8000", "a3")]
    b = [logs.LogEntry(2.0, "web2", "web@8000", "b2"), logs.LogEntry(4.0, "web2", "web@8000", "b4")]
    assert [e.message for e in logs.merge(a + b)] == ["a1", "b2", "a3", "b4"]


def test_merger_holds_lines_for_the_window_then_releases_them_in_time_order() -> None:
    m = logs.Merger(window=0.3)
    m.add(logs.LogEntry(10.2, "web1", "p", "late host's newer line"), now=100.0)
    m.add(logs.LogEntry(10.1, "web2", "p", "older line arriving later"), now=100.1)
    assert m.ready(now=100.2) == []  # nothing held long enough yet
    first = m.ready(now=100.35)
    assert [e.message for e in first] == ["older line arriving later", "late host's newer line"]
    m.add(logs.LogEntry(11.0, "web1", "p", "next"), now=101.0)
    assert m.ready(now=101.1) == [] and [e.message for e in m.flush()] == ["next"]
    assert m.flush() == []


def test_formats() -> None:
    entry = logs.LogEntry(1764680701.5, "web2", "web@8001", 'said "hi"', "example-web@8001.service")
    assert logs.format_entry(entry, 5) == '2025-12-02 13:05:01.500 web2  web@8001: said "hi"'
    assert json.loads(logs.entry_json(entry)) == {
        "time": "2025-12-02T13:05:01.500000Z", "host": "web2", "process": "web@8001",
        "unit": "example-web@8001.service", "message": 'said "hi"'}


def test_line_splitter_keeps_a_partial_line_until_its_newline() -> None:
    s = LineSplitter()
    assert s.feed(b"one\ntw") == ["one"]
    assert s.feed(b"o\nthr") == ["two"]
    assert s.flush() == ["thr"] and s.flush() == []


def test_no_units_yet_is_journalctls_no_match_message() -> None:
    assert logs.no_units_yet("Failed to add filter for units: No data available")
    assert not logs.no_units_yet("Failed to open journal: Permission denied")
