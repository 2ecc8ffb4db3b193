"""venv parser on output recorded on Debian 12."""

from __future__ import annotations

from pathlib import Path

from shipit.facts.python import normalize, parse_venv

REC = Path(__file__).parent / "recorded"


def test_fresh_venv() -> None:
    assert parse_venv((REC / "venv_fresh.txt").read_text()) == {
        "exists": True, "version": "3.11.7", "python": True,
        "packages": {"pip": "23.2.1", "setuptools": "65.5.0"}, "requirements_sha256": None,
        "relocatable": False}


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


def test_a_venv_made_by_uv_is_read_as_existing(tmp_path: Path) -> None:
    """Regression: uv writes ``version_info = 3.X.Y`` in pyvenv.cfg, not ``version``; the fact
    read its venvs as absent, so a re-deploy tried to create the release venv again (and
    ``uv venv`` refuses an existing one)."""
    import subprocess
    import sys

    from shipit.artifact import uv_bin
    from shipit.facts.python import venv_command

    venv = tmp_path / "venv"
    subprocess.run([uv_bin(), "venv", "--no-config", "--quiet", "--no-python-downloads",
                    "--python", sys.executable, str(venv)], check=True, capture_output=True)
    assert "version_info" in (venv / "pyvenv.cfg").read_text()
    out = subprocess.run(["sh", "-c", venv_command(str(venv))], capture_output=True, text=True, check=True)
    got = parse_venv(out.stdout)
    assert got["exists"] and got["python"]
    assert got["version"].split(".")[:2] == [str(sys.version_info.major), str(sys.version_info.minor)]
