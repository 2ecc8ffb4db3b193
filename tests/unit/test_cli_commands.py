"""Every ``shipit`` command through click's CliRunner over fake transports (stubbed layer):
success, bad input (exit 2, file:line, no traceback, no connection), an unreachable host, and
the --json document's shape. ``deploy``/``rollback``/``releases``/``unlock`` in depth are in
tests/unit/test_cli_deploy.py; here they get the bad-input and unreachable cases.

Transports: ``run``, ``facts`` and ``exec`` use :class:`shipit.testing.LocalShellTransport`
(the real scripts run here, as this user) for host ``local`` and a :class:`FakeTransport`
that cannot connect for host ``down``; ``status`` and the deploy commands use the simulated
fleet of tests/unit/fakefleet.py. ``lab`` is its CLI layer over a stub of :class:`Lab` (the
lab itself is exercised by tests/e2e/test_lab.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner, Result

from shipit import cli, deploy, status
from shipit.errors import ShipitError
from shipit.pool import TransportPool
from shipit.testing import FakeTransport, LocalShellTransport
from shipit.transport import HostUnreachable, Transport
from tests.unit.fakefleet import fake_kinds, fake_modules, fake_pool
from tests.unit.test_deployer import WEB, Fleet

RUN_KEYS = {"recap", "tasks", "duration", "failed", "stopped", "check"}
RECAP_KEYS = {"ok", "changed", "failed", "skipped", "unreachable", "message", "ssh_execs", "sftp_transfers",
              "sftp_bytes"}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env={"COLUMNS": "200"})  # tables unwrapped


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


class Local:
    """An inventory of ``local`` (this machine, over LocalShellTransport) and, with ``down``,
    a host that cannot be reached; ``connects`` records every transport the CLI asked for."""

    def __init__(self, tmp: Path, down: bool = False) -> None:
        self.tmp = tmp
        self.inv = tmp / "inv.yml"
        hosts = "  local: {address: 127.0.0.1}\n" + ("  down: {address: 127.0.0.2}\n" if down else "")
        self.inv.write_text(f"hosts:\n{hosts}")
        self.connects: list[str] = []

    def transport(self, host: str) -> Transport:
        self.connects.append(host)
        if host == "down":
            return FakeTransport(host, lambda script: HostUnreachable(f"{host}: cannot connect: connection refused"))
        return LocalShellTransport(host)

    def pool(self, inventory: Any, accept: bool = False) -> TransportPool:
        return TransportPool(self.transport)


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Local:
    here = Local(tmp_path)
    monkeypatch.setattr(cli, "ssh_pool", here.pool)
    monkeypatch.chdir(tmp_path)
    return here


@pytest.fixture
def local_and_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Local:
    here = Local(tmp_path, down=True)
    monkeypatch.setattr(cli, "ssh_pool", here.pool)
    monkeypatch.chdir(tmp_path)
    return here


def write_book(tmp: Path, target: Path, module: str = "file") -> Path:
    book = tmp / "book.yml"
    book.write_text("- hosts: all\n"
                    "  tasks:\n"
                    "    - name: Write the greeting\n"
                    f"      {module}: {{path: '{target}', content: \"hello\\n\", mode: '0640'}}\n")
    return book


# ---- run ------------------------------------------------------------------------------------
def test_run_applies_then_changes_nothing(local: Local) -> None:
    target = local.tmp / "greeting"
    book = write_book(local.tmp, target)
    first = invoke("run", "test", str(book), "-i", str(local.inv))
    assert first.exit_code == 0, first.output
    assert target.read_text() == "hello\n" and oct(target.stat().st_mode & 0o777) == "0o640"
    assert "changed" in first.stdout and "Write the greeting" in first.stdout  # the task line and the recap
    again = invoke("run", "test", str(book), "-i", str(local.inv), "--json")
    assert again.exit_code == 0, again.stderr
    doc = json.loads(again.stdout)
    assert set(doc) == RUN_KEYS and set(doc["recap"]["local"]) == RECAP_KEYS
    assert doc["recap"]["local"]["changed"] == 0 and doc["failed"] is False and doc["check"] is False
    assert [(t["host"], t["task"], t["module"], t["status"]) for t in doc["tasks"]] == [
        ("local", "Write the greeting", "file", "ok")]


def test_run_check_mode_changes_nothing_and_says_what_would_change(local: Local) -> None:
    target = local.tmp / "greeting"
    result = invoke("run", "test", str(write_book(local.tmp, target)), "-i", str(local.inv), "--check", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["check"] is True and doc["recap"]["local"]["changed"] == 1 and not target.exists()
    assert doc["tasks"][0]["reasons"]


def test_run_with_a_builtin_playbook_name_that_does_not_exist(local: Local) -> None:
    result = invoke("run", "test", "no-such-book", "-i", str(local.inv))
    no_traceback(result)
    assert result.exit_code == 2 and "no-such-book" in result.stderr and "provision" in result.stderr
    assert local.connects == []


def test_run_bad_playbook_exits_2_at_its_line_before_connecting(local: Local) -> None:
    book = write_book(local.tmp, local.tmp / "x", module="no_such_module")
    result = invoke("run", "test", str(book), "-i", str(local.inv), "--json")
    no_traceback(result)
    assert result.exit_code == 2
    assert f"{book}:4:" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["error"] == "invalid input; nothing was touched"
    assert doc["problems"][0]["file"] == str(book) and doc["problems"][0]["line"] == 4
    assert local.connects == []


def test_run_bad_extra_var_exits_2(local: Local) -> None:
    result = invoke("run", "test", str(write_book(local.tmp, local.tmp / "x")), "-i", str(local.inv),
                    "-e", "not a pair")
    no_traceback(result)
    assert result.exit_code == 2 and "-e: not a pair: expected key=value" in result.stderr
    assert local.connects == []


def test_run_with_a_host_unreachable_is_that_hosts_failure(local_and_down: Local) -> None:
    target = local_and_down.tmp / "greeting"
    result = invoke("run", "test", str(write_book(local_and_down.tmp, target)), "-i", str(local_and_down.inv),
                    "--json")
    no_traceback(result)
    assert result.exit_code == 1
    recap = json.loads(result.stdout)["recap"]
    assert recap["down"]["unreachable"] is True and "connection refused" in recap["down"]["message"]
    assert recap["local"]["changed"] == 1 and target.read_text() == "hello\n"  # the other host went on


# ---- facts ----------------------------------------------------------------------------------
def test_facts_prints_each_hosts_facts(local: Local) -> None:
    result = invoke("facts", "test", "-i", str(local.inv), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"facts", "unreachable"} and doc["unreachable"] == {}
    facts = doc["facts"]["local"]
    assert facts["cpus"] >= 1 and facts["mem_total"] > 0 and isinstance(facts["load"], list)
    text = invoke("facts", "test", "-i", str(local.inv))
    assert text.exit_code == 0
    assert yaml.safe_load(text.stdout)["facts"]["local"]["cpus"] == facts["cpus"]


def test_facts_with_a_host_unreachable_exits_1_and_says_why(local_and_down: Local) -> None:
    result = invoke("facts", "test", "-i", str(local_and_down.inv), "--json")
    no_traceback(result)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert "connection refused" in doc["unreachable"]["down"] and "local" in doc["facts"]


def test_facts_bad_limit_exits_2_before_connecting(local: Local) -> None:
    result = invoke("facts", "test", "-i", str(local.inv), "--limit", "nosuchhost")
    no_traceback(result)
    assert result.exit_code == 2 and "--limit: nosuchhost:" in result.stderr
    assert local.connects == []


# ---- exec -----------------------------------------------------------------------------------
def test_exec_prints_each_hosts_output_and_exit_status(local_and_down: Local) -> None:
    result = invoke("exec", "test", "-i", str(local_and_down.inv), "--limit", "local", "--", "echo", "hi")
    assert result.exit_code == 0, result.output
    assert "local rc=0" in result.stdout and "hi" in result.stdout
    failed = invoke("exec", "test", "-i", str(local_and_down.inv), "--json", "--", "echo oops >&2; exit 3")
    assert failed.exit_code == 1
    by_host = {r["host"]: r for r in json.loads(failed.stdout)["results"]}
    assert set(by_host["local"]) == {"host", "rc", "stdout", "stderr"}
    assert (by_host["local"]["rc"], by_host["local"]["stderr"]) == (3, "oops\n")
    assert by_host["down"]["rc"] is None and "connection refused" in by_host["down"]["stderr"]


def test_exec_without_a_command_is_a_usage_error(local: Local) -> None:
    result = invoke("exec", "test", "-i", str(local.inv))
    assert result.exit_code == 2 and "Missing argument" in result.stderr
    assert local.connects == []


# ---- bad input, for every command that connects -----------------------------------------------
CONNECTING = {
    "run": ["run", "test", "book.yml"],
    "facts": ["facts", "test"],
    "exec": ["exec", "test", "--", "true"],
    "status": ["status", "test", "--app", "app"],
    "deploy": ["deploy", "test", "--app", "app"],
    "rollback": ["rollback", "test", "--app", "app"],
    "releases": ["releases", "test", "--app", "app"],
    "unlock": ["unlock", "test", "--app", "app"],
    "logs": ["logs", "test", "--app", "app"],
    "check": ["check", "test", "--app", "app"],   # connects only with --hosts
    "config": ["config", "test", "--app", "app"],  # never connects
    "db": ["db", "backups", "test", "--app", "app"],  # the other db verbs: test_db_backups.py
}


@pytest.mark.parametrize("command", sorted(CONNECTING))
def test_a_bad_inventory_exits_2_at_its_line_before_any_connection(command: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    here = Local(tmp_path)
    here.inv.write_text("hosts:\n  web1: {address: 127.0.0.1}\n  web2: {address: 127.0.0.1, port: 0}\n")
    monkeypatch.setattr(cli, "ssh_pool", here.pool)
    monkeypatch.chdir(tmp_path)
    args = CONNECTING[command]
    result = invoke(*args[:2], "-i", str(here.inv), "--json", *args[2:])  # options before exec's --
    no_traceback(result)
    assert result.exit_code == 2, result.output
    assert f"{here.inv}:3: hosts.web2.port:" in result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["line"], p["key"]) for p in problems] == [(3, "hosts.web2.port")]
    assert here.connects == []


@pytest.mark.parametrize("command", sorted(CONNECTING))
def test_a_missing_inventory_exits_2_and_says_where_it_looked(command: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*CONNECTING[command])
    no_traceback(result)
    assert result.exit_code == 2
    assert "no inventory for environment 'test'" in result.stderr and "inventories/test.yml" in result.stderr


# ---- status (over the simulated fleet) --------------------------------------------------------
@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    monkeypatch.setattr(cli, "ssh_pool", lambda inv, accept=False: fake_pool(fleet.hosts))
    monkeypatch.setattr(deploy, "build_artifact", fleet.build)
    monkeypatch.setattr(deploy, "builtin_modules", fake_modules)
    monkeypatch.setattr(deploy, "fact_kinds", fake_kinds)
    monkeypatch.setattr(status, "fact_kinds", fake_kinds)
    monkeypatch.chdir(tmp_path)
    yield fleet


def on_fleet(fleet: Fleet, *args: str) -> Result:
    return invoke(*args, "-i", str(fleet.tmp / "inv.yml"), "--app", str(fleet.tmp / "app"))


STATUS_KEYS = {"reachable", "current", "live_port", "units", "web_unit", "web_active", "workers", "restarts",
               "memory", "cpu_percent", "host", "probe", "jobs"}


def test_status_shows_what_each_web_host_serves(fleet: Fleet) -> None:
    release = fleet.deploy().release
    result = on_fleet(fleet, "status", "prod", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == set(WEB)
    for host in WEB:
        assert set(doc[host]) == STATUS_KEYS
        assert doc[host]["current"] == release and doc[host]["web_active"] is True
        assert doc[host]["workers"] == 2 and doc[host]["memory"] == 64 * 2**20
        assert doc[host]["host"]["cpus"] == 2
        assert doc[host]["probe"] == {"code": 200, "ms": 12.0, "tls_expires": 1796490132, "tls_days": 3.0,
                                      "error": None}
    table = on_fleet(fleet, "status", "prod")
    assert table.exit_code == 0
    rows = [line.split() for line in table.stdout.splitlines() if line.split()[:1] in (["web1"], ["web2"], ["web3"])]
    assert len(rows) == 3 and all(r[1] == release.split("-")[1][:8] and r[2:5] == ["up", "200", "12ms"] for r in rows)
    detail = on_fleet(fleet, "status", "prod", "--detail", "-l", "web2")
    assert detail.exit_code == 0 and release in detail.stdout and "(live)" in detail.stdout
    assert "HTTP 200 in 12.0 ms" in detail.stdout and "web1" not in detail.stdout


def test_status_asks_the_health_endpoint_of_the_first_domain(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    real = status.web_probe
    monkeypatch.setattr(status, "web_probe", lambda host, path: asked.append(f"{host}{path}") or real(host, path))
    fleet.deploy()
    assert on_fleet(fleet, "status", "prod").exit_code == 0
    spec = yaml.safe_load((fleet.tmp / "app" / "shipit.yml").read_text())
    assert asked == [f"{spec['domains'][0]}{spec.get('health', {}).get('path', '/health')}"]


def test_status_shows_a_host_whose_health_check_fails_as_sick(fleet: Fleet) -> None:
    fleet.deploy()
    fleet.hosts["web2"].probe = "now=1796230000\nerror=Operation timed out after 5000 milliseconds\nprobe=000 5.0\n"
    result = on_fleet(fleet, "status", "prod", "--json")
    assert result.exit_code == 0  # reachable: the state says it, the exit status is for reachability
    assert json.loads(result.stdout)["web2"]["probe"]["error"] == "Operation timed out after 5000 milliseconds"
    row = next(line for line in on_fleet(fleet, "status", "prod").stdout.splitlines() if line.startswith("web2"))
    assert row.split()[2:5] == ["sick", "no", "answer"]


def test_status_with_a_host_unreachable_exits_1_and_says_why(fleet: Fleet) -> None:
    fleet.hosts["web2"].unreachable = True
    result = on_fleet(fleet, "status", "prod", "--json")
    no_traceback(result)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["web2"] == {"reachable": False, "error": "web2: cannot connect: connection refused"}
    assert doc["web1"]["reachable"] is True
    assert "connection refused" in on_fleet(fleet, "status", "prod").stdout


def test_status_bad_input_exits_2(fleet: Fleet) -> None:
    (fleet.tmp / "inv.yml").write_text("hosts: {db1: {address: 127.0.0.1}}\n")
    result = on_fleet(fleet, "status", "prod")
    no_traceback(result)
    assert result.exit_code == 2 and "groups.web" in result.stderr
    app = fleet.tmp / "app" / "shipit.yml"
    (fleet.tmp / "inv.yml").write_text("hosts: {web1: {address: 127.0.0.1}}\ngroups: {web: {hosts: [web1]}}\n")
    app.write_text("name: Bad Name\nweb: {app: x:app}\ndomains: [a.test]\n")
    result = on_fleet(fleet, "status", "prod")
    assert result.exit_code == 2 and f"{app}:1: name:" in result.stderr


# ---- the deploy commands: an unreachable host -------------------------------------------------
def test_releases_with_a_host_unreachable_exits_1_and_shows_it(fleet: Fleet) -> None:
    fleet.deploy()
    fleet.hosts["web3"].unreachable = True
    result = on_fleet(fleet, "releases", "prod", "--json")
    no_traceback(result)
    assert result.exit_code == 1
    rows = [r for r in json.loads(result.stdout)["releases"] if r["host"] == "web3"]
    assert len(rows) == 1 and rows[0]["state"].startswith("unreachable") and "connection refused" in rows[0]["state"]


def test_deploy_and_rollback_with_a_host_unreachable_fail_before_touching_any(fleet: Fleet) -> None:
    first = fleet.deploy().release
    fleet.hosts["web3"].unreachable = True
    fleet.version = 1
    for command in ("deploy", "rollback"):
        result = on_fleet(fleet, command, "prod", "--json")
        no_traceback(result)
        assert result.exit_code == 1, (command, result.output)
        doc = json.loads(result.stdout)
        assert doc["ok"] is False and "web3" in doc["error"]
        assert fleet.serving() == {"web1": first, "web2": first, "web3": first}
        assert all(h.lock is None for h in fleet.hosts.values())


def test_rollback_to_an_unknown_release_exits_nonzero_and_changes_nothing(fleet: Fleet) -> None:
    first = fleet.deploy().release
    result = on_fleet(fleet, "rollback", "prod", "--to", "20000101T000000Z-000000000000")
    no_traceback(result)
    assert result.exit_code != 0 and "20000101T000000Z-000000000000" in result.stderr
    assert fleet.serving() == {h: first for h in WEB}


# ---- modules, --version, --help ---------------------------------------------------------------
def test_modules_lists_every_builtin_module_with_its_params() -> None:
    from shipit.modules.registry import builtin_modules

    result = invoke("modules")
    assert result.exit_code == 0
    for name, module in builtin_modules().items():
        assert f"{name} — " in result.stdout
        for key in module.params:
            assert f"    {key}: " in result.stdout


def test_version_and_help() -> None:
    from importlib.metadata import version

    assert invoke("--version").stdout.strip().endswith(version("shipit"))
    result = invoke("--help")
    assert result.exit_code == 0 and all(name in result.stdout for name in cli.main.list_commands(click.Context(cli.main)))


def test_every_command_is_covered_here() -> None:
    """A command added to `shipit --help` must get its CLI tests (this list is the reminder)."""
    covered = set(CONNECTING) | {"modules", "lab", "console", "init"}  # console: test_cli_daytwo.py; init: test_init.py
    assert set(cli.main.list_commands(click.Context(cli.main))) == covered


# ---- lab (its CLI layer; the lab backend is stubbed) ------------------------------------------
class StubLab:
    """Stands in for :class:`shipit.lab.Lab`; ``calls`` records what the CLI asked of it."""

    calls: list[tuple[Any, ...]] = []
    fail: ShipitError | ValueError | None = None
    rows: list[Any] = []

    def __init__(self, name: str = "lab", inventory_dir: Path | str = "inventories", log: Any = None) -> None:
        self.name, self.inventory_dir = name, Path(inventory_dir)
        StubLab.calls.append(("init", name, str(inventory_dir)))

    def _maybe_fail(self) -> None:
        if StubLab.fail is not None:
            raise StubLab.fail

    def up(self, hosts: int = 3, db: bool = False, suite: str = "bookworm", prune: bool = False) -> Any:
        StubLab.calls.append(("up", hosts, db, suite, prune))
        self._maybe_fail()
        from shipit.lab.lab import LabState
        from shipit.lab.naming import lab_net, plan_hosts

        specs = tuple(plan_hosts(lab_net(self.name), hosts, db))
        return LabState(self.name, self.inventory_dir / f"{self.name}.yml", Path("key"), Path("kh"), specs,
                        None, suite)

    def state(self) -> Any:
        from shipit.lab.lab import LabState

        return LabState(self.name, Path("inv"), Path("key"), Path("kh"), (), None, "trixie") if StubLab.rows else None

    def down(self) -> None:
        StubLab.calls.append(("down",))
        self._maybe_fail()

    def status(self) -> list[Any]:
        self._maybe_fail()
        return StubLab.rows

    def ssh_argv(self, host: str, command: list[str]) -> list[str]:
        self._maybe_fail()
        return ["ssh", "-i", "key", f"deploy@{host}", *command]


@pytest.fixture
def stub_lab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[StubLab]:
    from shipit.lab import cli as lab_cli

    monkeypatch.setattr(lab_cli, "Lab", StubLab)
    monkeypatch.setattr(StubLab, "calls", [])
    monkeypatch.setattr(StubLab, "fail", None)
    monkeypatch.setattr(StubLab, "rows", [])
    monkeypatch.chdir(tmp_path)
    return StubLab


def test_lab_up_and_down(stub_lab: type[StubLab]) -> None:
    result = invoke("lab", "up", "--hosts", "2", "--db", "--name", "t1")
    assert result.exit_code == 0, result.output
    assert stub_lab.calls == [("init", "t1", "inventories"), ("up", 2, True, "bookworm", False)]
    assert "lab 't1': 3 bookworm hosts ready in" in result.stdout and "inventory inventories/t1.yml" in result.stdout
    result = invoke("lab", "up", "--name", "t1", "--suite", "trixie", "--prune")
    assert result.exit_code == 0 and stub_lab.calls[-1] == ("up", 3, False, "trixie", True)
    assert "lab 't1': 3 trixie hosts ready in" in result.stdout
    result = invoke("lab", "down", "--name", "t1", "--inventory-dir", "elsewhere")
    assert result.exit_code == 0 and "lab 't1' is down" in result.stdout
    assert stub_lab.calls[-2:] == [("init", "t1", "elsewhere"), ("down",)]


def test_lab_bad_input_is_a_usage_error(stub_lab: type[StubLab]) -> None:
    result = invoke("lab", "up", "--hosts", "500")
    no_traceback(result)
    assert result.exit_code == 2 and "--hosts" in result.stderr and stub_lab.calls == []
    result = invoke("lab", "up", "--suite", "sid")
    no_traceback(result)
    assert result.exit_code == 2 and "'sid' is not one of 'bookworm', 'trixie'" in result.stderr
    stub_lab.fail = ValueError("bad lab name 'A B': expected [a-z0-9-]")
    result = invoke("lab", "up", "--name", "A B")
    no_traceback(result)
    assert result.exit_code == 2 and result.stderr == "error: bad lab name 'A B': expected [a-z0-9-]\n"


def test_lab_errors_are_one_line_with_their_exit_code(stub_lab: type[StubLab]) -> None:
    from shipit.lab.util import LabError

    stub_lab.fail = LabError("debootstrap is missing: apt-get install debootstrap")
    result = invoke("lab", "up")
    no_traceback(result)
    assert result.exit_code == stub_lab.fail.exit_code != 0
    assert result.stderr == "error: debootstrap is missing: apt-get install debootstrap\n"


def test_lab_status(stub_lab: type[StubLab]) -> None:
    from shipit.lab.lab import HostStatus

    result = invoke("lab", "status", "--name", "t1")
    assert result.exit_code == 0 and "lab 't1' is not up" in result.stdout
    stub_lab.rows = [HostStatus("web1", "10.9.0.2", "running", True, ""),
                     HostStatus("web2", "10.9.0.3", "stopped", False, "not booted")]
    result = invoke("lab", "status", "--name", "t1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any("web1" in line and "10.9.0.2" in line and "yes" in line for line in lines)
    assert any("web2" in line and "stopped" in line and "no" in line and "not booted" in line for line in lines)
    assert "lab t1 (Debian trixie)" in result.stdout


def test_lab_ssh_execs_ssh_with_the_command(stub_lab: type[StubLab], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, list[str]]] = []

    def execvp(file: str, argv: list[str]) -> None:
        seen.append((file, argv))

    monkeypatch.setattr("shipit.lab.cli.os.execvp", execvp)
    result = invoke("lab", "ssh", "web1", "--name", "t1", "uptime", "-p")
    assert result.exit_code == 0, result.output
    assert seen == [("ssh", ["ssh", "-i", "key", "deploy@web1", "uptime", "-p"])]
    stub_lab.fail = ValueError("no host 'web9' in lab 't1'")
    result = invoke("lab", "ssh", "web9")
    assert result.exit_code == 2 and "no host 'web9'" in result.stderr and len(seen) == 1

