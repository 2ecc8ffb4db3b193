"""The CLI over the simulated fleet (stubbed layer): deploy, rollback, releases, unlock, exec,
with --json, --limit, exit codes and SIGTERM. Same fake as tests/unit/test_deployer.py."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipit import cli, deploy
from tests.unit.fakefleet import FakeHost, fake_kinds, fake_modules, fake_pool
from tests.unit.test_deployer import WEB, Fleet


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    monkeypatch.setattr(cli, "ssh_pool", lambda inv, accept=False: fake_pool(fleet.hosts))
    monkeypatch.setattr(deploy, "build_artifact", fleet.build)
    monkeypatch.setattr(deploy, "builtin_modules", fake_modules)
    monkeypatch.setattr(deploy, "fact_kinds", fake_kinds)
    monkeypatch.chdir(tmp_path)
    yield fleet


def shipit(fleet: Fleet, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli.main, [*args, "-i", str(fleet.tmp / "inv.yml"), "--app", str(fleet.tmp / "app")],
                           catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_deploy_json_says_what_each_host_serves(fleet: Fleet) -> None:
    code, out, err = shipit(fleet, "deploy", "prod", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["serving"] == {h: doc["release"] for h in WEB}
    assert doc["migrations"] == "ran" and "switch" in doc["durations"]
    assert "Traceback" not in err


def test_deploy_limit_touches_only_the_limited_hosts(fleet: Fleet) -> None:
    code, out, _ = shipit(fleet, "deploy", "prod", "--json", "--limit", "web3")
    assert code == 0
    assert fleet.serving() == {"web1": None, "web2": None, "web3": json.loads(out)["release"]}


def test_a_failed_canary_exits_1_with_where_each_host_stands(fleet: Fleet) -> None:
    first = json.loads(shipit(fleet, "deploy", "prod", "--json")[1])["release"]
    fleet.version = 1
    fleet.hosts["web1"].fail_switch = True
    code, out, err = shipit(fleet, "deploy", "prod", "--json")
    assert code == 1
    doc = json.loads(out)  # --json prints a document on failure too
    assert doc["ok"] is False and "canary failed on web1" in doc["error"]
    assert doc["serving"] == {h: first for h in WEB}
    assert "web1: serving " + first in err and "Traceback" not in err


def test_rollback_releases_and_unlock(fleet: Fleet) -> None:
    first = json.loads(shipit(fleet, "deploy", "prod", "--json")[1])["release"]
    fleet.version = 1
    shipit(fleet, "deploy", "prod", "--json")
    code, out, err = shipit(fleet, "rollback", "prod", "--json")
    assert code == 0 and json.loads(out)["release"] == first
    assert "migrations are NOT reverted" in err
    code, out, _ = shipit(fleet, "releases", "prod", "--json")
    rows = [r for r in json.loads(out)["releases"] if r["host"] == "web1"]
    assert code == 0 and {r["state"] for r in rows} == {"live", "retired"}
    assert [r["release"] for r in rows if r["current"] == "yes"] == [first]
    fleet.hosts["web1"].lock = "who=dead@ci when=2026-12-01T00:00:00Z release=x"
    code, out, _ = shipit(fleet, "unlock", "prod", "--json")
    assert code == 0 and json.loads(out) == {"unlocked": True, "held_by": "who=dead@ci when=2026-12-01T00:00:00Z release=x"}
    assert fleet.hosts["web1"].lock is None


def test_releases_and_unlock_do_not_need_the_secrets(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (#11 item 13): `releases` and `unlock` demanded the production secrets."""
    app = fleet.tmp / "app" / "shipit.yml"
    app.write_text(app.read_text() + "secrets: [SECRET_KEY]\nenv: {SECRET_KEY: '{{ secrets.SECRET_KEY }}'}\n")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("HOME", str(fleet.tmp))
    assert shipit(fleet, "releases", "prod", "--json")[0] == 0
    assert shipit(fleet, "unlock", "prod")[0] == 0
    code, _, err = shipit(fleet, "deploy", "prod")
    assert code == 2 and "secrets.SECRET_KEY" in err


def test_a_held_lock_exits_1_and_names_the_holder(fleet: Fleet) -> None:
    fleet.hosts["web1"].lock = "who=other@ci when=2026-12-01T09:00:00Z release=x"
    code, _, err = shipit(fleet, "deploy", "prod")
    assert code == 1 and "other@ci" in err and "shipit unlock prod" in err


def test_sigterm_during_a_deploy_exits_143_and_frees_the_lock(fleet: Fleet) -> None:
    """#11 item 10: SIGTERM (a CI runner cancelling) is handled like Ctrl-C."""
    first = json.loads(shipit(fleet, "deploy", "prod", "--json")[1])["release"]
    fleet.version = 1
    fleet.hosts["web1"].hang = "__change release_command"
    # the migration hangs until the SIGTERM cancels it: with the default 1 s hang a loaded
    # runner could schedule the killer after the hang had already ended as a timeout
    fleet.hosts["web1"].hang_seconds = 300.0
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    # generous bounds, never measured durations: on a loaded runner the deploy can take well
    # over 10 s to reach the migration
    killer = threading.Thread(target=lambda: fleet.hosts["web1"].hanging.wait(300)
                              and os.kill(os.getpid(), signal.SIGTERM))
    killer.start()
    try:
        code, _, err = shipit(fleet, "deploy", "prod")
    finally:
        killer.join()
        for s, handler in old.items():
            signal.signal(s, handler)
    assert code == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert fleet.serving() == {h: first for h in WEB} and fleet.hosts["web1"].lock is None


