"""``-q``, ``-v`` and ``-vv`` on the commands that run tasks (run, deploy, rollback): the
reporter's levels (pure, a recording console), the executor streaming change scripts' output
to it line by line (secrets masked), and the CLI over LocalShellTransport and the fake fleet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from shipit import cli, deploy
from shipit.executor import Executor, RunOptions, RunResult, TaskResult, live_mask_terms
from shipit.facts.registry import fact_kinds
from shipit.inventory import load_inventory
from shipit.modules.registry import builtin_modules
from shipit.playbook import Play, load_playbook
from shipit.pool import TransportPool
from shipit.report import ConsoleReporter
from shipit.testing import LocalShellTransport
from shipit.transport import OutputSink
from tests.unit.fakefleet import fake_kinds, fake_modules, fake_pool
from tests.unit.test_deployer import Fleet


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env={"COLUMNS": "200"})


# ---- the reporter's levels (pure) --------------------------------------------------------------
def _report(**kw: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    rep = ConsoleReporter(console, **kw)
    rep.play_start(Play("Setup", "all", ()), ["web1"])
    for status in ("ok", "skipped", "changed", "failed"):
        rep.task_done(TaskResult("web1", "Setup", f"task {status}", "file", status, message=f"{status} msg"))
    rep.phase("switch", "batch 1")
    rep.phase_done("switch", 1.5)
    rep.note("measured 80 MiB per web worker")
    rep.note("warning: the lock could not be freed")
    rep.host_unreachable("web2", "web2: connection refused")
    if getattr(rep, "streams_output", False):
        rep.remote_output("web1", "[bold]not markup[/]")
    rep.recap(RunResult())
    return console.export_text()


def test_default_level_prints_changes_failures_phases_and_notes() -> None:
    text = _report()
    assert "PLAY Setup" in text and "task changed" in text and "task failed" in text
    assert "task ok" not in text and "task skipped" not in text
    assert "switch batch 1" in text and "measured 80 MiB" in text and "RECAP" in text


def test_v_adds_ok_and_skipped_tasks_and_vv_the_remote_output() -> None:
    assert "task ok" in _report(verbose=True) and "task skipped" in _report(verbose=1)
    assert "| [bold]not markup[/]" not in _report(verbose=1)
    vv = _report(verbose=2)
    assert "task ok" in vv and "  web1 | [bold]not markup[/]" in vv  # as text, never as markup
    assert ConsoleReporter(Console(), verbose=2).streams_output
    assert not ConsoleReporter(Console(), verbose=1).streams_output


def test_q_prints_only_failures_warnings_unreachable_hosts_and_the_recap() -> None:
    text = _report(quiet=True)
    assert "task failed" in text and "warning: the lock" in text and "web2: connection refused" in text
    assert "RECAP" in text
    for gone in ("PLAY", "task changed", "task ok", "switch", "measured"):
        assert gone not in text, gone
    assert not ConsoleReporter(Console(), verbose=2, quiet=True).streams_output


# ---- the executor streams change scripts to a reporter that asks for it ----------------------
class Recorder:
    """A reporter that wants the remote output; records what happened, in order."""

    streams_output = True

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.results: list[TaskResult] = []

    def play_start(self, play: Play, hosts: Any) -> None:
        pass

    def task_done(self, result: TaskResult) -> None:
        self.results.append(result)

    def host_unreachable(self, host: str, message: str) -> None:
        self.events.append(f"unreachable {host}")

    def remote_output(self, host: str, line: str) -> None:
        self.events.append(f"line {host} {line}")


class Trickle(LocalShellTransport):
    """Runs scripts here, and ``stream`` hands the output over a few bytes at a time (as SSH
    does, in arbitrary pieces), recording when it returns."""

    def __init__(self, host: str, events: list[str]) -> None:
        super().__init__(host)
        self.events = events
        self.streamed = 0

    def stream(self, script: str, on_output: OutputSink, *, become: bool = True,
               timeout: float | None = None) -> int:
        self.streamed += 1
        result = self.run(script, become=become, timeout=timeout)
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            data = text.encode()
            for i in range(0, len(data), 3):
                on_output(name, data[i:i + 3])
        self.events.append(f"returned {self.host}")
        return result.rc


def _run(tmp: Path, cmd: str, secrets: tuple[str, ...] = ()) -> tuple[list[str], Recorder, Trickle]:
    inv_file = tmp / "inv.yml"
    inv_file.write_text("hosts:\n  local: {address: 127.0.0.1}\n")
    book = tmp / "book.yml"
    book.write_text("- hosts: all\n  tasks:\n    - name: Talk\n"
                    f"      shell: {{cmd: {json.dumps(cmd)}}}\n")
    inv = load_inventory(inv_file)
    events: list[str] = []
    transport = Trickle("local", events)
    reporter = Recorder(events)
    executor = Executor(inv, TransportPool(lambda h: transport), builtin_modules(), fact_kinds(), reporter,
                        RunOptions(secrets=secrets))
    executor.run_playbook(load_playbook(book, builtin_modules(), inv, {}))
    return events, reporter, transport


def test_change_scripts_stream_line_by_line_before_they_return(tmp_path: Path) -> None:
    events, reporter, transport = _run(tmp_path, "echo one; echo two >&2; printf 'no newline'")
    assert transport.streamed == 1  # only the change script: gathering facts is not streamed
    lines = [e for e in events if e.startswith("line ")]
    assert lines == ["line local one", "line local two", "line local no newline"]
    assert events.index("line local two") < events.index("returned local")
    assert [r.status for r in reporter.results] == ["changed"]  # the result is read as before


def test_a_failing_change_streams_and_still_fails(tmp_path: Path) -> None:
    events, reporter, _ = _run(tmp_path, "echo about to fail; exit 3")
    assert "line local about to fail" in events
    assert reporter.results[0].status == "failed" and "exit 3" in reporter.results[0].message


def test_streamed_lines_mask_secrets_even_multiline_ones(tmp_path: Path) -> None:
    events, _, _ = _run(tmp_path, "echo token=s3cr3t-value; printf 'key: line-one\\nline-two\\n'",
                        secrets=("s3cr3t-value", "line-one\nline-two"))
    text = "\n".join(events)
    assert "s3cr3t" not in text and "line-one" not in text and "line-two" not in text
    assert "line local token=********" in text
    assert live_mask_terms(["a\nbcd\n", "", "xyz"]) == ["a\nbcd\n", "xyz", "bcd"]


# ---- the CLI ---------------------------------------------------------------------------------
@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cli, "ssh_pool", lambda inv, accept=False: TransportPool(LocalShellTransport))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.yml").write_text("hosts:\n  local: {address: 127.0.0.1}\n")
    (tmp_path / "book.yml").write_text("- hosts: all\n  tasks:\n    - name: Talk\n"
                                       "      shell: {cmd: 'echo said-it >&2'}\n"
                                       "    - name: Look\n      command: {cmd: 'true', creates: /}\n")
    return tmp_path


def test_run_vv_streams_remote_output_prefixed_with_the_host(local: Path) -> None:
    result = invoke("run", "test", "book.yml", "-i", "inv.yml", "-vv")
    assert result.exit_code == 0, result.output
    assert "local | said-it" in result.stdout and "Look" in result.stdout  # -vv includes -v
    plain = invoke("run", "test", "book.yml", "-i", "inv.yml", "-v")
    assert "| said-it" not in plain.stdout and "Look" in plain.stdout  # -v as before: ok tasks too
    default = invoke("run", "test", "book.yml", "-i", "inv.yml")
    assert "Look" not in default.stdout.split("RECAP")[0] and "Talk" in default.stdout


def test_run_q_prints_the_recap_only(local: Path) -> None:
    result = invoke("run", "test", "book.yml", "-i", "inv.yml", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith("RECAP") and "PLAY" not in result.stdout
    failing = local / "fail.yml"
    failing.write_text("- hosts: all\n  tasks:\n    - name: Break\n      shell: {cmd: 'exit 4'}\n")
    result = invoke("run", "test", str(failing), "-i", "inv.yml", "-q")
    assert result.exit_code == 1 and "Break" in result.stdout.split("RECAP")[0]  # errors still shown


def test_q_with_v_is_a_usage_error_before_any_connection(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "ssh_pool", lambda *a: pytest.fail("connected"))
    for args in (["run", "test", "book.yml", "-q", "-v"], ["deploy", "test", "-v", "-q", "--json"],
                 ["rollback", "test", "-qvv"]):
        result = invoke(*args, "-i", "inv.yml")
        assert result.exit_code == 2 and "-q and -v exclude each other" in result.stderr, args
        assert "Traceback" not in result.output
    doc = json.loads(invoke("deploy", "test", "-v", "-q", "--json", "-i", "inv.yml").stdout)
    assert doc["problems"][0]["key"] == "-q/--quiet"


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    monkeypatch.setattr(cli, "ssh_pool", lambda inv, accept=False: fake_pool(fleet.hosts))
    monkeypatch.setattr(deploy, "build_artifact", fleet.build)
    monkeypatch.setattr(deploy, "builtin_modules", fake_modules)
    monkeypatch.setattr(deploy, "fact_kinds", fake_kinds)
    monkeypatch.chdir(tmp_path)
    yield fleet


def _ship(fleet: Fleet, *args: str) -> Result:
    return invoke(*args, "-i", str(fleet.tmp / "inv.yml"), "--app", str(fleet.tmp / "app"))


def test_deploy_and_rollback_q_print_the_outcome_only(fleet: Fleet) -> None:
    verbose = _ship(fleet, "deploy", "prod")
    assert verbose.exit_code == 0 and "switch" in verbose.stdout.split("deploy:")[0]
    fleet.version = 1  # a new release, so that the rollback has one to go back to
    quiet = _ship(fleet, "deploy", "prod", "-q")
    assert quiet.exit_code == 0, quiet.output
    before_table = quiet.stdout.split("deploy:")[0]
    assert before_table.strip() == "", before_table  # no phases, no tasks: the outcome table only
    back = _ship(fleet, "rollback", "prod", "-q")
    assert back.exit_code == 0, back.output
    assert "rollback:" in back.stdout and "migrations are NOT reverted" in back.stdout  # a warning stays
    assert "switch" not in back.stdout.split("rollback:")[0]


def test_deploy_vv_streams_each_hosts_remote_output(fleet: Fleet) -> None:
    for host in fleet.hosts.values():
        host.change_stderr = f"hello from {host.name}"
    result = _ship(fleet, "deploy", "prod", "-vv")
    assert result.exit_code == 0, result.output
    for host in ("web1", "web2", "web3"):
        assert f"{host} | hello from {host}" in result.stdout
