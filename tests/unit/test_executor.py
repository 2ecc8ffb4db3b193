"""Executor logic on a local shell: one gather per play, refresh after change, handlers, check
mode, failures, any_errors_fatal, max_fail_percentage. Uses small test modules and fact kinds
(the built-in ones are tested in their own files)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipit.executor import Executor, RunOptions, changes_script
from shipit.facts import FactKind, FactQuery
from shipit.facts.registry import fact_kinds
from shipit.inventory import load_inventory
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q
from shipit.modules.registry import builtin_modules
from shipit.playbook import load_playbook
from shipit.pool import TransportPool
from shipit.testing import LocalShellTransport


class Touch(Module):
    """Creates a file when absent (a minimal idempotent module)."""

    name = "touch"
    params = {"path": Param(str, required=True), "fail": Param(bool, default=False)}

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [FactQuery("exists", params["path"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        if facts[FactQuery("exists", params["path"])]:
            return Plan()
        script = "echo boom >&2; exit 3" if params["fail"] else f"touch {q(params['path'])}"
        return Plan(changes=(Change(f"create {params['path']}", script),))


class Copy(Module):
    """Copies src to dest when dest is absent; needs facts refreshed after Touch created src."""

    name = "copy"
    params = {"src": Param(str, required=True), "dest": Param(str, required=True)}

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [FactQuery("exists", params["src"]), FactQuery("exists", params["dest"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        if not facts[FactQuery("exists", params["src"])]:
            return Plan(failed=f"{params['src']} does not exist")
        if facts[FactQuery("exists", params["dest"])]:
            return Plan()
        return Plan(changes=(Change("copy", f"cp {q(params['src'])} {q(params['dest'])}"),))


class Record(Module):
    """Always changes: appends a line to a log (a handler-like action)."""

    name = "record"
    params = {"log": Param(str, required=True), "line": Param(str, required=True)}

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        return Plan(changes=(Change("record", f"echo {q(params['line'])} >> {q(params['log'])}"),))


class Sh(Module):
    """Runs ``cmd`` (a test double of ``shell:``, which needs host facts)."""

    name = "sh"
    params = {"cmd": Param(str, required=True)}

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        return Plan(changes=(Change("run", params["cmd"]),))


MODULES: dict[str, Module] = {m.name: m for m in (Touch(), Copy(), Record(), Sh())}
KINDS = {**fact_kinds(), "exists": FactKind("exists", lambda p: f"test -e {q(p)} && echo yes || echo no",
                                            lambda out: out.strip() == "yes")}


def setup(tmp_path: Path, playbook: str, hosts: int = 2) -> tuple[Any, Any, dict[str, LocalShellTransport]]:
    inv_path = tmp_path / "inv.yml"
    inv_path.write_text("hosts:\n" + "".join(f"  h{i}: {{vars: {{n: {i}}}}}\n" for i in range(1, hosts + 1))
                        + "groups:\n  web: {hosts: [" + ", ".join(f"h{i}" for i in range(1, hosts + 1)) + "]}\n"
                        + f"vars: {{dir: {tmp_path}}}\n")
    book_path = tmp_path / "book.yml"
    book_path.write_text(playbook)
    inv = load_inventory(inv_path)
    book = load_playbook(book_path, MODULES, inv)
    transports: dict[str, LocalShellTransport] = {}

    def factory(host: str) -> LocalShellTransport:
        transports[host] = LocalShellTransport(host)
        return transports[host]

    return inv, book, transports, factory  # type: ignore[return-value]


BOOK = """\
- name: files
  hosts: web
  tasks:
    - name: source
      touch: {path: "{{ dir }}/src-{{ n }}"}
      notify: log it
    - name: copy
      copy: {src: "{{ dir }}/src-{{ n }}", dest: "{{ dir }}/dest-{{ n }}"}
    - name: skipped on h2
      touch: {path: "{{ dir }}/only-h1"}
      when: n == 1
  handlers:
    - name: log it
      record: {log: "{{ dir }}/handler.log", line: "{{ inventory_hostname }}"}
