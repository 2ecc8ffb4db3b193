"""venv parser on output recorded on Debian 12."""

from __future__ import annotations

from pathlib import Path

from shipit.facts.python import normalize, parse_venv

REC = Path(__file__).parent / "recorded"


def test_fresh_venv() -> None:
    assert parse_venv((REC / "venv_fresh.txt").read_text()) == {
        "exists": True, "version": "3.11.7", "python": True,
        "packages": {"pip": "23.2.1", "setuptools": "65.5.0"}, "requirements_sha256": None}


def test_app_venv_and_absent() -> None:
    app = parse_venv((REC / "venv_app.txt").read_text())
    assert app["packages"]["annotated-doc"] == "0.0.7" and len(app["packages"]) > 20
    assert parse_venv((REC / "venv_absent.txt").read_text())["exists"] is False
    assert parse_venv("version=3.11.2\nstamp=abc\n")["requirements_sha256"] == "abc"
    assert normalize("Typing_Extensions") == "typing-extensions"


def test_host_facts_give_glibc_for_the_target_platform() -> None:
    from shipit.facts.host import COMMAND, parse
    assert "getconf GNU_LIBC_VERSION" in COMMAND
    assert parse("machine=aarch64\nglibc=2.36\n")["glibc"] == "2.36"
    assert parse("machine=x86_64\nglibc=\n")["glibc"] == ""          # musl: getconf fails
    assert parse("machine=x86_64\n")["glibc"] == ""
