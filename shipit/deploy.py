"""``shipit deploy``, ``rollback``, ``releases`` and ``unlock``: the built-in playbooks driven
by the app spec, with a deploy lock on the leader and a rolling, health-gated switch.

Order of a deploy (nothing touches a host before step 4):
  1. load and validate the inventory, the app spec, the secrets and the built-in playbooks;
  2. build the artifact on the runner (deterministic: same app -> same content hash);
  3. one round trip per web host: host facts and release state (existing releases, lock);
     size the workers against memory and refuse when they do not fit;
  4. take the deploy lock on the leader (released on every exit path, Ctrl-C included);
  5. provision (idempotent), upload + unpack + venv on every web host;
  6. migrate once, on the leader, with the new release's code and env (a marker in the shared
     dir makes a second run for the same release a no-op);
  7. switch batch by batch (the first batch is the canary); when a batch fails the roll stops,
     hosts of that batch that did switch go back to their previous release, and the table of
     which host runs which release is printed;
  8. prune old releases (never ``current`` nor the one before it).
"""

from __future__ import annotations

import getpass
import hashlib
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shipit.app import AppSpec, load_app_spec, load_secrets, parse_size
from shipit.artifact import build_artifact
from shipit.errors import Problem, ShipitError, ValidationError
from shipit.executor import Executor, RunOptions, RunResult
from shipit.facts import FactQuery
from shipit.facts.registry import fact_kinds
from shipit.inventory import Inventory, leader_of
from shipit.modules.registry import builtin_modules
from shipit.playbook import Play, Playbook, batches, load_playbook
from shipit.pool import TransportPool
from shipit.report import ConsoleReporter
from shipit.templating import Templar, make_environment
from shipit.transport import HostUnreachable

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
DEFAULT_WORKER_MEMORY = 100 * 1024 * 1024  # bytes, when the spec declares none
# Wheels are built by the runner's interpreter, so without `python:` in the spec the hosts get
# the same X.Y (and the python module says plainly when their distro does not ship it).
RUNNER_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


class DeployFailed(ShipitError):
    """The deploy or rollback stopped; the message says which host runs which release."""


@dataclass(frozen=True)
class Target:
    """Everything a deploy needs, loaded and validated before any connection."""

    env_name: str
    inventory: Inventory
    spec: AppSpec
    secrets: Mapping[str, str]
    web: tuple[str, ...]
    leader: str


def load_target(env_name: str, inventory: Inventory, app_dir: str) -> Target:
    """Load the app spec (with the inventory's ``app:`` overrides) and secrets; check the
    inventory has a ``web`` group.

    Raises:
        ValidationError: anything missing or malformed, with file:line and key.
    """
    spec = load_app_spec(app_dir, inventory.app, inventory.path)
    problems = []
    try:
        web = inventory.select("web")
    except ValueError:
        web = []
    if not web:
        problems.append(Problem(inventory.path, 0, "groups.web", "a deploy needs a group 'web' with at least one host"))
    if spec.database and not inventory.groups.get("db"):
        problems.append(Problem(inventory.path, 0, "groups.db", "the app has a database: the inventory needs a group 'db'"))
    if problems:
        raise ValidationError(problems)
    try:
        leader = leader_of(inventory, web)
    except ValueError as exc:
        raise ValidationError([Problem(inventory.path, 0, "leader", str(exc))]) from None
    secrets = load_secrets(spec, env_name)
    return Target(env_name, inventory, spec, secrets, tuple(web), leader)