"""


def run(inv: Any, book: Any, factory: Any, **opts: Any) -> Any:
    pool = TransportPool(factory)
    executor = Executor(inv, pool, MODULES, KINDS, options=RunOptions(**opts))
    return executor.run_playbook(book)


def test_converges_then_second_run_changes_nothing_in_two_round_trips(tmp_path: Path) -> None:
    inv, book, transports, factory = setup(tmp_path, BOOK)
    first = run(inv, book, factory)
    assert not first.failed
    assert first.recap["h1"].changed == 4  # source, copy, only-h1, handler
    assert first.recap["h2"].changed == 3 and first.recap["h2"].skipped == 1
    assert (tmp_path / "dest-2").exists() and (tmp_path / "only-h1").exists()
    assert sorted((tmp_path / "handler.log").read_text().split()) == ["h1", "h2"]

    transports.clear()
    second = run(inv, book, factory)
    assert all(r.changed == 0 and r.failed == 0 for r in second.recap.values())
    # a no-op costs one round trip per host: host facts ride along with the play's facts
    assert {h: t.stats.execs for h, t in transports.items()} == {"h1": 1, "h2": 1}
    assert (tmp_path / "handler.log").read_text().count("h1") == 1  # handler not notified again


def test_check_mode_changes_nothing_and_reports_would_be_changes(tmp_path: Path) -> None:
    inv, book, transports, factory = setup(tmp_path, BOOK)
    result = run(inv, book, factory, check=True)
    assert not any(tmp_path.glob("src-*"))
    by_task = {(t.host, t.task): t for t in result.tasks}
    assert by_task[("h1", "source")].status == "changed"
    assert by_task[("h1", "source")].message == "check mode: not applied"
    # the copy's source does not exist in check mode: it fails as Ansible would
    assert by_task[("h1", "copy")].status == "failed"


def test_failed_task_stops_that_host_only(tmp_path: Path) -> None:
    book = """\
- hosts: web
  tasks:
    - touch: {path: "{{ dir }}/a-{{ n }}", fail: "{{ n == 1 }}"}
    - touch: {path: "{{ dir }}/b-{{ n }}"}
"""
    inv, pb, transports, factory = setup(tmp_path, book)
    result = run(inv, pb, factory)
    assert result.failed and result.failed_hosts() == ["h1"]
    failure = [t for t in result.tasks if t.status == "failed"][0]
    assert "exit 3" in failure.message and "boom" in failure.message
    assert not (tmp_path / "b-1").exists() and (tmp_path / "b-2").exists()


def test_any_errors_fatal_stops_every_host(tmp_path: Path) -> None:
    book = """\
- hosts: web
  serial: 1
  any_errors_fatal: true
  tasks:
    - touch: {path: "{{ dir }}/a-{{ n }}", fail: "{{ n == 1 }}"}
- hosts: web
  tasks:
    - touch: {path: "{{ dir }}/later-{{ n }}"}
"""
    inv, pb, transports, factory = setup(tmp_path, book)
    result = run(inv, pb, factory)
    assert "any_errors_fatal" in result.stopped
    assert not (tmp_path / "a-2").exists() and not list(tmp_path.glob("later-*"))


def test_max_fail_percentage_stops_later_batches(tmp_path: Path) -> None:
    book = """\
- hosts: web
  serial: 1
  max_fail_percentage: 0
  tasks:
    - touch: {path: "{{ dir }}/a-{{ n }}", fail: "{{ n == 1 }}"}
"""
    inv, pb, transports, factory = setup(tmp_path, book, hosts=3)
    result = run(inv, pb, factory)
    assert "max_fail_percentage" in result.stopped
    assert not (tmp_path / "a-2").exists() and not (tmp_path / "a-3").exists()


def test_loop_and_run_once(tmp_path: Path) -> None:
    book = """\
- hosts: web
  tasks:
    - name: many
      touch: {path: "{{ dir }}/{{ item }}-{{ n }}"}
      loop: [x, y]
    - name: once
      record: {log: "{{ dir }}/once.log", line: "{{ inventory_hostname }}"}
      run_once: true
"""
    inv, pb, transports, factory = setup(tmp_path, book)
    result = run(inv, pb, factory)
    assert not result.failed
    assert {p.name for p in tmp_path.glob("[xy]-*")} == {"x-1", "y-1", "x-2", "y-2"}
    assert (tmp_path / "once.log").read_text().split() == ["h1"]


def test_scripts_carry_no_secret_in_argv_and_errors_are_masked(tmp_path: Path) -> None:
    book = """\
- hosts: web
  tasks:
    - touch: {path: "{{ dir }}/s3cr3t-{{ n }}", fail: true}
