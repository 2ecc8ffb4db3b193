"""The unit fact parser (systemctl show format) and the running predicate."""

from __future__ import annotations

from pathlib import Path

from shipit.facts.systemd import is_running, parse_unit, unit_command

REC = Path(__file__).parent / "recorded"


def test_active_unit() -> None:
    assert parse_unit((REC / "unit_caddy_active.txt").read_text()) == {
        "load_state": "loaded", "active_state": "active", "sub_state": "running",
        "unit_file_state": "enabled", "n_restarts": 0, "main_pid": 2051,
        "fragment_path": "/lib/systemd/system/caddy.service"}


def test_not_found_and_crashloop() -> None:
    missing = parse_unit((REC / "unit_not_found.txt").read_text())
    assert missing["load_state"] == "not-found" and missing["unit_file_state"] == ""
    loop = parse_unit((REC / "unit_crashloop.txt").read_text())
    assert loop["n_restarts"] == 4 and not is_running(loop)


def test_no_systemd_recorded_is_empty() -> None:
    fact = parse_unit((REC / "unit_no_systemd.txt").read_text())
    assert fact["load_state"] == "" and fact["main_pid"] == 0


def test_command_quotes_name() -> None:
    assert unit_command("a b.service").endswith("-- 'a b.service'")