def who() -> str:
    """``user@runner`` for the lock and the release log."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def render_env_file(target: Target) -> str:
    """The release's env file: ``KEY='value'`` lines (systemd and sh read them alike).

    Values are Jinja2 templates over ``secrets``, ``hostvars`` and ``groups``.

    Raises:
        ValidationError: a value cannot be rendered or contains a quote or newline.
    """
    inv = target.inventory
    variables = {**inv.shared_variables(), "secrets": dict(target.secrets), "env_name": target.env_name}
    templar = Templar(make_environment(), variables)
    lines, problems = ["# managed by shipit: this release's environment"], []
    for key, value in target.spec.env.items():
        try:
            rendered = str(templar.render(value))
        except Exception as exc:  # noqa: BLE001 - jinja raises several kinds
            problems.append(Problem("shipit.yml", 0, f"env.{key}", f"cannot render: {exc}"))
            continue
        if "'" in rendered or "\n" in rendered:
            problems.append(Problem("shipit.yml", 0, f"env.{key}", "values cannot contain ' or a newline"))
            continue
        lines.append(f"{key}='{rendered}'")
    if problems:
        raise ValidationError(problems)
    return "\n".join(lines) + "\n"


def measured_worker_memory(status: Mapping[str, Any]) -> int | None:
    """Resident memory per web worker of the release running on a host, in bytes.

    ``status`` is an ``app_status`` fact (see :mod:`shipit.facts.status`). The live web unit's
    memory is divided by its worker count, so the master's share is counted in (erring on the
    large side, as a budget check should). None when no live web unit reports memory.
    """
    live = status.get("live_port")
    for unit in status.get("units", {}).values():
        if (unit["kind"] == "web" and unit["instance"] == str(live) and unit["active_state"] == "active"
                and unit["memory"] and unit["workers"]):
            return int(unit["memory"]) // int(unit["workers"])
    return None


def size_workers(spec: AppSpec, host_facts: Mapping[str, Mapping[str, Any]],
                 budgets: Mapping[str, str] | None = None, measured: int | None = None) -> int:
    """Worker processes per host: the spec's number, or for ``auto`` the most that fit the
    memory budget of the smallest host, capped at 2 x CPUs + 1 (gunicorn's rule of thumb).

    ``budgets`` maps a host to its own budget (the host var ``memory_budget``: "50%" of its
    memory, or a size like "512M"); others use the spec's ``memory_budget``. Memory per worker
    is the spec's ``memory_per_worker``, else ``measured`` (bytes, from the running release on
    the leader: :func:`measured_worker_memory`), else 100 MiB.

    Raises:
        ValidationError: workers x memory per worker exceeds a host's budget (numbers given).
    """
    per_worker = spec.memory_per_worker or measured or DEFAULT_WORKER_MEMORY
    problems: list[Problem] = []
    counts = []
    for host, facts in host_facts.items():
        total = int(facts.get("mem_total", 0))
        wanted = str((budgets or {}).get(host, spec.memory_budget))
        try:
            budget = total * float(wanted[:-1]) // 100 if wanted.endswith("%") else parse_size(wanted)
        except ValueError:
            raise ValidationError([Problem("inventory", 0, f"hosts.{host}.vars.memory_budget",
                                           f"expected a percentage ('50%') or a size ('512M'), got {wanted!r}")]) from None
        budget = int(budget)
        cpus = int(facts.get("cpus", 1))
        if spec.workers == "auto":
            count = max(1, min(2 * cpus + 1, budget // per_worker))
        else:
            count = int(spec.workers)
        if count * per_worker > budget:
            problems.append(Problem("shipit.yml", 0, "web.workers",
                                    f"{host}: {count} workers x {per_worker // 2**20} MiB = "
                                    f"{count * per_worker // 2**20} MiB exceeds the memory budget of "
                                    f"{budget // 2**20} MiB ({wanted} of {total // 2**20} MiB); "
                                    "lower web.workers or raise memory_budget"))
        counts.append(count)
    if problems:
        raise ValidationError(problems)
    return min(counts) if counts else 1


def app_vars(spec: AppSpec, workers: int, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The ``app`` variable the built-in playbooks read."""
    python = spec.python or RUNNER_PYTHON
    db = None
    if spec.database:
        secret_name = spec.database.get("password_secret", "")
        db = {"name": spec.database["name"], "user": spec.database["user"],
              "password": secrets.get(secret_name, "")}
    return {
        "name": spec.name, "python": python, "asgi": spec.asgi, "workers": workers,
        "memory_max": (f"{(spec.memory_per_worker * (workers + 1)) // 2**20}M"
                       if spec.memory_per_worker else None),
        "processes": [{"name": p.name, "command": p.command} for p in spec.processes],
        "process_units": [f"{p.name}@{i}" for p in spec.processes for i in range(1, p.instances + 1)],
        "migrate": spec.migrate, "health_path": spec.health_path,
        "health_timeout": spec.health_timeout, "domains": list(spec.domains),
        "tls_internal": spec.tls_internal, "acme_email": spec.acme_email,
        "ports": [spec.port, spec.port + 1], "database": db,
    }


