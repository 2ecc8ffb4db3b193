"""A simulated fleet for stubbed tests of the Deployer and the CLI (no network, no root).

The real executor, the real built-in playbooks and the real planning of the deploy's own
modules (``deploy_lock``, ``release_event``, ``release_switch``, ``release_prune``,
``release_command``) run unchanged; only what reaches a host is faked:

- fact kinds are replaced by ones whose command prints ``__fact KIND ARG`` and whose parser is
  the real one: :class:`FakeHost` answers each with text in the real command's output format
  (``release_state``, ``app_status``, ``web_probe`` and ``host`` from its model; any other kind reads empty);
- each change script of the deploy's modules is replaced by ``__change MODULE {params}``, and
  :class:`FakeHost` applies its effect on a small model of the host (releases, current, slots,
  lock, log); every other module (provisioning) plans no change.

Failures are injected per host: ``fail_switch`` (the health check never passes),
``fail_migrate``, ``fail_release``, ``fail_backup`` / ``fail_restore`` (the db host's
pg_dump / pg_restore fails), ``unreachable``, ``truncate_facts`` (fact output cut short, as OOM-killed),
``hang`` (a command that never returns, for timeouts and Ctrl-C).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.facts.registry import fact_kinds
from shipit.layout import Layout
from shipit.modules.base import Module, Plan, PlanContext, sha256_hex
from shipit.modules.registry import builtin_modules
from shipit.modules.release import ReleaseSwitchModule
from shipit.pool import TransportPool
from shipit.transport import (
    CommandInterrupted,
    CommandResult,
    HostUnreachable,
    OutputSink,
    RemoteTimeout,
    TransportStats,
)

DEPLOY_MODULES = {"deploy_lock", "release_event", "release_switch", "release_prune", "release_command",
                  "release_slot", "release_artifact", "db_backup", "db_restore", "app_pause"}


class _Proxy(Module):
    """A real module whose change scripts become ``__change NAME {params}`` lines."""

    def __init__(self, real: Module) -> None:
        self.real = real
        self.name = real.name  # type: ignore[misc]
        self.params = real.params  # type: ignore[misc]
        self.interruptible = real.interruptible  # type: ignore[misc]

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return self.real.check_params(params)

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return self.real.facts(params) if self.real.name in DEPLOY_MODULES else []

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        if self.real.name not in DEPLOY_MODULES:
            return Plan()
        plan = self.real.plan(params, facts, ctx)
        changes = []
        for c in plan.changes:
            doc = {"params": dict(params), "reason": c.reason}
            changes.append(replace(c, script=f"__change {self.real.name} {json.dumps(doc, default=str)}"))
        return replace(plan, changes=tuple(changes))

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        return self.real.timeout_of(params)


def fake_modules() -> dict[str, Module]:
    """The built-in modules wrapped for the fake fleet."""
    return {name: _Proxy(m) for name, m in builtin_modules(plugins=False).items()}


def fake_kinds() -> dict[str, FactKind]:
    """The built-in fact kinds with a recognisable command and the real parser."""
    real = fact_kinds(plugins=False)
    return {name: FactKind(name, (lambda arg, n=name: f"__fact {n} {json.dumps(arg)}"), k.parse, k.doc)
            for name, k in real.items()}


@dataclass
class FakeHost:
    """A web (or db) host's state as far as a deploy is concerned, plus injected failures."""

    name: str
    releases: dict[str, bool] = field(default_factory=dict)  # id -> ready
    current: str | None = None
    live_port: int | None = None
    site_sha: str | None = None  # sha256 of the app's Caddy site, as release_switch wrote it
    slots: dict[int, str] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)
    lock: str | None = None
    log: list[str] = field(default_factory=list)
    parts: dict[str, int] = field(default_factory=dict)  # the parts store: sha256 -> bytes
    uses: dict[str, list[str]] = field(default_factory=dict)  # release -> parts it was unpacked from
    uploads: list[str] = field(default_factory=list)  # sha256 of each part uploaded, in order
    fail_switch: bool = False
    fail_prepare: bool = False
    fail_migrate: bool = False
    fail_release: bool = False  # a release: step (release_command with label release) fails
    unreachable: bool = False
    truncate_facts: bool = False
    hang: str = ""  # a script containing this text never returns (until cancelled or timed out)
    host_facts: str | None = None  # the `host` fact's output (None: a Debian 12 host with 3.11)
    change_stderr: str = ""  # printed on stderr by every script that applies changes (-vv tests)
    probe: str | None = None  # the `web_probe` fact's output (None: 200 in 12 ms while a slot runs)
    migrations: int = 0
    release_steps: list[str] = field(default_factory=list)  # release: commands run, in order
    journal: list[str] = field(default_factory=list)  # `journalctl -o json` lines it answers
    journal_no_units: bool = False  # no unit matches: journalctl's "No data available", rc 1
    console_out: str = ""  # what a console command (systemd-run) writes, and its exit status
    console_rc: int = 0
    # the db host: backups (name -> (bytes, mtime epoch)), and what each restore put back
    backups: dict[str, tuple[int, float]] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)
    fail_backup: bool = False
    fail_restore: bool = False
    # a web host: the units a restore stopped (None: not paused); what was stopped, in order
    paused: list[str] | None = None
    pauses: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    hanging: threading.Event = field(default_factory=threading.Event)  # set when a hang begins
    hang_seconds: float = 1.0  # how long a hang lasts at most (as if its timeout had passed)

    # ---- facts ------------------------------------------------------------------------
    def fact(self, kind: str, arg: str) -> str:
        if kind == "release_state":
            lines = [f"app={arg}", f"current={self.current or ''}", f"live_port={self.live_port or ''}"]
            if self.live_port:
                lines.append(f"live_link={Layout(arg).web_socket(self.live_port)}")
            lines.append(f"live_release={self.current or ''}")
            lines += [f"slot={p} {r}" for p, r in sorted(self.slots.items())]
            for r, ready in sorted(self.releases.items()):
                lines.append(f"release={r}")
                if ready:
                    lines.append(f"ready={r}")
                if r in self.uses:
                    lines += [f"unpacked={r}", f"uses={r} {' '.join(self.uses[r])}"]
            lines += [f"part={sha} {size}" for sha, size in sorted(self.parts.items())]
            lines += [f"active_port={p}" for p in sorted(self.active)]
            if self.lock:
                lines.append(f"lock={self.lock}")
            lines += [f"log={line}" for line in self.log]
            return "\n".join(lines) + "\n"
        if kind == "app_status":  # the real command's line format (tests/unit/recorded/status_*)
            lay = Layout(arg)
            lines = [f"app={arg}", f"current={self.current or ''}", f"live_port={self.live_port or ''}"]
            for port in sorted(self.active):
                unit = lay.web_unit(port)
                lines += [f"show {unit} ActiveState=active", f"show {unit} SubState=running",
                          f"show {unit} NRestarts=0", f"show {unit} MainPID={1000 + port}",
                          f"mem {unit} {64 * 2**20}"]
                lines += [f"child {unit} {2000 + port + i} python -c spawn_main" for i in range(2)]
            return "\n".join(lines) + "\n"
        if kind == "web_probe":  # the real command's line format (shipit.facts.status.probe_command)
            if self.probe is not None:
                return self.probe
            if self.current and self.active:
                return "now=1796230000\nexpire=Dec  5 17:02:12 2026 GMT\nprobe=200 0.012000\n"
            return "now=1796230000\nerror=Failed to connect to 127.0.0.1 port 443\nprobe=000 0.000300\n"
        if kind == "path_exists":
            name = arg.rsplit("/", 1)[-1]
            if arg.endswith(".dump"):
                return "yes\n" if name.removesuffix(".dump") in self.backups else "no\n"
            if name == ".paused-units":
                return "yes\n" if self.paused is not None else "no\n"
            return "no\n"
        if kind == "host" and self.host_facts is not None:
            return self.host_facts
        if kind == "file" and arg.startswith("/etc/caddy/sites/") and self.site_sha:
            return f"type=regular file\nmode=644\nowner=root\ngroup=root\nsize=1\nsha256={self.site_sha}\n"
        if kind == "host":
            return ("os_id=debian\nos_version=12\ncodename=bookworm\narch=amd64\nmachine=x86_64\nglibc=2.36\n"
                    f"hostname={self.name}\ncpus=2\nmem_total_kb=4000000\nmem_available_kb=3000000\n"
                    "load=0.1 0.1 0.1\npythons=python3.11\napt_lists=yes\npython3.11_candidate=3.11.2-6+deb12u9\n"
                    "python3_candidate=3.11.2-1+b1\ncaddy_candidate=2.6.2-5\nsystemd=252\n")
        return ""

    def _log(self, params: Mapping[str, Any], release: str, state: str) -> None:
        self.log.append("\t".join(["2026-12-01T10:00:00Z", str(params.get("user", "u")),
                                   str(params.get("action", "deploy")), release, state]))

    # ---- changes ------------------------------------------------------------------------
    def apply_artifact(self, params: Mapping[str, Any], reason: str) -> tuple[int, str]:
        """A ``release_artifact`` change: a part stored (``upload …``) or the release unpacked."""
        parts = params["parts"]
        if reason.startswith("upload "):
            part = next(p for p in parts if p["sha256"][:12] in reason)
            self.parts[part["sha256"]] = int(part["size"])
            self.uploads.append(part["sha256"])
        else:
            self.releases.setdefault(params["release"], False)
            self.uses[params["release"]] = [p["sha256"] for p in parts]
        return 0, ""

    def apply(self, module: str, params: Mapping[str, Any], reason: str = "") -> tuple[int, str]:
        if module == "deploy_lock":
            if params["state"] == "locked":
                if self.lock:
                    return 1, f"shipit: the deploy lock is held ({self.lock})"
                self.lock = params["token"]
            else:
                self.lock = None
            return 0, ""
        if module == "release_event":
            if params["state"] == "built":
                self.releases[params["release"]] = True
            self._log(params, params["release"], params["state"])
            return 0, ""
        if module == "release_command":
            if params.get("label") == "release":
                self.release_steps.append(str(params["cmd"]))
                return (1, "CommandError: the release step failed") if self.fail_release else (0, "")
            if self.fail_migrate:
                return 1, "alembic: could not connect to the database"
            self.migrations += 1
            return 0, ""
        if module == "db_backup":
            if self.fail_backup:
                return 1, ("pg_dump: error: connection to server failed\n"
                           f"shipit: the backup of database {params['database']} failed (pg_dump exit 1): "
                           "pg_dump: error: connection to server failed")
            self.backups[params["name"]] = (1000 + len(self.backups), 1796230000.0 + len(self.backups))
            for old in sorted(self.backups, key=lambda n: self.backups[n][1], reverse=True)[int(params["keep"]):]:
                del self.backups[old]
            return 0, ""
        if module == "db_restore":
            if self.fail_restore:
                return 1, f"shipit: restoring {params['name']} into database {params['database']} failed"
            self.restored.append(params["name"])
            return 0, ""
        if module == "app_pause":
            if params["state"] == "stopped":
                units = [Layout(params["app"]).web_unit(p) for p in sorted(self.active)]
                self.paused = sorted({*(self.paused or []), *units})
                self.pauses.append("stopped")
                self.active = set()
            else:
                self.active = {int(u.split("@")[1].split(".")[0]) for u in self.paused or []}
                self.paused = None
                self.pauses.append("started")
            return 0, ""
        if module == "release_switch" and reason.startswith("stop the idle slot left running"):
            self.active &= {self.live_port}
            return 0, ""
        if module == "release_switch" and reason.startswith(("point ", "update ")):
            return 0, ""
        if module == "release_switch":
            release = params["release"]
            if self.fail_switch:
                self._log(params, release, "failed")
                return 1, f"shipit: release {release} did not answer 200 on /health within 30 s (last answer: HTTP 500)"
            ports = [int(p) for p in params["ports"]]
            new = ports[1] if self.live_port == ports[0] else ports[0]
            previous = self.current
            self.slots[new] = release
            self.active = {new}  # the old slot is stopped
            self.live_port, self.current = new, release
            self.site_sha = sha256_hex(ReleaseSwitchModule.site(params).encode())
            self._log(params, release, "live")
            if previous and previous != release:
                self._log(params, previous, "retired")
            return 0, ""
        if module == "release_slot":
            ports = [int(p) for p in params["ports"]]
            idle = ports[1] if self.live_port == ports[0] else ports[0]
            if params.get("state", "started") == "stopped":
                self.active.discard(idle)
                return 0, ""
            if self.fail_prepare:
                self._log(params, params["release"], "failed")
                return 1, f"shipit: {params['release']} did not answer 200 on /health within 30 s"
            self.slots[idle] = params["release"]
            self.active.add(idle)
            return 0, ""
        return 0, ""

    def prune(self, doomed: list[str]) -> None:
        for r in doomed:
            self.releases.pop(r, None)
            self.uses.pop(r, None)
        needed = {sha for shas in self.uses.values() for sha in shas}
        self.parts = {sha: n for sha, n in self.parts.items() if sha in needed}


