"""`shipit logs`, `shipit console` and live `shipit exec` over the simulated fleet (stubbed
layer): merged output, --json, bad arguments (exit 2, no connection), an unreachable host,
Ctrl-C during `logs -f`."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipit import cli, daytwo
from shipit.pool import TransportPool
from shipit.remote_exec import run_exec
from shipit.testing import FakeTransport, Hang
from shipit.transport import CommandResult
from tests.unit.fakefleet import FakeHost, fake_pool
from tests.unit.test_deployer import WEB, Fleet

REL = "20261202T130000Z-ab12cd34ef56"


def entry(seconds: float, unit: str, message: str) -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": str(int(seconds * 1e6)), "_SYSTEMD_UNIT": unit,
                       "MESSAGE": message})


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    opened: list[str] = []

    def pool(inv: object, accept: bool = False) -> TransportPool:
        real = fake_pool(fleet.hosts)
        return TransportPool(lambda name: (opened.append(name), real.get(name))[1])

    monkeypatch.setattr(cli, "ssh_pool", pool)
    monkeypatch.setattr(daytwo, "ssh_pool", pool)
    monkeypatch.chdir(tmp_path)
    fleet.opened = opened  # type: ignore[attr-defined]
    yield fleet


def shipit(fleet: Fleet, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    where = ["-i", str(fleet.tmp / "inv.yml")]
    if args[0] != "exec":
        where += ["--app", str(fleet.tmp / "app")]
    if "--" in args:  # options go before the command's words
        i = args.index("--")
        args = (*args[:i], *where, *args[i:])
    else:
        args = (*args, *where)
    result = runner.invoke(cli.main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# ---- logs ---------------------------------------------------------------------------------

def test_logs_merge_every_host_in_time_order_with_host_and_process(fleet: Fleet) -> None:
    fleet.hosts["web1"].journal = [entry(100.0, "example-web@8000.service", "w1 first"),
                                   entry(103.0, "example-web@8000.service", "w1 third")]
    fleet.hosts["web2"].journal = [entry(101.0, "example-web@8001.service", "w2 second")]
    fleet.hosts["web3"].journal = [entry(104.0, "example-release-command.service", "w3 fourth"), "garbage"]
    code, out, err = shipit(fleet, "logs", "prod")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["w1 first", "w2 second", "w1 third", "w3 fourth"]
    assert " web2 web@8001: w2 second" in lines[1] and " web3 release: w3 fourth" in lines[3]
    script = fleet.hosts["web1"].scripts[-1]
    assert script.startswith("exec journalctl") and "-n 100" in script and "--follow" not in script


def test_logs_json_one_object_per_line_and_the_options_reach_journalctl(fleet: Fleet) -> None:
    for host in WEB:
        fleet.hosts[host].journal = [entry(100.0 + WEB.index(host), "example-web@8000.service", host)]
    code, out, _ = shipit(fleet, "logs", "prod", "web", "--json", "--since", "10m", "--grep", "web[12]",
                          "-l", "web1,web2")
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["host"] for d in docs] == ["web1", "web2"] and docs[0]["process"] == "web@8000"
    assert fleet.hosts["web3"].scripts == []
    script = fleet.hosts["web1"].scripts[-1]
    assert "--since=-10m" in script and "'--grep=web[12]'" in script and "-n" not in script.split()
    assert "example-web@*.service" in script and "release-command" not in script


@pytest.mark.parametrize(("args", "expected"), [
    (("hearbeat",), "not a process of the app (expected one of: web, release)"),
    (("wbe",), "did you mean 'web'?"),
    (("--since", "last tuesday"), "expected a time span"),
    (("--grep", "a("), "not a regular expression"),
    (("-n", "-3"), "Invalid value"),
    (("-l", "nosuchhost"), ""),
])
def test_logs_bad_arguments_exit_2_before_any_connection(fleet: Fleet, args: tuple[str, ...], expected: str) -> None:
    code, out, err = shipit(fleet, "logs", "prod", *args)
    assert code == 2, (out, err)
    assert expected in err
    assert "Traceback" not in err and fleet.opened == []  # type: ignore[attr-defined]


def test_logs_with_a_host_unreachable_shows_the_others_and_exits_1(fleet: Fleet) -> None:
    fleet.hosts["web1"].journal = [entry(100.0, "example-web@8000.service", "still here")]
    fleet.hosts["web2"].unreachable = True
    code, out, err = shipit(fleet, "logs", "prod")
    assert code == 1
    assert "still here" in out and "web2: cannot connect: connection refused" in err
    assert "Traceback" not in err


def test_ctrl_c_during_logs_follow_stops_every_host_and_exits_130(fleet: Fleet) -> None:
    for i, host in enumerate(WEB):
        fleet.hosts[host].journal = [entry(100.0 + i, "example-web@8000.service", f"line of {host}")]

    def interrupt() -> None:
        if all(fleet.hosts[h].hanging.wait(10) for h in WEB):
            time.sleep(0.5)  # past the merge window: the lines are printed while following
            os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt)
    killer.start()
    try:
        code, out, err = shipit(fleet, "logs", "prod", "-f")
    finally:
        killer.join()
    assert code == 130, err
    assert [line.rsplit(" ", 1)[1] for line in out.splitlines()] == ["web1", "web2", "web3"]
    assert all("--follow" in fleet.hosts[h].scripts[-1] for h in WEB)
    assert all(fleet.hosts[h].cancelled.is_set() for h in WEB)  # each remote journalctl was stopped
    assert "Traceback" not in err


# ---- console ------------------------------------------------------------------------------

def test_console_runs_in_the_current_release_on_the_leader_and_passes_the_exit_status(fleet: Fleet) -> None:
    app = fleet.tmp / "app" / "shipit.yml"
    app.write_text(app.read_text() + "secrets: [SECRET_KEY]\nenv: {SECRET_KEY: '{{ secrets.SECRET_KEY }}'}\n")
    fleet.hosts["web1"].current = REL
    fleet.hosts["web1"].console_out = "hello from the release\n"
    fleet.hosts["web1"].console_rc = 3
    code, out, err = shipit(fleet, "console", "prod", "--no-tty", "--", "python", "-c", "print(1)")
    assert code == 3, err
    assert out == "hello from the release\n"
    script = fleet.hosts["web1"].scripts[-1]
    assert "systemd-run" in script and "--pipe" in script and f"/srv/example/env/{REL}.env" in script
    assert "User=example" in script and "'print(1)'" in script and "SECRET_KEY" not in script
    assert fleet.hosts["web2"].scripts == []


def test_console_with_a_tty_uses_a_pseudo_terminal_on_the_chosen_host(fleet: Fleet) -> None:
    fleet.hosts["web2"].current = REL
    code, _, err = shipit(fleet, "console", "prod", "--tty", "-l", "web2", "--", "alembic", "current")
    assert code == 0, err
    argv = fleet.hosts["web2"].scripts[-1]
    assert argv.startswith("systemd-run") and "--pty" in argv and argv.endswith("alembic current")


@pytest.mark.parametrize("host", ["db9", "web"])
def test_console_on_a_host_that_is_not_a_web_host_exits_2(fleet: Fleet, host: str) -> None:
    code, _, err = shipit(fleet, "console", "prod", "-l", host, "--", "true")
    assert code == 2 and "not a web host" in err and fleet.opened == []  # type: ignore[attr-defined]


def test_console_failures_exit_1_with_the_reason(fleet: Fleet) -> None:
    code, _, err = shipit(fleet, "console", "prod", "--no-tty", "--", "true")
    assert code == 1 and "web1: example has no current release" in err
    fleet.hosts["web1"].unreachable = True
    code, _, err = shipit(fleet, "console", "prod", "--no-tty", "--", "true")
    assert code == 1 and "web1: cannot connect" in err and "Traceback" not in err


# ---- exec, live -----------------------------------------------------------------------------

def test_exec_prints_each_hosts_lines_as_they_come(fleet: Fleet) -> None:
    code, out, _ = shipit(fleet, "exec", "prod", "--", "uptime")
    assert code == 0
    assert {line.split()[0] for line in out.splitlines() if "rc=0" in line} == set(WEB)


def test_exec_output_is_shown_before_the_command_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line written while the command still runs is on stdout before it ends."""
    release = threading.Event()
    fake = FakeTransport("web1", lambda script: Hang(None, partial=CommandResult(-1, "first line\n", "")))
    pool = TransportPool(lambda name: fake)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    seen: list[str] = []

    def watch() -> None:
        deadline = time.monotonic() + 10
        while "first line" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(out.getvalue())
        release.set()
        fake.cancel()

    watcher = threading.Thread(target=watch)
    watcher.start()
    results = run_exec(pool, ["web1"], "long-running", become=False, timeout=None, forks=1)
    watcher.join()
    assert seen == ["web1 | first line\n"]  # printed while the command was still running
    assert results[0]["rc"] is None and "interrupted" in results[0]["stderr"]