class Deployer:
    """Runs deploys and rollbacks for one :class:`Target` through a transport pool.

    ``console`` receives progress; ``forks`` bounds hosts worked on at once.
    """

    def __init__(self, target: Target, pool: TransportPool, console: Console, forks: int = 20,
                 verbose: bool = False, lock_wait: float = 0.0) -> None:
        self.target = target
        self.pool = pool
        self.console = console
        self.forks = forks
        self.verbose = verbose
        self.lock_wait = lock_wait
        self.modules = builtin_modules()
        self.kinds = fact_kinds()
        self.user = who()
        self.state_query = FactQuery("release_state", target.spec.root)
        self.secret_values = tuple(v for v in target.secrets.values() if v)
        self.changed = 0  # tasks that changed something, over every run of this deployer
        self.release = ""

    # ---- helpers ---------------------------------------------------------------------------
    def _executor(self, extra: Mapping[str, Any], check: bool = False) -> Executor:
        reporter = ConsoleReporter(self.console, verbose=self.verbose)
        return Executor(self.target.inventory, self.pool, self.modules, self.kinds, reporter,
                        RunOptions(check=check, forks=self.forks, extra_vars=extra,
                                   secrets=self.secret_values))

    def _load(self, name: str, extra: Mapping[str, Any]) -> Playbook:
        return load_playbook(PLAYBOOKS / f"{name}.yml", self.modules, self.target.inventory, extra)

    def states(self, hosts: tuple[str, ...] | None = None) -> dict[str, dict[str, Any] | str]:
        """Release state per host (see shipit.facts.app), or the reason it is unreachable."""
        executor = self._executor({})
        gathered = executor.gather_facts(list(hosts or self.target.web), [self.state_query])
        out: dict[str, dict[str, Any] | str] = {}
        for host, facts in gathered.items():
            if isinstance(facts, HostUnreachable):
                out[host] = facts.message
            else:
                out[host] = {**facts[self.state_query], "facts": executor.host_facts.get(host, {})}
        return out

    def measure_worker_memory(self, states: Mapping[str, Mapping[str, Any]]) -> int | None:
        """Per-worker memory of the release running on the leader (bytes), when the spec
        declares none and something runs there; one read-only round trip to the leader."""
        if self.target.spec.memory_per_worker or not states.get(self.target.leader, {}).get("current"):
            return None
        query = FactQuery("app_status", self.target.spec.root)
        facts = self._executor({}).gather_facts([self.target.leader], [query])[self.target.leader]
        if isinstance(facts, HostUnreachable):
            return None
        measured = measured_worker_memory(facts[query])
        if measured:
            self.console.print(f"  measured {measured / 2**20:.0f} MiB per web worker on {self.target.leader}")
        return measured

    def budgets(self) -> dict[str, str]:
        """Per-host memory budgets set as the host var ``memory_budget`` in the inventory."""
        inv = self.target.inventory
        return {h: str(v) for h in self.target.web
                if (v := inv.host_vars(h).get("memory_budget")) is not None}

    # ---- lock ------------------------------------------------------------------------------
    def acquire_lock(self, release: str) -> str:
        """Take the deploy lock on the leader; wait up to ``lock_wait`` seconds.

        Returns the lock token. Raises DeployFailed: held by someone else (who, when, what).
        """
        root = self.target.spec.root
        token = f"who={self.user} when={datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} release={release}"
        script = (f"mkdir -p {root}\nif mkdir {root}/.deploy-lock 2>/dev/null; then\n"
                  f"  printf '%s\\n' '{token}' > {root}/.deploy-lock/info; echo acquired\n"
                  f"else echo \"held $(cat {root}/.deploy-lock/info 2>/dev/null)\"; fi\n")
        deadline = time.monotonic() + self.lock_wait
        transport = self.pool.get(self.target.leader)
        while True:
            result = transport.run(script)
            if result.stdout.strip() == "acquired":
                return token
            if time.monotonic() >= deadline:
                holder = result.stdout.strip().removeprefix("held").strip() or result.stderr.strip()
                raise DeployFailed(f"the deploy lock on {self.target.leader} is held ({holder}); "
                                   "wait with --lock-wait SECONDS, or if that deploy is dead, "
                                   f"`shipit unlock {self.target.env_name}`")
            time.sleep(2)

    def release_lock(self, token: str) -> None:
        """Free the lock if it is still ours (never someone else's)."""
        root = self.target.spec.root
        self.pool.get(self.target.leader).run(
            f"[ \"$(cat {root}/.deploy-lock/info 2>/dev/null)\" = '{token}' ] && rm -rf {root}/.deploy-lock\ntrue\n")

    def force_unlock(self) -> str:
        """Remove the lock whoever holds it; returns what the lock said."""
        root = self.target.spec.root
        result = self.pool.get(self.target.leader).run(
            f"cat {root}/.deploy-lock/info 2>/dev/null; rm -rf {root}/.deploy-lock\n")
        return result.stdout.strip()

    # ---- deploy ----------------------------------------------------------------------------
    def deploy(self, artifact_dir: str) -> dict[str, str]:
        """Deploy the app; returns host -> release it serves. Raises DeployFailed."""
        spec = self.target.spec
        env_file = render_env_file(self.target)
        python = spec.python or RUNNER_PYTHON
        # validate the playbooks before any connection (with placeholder values)
        probe = self._extra(spec, 1, "probe", "probe", "", "", "deploy", env_file)
        provision, deploy = self._load("provision", probe), self._load("deploy", probe)
        self.console.print(f"[bold]build[/] {spec.source}")
        artifact = build_artifact(spec.source, artifact_dir, python)
        self.console.print(f"  artifact {artifact.content_hash} ({artifact.size / 2**20:.1f} MiB)")
        states = self.states()
        down = {h: s for h, s in states.items() if isinstance(s, str)}
        if down:
            raise DeployFailed("unreachable, nothing was changed: " + "; ".join(down.values()))
        live = {h: s for h, s in states.items() if isinstance(s, dict)}
        workers = size_workers(spec, {h: s["facts"] for h, s in live.items()}, self.budgets(),
                               self.measure_worker_memory(live))
        # a release is code + config: the same artifact with another env file is a new release
        release_hash = hashlib.sha256(f"{artifact.sha256}\n{env_file}".encode()).hexdigest()[:12]
        release = next((r for s in live.values() for r in s["releases"] if r.endswith("-" + release_hash)),
                       f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{release_hash}")
        extra = self._extra(spec, workers, release, artifact.path, artifact.sha256,
                            artifact.distribution, "deploy", env_file)
        self.release = release
        token = self.acquire_lock(release)
        try:
            return self._deploy_locked(provision, deploy, extra, release, live)
        except KeyboardInterrupt:
            raise self._interrupted() from None
        finally:
            self.release_lock(token)

    def _interrupted(self) -> DeployFailed:
        """Ctrl-C: hosts finished the step they were in; say where each stands (exit 130)."""
        return DeployFailed(self._stopped("interrupted (Ctrl-C): each host finished the step it was in, "
                                          "the deploy lock is released", RunResult(), {}), exit_code=130)

    def _extra(self, spec: AppSpec, workers: int, release: str, artifact: str, sha: str,
               dist: str, action: str, env_file: str) -> dict[str, Any]:
        return {"app": app_vars(spec, workers, self.target.secrets), "release": release,
                "artifact": artifact, "artifact_sha256": sha, "distribution": dist or "app",
                "user": self.user, "leader": self.target.leader, "action": action,
                "env_file": env_file, "env_name": self.target.env_name}

    def _deploy_locked(self, provision: Playbook, deploy: Playbook, extra: dict[str, Any],
                       release: str, before: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        web = list(self.target.web)
        executor = self._executor(extra)
        for play in provision.plays:
            if not executor.run_play(play) or executor.result.failed:
                raise DeployFailed(self._stopped("provisioning failed", executor.result, before))
        upload, migrate, switch = deploy.plays
        if not executor.run_play(upload, web) or executor.result.failed:
            raise DeployFailed(self._stopped("upload failed; no host was switched", executor.result, before))
        if not executor.run_play(migrate, [self.target.leader]) or executor.result.failed:
            raise DeployFailed(self._stopped("migrations failed on the leader; no host was switched",
                                             executor.result, before))
        try:
            switched = self._roll(executor, switch, release, before)
        finally:
            self.changed += sum(r.changed for r in executor.result.recap.values())
        self._prune(executor, release)
        return switched

    def _roll(self, executor: Executor, switch: Play, release: str,
              before: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """Switch batch by batch; on a failed batch, put its switched hosts back and stop.

        Hosts already serving ``release`` are checked first, all at once (nothing to protect
        there, and a no-op deploy then costs one parallel round trip, not one per batch); the
        canary is the first batch of the hosts that really switch.
        """
        spec = self.target.spec
        play = replace(switch, serial=())
        done: list[str] = []
        already = [h for h in self.target.web if before.get(h, {}).get("current") == release]
        pending = [h for h in self.target.web if h not in already]
        steps = ([("hosts already on it", already)] if already else []) + \
            [("canary" if n == 1 else f"batch {n}", b) for n, b in enumerate(batches(pending, spec.serial), start=1)]
        for label, batch in steps:
            self.console.print(f"[bold]switch[/] {label}: {', '.join(batch)}")
            start = len(executor.result.tasks)
            executor.run_play(play, batch)
            results = executor.result.tasks[start:]
            failed = [r.host for r in results if r.status == "failed"] + \
                [h for h in batch if executor.result.recap.get(h) and executor.result.recap[h].unreachable]
            if failed and 100.0 * len(set(failed)) / len(batch) > spec.max_fail:
                back = [h for h in batch if h not in failed and before.get(h, {}).get("current")]
                self._restore(back, before, play, executor.options.extra_vars)
                raise DeployFailed(self._stopped(
                    f"{label} failed on {', '.join(sorted(set(failed)))}; the roll stopped"
                    + (f" and {', '.join(back)} went back to the previous release" if back else ""),
                    executor.result, before))
            done += batch
        return {h: release for h in done}

    def _restore(self, hosts: list[str], before: Mapping[str, Mapping[str, Any]],
                 switch: Play, extra: Mapping[str, Any]) -> None:
        """Switch each of ``hosts`` back to the release it served before this run."""
        for host in hosts:
            back = {**extra, "release": before[host]["current"], "action": "rollback"}
            self._executor(back).run_play(switch, [host])

    def _prune(self, executor: Executor, release: str) -> None:
        keep = self.target.spec.keep_releases
        root = self.target.spec.root
        script = f"""cd {root}/releases || exit 0
cur=$(readlink {root}/current | sed 's|.*/||')
ls -1d */ 2>/dev/null | sed 's|/$||' | sort > /tmp/.shipit-releases
keep=$(tail -n {keep} /tmp/.shipit-releases; grep -B1 -x "$cur" /tmp/.shipit-releases)
for r in $(cat /tmp/.shipit-releases); do
  echo "$keep" | grep -qx "$r" && continue
  for s in {root}/slots/*; do [ "$(readlink "$s" | sed 's|.*/||')" = "$r" ] && continue 2; done
  rm -rf "{root}/releases/$r" "{root}/releases/$r.tar.gz" "{root}/shared/env/$r.env"; echo "pruned $r"
done
rm -f /tmp/.shipit-releases
"""
        for host in self.target.web:
            try:
                out = self.pool.get(host).run(script).stdout.strip()
            except HostUnreachable:
                continue
            if out:
                self.console.print(f"  {host}: {out.replace(chr(10), ', ')}")

    def _stopped(self, why: str, result: RunResult, before: Mapping[str, Mapping[str, Any]]) -> str:
        states = self.states()
        lines = [why + ". Where each host stands:"]
        for host, s in states.items():
            lines.append(f"  {host}: " + (f"unreachable ({s})" if isinstance(s, str)
                                          else f"serving {s['current'] or 'nothing'}"))
        failures = [t for t in result.tasks if t.status == "failed"]
        for t in failures[-5:]:
            lines.append(f"  failed: {t.host} {t.task}: {t.message}")
        return "\n".join(lines)

    # ---- rollback --------------------------------------------------------------------------
    def rollback(self, to: str | None = None) -> dict[str, str]:
        """Switch every web host back to the previous (or ``to``) release, rolling and
        health-checked like a deploy. Database migrations are not reverted."""
        spec = self.target.spec
        states = self.states()
        down = [h for h, s in states.items() if isinstance(s, str)]
        if down:
            raise DeployFailed(f"unreachable: {', '.join(down)}; nothing was changed")
        live = {h: s for h, s in states.items() if isinstance(s, dict)}
        leader_state = live[self.target.leader]
        current = leader_state["current"]
        if to is None:
            older = [r for r in leader_state["ready"] if current and r < current]
            if not older:
                raise DeployFailed(f"no release older than {current or 'nothing'} on {self.target.leader} to roll back to")
            to = older[-1]
        missing = [h for h, s in live.items() if to not in s["ready"]]
        if missing:
            raise DeployFailed(f"release {to} is not on {', '.join(missing)} (pruned?); nothing was changed")
        workers = size_workers(spec, {h: s["facts"] for h, s in live.items()}, self.budgets())
        extra = self._extra(spec, workers, to, "", "", "", "rollback", "")
        switch = self._load("deploy", extra).plays[2]
        self.release = to
        token = self.acquire_lock(to)
        executor = self._executor(extra)
        try:
            return self._roll(executor, switch, to, live)
        except KeyboardInterrupt:
            raise self._interrupted() from None
        finally:
            self.changed += sum(r.changed for r in executor.result.recap.values())
            self.release_lock(token)


def releases_table(states: Mapping[str, Mapping[str, Any] | str]) -> Table:
    """A table: per host and release, whether it is current, and its last log entry."""
    table = Table(title="releases", title_justify="left")
    for col in ("host", "release", "current", "deployed (UTC)", "by", "action", "result"):
        table.add_column(col)
    for host, state in states.items():
        if isinstance(state, str):
            table.add_row(host, "-", "-", "-", "-", "-", f"unreachable: {state}")
            continue
        last = {}
        for entry in state["log"]:
            last[entry["release"]] = entry
        for release in reversed(state["releases"]):
            entry = last.get(release, {})
            table.add_row(host, release, "yes" if release == state["current"] else "",
                          entry.get("time", ""), entry.get("user", ""), entry.get("action", ""),
                          entry.get("result", ""))
    return table
