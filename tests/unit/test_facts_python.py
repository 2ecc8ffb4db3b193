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
