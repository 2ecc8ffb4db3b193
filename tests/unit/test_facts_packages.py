"""deb and apt_policy parsers on output recorded on Debian 12."""

from __future__ import annotations

from pathlib import Path

from shipit.facts.packages import parse_apt_policy, parse_deb

REC = Path(__file__).parent / "recorded"


def rec(name: str) -> str:
    return (REC / name).read_text()


def test_deb() -> None:
    assert parse_deb(rec("deb_coreutils.txt")) == {"installed": True, "version": "9.1-1"}
    assert parse_deb(rec("deb_no-such-package-x.txt")) == {"installed": False, "version": None}
    assert parse_deb(rec("deb_caddy.txt"))["installed"] is False
    assert parse_deb("rc |1.0\n")["installed"] is False      # config files only


def test_apt_policy() -> None:
    assert parse_apt_policy(rec("apt_policy_curl.txt")) == {
        "installed": "7.88.1-10+deb12u14", "candidate": "7.88.1-10+deb12u15"}
    assert parse_apt_policy(rec("apt_policy_caddy.txt")) == {
        "installed": None, "candidate": "2.6.2-5"}
    assert parse_apt_policy(rec("apt_policy_no-such-package-x.txt")) == {
        "installed": None, "candidate": None}