class FakeFleetTransport:
    """A transport answering the executor's scripts from a :class:`FakeHost`."""

    def __init__(self, host: FakeHost) -> None:
        self.fake = host
        self.stats = TransportStats()

    @property
    def host(self) -> str:
        return self.fake.name

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        fake = self.fake
        if fake.unreachable:
            raise HostUnreachable(f"{fake.name}: cannot connect: connection refused")
        self.stats.execs += 1
        fake.scripts.append(script)
        if fake.hang and fake.hang in script:
            fake.hanging.set()
            # a fake hang ends after hang_seconds at most (as if the timeout had passed), or on cancel
            limit = fake.hang_seconds if timeout is None else min(timeout, fake.hang_seconds)
            if fake.cancelled.wait(limit):
                from shipit.errors import ShipitError
                raise ShipitError(f"{fake.name}: the command was interrupted")
            from shipit.errors import ShipitError
            raise ShipitError(f"{fake.name}: the command was stopped after {timeout:g} s (timeout)")
        if script.startswith("readlink -- "):  # shipit console: which release is current
            return CommandResult(0, f"{fake.current or ''}\n", "")
        if script.startswith("if [ -d ") and "-name '*.dump'" in script:  # shipit.backups.list_script
            return CommandResult(0, "".join(f"{n}.dump\t{size}\t{when}\n"
                                            for n, (size, when) in fake.backups.items()), "")
        out: list[str] = []
        err: list[str] = []
        rc_marker = re.search(r'echo "(@@shipit:[0-9a-f]+:rc:)\$__shipit_rc"', script)
        failed_rc = 0
        for change in re.finditer(r"^__change (\S+) (.*)$", script, re.M):
            module, doc = change.group(1), json.loads(change.group(2))
            params = doc["params"]
            if module == "release_prune":
                fake.prune(doc["reason"].removeprefix("prune ").split(", "))
            rc, text = fake.apply_artifact(params, doc["reason"]) if module == "release_artifact" \
                else fake.apply(module, params, doc["reason"])
            if text:
                err.append(text)
            if fake.change_stderr:
                err.append(fake.change_stderr)
            if rc:
                failed_rc = rc
                break
        if rc_marker:
            out.append(f"{rc_marker.group(1)}{failed_rc}")
            if failed_rc:
                return CommandResult(0, "\n".join(out) + "\n", "\n".join(err))
        for line in script.splitlines():
            m = re.match(r"^echo '(@@shipit:[^']+)'$", line)
            if m:
                out.append(m.group(1))
                continue
            f = re.match(r"^__fact (\S+) (.*)$", line)
            if f:
                out.append(fake.fact(f.group(1), json.loads(f.group(2))).rstrip("\n"))
        text = "\n".join(out) + "\n"
        if fake.truncate_facts:
            return CommandResult(137, text[: len(text) // 3], "Killed")
        return CommandResult(0, text, "\n".join(err))

    def stream(self, script: str, on_output: OutputSink, *, become: bool = True,
               timeout: float | None = None) -> int:
        """As :meth:`run`, output handed to ``on_output``. ``journalctl`` scripts answer with
        the host's ``journal``; with ``--follow`` they then block until cancelled (Ctrl-C) or
        ``timeout`` (``hanging`` is set first); ``systemd-run`` answers ``console_out``."""
        fake = self.fake
        if fake.unreachable:
            raise HostUnreachable(f"{fake.name}: cannot connect: connection refused")
        if script.startswith("exec journalctl") or "systemd-run" in script:
            self.stats.execs += 1
            fake.scripts.append(script)
            if "systemd-run" in script:
                if fake.console_out:
                    on_output("stdout", fake.console_out.encode())
                return fake.console_rc
            if fake.journal_no_units:
                on_output("stderr", b"Failed to add filter for units: No data available\n")
                return 1
            if fake.journal:
                on_output("stdout", "".join(line + "\n" for line in fake.journal).encode())
            if "--follow" not in script:
                return 0
            fake.hanging.set()
            if fake.cancelled.wait(timeout if timeout is not None else 30.0):
                raise CommandInterrupted(fake.name, f"{fake.name}: interrupted")
            raise RemoteTimeout(fake.name, timeout or 30.0)
        result = self.run(script, become=become, timeout=timeout)
        if result.stdout:
            on_output("stdout", result.stdout.encode())
        if result.stderr:
            on_output("stderr", result.stderr.encode())
        return result.rc

    def interactive(self, argv: list[str], *, become: bool = True) -> int:
        """Record the console's argv (space-joined); answer ``console_rc``."""
        if self.fake.unreachable:
            raise HostUnreachable(f"{self.fake.name}: cannot connect: connection refused")
        self.fake.scripts.append(" ".join(argv))
        return self.fake.console_rc

    def put(self, local: str, remote: str) -> None:
        self.stats.sftp += 1

    def cancel(self) -> None:
        self.fake.cancelled.set()

    def close(self) -> None:
        pass


def fake_pool(hosts: Mapping[str, FakeHost]) -> TransportPool:
    """A pool handing out one :class:`FakeFleetTransport` per fake host."""
    return TransportPool(lambda name: FakeFleetTransport(hosts[name]))  # type: ignore[arg-type,return-value]