def test_invalid_input_exits_2_with_json_problems(fleet: Fleet) -> None:
    (fleet.tmp / "app" / "shipit.yml").write_text("name: Bad Name\nweb: {app: x:app}\ndomains: [a.test]\n")
    runner = CliRunner()
    result = runner.invoke(cli.main, ["deploy", "prod", "--json", "-i", str(fleet.tmp / "inv.yml"),
                                      "--app", str(fleet.tmp / "app")])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["problems"] and doc["problems"][0]["key"] == "name" and doc["problems"][0]["line"] == 1


def test_exec_runs_on_every_host(fleet: Fleet) -> None:
    runner = CliRunner()
    result = runner.invoke(cli.main, ["exec", "prod", "-i", str(fleet.tmp / "inv.yml"), "--json", "--", "uptime"])
    assert result.exit_code == 0, result.stderr
    assert {r["host"] for r in json.loads(result.stdout)["results"]} == set(WEB)


def test_unreachable_host_in_exec_is_reported(fleet: Fleet) -> None:
    fleet.hosts["web2"] = FakeHost("web2", unreachable=True)
    runner = CliRunner()
    result = runner.invoke(cli.main, ["exec", "prod", "-i", str(fleet.tmp / "inv.yml"), "--json", "--", "uptime"])
    assert result.exit_code == 1
    by_host = {r["host"]: r for r in json.loads(result.stdout)["results"]}
    assert by_host["web2"]["rc"] is None and "connection refused" in by_host["web2"]["stderr"]


def test_unlock_with_the_leader_unreachable_says_so(fleet: Fleet) -> None:
    fleet.hosts["web1"].unreachable = True
    code, _, err = shipit(fleet, "unlock", "prod")
    assert code == 1 and "cannot reach the leader web1" in err and "Traceback" not in err


def test_a_lock_that_cannot_be_freed_is_a_warning_with_the_reason(fleet: Fleet) -> None:
    """The deploy succeeded; freeing the lock failed (the leader went away): say so, exit 0."""
    original = fleet.hosts["web1"].apply

    def no_unlock(module: str, params: dict[str, object], reason: str = "") -> tuple[int, str]:
        if module == "deploy_lock" and params["state"] == "unlocked":
            return 1, "shipit: rm: cannot remove the lock (read-only file system)"
        return original(module, params, reason)

    fleet.hosts["web1"].apply = no_unlock  # type: ignore[method-assign]
    code, out, err = shipit(fleet, "deploy", "prod")
    text = out + err  # progress and notes go to stdout without --json
    assert code == 0
    assert "warning: the deploy lock on web1 could not be freed" in text and "read-only file system" in text


def test_unlock_honours_limit(fleet: Fleet) -> None:
    """Regression (#11 item 3): `unlock -l` dropped the limit. The lock lives on the leader:
    a limit that leaves the leader out is an exit-2 error, touching nothing."""
    fleet.hosts["web1"].lock = "who=dead@ci when=2026-12-01T00:00:00Z release=x"
    code, _, err = shipit(fleet, "unlock", "prod", "--limit", "web3")
    assert code == 2 and "leader web1" in err and "--limit" in err and "Traceback" not in err
    assert fleet.hosts["web1"].lock is not None
    assert all(h.scripts == [] for h in fleet.hosts.values())
    code, _, err = shipit(fleet, "unlock", "prod", "--limit", "web1")
    assert code == 0 and "who=dead@ci" in err and fleet.hosts["web1"].lock is None
    code, _, err = shipit(fleet, "unlock", "prod", "--limit", "nope")
    assert code == 2 and "nope" in err


def test_rollback_with_serial_100_percent_switches_every_host_in_one_batch(fleet: Fleet) -> None:
    first = json.loads(shipit(fleet, "deploy", "prod", "--json")[1])["release"]
    fleet.version = 1
    code, _, err = shipit(fleet, "deploy", "prod", "--json")
    assert code == 0 and "more batch" in err  # the app's serial: 1 (three batches)
    code, out, err = shipit(fleet, "rollback", "prod", "--json", "--serial", "100%")
    assert code == 0, err
    assert json.loads(out)["serving"] == {h: first for h in WEB}
    assert "canary web1, web2, web3" in err and "more batch" not in err


def test_a_failed_host_in_a_one_batch_rollback_puts_the_batch_back(fleet: Fleet) -> None:
    shipit(fleet, "deploy", "prod", "--json")
    fleet.version = 1
    second = json.loads(shipit(fleet, "deploy", "prod", "--json")[1])["release"]
    fleet.hosts["web2"].fail_switch = True
    code, out, err = shipit(fleet, "rollback", "prod", "--json", "--serial", "3")
    assert code == 1
    assert json.loads(out)["serving"] == {h: second for h in WEB}  # nobody left half-rolled
    assert "canary failed on web2" in err


@pytest.mark.parametrize("value", ["0", "0%", "101%", "", "1,x", "-1"])
def test_a_bad_serial_exits_2_naming_the_option_before_any_connection(fleet: Fleet, value: str) -> None:
    for command in ("deploy", "rollback"):
        code, _, err = shipit(fleet, command, "prod", "--serial", value)
        assert code == 2, (command, value, err)
        assert "--serial" in err and "batch size" in err and "Traceback" not in err
    assert all(not h.scripts for h in fleet.hosts.values())
