"""user and group parsers on output recorded on Debian 12."""

from __future__ import annotations

from pathlib import Path

from shipit.facts.accounts import parse_group, parse_user

REC = Path(__file__).parent / "recorded"


def rec(name: str) -> str:
    return (REC / name).read_text()


def test_user() -> None:
    assert parse_user(rec("user_postgres.txt")) == {
        "exists": True, "uid": 101, "gid": 104, "home": "/var/lib/postgresql",
        "shell": "/bin/bash", "primary_group": "postgres", "groups": ["postgres", "ssl-cert"]}
    assert parse_user(rec("user_nobody.txt"))["shell"] == "/usr/sbin/nologin"
    assert parse_user(rec("user_no-such-user-x.txt"))["exists"] is False


def test_group() -> None:
    assert parse_group(rec("group_ssl-cert.txt")) == {
        "exists": True, "gid": 103, "members": ["postgres"]}
    assert parse_group(rec("group_sudo.txt")) == {"exists": True, "gid": 27, "members": []}
    assert parse_group(rec("group_no-such-group-x.txt"))["exists"] is False