"""
    inv, pb, transports, factory = setup(tmp_path, book, hosts=1)
    pool = TransportPool(factory)
    result = Executor(inv, pool, MODULES, KINDS, options=RunOptions(secrets=("s3cr3t",))).run_playbook(pb)
    failed = [t for t in result.tasks if t.status == "failed"][0]
    assert "s3cr3t" not in failed.reasons[0] and "********" in failed.reasons[0]


def test_host_facts_are_gathered_first_only_when_templates_use_them(tmp_path: Path) -> None:
    book = """\
- hosts: web
  tasks:
    - touch: {path: "{{ dir }}/{{ facts.os_id or 'unknown' }}-{{ n }}"}
"""
    inv, pb, transports, factory = setup(tmp_path, book)
    result = run(inv, pb, factory)
    assert not result.failed
    assert {h: t.stats.execs for h, t in transports.items()} == {"h1": 3, "h2": 3}  # facts, gather, apply
    assert len(list(tmp_path.glob("*-1"))) == 1 and not (tmp_path / "unknown-1").exists()


def test_host_facts_used_only_in_a_template_file_are_gathered_first(tmp_path: Path) -> None:
    from shipit.modules.registry import builtin_modules

    (tmp_path / "cpus.j2").write_text("cpus={{ facts.cpus }}\n")
    book = f"""\
- hosts: web
  become: false
  tasks:
    - template: {{src: cpus.j2, dest: "{tmp_path}/out-{{{{ n }}}}.txt"}}
