"""`shipit check` and `shipit config`: every bad-input case of tests/unit/test_bad_input.py is
caught by `check` with no connection (exit 2, file:line); problems of several stages are
listed together; `--hosts` checks the (simulated) hosts; `config` says where each value came
from and never shows a secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipit import cli, daytwo, deploy
from shipit.pool import TransportPool
from tests.unit.fakefleet import fake_kinds, fake_modules, fake_pool
from tests.unit.test_bad_input import CASES, Case, marked_line, write_case
from tests.unit.test_deployer import Fleet


def no_ssh(*args: object, **kw: object) -> TransportPool:
    raise AssertionError("check opened an SSH pool")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "ssh_pool", no_ssh)
    monkeypatch.setattr(daytwo, "ssh_pool", no_ssh)
    monkeypatch.setenv("DB_PASSWORD", "pw")


def check_args(case: Case, args: list[str], tmp_path: Path) -> list[str]:
    """The CLI args of a bad-input case, turned into the `check` that covers it."""
    if args[0] == "run":  # an inventory or playbook case: check loads the playbook given
        return ["check", "test", "-i", args[4], "--playbook", args[2], "--app", str(tmp_path / "app")]
    return ["check", *args[1:]]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_catches_every_bad_input_case_without_a_connection(case: Case, tmp_path: Path, offline: None) -> None:
    bad, args = write_case(tmp_path, case)
    result = CliRunner().invoke(cli.main, check_args(case, args, tmp_path))
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert f"{bad}:{marked_line(case.text)}:" in result.output and "Traceback" not in result.output


def test_check_lists_the_problems_of_every_stage_at_once(tmp_path: Path, offline: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bad, args = write_case(tmp_path, next(c for c in CASES if c.kind == "book"))
    monkeypatch.delenv("DB_PASSWORD")
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(cli.main, ["check", "test", "-i", str(tmp_path / "inv.yml"), "--playbook",
                                           str(bad), "--app", str(tmp_path / "app"), "--json"])
    assert result.exit_code == 2
    keys = {p["key"] for p in json.loads(result.stdout)["problems"]}
    assert "secrets.DB_PASSWORD" in keys and len(keys) >= 2  # the playbook's problem too


def test_check_of_good_input_says_no_host_was_contacted(tmp_path: Path, offline: None) -> None:
    write_case(tmp_path, Case("none", "app", "", "", ""))  # writes the good files (app replaced below)
    (tmp_path / "app" / "shipit.yml").write_text((Path(cli.__file__).parents[1] / "examples" / "app" / "shipit.yml").read_text())
    result = CliRunner().invoke(cli.main, ["check", "test", "-i", str(tmp_path / "inv.yml"),
                                           "--app", str(tmp_path / "app")])
    assert result.exit_code == 0, result.output
    assert "no host was contacted" in result.stdout and "secrets DB_PASSWORD set" in result.stdout


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    monkeypatch.setattr(daytwo, "ssh_pool", lambda inv, accept=False: fake_pool(fleet.hosts))
    monkeypatch.setattr(deploy, "builtin_modules", fake_modules)
    monkeypatch.setattr(deploy, "fact_kinds", fake_kinds)
    yield fleet


def test_check_hosts_reports_each_host_and_fails_on_an_unreachable_one(fleet: Fleet) -> None:
    args = ["check", "prod", "--hosts", "-i", str(fleet.tmp / "inv.yml"), "--app", str(fleet.tmp / "app")]
    result = CliRunner().invoke(cli.main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {h for h, r in doc["hosts"].items() if r["ok"]} == {"web1", "web2", "web3", "*"}
    assert "CPython 3.11 on x86_64" in doc["hosts"]["*"]["message"]
    fleet.hosts["web2"].unreachable = True
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 1 and "FAILED web2:" in result.stdout and "Traceback" not in result.output


def test_config_says_where_each_value_came_from_and_hides_secrets(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    app = fleet.tmp / "app" / "shipit.yml"
    app.write_text(app.read_text() + "secrets: [SECRET_KEY, OTHER]\n"
                   "env: {SECRET_KEY: '{{ secrets.SECRET_KEY }}', OTHER: '{{ secrets.OTHER }}'}\n")
    inv = fleet.tmp / "inv.yml"
    inv.write_text(inv.read_text() + "app:\n  domains: [prod.example.com]\n")
    monkeypatch.setenv("SECRET_KEY", "s3cr3t-value")
    monkeypatch.delenv("OTHER", raising=False)
    monkeypatch.setenv("HOME", str(fleet.tmp))
    args = ["config", "prod", "-i", str(inv), "--app", str(fleet.tmp / "app")]
    result = CliRunner().invoke(cli.main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    line = inv.read_text().splitlines().index("  domains: [prod.example.com]") + 1
    assert doc["domains"] == {"value": "prod.example.com", "from": f"{inv}:{line}"}
    assert doc["name"]["from"] == f"{app}:1" and doc["canary.bake"]["from"] == "default"
    assert doc["secrets.SECRET_KEY"]["value"] == "set (value hidden)" and doc["secrets.OTHER"]["value"] == "MISSING"
    assert doc["env.SECRET_KEY"]["value"] == "{{ secrets.SECRET_KEY }}"
    text = CliRunner().invoke(cli.main, args).stdout
    assert "s3cr3t-value" not in result.stdout + text and "domains" in text


@pytest.mark.parametrize(("where", "text", "hint"), [
    ("app", "keep_release: 3\n", "did you mean 'keep_releases'?"),
    ("app", "web: {app: x:app, worker: 2}\n", "did you mean 'workers'?"),
    ("app", "health: {pth: /health}\n", "did you mean 'path'?"),
    ("inv", "hosts:\n  web1: {adress: 127.0.0.1}\n", "did you mean 'address'?"),
    ("book", "- hosts: all\n  tasks:\n    - shel: echo hi\n", "did you mean 'shell'?"),
    ("book", "- hosts: all\n  taks: []\n", "did you mean 'tasks'?"),
])
def test_unknown_keys_get_a_did_you_mean(tmp_path: Path, offline: None, where: str, text: str, hint: str) -> None:
    write_case(tmp_path, Case("none", "app", "", "", ""))
    app = tmp_path / "app" / "shipit.yml"
    app.write_text("name: example\nweb: {app: x:app}\ndomains: [a.test]\n")
    args = ["check", "test", "-i", str(tmp_path / "inv.yml"), "--app", str(tmp_path / "app")]
    if where == "app":
        app.write_text(app.read_text().replace("web: {app: x:app}\n", "") + text
                       if text.startswith("web:") else app.read_text() + text)
    elif where == "inv":
        (tmp_path / "inv.yml").write_text(text + "groups: {web: {hosts: [web1]}}\n")
    else:
        (tmp_path / "book.yml").write_text(text)
        args += ["--playbook", str(tmp_path / "book.yml")]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2 and hint in result.output, result.output