def test_exec_unreachable_host_says_so_live(fleet: Fleet) -> None:
    fleet.hosts["web2"] = FakeHost("web2", unreachable=True)
    code, out, _ = shipit(fleet, "exec", "prod", "--", "uptime")
    assert code == 1 and "web2 unreachable: web2: cannot connect" in out


def test_a_usage_error_with_json_prints_the_error_document(fleet: Fleet) -> None:
    code, out, err = shipit(fleet, "logs", "prod", "-n", "-3", "--json")
    assert code == 2 and "Invalid value" in err
    doc = json.loads(out)
    assert doc["problems"][0]["key"] == "-n/--lines" and "-3 is not in the range" in doc["problems"][0]["message"]
    code, out, _ = shipit(fleet, "logs", "prod", "-n", "-3")
    assert code == 2 and out == ""


def test_console_without_sudo_says_why(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    denied = FakeTransport("web1", lambda script: CommandResult(1, "", "sudo: a password is required\n"))
    monkeypatch.setattr(daytwo, "ssh_pool", lambda inv, accept=False: TransportPool(lambda name: denied))
    code, _, err = shipit(fleet, "console", "prod", "--no-tty", "--", "true")
    assert code == 1 and "web1: cannot read example's current release as root: sudo: a password is required" in err
    assert len(denied.scripts) == 1  # nothing was run after the failed lookup


def test_logs_of_units_that_never_logged_is_no_lines_not_a_failure(fleet: Fleet) -> None:
    fleet.hosts["web1"].journal = [entry(100.0, "example-web@8000.service", "here")]
    fleet.hosts["web2"].journal_no_units = True
    code, out, err = shipit(fleet, "logs", "prod")
    assert code == 0, err
    assert "here" in out and "web2: no log lines of example yet" in err and "exited" not in err