"""
    modules = {**MODULES, **builtin_modules()}
    inv, _, transports, factory = setup(tmp_path, "- hosts: web\n  tasks: []\n", hosts=1)
    (tmp_path / "book.yml").write_text(book)
    pb = load_playbook(tmp_path / "book.yml", modules, inv)
    result = Executor(inv, TransportPool(factory), modules, KINDS).run_playbook(pb)
    assert not result.failed, [t.message for t in result.tasks]
    assert (tmp_path / "out-1.txt").read_text().startswith("cpus=")


class Fallback(Module):
    """Creates ``path`` from ``path.alt`` (only looked at when ``path`` is missing)."""

    name = "fallback"
    params = {"path": Param(str, required=True)}

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [FactQuery("exists", params["path"])]

    def more_facts(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any]) -> list[FactQuery]:
        return [] if facts[FactQuery("exists", params["path"])] else [FactQuery("exists", params["path"] + ".alt")]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        path = params["path"]
        if facts[FactQuery("exists", path)]:
            return Plan()
        if not facts[FactQuery("exists", path + ".alt")]:
            return Plan(failed=f"neither {path} nor {path}.alt")
        return Plan(changes=(Change(f"copy {path}.alt", f"cp {q(path + '.alt')} {q(path)}"),))


def test_more_facts_cost_a_round_trip_only_when_asked(tmp_path: Path) -> None:
    MODULES["fallback"] = Fallback()
    try:
        book = "- hosts: web\n  tasks:\n    - fallback: {path: '{{ dir }}/f-{{ n }}'}\n"
        inv, playbook, transports, factory = setup(tmp_path, book)
        (tmp_path / "f-1.alt").write_text("alt")
        first = run(inv, playbook, factory)
        # h1: gather, more facts (the .alt), apply; h2: no .alt -> a clear failure, no change
        assert first.recap["h1"].changed == 1 and (tmp_path / "f-1").read_text() == "alt"
        assert first.recap["h2"].failed == 1
        assert "neither" in next(t for t in first.tasks if t.host == "h2").message
        assert {h: t.stats.execs for h, t in transports.items()} == {"h1": 3, "h2": 2}
        transports.clear()
        (tmp_path / "f-2").write_text("made by hand")
        second = run(inv, playbook, factory)
        assert all(r.changed == 0 and r.failed == 0 for r in second.recap.values())
        assert {h: t.stats.execs for h, t in transports.items()} == {"h1": 1, "h2": 1}
    finally:
        del MODULES["fallback"]


def test_leader_and_is_leader_are_defined_at_run_time(tmp_path: Path) -> None:
    """Regression (#11 item 8): `leader`/`is_leader` passed validation but were undefined."""
    (tmp_path / "inv.yml").write_text("hosts: {a: {address: 127.0.0.1}, b: {address: 127.0.0.1, leader: true}}\n")
    (tmp_path / "site.yml").write_text(
        "- hosts: all\n  tasks:\n    - name: only on the leader\n"
        f"      shell: {{cmd: 'echo {{{{ leader }}}} > {tmp_path}/leader-{{{{ inventory_hostname }}}}'}}\n"
        "      when: is_leader\n")
    inv = load_inventory(tmp_path / "inv.yml")
    book = load_playbook(tmp_path / "site.yml", builtin_modules(), inv)
    pool = TransportPool(lambda host: LocalShellTransport(host))
    result = Executor(inv, pool, builtin_modules(), fact_kinds()).run_playbook(book)
    assert not result.failed
    assert (tmp_path / "leader-b").read_text() == "b\n" and not (tmp_path / "leader-a").exists()


def test_the_next_play_renders_with_the_host_facts_gathered_after_the_last_change(tmp_path: Path) -> None:
    """A play installing something, then a play reading it from the host facts (PostgreSQL's
    version): the facts refreshed after the first play's last change are the ones used."""
    marker = tmp_path / "installed"
    kinds = {**KINDS, "host": FactKind("host", lambda arg: f"cat {q(str(marker))} 2>/dev/null || echo none",
                                       lambda out: {"thing": out.strip()})}
    book = f"""\
- hosts: web
  tasks:
    - record: {{log: "{marker}", line: "v17"}}
- hosts: web
  tasks:
    - touch: {{path: "{{{{ dir }}}}/uses-{{{{ facts.thing }}}}"}}
"""
    inv, pb, _, factory = setup(tmp_path, book, hosts=1)
    result = Executor(inv, TransportPool(factory), MODULES, kinds).run_playbook(pb)
    assert not result.failed, [t.message for t in result.tasks]
    assert (tmp_path / "uses-v17").exists() and not (tmp_path / "uses-none").exists()


def test_a_task_timeout_stops_the_changes_and_all_they_started_at_that_timeout(tmp_path: Path) -> None:
    """Regression (#11 item 4): ``timeout: 1`` let ``sleep`` run 121 s (the task's timeout
    plus the re-gather's budget, enforced only by the transport) and said "after 121 s"."""
    marker = tmp_path / "after-sleep"
    book = f"""\
- name: stuck
  hosts: h1
  tasks:
    - name: sleeps in a grandchild
      sh: {{cmd: "sh -c 'sleep 587'; touch {marker}"}}
      timeout: 1
"""
    inv, book_, transports, factory = setup(tmp_path, book, hosts=1)
    result = run(inv, book_, factory)
    task = next(t for t in result.tasks if t.task == "sleeps in a grandchild")
    assert task.status == "failed"
    assert task.message == "h1: the task was stopped after 1 s (its timeout); it had not finished"
    time.sleep(0.5)
    assert not marker.exists()
    assert subprocess.run(["pgrep", "-f", "sleep 587"], capture_output=True).returncode == 1, "sleep left running"


def test_a_change_that_finishes_in_time_is_not_slowed_by_its_watchdog(tmp_path: Path) -> None:
    book = f"""\
- name: quick
  hosts: h1
  tasks:
    - name: quick
      sh: {{cmd: "echo ok > {tmp_path}/log"}}
      timeout: 600
    - name: fails
      sh: {{cmd: "echo x > {tmp_path}/nodir/log"}}
"""
    inv, book_, transports, factory = setup(tmp_path, book, hosts=1)
    result = run(inv, book_, factory)
    statuses = {t.task: t.status for t in result.tasks}
    assert statuses == {"quick": "changed", "fails": "failed"}
    assert (tmp_path / "log").read_text() == "ok\n"
    assert "nodir" in next(t.message for t in result.tasks if t.task == "fails")


def test_a_quick_change_leaves_no_watchdog_sleep_holding_the_output_open(tmp_path: Path) -> None:
    """Regression: the watchdog killed its ``sleep`` by ``$!`` from a trap, so a stop arriving
    between the fork and the assignment left the sleep behind, holding the command's stderr
    open until the task's timeout (a unit test sat 8 minutes on it; on the lab an orphan
    ``sleep 600`` stayed after every few deploys). Many quick runs: each ends at once, none
    leaves a sleep."""
    script = "export LC_ALL=C\n" + changes_script("true", 593.25, "n0nce") + 'echo "rc=$__shipit_rc"\n'
    try:
        for _ in range(100):
            r = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=15)
            assert r.stdout == "rc=0\n", r
    finally:
        left = subprocess.run(["pgrep", "-f", "^sleep 593.25"], capture_output=True, text=True).stdout.split()
        for pid in left:
            subprocess.run(["kill", pid], check=False)
    assert left == [], "a watchdog sleep was left running"
