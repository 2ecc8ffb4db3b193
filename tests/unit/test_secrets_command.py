"""`secrets_command:` (a password manager's CLI on the runner): values of any bytes arrive
exactly in the release's env file, the environment wins, failures are exit-2 problems that
never quote the command's stdout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shipit.app import load_app_spec, load_secrets
from shipit.deploy import load_target, render_env_file
from shipit.errors import ValidationError
from shipit.inventory import load_inventory

VALUE = 'it\'s "quoted" $HOME and `cmd`\nsecond line \\ end'
# what `op inject` / `sops -d` would print: a dotenv line, double-quoted with escapes
DOTENV = 'X="it\'s \\"quoted\\" $HOME and `cmd`\\nsecond line \\\\ end"\n'


def app(tmp_path: Path, command: str) -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "secrets.env").write_text(DOTENV)
    (tmp_path / "app" / "shipit.yml").write_text(
        "name: example\nweb: {app: x:app}\ndomains: [a.test]\nsecrets: [X]\n"
        "env: {X: '{{ secrets.X }}'}\n" f"secrets_command: {command if command.startswith('|') else json.dumps(command)}\n")
    (tmp_path / "inv.yml").write_text("hosts:\n  web1: {address: 127.0.0.1}\ngroups: {web: {hosts: [web1]}}\n")
    return tmp_path / "app"


def test_the_commands_values_reach_the_env_file_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    app_dir = app(tmp_path, "cat secrets.$SHIPIT_ENV.env 2>/dev/null || cat secrets.env")
    assert load_secrets(load_app_spec(app_dir), "prod", {}) == {"X": VALUE}
    target = load_target("prod", load_inventory(tmp_path / "inv.yml"), str(app_dir))
    env_file = tmp_path / "release.env"
    env_file.write_text(render_env_file(target))
    # systemd's EnvironmentFile= parser reads this form as POSIX sh does
    out = subprocess.run(["sh", "-c", f'. {env_file}; printf %s "$X"'], capture_output=True, text=True, check=True)
    assert out.stdout == VALUE


def test_the_environment_wins_and_the_command_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    app_dir = app(tmp_path, f"touch {marker}; cat secrets.env")
    assert load_secrets(load_app_spec(app_dir), "prod", {"X": "from-env"}) == {"X": "from-env"}
    assert not marker.exists()


def test_a_failing_command_is_a_problem_without_its_output(tmp_path: Path) -> None:
    app_dir = app(tmp_path, "echo TOPSECRET-stdout; echo 'op: not signed in' >&2; exit 5")
    with pytest.raises(ValidationError) as exc:
        load_secrets(load_app_spec(app_dir), "prod", {})
    problem = exc.value.problems[0]
    assert problem.key == "secrets_command" and problem.line == 6
    assert problem.message == "exited 5: op: not signed in" and "TOPSECRET" not in str(exc.value)


def test_a_command_that_prints_nothing_useful_names_the_missing_secret(tmp_path: Path) -> None:
    app_dir = app(tmp_path, "echo OTHER=1")
    with pytest.raises(ValidationError, match="secrets_command did not print it"):
        load_secrets(load_app_spec(app_dir), "prod", {})


def test_a_multi_line_command_is_refused_at_its_line(tmp_path: Path) -> None:
    app_dir = app(tmp_path, "|\n  a\n  b")
    with pytest.raises(ValidationError) as exc:
        load_app_spec(app_dir)
    assert [(p.key, p.line) for p in exc.value.problems] == [("secrets_command", 6)]
