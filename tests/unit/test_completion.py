"""Shell completion (click's own, ``_SHIPIT_COMPLETE=bash_source shipit``): ENV arguments
complete from ``inventories/`` of the current directory, by calling the completion function
and through click's completion protocol as a shell would."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.shell_completion import CompletionItem
from click.testing import CliRunner

from shipit import cli


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inv = tmp_path / "inventories"
    inv.mkdir()
    for name in ("prod.yml", "preview.yaml", "staging.ini", "prod.example.yml", "notes.txt"):
        (inv / name).write_text("hosts: {}\n")
    (inv / "sub.yml").mkdir()  # a directory is not an inventory
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _names(items: list[CompletionItem]) -> list[str]:
    return [str(i.value) for i in items]


def test_complete_env_lists_the_inventories_of_the_current_directory(app_dir: Path) -> None:
    cmd = cli.main.get_command(cli.click.Context(cli.main), "deploy")
    assert cmd is not None
    param = next(p for p in cmd.params if p.name == "env")
    ctx = cli.click.Context(cmd)
    assert _names(cli.complete_env(ctx, param, "")) == ["preview", "prod", "staging"]
    assert _names(cli.complete_env(ctx, param, "pr")) == ["preview", "prod"]
    assert _names(cli.complete_env(ctx, param, "x")) == []


def test_no_inventories_directory_completes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.environments() == [] and cli.environments(tmp_path / "missing") == []


def _complete(words: str) -> str:
    """What click answers bash asking to complete ``words`` (the last word is incomplete)."""
    env = {"_SHIPIT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = CliRunner().invoke(cli.main, [], prog_name="shipit", env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", ["deploy", "rollback", "status", "releases", "run", "exec", "facts",
                                     "unlock", "logs", "console", "check", "config"])
def test_every_env_argument_completes_through_clicks_protocol(app_dir: Path, command: str) -> None:
    out = _complete(f"shipit {command} pr")
    assert out.split() == ["plain,preview", "plain,prod"], out


def test_command_names_and_options_complete_too(app_dir: Path) -> None:
    assert "plain,deploy" in _complete("shipit dep").split()
    assert "plain,--detail" in _complete("shipit status prod --de").split()


def test_the_scripts_for_bash_zsh_and_fish_are_clicks(app_dir: Path) -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef shipit"), ("fish", "complete --no-files")):
        result = CliRunner().invoke(cli.main, [], prog_name="shipit", env={"_SHIPIT_COMPLETE": f"{shell}_source"})
        assert result.exit_code == 0 and marker in result.output and "_SHIPIT_COMPLETE" in result.output, shell
