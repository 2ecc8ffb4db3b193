"""``shipit deploy`` and ``rollback``: orchestration of executor calls over the built-in plays.

The :class:`Deployer` composes :meth:`Executor.run_play` calls on the plays of
``shipit/playbooks/deploy.yml`` (addressed by name) and returns a :class:`DeployOutcome`; it
prints nothing (progress goes to the reporter, the outcome to the CLI), runs no shell text of
its own and does no batching (the executor does: ``serial``, canary, max-fail, restore hook).

Order of a deploy (nothing touches a host before step 4):
  1. load and validate the inventory, the app spec and secrets (:func:`load_target`);
  2. load and validate the built-in playbooks, with provisional release/artifact values;
  3. one round trip per web host: host facts and release state; the app's Python
     (``python:`` or ``requires-python``) against what each host has or its apt sources offer
     (:func:`shipit.distro.python_for_hosts`: exit 2 naming the host otherwise); size the
     workers against memory and refuse when they do not fit; then build the artifact on the runner for the
     hosts' platform (machine, glibc, Python: :func:`shipit.platform.target_for_hosts`;
     deterministic: same app and target -> same content hash), running the spec's ``build:``
     steps in the staged source (a failing one stops here: nothing changed), refuse it if a
     wheel does not run there or the web server is not among its dependencies, and load the
     playbooks again with the real variables;
  4. take the deploy lock on the leader (``lock`` play; freed by ``unlock`` on every exit path,
     Ctrl-C and SIGTERM included);
  5. provision (idempotent), then ``upload`` on every web host (artifact, env file, venv);
  5b. pause the app's scheduled jobs (their timers stopped, a run under way waited for) until
     the roll is over (:meth:`Deployer._schedule_paused`);
  5c. with ``database.backup.before_migrate``, the ``backup`` play on the db host: ``pg_dump -Fc``
     named after the release (:mod:`shipit.backups`), unless it exists or the release already
     serves everywhere (see :func:`backup_skip_reason`); a failing dump stops here, before
     any migration;
  6. ``migrate`` on the leader with the new release, on every deploy: the database decides what
     is pending (``alembic upgrade head`` and ``manage.py migrate`` are idempotent); then the
     spec's ``release:`` steps, once, in the same play (a failure stops before any switch);
  7. ``switch`` batch by batch (the first batch of hosts not yet on the release is the canary);
     when a batch goes over ``max_fail``, the roll stops and the hosts of that batch that did
     switch go back to their previous release;
  8. ``prune`` old releases (see :mod:`shipit.releases`).
A release that fails before serving anywhere is recorded ``failed`` on every host that has it.

``--limit`` narrows the web hosts (and the db host) a deploy touches; the lock is still taken
on the leader, and migrations run only when the leader is in the limit (the outcome says so
otherwise).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

from shipit import backups, envfile, hardening, schedule
from shipit.app import AppSpec, load_app_spec, load_secrets, parse_size
from shipit.artifact import BuildError, build_artifact
from shipit.distro import PythonNeed, caddy_problems, python_for_hosts, python_need
from shipit.errors import Problem, ShipitError, ValidationError
from shipit.executor import Executor, PlayResult, Reporter, RunOptions
from shipit.facts import FactKind
from shipit.facts.app import release_state
from shipit.facts.registry import fact_kinds
from shipit.facts.status import app_status
from shipit.hooks import Hooks, hook_env
from shipit.inventory import Inventory, leader_of
from shipit.layout import Layout
from shipit.modules.base import Module
from shipit.modules.registry import builtin_modules
from shipit.platform import PlatformError, TargetPlatform, check_wheel_tags, target_for_hosts
from shipit.playbook import Play, Playbook, batches, load_playbook
from shipit.pool import TransportPool
from shipit.releases import history, rollback_target
from shipit.templating import Templar, make_environment
from shipit.webserver import missing_distributions, server_argv

DEFAULT_WORKER_MEMORY = 100 * 1024 * 1024  # bytes, when the spec declares none
SLOTS = 2  # web slots that run at once during a switch (blue/green): the budget fits both
# Only where no host facts are at hand (validation before connecting, rollback): a deploy
# builds for the hosts' platform, and without `python:` in the spec for the Python their distro
# ships (shipit.platform.target_for_hosts).
RUNNER_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def builtin_playbook(name: str) -> Path:
    """Path of a built-in playbook shipped inside the package (``deploy`` -> deploy.yml).

    Read with :mod:`importlib.resources`, so an installed wheel has them too.
    """
    return Path(str(resources.files("shipit") / "playbooks" / f"{name}.yml"))


class DeployFailed(ShipitError):
    """The deploy or rollback stopped; ``outcome`` says where each host stands.

    ``json_printed``: the CLI already printed the outcome as JSON (so no second document).
    """

    json_printed = False

    def __init__(self, message: str, outcome: DeployOutcome | None = None, *,
                 exit_code: int | None = None) -> None:
        super().__init__(message, exit_code=exit_code)
        self.outcome = outcome


@dataclass(frozen=True)
class HostOutcome:
    """Where one host stands after a deploy or rollback.

    ``serving``: the release its ``current`` points to (None: nothing, or unknown when
    ``reachable`` is False); ``result``: "switched", "already on it", "restored" (went back to
    its previous release), "failed", "not switched" (the roll stopped before it), "unreachable";
    ``message``: why, when it failed.
    """

    host: str
    serving: str | None
    result: str
    reachable: bool = True
    message: str = ""


@dataclass(frozen=True)
class DeployOutcome:
    """The result of a deploy or rollback, as data (the CLI prints it, ``--json`` dumps it).

    Attributes:
        action: "deploy" or "rollback".
        release: the release deployed (or rolled back to; per host in ``hosts``).
        hosts: per web host, a :class:`HostOutcome`.
        changed: tasks that changed something (migrations and the scheduled jobs' pause and
            resume, which run every time, excluded).
        migrations: "ran", "not run: <why>", or "none" (the app declares no migrate).
        backup: the database backup before the migrations: "took <name>", "kept <name>"
            (taken by an earlier attempt of this release), "not taken: <why>", or "none" (no
            ``database.backup.before_migrate``); "restored <name>" after ``--restore-db``.
        durations: seconds per phase ("build", "facts", "lock", "provision", "upload",
            "backup", "migrate", "prepare", "switch", "restore", "prune"), in the order they ran; "switch" does not
            include "prepare".
        uploaded: per web host, bytes sent to it by SFTP in this run (artifact parts it
            lacked; 0 when it had them all).
        ok: everything got through.
        message: why it stopped ("" when ok).
    """

    action: str
    release: str
    hosts: Mapping[str, HostOutcome]
    changed: int = 0
    migrations: str = "none"
    durations: Mapping[str, float] = field(default_factory=dict)
    ok: bool = True
    message: str = ""
    uploaded: Mapping[str, int] = field(default_factory=dict)
    backup: str = "none"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {"action": self.action, "release": self.release, "ok": self.ok,
                "serving": {h: o.serving for h, o in self.hosts.items()},
                "message": self.message, "changed": self.changed, "migrations": self.migrations,
                "backup": self.backup,
                "durations": {k: round(v, 3) for k, v in self.durations.items()},
                "uploaded_bytes": dict(self.uploaded),
                "hosts": {h: {"serving": o.serving, "result": o.result, "reachable": o.reachable,
                              "message": o.message} for h, o in self.hosts.items()}}


class DeployReporter(Reporter, Protocol):
    """The executor's reporter plus the deploy's phases and notes (see :mod:`shipit.report`)."""

    def phase(self, name: str, detail: str = "") -> None:
        """A phase starts (names: the keys of :attr:`DeployOutcome.durations`)."""
        ...

    def phase_done(self, name: str, seconds: float) -> None:
        """A phase ended after ``seconds`` (cumulative when a phase runs more than once)."""
        ...

    def note(self, text: str) -> None:
        """A line for the user (a measurement, a warning), printed as plain text."""
        ...


@dataclass(frozen=True)
class Target:
    """Everything a deploy needs, loaded and validated before any connection.

    ``web`` is the web hosts the command touches (``--limit`` applied), ``db`` likewise the
    database hosts; ``leader`` is the leader of ALL web hosts (the lock lives there).
    """

    env_name: str
    inventory: Inventory
    spec: AppSpec
    secrets: Mapping[str, str]
    web: tuple[str, ...]
    leader: str
    db: tuple[str, ...] = ()
    limit: str | None = None


def load_target(env_name: str, inventory: Inventory, app_dir: str, limit: str | None = None,
                need_secrets: bool = True, serial: tuple[int | str, ...] | None = None) -> Target:
    """Load the app spec (with the inventory's ``app:`` overrides) and secrets; check the
    inventory has a ``web`` group; apply ``limit`` (an inventory pattern, as ``run``'s).

    ``need_secrets`` False (``releases``, ``unlock``): secrets are not read, none required.
    ``serial`` (``--serial``, see :func:`shipit.app.parse_serial`): this run's batch sizes of
    the rolling switch instead of the spec's ``serial`` (e.g. ``("100%",)``: a rollback of
    every host in one batch, still health-checked and restored on failure).

    Raises:
        ValidationError: anything missing or malformed, with file:line and key; a limit
            matching no web host.
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
    db = inventory.select("db") if inventory.groups.get("db") else []
    if limit:
        try:
            allowed = set(inventory.select(limit))
        except ValueError as exc:
            raise ValidationError([Problem("--limit", 0, limit, str(exc))]) from None
        web = [h for h in web if h in allowed]
        db = [h for h in db if h in allowed]
        if not web:
            raise ValidationError([Problem("--limit", 0, limit, "matches no host of the group 'web'")])
    secrets = load_secrets(spec, env_name) if need_secrets else {}
    if serial:
        spec = replace(spec, serial=serial)
    return Target(env_name, inventory, spec, secrets, tuple(web), leader, tuple(db), limit)


def who() -> str:
    """``user@runner`` for the lock and the release log."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def render_env_file(target: Target) -> str:
    """The release's env file (see :mod:`shipit.envfile`: systemd's quoting, any bytes).

    Values are Jinja2 templates over ``secrets`` (name -> value), ``hostvars`` and ``groups``
    (the inventory's), ``env_name`` (e.g. ``prod``), ``domains`` (the app's site addresses
    for this environment, a list of str, after the inventory's ``app:`` overrides; e.g.
    Django's ``ALLOWED_HOSTS`` as ``{{ domains | join(',') }}``) and ``database`` (the spec's
    ``{name, user}``, empty without ``database:``; e.g. ``{{ database.name }}`` in a URL).

    Raises:
        ValidationError: a value cannot be rendered or cannot be held by an env variable.
    """
    inv = target.inventory
    variables = {**inv.shared_variables(), "secrets": dict(target.secrets), "env_name": target.env_name,
                 "domains": list(target.spec.domains),
                 "database": {k: v for k, v in (target.spec.database or {}).items() if k in ("name", "user")}}
    templar = Templar(make_environment(), variables)
    values: dict[str, str] = {}
    problems = []
    for key, value in target.spec.env.items():
        try:
            rendered = str(templar.render(value))
        except Exception as exc:  # noqa: BLE001 - jinja raises several kinds
            problems.append(Problem("shipit.yml", 0, f"env.{key}", f"cannot render: {exc}"))
            continue
        why = envfile.check_value(rendered)
        if why:
            problems.append(Problem("shipit.yml", 0, f"env.{key}", f"the value {why}"))
            continue
        values[key] = rendered
    if problems:
        raise ValidationError(problems)
    return envfile.render(values, "managed by shipit: this release's environment")


def web_commands(spec: AppSpec, release: str, workers: int) -> dict[str, str]:
    """``SHIPIT_WEB_<port>`` -> the web server's command line for each of the two slots (see
    :func:`shipit.webserver.server_argv`; the venv's ``bin/`` before the executable; words
    joined by spaces, which the web unit's ``sh -c 'exec $SHIPIT_WEB_<port>'`` splits). Each
    serves on the socket its slot's ``.socket`` unit passes (:meth:`Layout.web_bind`: fd 3)."""
    lay = Layout(spec.name)
    venv_bin = f"{lay.venv(release)}/bin/"
    out: dict[str, str] = {}
    for port in (spec.port, spec.port + 1):
        argv = server_argv(spec.server, spec.interface, spec.app_ref, lay.web_bind(port), workers, spec.threads)
        out[f"SHIPIT_WEB_{port}"] = " ".join((venv_bin + argv[0], *argv[1:]))
    return out


def render_release_env(spec: AppSpec, release: str, workers: int, source_on_path: bool = False) -> str:
    """What a release runs (no secrets): ``SHIPIT_*`` lines read by its units and its release
    commands (migrations): the web server's command per slot (:func:`web_commands`), the
    workers, each process's command.

    ``source_on_path``: the app has no wheel of its own (a requirements-only app): its code is
    the release dir, so ``PYTHONPATH`` names it, for commands that do not add their working
    directory to the path themselves (console scripts such as ``celery`` or ``alembic``; uvicorn,
    ``python -m`` and ``python manage.py`` do). Per release, not in the units: a pyproject app
    keeps importing its installed wheel only.
    """
    values = {"SHIPIT_RELEASE": release, "SHIPIT_WORKERS": str(workers)}
    values.update(web_commands(spec, release, workers))
    if source_on_path:
        values["PYTHONPATH"] = Layout(spec.name).release(release)
    for p in spec.processes:
        values[Layout.command_variable(p.name)] = p.command
    for job in spec.schedule:
        values[Layout.job_variable(job.name)] = job.command
    return envfile.render(values, "managed by shipit: what this release runs (no secrets)")


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
    Both web slots run during a switch, so the budget must hold :data:`SLOTS` x the workers.

    ``budgets`` maps a host to its own budget (the host var ``memory_budget``: "50%" of its
    memory, or a size like "512M"); others use the spec's ``memory_budget``. Memory per worker
    is the spec's ``memory_per_worker``, else ``measured`` (bytes, from the running release on
    the leader: :func:`measured_worker_memory`), else 100 MiB.

    Raises:
        ValidationError: :data:`SLOTS` x workers x memory per worker exceeds a host's budget
            (numbers given).
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
            count = max(1, min(2 * cpus + 1, budget // (SLOTS * per_worker)))
        else:
            count = int(spec.workers)
        if SLOTS * count * per_worker > budget:
            problems.append(Problem("shipit.yml", 0, "web.workers",
                                    f"{host}: {SLOTS} slots x {count} workers x {per_worker // 2**20} MiB = "
                                    f"{SLOTS * count * per_worker // 2**20} MiB exceeds the memory budget of "
                                    f"{budget // 2**20} MiB ({wanted} of {total // 2**20} MiB; both web slots "
                                    "run during a switch); lower web.workers or raise memory_budget"))
        counts.append(count)
    if problems:
        raise ValidationError(problems)
    return min(counts) if counts else 1


def port_clashes(spec: AppSpec, states: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a deploy whose web slot ports another app on the same host already uses.

    ``states`` are ``release_state`` facts per host (their ``app_ports``).

    Raises:
        ValidationError: exit 2, one problem per host and app, before anything changed.
    """
    mine = {spec.port, spec.port + 1}
    problems = []
    for host, state in states.items():
        for app, ports in sorted(state.get("app_ports", {}).items()):
            taken = sorted(mine & set(ports))
            if app != spec.name and taken:
                file, line = spec.where("web")
                problems.append(Problem(file, line, "web.port", f"{host}: port{'s' if len(taken) > 1 else ''} "
                                        f"{', '.join(map(str, taken))} already belong{'' if len(taken) > 1 else 's'} to the app '{app}' there; "
                                        f"choose another web.port (this app needs {spec.port} and {spec.port + 1})"))
    if problems:
        raise ValidationError(problems)


def app_vars(spec: AppSpec, workers: int, secrets: Mapping[str, str], release: str = "",
             python: str | None = None) -> dict[str, Any]:
    """The ``app`` variable the built-in playbooks read (with ``paths``/``units`` of the
    :class:`~shipit.layout.Layout` for ``release``). ``python``: the X.Y the artifact was
    built for (the hosts'); default the spec's, else the runner's."""
    python = python or spec.python or RUNNER_PYTHON
    db = None
    if spec.database:
        secret_name = spec.database.get("password_secret", "")
        db = {"name": spec.database["name"], "user": spec.database["user"],
              "password": secrets.get(secret_name, "")}
    first = spec.domains[0] if spec.domains else ""
    return {
        "name": spec.name, "python": python, "web_app": spec.app_ref, "interface": spec.interface,
        "server": spec.server, "threads": spec.threads, "workers": workers,
        "build": list(spec.build), "release": list(spec.release),
        "static": {"url": spec.static_url, "dir": spec.static_dir} if spec.static_dir else None,
        "shared_dirs": [{"name": d, "shared": Layout(spec.name).shared_dir(d),
                         "link": Layout(spec.name).in_release(release, d) if release else ""}
                        for d in spec.shared_dirs],
        "memory_max": (f"{(spec.memory_per_worker * (workers + 1)) // 2**20}M"
                       if spec.memory_per_worker else None),
        "processes": [{"name": p.name, "command": p.command, "variable": Layout.command_variable(p.name),
                       "unit_template": Layout(spec.name).process_unit_template(p.name)}
                      for p in spec.processes],
        "process_units": [f"{p.name}@{i}" for p in spec.processes for i in range(1, p.instances + 1)],
        "schedule": schedule.job_vars(spec.schedule),
        "migrate": spec.migrate, "migrate_timeout": getattr(spec, "migrate_timeout", 600.0),
        "health_path": spec.health_path, "health_timeout": spec.health_timeout,
        "health_host": getattr(spec, "health_host", None) or (
            "health." + first[2:] if first.startswith("*.") else first),
        "domains": list(spec.domains), "tls_internal": spec.tls_internal,
        "acme_email": spec.acme_email, "ports": [spec.port, spec.port + 1], "database": db,
        "keep_releases": spec.keep_releases,
        "hardening": hardening.unit_text([Layout(spec.name).shared]),
        **Layout(spec.name).variables(release),
    }


def backup_skip_reason(spec: AppSpec, leader_in_limit: bool, db_host: str,
                       before: Mapping[str, Mapping[str, Any]], targets: Mapping[str, str]) -> str | None:
    """Why a deploy takes no database backup before its migrations (``"none"`` when the spec
    asks for none), or None: it takes one.

    shipit cannot cheaply tell whether migrations are pending (the database decides, see
    :mod:`shipit.modules.release_command`), so it backs up before every migrate run that is not
    skipped, except when every web host already serves its target release: that release's
    migrations ran when it went live, and a deploy that changes nothing stays a no-op.
    ``before``: each web host's release state (``current``); ``targets``: host -> release.
    """
    if spec.backup is None or not spec.backup.before_migrate or not spec.database:
        return "none"
    if not spec.migrate:
        return "none"
    if not leader_in_limit:
        return "not taken: the migrations do not run (the leader is outside --limit)"
    if not db_host:
        return "not taken: the inventory has no host in the group db"
    if targets and all(before.get(h, {}).get("current") == r for h, r in targets.items()):
        return "not taken: the release already serves on every host (its migrations ran)"
    return None


_T = TypeVar("_T")


def artifact_parts(artifact: Any) -> list[dict[str, Any]]:
    """The ``artifact_parts`` variable: ``[{kind, path, sha256, size}]`` of ``artifact.parts``
    (:class:`shipit.artifact.Part`); an artifact without parts (another builder) is one
    ``app`` part, the whole file."""
    parts = [p.as_json() for p in getattr(artifact, "parts", ())]
    return parts or [{"kind": "app", "path": artifact.path, "sha256": artifact.sha256, "size": artifact.size}]


def release_fingerprint(artifact_sha256: str, env_file: str, app: Mapping[str, Any]) -> str:
    """12 hex digits naming a release: code (the artifact), config (env file) and every input
    of the spec that changes a host (domains, TLS, health, ports, processes, workers...)."""
    config = json.dumps({k: v for k, v in app.items() if k not in ("paths", "units")},
                        sort_keys=True, default=str)
    return hashlib.sha256(f"{artifact_sha256}\n{env_file}\n{config}".encode()).hexdigest()[:12]


class Deployer:
    """Runs deploys and rollbacks of one :class:`Target` through a transport pool.

    Args:
        target: what to deploy where (validated).
        pool: one transport per host (SSH, or fakes in tests).
        reporter: progress (a :class:`DeployReporter`); the deployer prints nothing itself.
        forks: hosts worked on at once.
        lock_wait: seconds to wait for another deploy's lock (0: fail at once).
        build: the artifact builder (default :func:`shipit.artifact.build_artifact`; a fake in
            stubbed tests).
        modules, kinds: registries (default: the built-in ones plus plugins).
        hooks: the app's ``.shipit/hooks`` (:class:`shipit.hooks.Hooks`; None: none run).
    """

    def __init__(self, target: Target, pool: TransportPool, reporter: DeployReporter,
                 forks: int = 20, lock_wait: float = 0.0, build: Any = None,
                 modules: Mapping[str, Module] | None = None,
                 kinds: Mapping[str, FactKind] | None = None,
                 sleep: Any = time.sleep, hooks: Hooks | None = None) -> None:
        self.target = target
        self.hooks = hooks
        self._release = ""
        self.pool = pool
        self.reporter = reporter
        self.forks = forks
        self.lock_wait = lock_wait
        self.build = build or build_artifact
        self.modules = modules if modules is not None else builtin_modules()
        self.kinds = kinds if kinds is not None else fact_kinds()
        self.user = who()
        self.secret_values = tuple(v for v in target.secrets.values() if v)
        self._sleep = sleep
        self._durations: dict[str, float] = {}
        self._already: set[str] = set()  # hosts the last roll found on their target already
        self._backup = "none"  # what the outcome says of the database backup

    # ---- executor plumbing -----------------------------------------------------------------
    def _executor(self, extra: Mapping[str, Any]) -> Executor:
        return Executor(self.target.inventory, self.pool, self.modules, self.kinds, self.reporter,
                        RunOptions(forks=self.forks, extra_vars=extra, secrets=self.secret_values))

    def _playbook(self, extra: Mapping[str, Any]) -> dict[str, Play]:
        """The built-in deploy plays by name, validated with ``extra`` (the real variables)."""
        book: Playbook = load_playbook(builtin_playbook("deploy"), self.modules, self.target.inventory, extra)
        return {p.name: p for p in book.plays}

    def _provision(self, extra: Mapping[str, Any]) -> Playbook:
        return load_playbook(builtin_playbook("provision"), self.modules, self.target.inventory, extra)

    def _timed(self, phase: str, started: float, minus: float = 0.0) -> None:
        """Add the seconds since ``started`` to ``phase``, less ``minus`` (seconds of a phase
        that ran inside it and is reported on its own: ``prepare`` within the roll)."""
        self._durations[phase] = self._durations.get(phase, 0.0) + time.monotonic() - started - minus
        self.reporter.phase_done(phase, self._durations[phase])

    def states(self, hosts: Sequence[str] | None = None) -> dict[str, dict[str, Any] | str]:
        """Release state per host (see :mod:`shipit.facts.app`) with its host ``facts``, or
        the reason it could not be read (unreachable, cut short). One round trip per host."""
        executor = self._executor({})
        query = release_state(self.target.spec.name)
        gathered = executor.gather_facts(list(hosts or self.target.web), [query])
        out: dict[str, dict[str, Any] | str] = {}
        for host, facts in gathered.items():
            if isinstance(facts, ShipitError):
                out[host] = facts.message
            else:
                out[host] = {**facts[query], "facts": executor.host_facts.get(host, {})}
        return out

    def measure_worker_memory(self, states: Mapping[str, Mapping[str, Any]]) -> int | None:
        """Per-worker memory of the release running on the leader (bytes), when the spec
        declares none and something runs there; one read-only round trip to the leader."""
        leader = self.target.leader
        if self.target.spec.memory_per_worker or not states.get(leader, {}).get("current"):
            return None
        query = app_status(self.target.spec.name)
        facts = self._executor({}).gather_facts([leader], [query])[leader]
        if isinstance(facts, ShipitError):
            return None
        measured = measured_worker_memory(facts[query])
        if measured:
            self.reporter.note(f"measured {measured / 2**20:.0f} MiB per web worker on {leader}")
        return measured

    def budgets(self) -> dict[str, str]:
        """Per-host memory budgets set as the host var ``memory_budget`` in the inventory."""
        inv = self.target.inventory
        return {h: str(v) for h in self.target.web
                if (v := inv.host_vars(h).get("memory_budget")) is not None}

    @property
    def db_host(self) -> str:
        """The database host: the first host of the inventory's group ``db`` (``--limit`` does
        not apply: every web host uses that database), or "" when there is none."""
        inv = self.target.inventory
        hosts = inv.select("db") if inv.groups.get("db") else []
        return hosts[0] if hosts else ""

    def backup_vars(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        """The ``backup`` variable of the plays: ``{database, role, name, keep, timeout}`` (the
        spec's ``database.name``, ``database.user`` and ``backup.keep``; ``timeout`` in seconds, default the
        spec's ``migrate_timeout``)."""
        spec = self.target.spec
        return {"database": (spec.database or {}).get("name", ""), "role": (spec.database or {}).get("user", ""),
                "name": name,
                "keep": spec.backup.keep if spec.backup else backups.DEFAULT_KEEP,
                "timeout": float(timeout if timeout is not None else spec.migrate_timeout)}

    def _base_extra(self, app: Mapping[str, Any], release: str, action: str, token: str) -> dict[str, Any]:
        return {"app": dict(app), "release": release, "host_release": {h: release for h in self.target.web},
                "db_host": self.db_host, "backup": self.backup_vars(release),
                "user": self.user, "leader": self.target.leader, "action": action,
                "lock_token": token, "force_unlock": False, "env_name": self.target.env_name,
                "web_hosts": ",".join(self.target.web), "db_hosts": ",".join(self.target.db),
                "artifact": "", "app_packages": [], "env_file": "", "release_env": "",
                # the upload play's variables, unused outside a deploy (a placeholder part)
                "artifact_parts": [{"kind": "app", "path": "", "sha256": "0" * 64, "size": 0}],
                "host_clone_venv": {h: "" for h in self.target.web}}

    # ---- lock ------------------------------------------------------------------------------
    def lock_token(self, release: str) -> str:
        """What the lock says: who, when (UTC), which release."""
        return f"who={self.user} when={datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} release={release}"

    def _acquire(self, plays: Mapping[str, Play], extra: Mapping[str, Any]) -> None:
        """Run the ``lock`` play on the leader; retry every 2 s up to ``lock_wait`` seconds.

        Raises:
            DeployFailed: held by someone else (who, when, what), or the leader failed.
        """
        deadline = time.monotonic() + self.lock_wait
        while True:
            result = self._executor(extra).run_play(plays["lock"], [self.target.leader])
            if result.ok:
                return
            why = next(iter({**result.failed, **result.unreachable}.values()), result.stopped)
            held = "lock is held" in why
            if not held or time.monotonic() >= deadline:
                hint = ("; wait with --lock-wait SECONDS, or if that deploy is dead, "
                        f"`shipit unlock {self.target.env_name}`") if held else ""
                raise DeployFailed(f"could not take the deploy lock on {self.target.leader}: {why}{hint}; "
                                   "nothing was changed")
            self._sleep(2)

    def _release_lock(self, plays: Mapping[str, Play], extra: Mapping[str, Any]) -> str:
        """Run the ``unlock`` play; returns "" or why the lock could not be freed."""
        result = self._executor(extra).run_play(plays["unlock"], [self.target.leader])
        if result.ok:
            return ""
        why = next(iter({**result.failed, **result.unreachable}.values()), result.stopped)
        return f"the deploy lock on {self.target.leader} could not be freed ({why})"

    def force_unlock(self) -> str:
        """Remove the lock whoever holds it; returns what the lock said ("" if not held).

        Raises:
            ValidationError: ``--limit`` leaves the leader (where the lock lives) out; nothing
                is touched.
            DeployFailed: the leader could not be reached or the unlock failed.
        """
        if self.target.leader not in self.target.web:
            raise ValidationError([Problem("--limit", 0, str(self.target.limit),
                                           f"the deploy lock is on the leader {self.target.leader}, which this "
                                           f"--limit leaves out; add {self.target.leader} to the limit "
                                           "(nothing was changed)")])
        state = self.states([self.target.leader])[self.target.leader]
        if isinstance(state, str):
            raise DeployFailed(f"cannot reach the leader {self.target.leader}: {state}")
        held = state["lock"] or ""
        if not held:
            return ""
        app = app_vars(self.target.spec, 1, {}, "")
        extra = {**self._base_extra(app, "", "deploy", held), "force_unlock": True}
        why = self._release_lock(self._playbook(extra), extra)
        if why:
            raise DeployFailed(why)
        return held

    # ---- deploy ----------------------------------------------------------------------------
    def deploy(self, artifact_dir: str) -> DeployOutcome:
        """Deploy the app (see the module docstring for the order); the artifact is built
        into ``artifact_dir`` on the runner.

        Returns:
            The :class:`DeployOutcome` (ok).

        Raises:
            DeployFailed: it stopped; ``outcome`` says where each host stands (exit 1, or 130
                / 143 / 129 when interrupted by Ctrl-C / SIGTERM / SIGHUP).
            ValidationError: invalid input found before any host was touched.
        """
        self._artifact_dir = artifact_dir
        started = time.monotonic()
        try:
            try:
                outcome = self._deploy()
            except KeyboardInterrupt as exc:  # before the lock: nothing on any host was changed
                raise DeployFailed(f"interrupted ({getattr(exc, 'signal_name', 'Ctrl-C')}) before the deploy "
                                   "lock was taken; nothing was changed",
                                   exit_code=getattr(exc, "exit_code", 130)) from None
        except DeployFailed as exc:
            self._hook("deploy-failed", "deploy", self._release, started, exc.message)
            raise
        self._hook("post-deploy", "deploy", outcome.release, started)
        return outcome

    def _hook(self, name: str, action: str, release: str, started: float | None = None,
              error: str | None = None) -> None:
        """Run the app's hook ``name`` (see :mod:`shipit.hooks`); ``started`` (monotonic) given
        for the hooks after the fact. Raises HookFailed for a failing ``pre-*`` hook."""
        if self.hooks is None:
            return
        after = started is not None
        self.hooks.run(name, hook_env(
            name, self.target.env_name, self.target.spec.name, action, release, self.target.web, self.user,
            result=("failed" if error else "ok") if after else None,
            duration=time.monotonic() - started if started is not None else None, error=error))

    def validate(self, artifact_dir: str = ".shipit/artifacts") -> str:
        """Everything a deploy checks before its first connection (``shipit check``): the env
        file renders, the deploy and provision playbooks load with the real variables. Returns
        the env file's text (secrets in it: never print it).

        Raises:
            ValidationError: with file:line and key.
        """
        spec = self.target.spec
        env_file = render_env_file(self.target)
        workers = 1 if spec.workers == "auto" else int(spec.workers)
        provisional = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{'0' * 12}"
        # the artifact is built later, for the hosts' platform: a placeholder path and the
        # app's wheel stand in for it
        first = self._deploy_extra(str(Path(artifact_dir) / "provisional.tar.gz"), ["app"],
                                   env_file, workers, provisional)
        self._playbook(first)
        self._provision(first)
        return env_file

    def _deploy(self) -> DeployOutcome:
        spec = self.target.spec
        env_file = self.validate(self._artifact_dir)  # before the first connection
        workers = 1 if spec.workers == "auto" else int(spec.workers)

        started = time.monotonic()
        self.reporter.phase("facts", ", ".join(self.target.web))
        states = self.states()
        down = {h: s for h, s in states.items() if isinstance(s, str)}
        if down:
            raise DeployFailed("cannot read the release state of " + "; ".join(down.values())
                               + "; nothing was changed", self._outcome_from(states, "deploy", "", {}))
        live: dict[str, dict[str, Any]] = {h: s for h, s in states.items() if isinstance(s, dict)}
        port_clashes(spec, live)
        host_facts = {h: s["facts"] for h, s in live.items()}
        # the app's Python against each host's (installed or in its apt sources): exit 2 here,
        # before the lock, naming the host, its release, its Python and the app's need
        python = python_for_hosts(host_facts, python_need(spec.python, *spec.where("python"),
                                                          Path(spec.source)))
        no_caddy = caddy_problems(host_facts)
        if no_caddy:
            raise DeployFailed("Caddy cannot be installed; nothing was changed:\n  " + "\n  ".join(no_caddy))
        try:
            target = target_for_hosts(host_facts, python)
        except PlatformError as exc:
            raise DeployFailed(f"{exc.message}; nothing was changed") from None
        workers = size_workers(spec, {h: s["facts"] for h, s in live.items()}, self.budgets(),
                               self.measure_worker_memory(live))
        self._timed("facts", started)

        self._hook("pre-build", "deploy", "")
        started = time.monotonic()
        self.reporter.phase("build", f"{spec.source} for {target.describe()}")
        try:
            artifact = self.build(spec.source, self._artifact_dir, target=target, build=spec.build,
                                  progress=self.reporter.note)
        except BuildError as exc:
            raise DeployFailed(f"building the artifact failed; nothing was changed:\n  {exc.message}") from None
        self.reporter.note(f"artifact {artifact.content_hash} ({artifact.size / 2**20:.1f} MiB)")
        self._timed("build", started)
        self._refuse_foreign_wheels(artifact, target)
        missing = missing_distributions(spec.interface, spec.server, artifact.requirements)
        if missing:
            raise DeployFailed(f"web.server {spec.server} needs {', '.join(missing)} among the app's dependencies "
                               f"(add {' and '.join(missing)} to its requirements); nothing was changed")

        fingerprint = release_fingerprint(artifact.sha256, env_file,
                                          app_vars(spec, workers, self.target.secrets, python=target.python))
        release = next((r for s in live.values() for r in s["releases"] if r.endswith("-" + fingerprint)),
                       f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{fingerprint}")
        extra = self._deploy_extra(artifact.path, [artifact.distribution] if artifact.distribution else [],
                                   env_file, workers, release, target.python, parts=artifact_parts(artifact),
                                   clone={h: Layout(spec.name).venv(s["current"]) if s["current"] else ""
                                          for h, s in live.items()})
        plays = self._playbook(extra)
        provision = self._provision(extra)
        self._release = release
        self._hook("pre-deploy", "deploy", release)  # before the lock: a failing hook changes nothing
        return self._locked(plays, extra, lambda: self._deploy_locked(plays, provision, extra, release, live))

    @staticmethod
    def _refuse_foreign_wheels(artifact: Any, target: TargetPlatform) -> None:
        """Raise DeployFailed (before the lock: nothing changed) when a wheel of ``artifact``
        does not run on ``target`` (a builder that ignored the target, a stale artifact)."""
        problems = check_wheel_tags(artifact.wheels, target)
        if problems:
            raise DeployFailed(f"artifact {artifact.content_hash} has wheels that would not run on the "
                               f"hosts ({target.describe()}); nothing was changed:\n  "
                               + "\n  ".join(problems))

    def _deploy_extra(self, artifact_path: str, app_packages: list[str], env_file: str, workers: int,
                      release: str, python: str | None = None, *, parts: list[dict[str, Any]] | None = None,
                      clone: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The variables of a deploy's plays. ``parts``: the artifact's (default: the whole file
        as one part, unknown digest); ``clone``: host -> the venv a new one may clone."""
        spec = self.target.spec
        app = app_vars(spec, workers, self.target.secrets, release, python)
        return {**self._base_extra(app, release, "deploy", self.lock_token(release)),
                # app_packages: the app's own wheel, when it has one; a requirements-only app
                # has none (its code is the release dir), it installs .shipit/requirements.txt
                "artifact": artifact_path, "app_packages": list(app_packages),
                "artifact_parts": parts or [{"kind": "app", "path": artifact_path, "sha256": "0" * 64,
                                             "size": 0}],
                "host_clone_venv": {h: (clone or {}).get(h, "") for h in self.target.web},
                "env_file": env_file,
                "release_env": render_release_env(spec, release, workers, source_on_path=not app_packages)}

    def _locked(self, plays: Mapping[str, Play], extra: Mapping[str, Any],
                body: Callable[[], _T]) -> _T:
        """Take the lock, run ``body()``, free the lock on every exit path."""
        started = time.monotonic()
        self.reporter.phase("lock", self.target.leader)
        try:
            self._acquire(plays, extra)
        except KeyboardInterrupt as exc:
            why = self._release_lock(plays, extra)  # it may have been taken just before
            raise DeployFailed(f"interrupted ({getattr(exc, 'signal_name', 'Ctrl-C')}) while taking the "
                               f"deploy lock; nothing was changed{'; ' + why if why else ''}",
                               exit_code=getattr(exc, "exit_code", 130)) from None
        self._timed("lock", started)
        try:
            return body()
        except KeyboardInterrupt as exc:
            signal_name = getattr(exc, "signal_name", "Ctrl-C")
            code = getattr(exc, "exit_code", 130)
            message = (f"interrupted ({signal_name}): the commands in flight were stopped (a switch "
                       "in progress was let finish), the deploy lock is released")
            outcome = replace(self._outcome_from(self.states(), str(extra["action"]), str(extra["release"]),
                                                 extra), ok=False, message=message)
            raise DeployFailed(f"{message}\n{self.where_each_host_stands(outcome)}", outcome,
                               exit_code=code) from None
        finally:
            why = self._release_lock(plays, extra)
            if why:
                self.reporter.note(f"warning: {why}")

    def _deploy_locked(self, plays: Mapping[str, Play], provision: Playbook, extra: Mapping[str, Any],
                       release: str, before: Mapping[str, Mapping[str, Any]]) -> DeployOutcome:
        web = list(self.target.web)
        executor = self._executor(extra)
        changed = 0

        started = time.monotonic()
        self.reporter.phase("provision", ", ".join(web + list(self.target.db)))
        for play in provision.plays:
            hosts = web if "web_hosts" in play.hosts else list(self.target.db if self.target.spec.database else ())
            result = executor.run_play(play, hosts)
            changed += result.changed()
            if not result.ok:
                raise self._failed(f"provisioning failed ({play.name}); no host was switched", result,
                                   release, extra, mark_failed=False)
        self._timed("provision", started)

        started = time.monotonic()
        self.reporter.phase("upload", release)
        result = executor.run_play(plays["upload"], web)
        changed += result.changed()
        if not result.ok:
            raise self._failed("upload failed; no host was switched", result, release, extra)
        self._timed("upload", started)

        def migrate_and_roll() -> tuple[int, str, PlayResult]:
            backed_up = self._backup_before_migrate(executor, plays, release, extra, before)
            migrations = self._migrate(executor, plays, release, extra)
            started, prepared = time.monotonic(), self._durations.get("prepare", 0.0)
            switched = self._roll(plays, extra, release, before, executor)
            self._timed("switch", started, minus=self._durations.get("prepare", 0.0) - prepared)
            return backed_up, migrations, switched

        backed_up, migrations, switched = self._schedule_paused(plays, extra, release, migrate_and_roll)
        changed += backed_up + switched.changed()
        if switched.stopped:
            raise self._failed(self._roll_stopped(switched, before, extra), switched, release, extra,
                               mark_failed=False, migrations=migrations)

        started = time.monotonic()
        pruned = executor.run_play(plays["prune"], web)
        changed += pruned.changed()
        self._timed("prune", started)
        outcome = self._outcome_from(self.states(), "deploy", release, extra, switched)
        message = "" if switched.ok else (f"within max_fail ({self.target.spec.max_fail:g}%) some hosts "
                                          f"failed: {self._why(switched)}")
        return replace(outcome, changed=changed, migrations=migrations, message=message)

    def _schedule_paused(self, plays: Mapping[str, Play], extra: Mapping[str, Any], release: str,
                         body: Callable[[], _T], deploy: bool = True) -> _T:
        """Run ``body()`` with the app's scheduled jobs paused on the web hosts: their timers
        stopped and no run under way (``pause_schedule``), started again afterwards on every
        exit path (``resume_schedule``), so no job runs while a deploy backs up, migrates or
        switches, nor during a rollback or a restore of the database (see
        :mod:`shipit.schedule`). Neither play counts as a change of the deploy: they run at
        every deploy and leave the hosts as they found them. Without jobs: ``body()``.
        ``deploy``: a failed pause records ``release`` failed (it never served).

        Raises:
            DeployFailed: a run under way did not end within its timeout (nothing switched or
                restored).
        """
        if not self.target.spec.schedule:
            return body()
        web = list(self.target.web)
        paused = self._executor(extra).run_play(plays["pause_schedule"], web)
        try:
            if not paused.ok:
                if deploy:
                    raise self._failed("could not pause the scheduled jobs; no host was switched", paused,
                                       release, extra)
                raise DeployFailed(f"could not pause the scheduled jobs ({self._why(paused)}); nothing was changed")
            return body()
        finally:
            resumed = self._executor(extra).run_play(plays["resume_schedule"], web)
            if not resumed.ok:
                self.reporter.note(f"warning: the scheduled jobs' timers did not start again ({self._why(resumed)}); "
                                   "the next deploy starts them")

    def _backup_before_migrate(self, executor: Executor, plays: Mapping[str, Play], release: str,
                               extra: Mapping[str, Any], before: Mapping[str, Mapping[str, Any]]) -> int:
        """Run the ``backup`` play on the db host unless :func:`backup_skip_reason` says
        otherwise; returns the tasks it changed (1 when a backup was taken).

        Raises:
            DeployFailed: the dump failed (pg_dump's reason given); no migration ran, no host
                was switched (the release is recorded failed).
        """
        why = backup_skip_reason(self.target.spec, self.target.leader in self.target.web, self.db_host,
                                 before, extra["host_release"])
        if why is not None:
            self._backup = why
            if why != "none":
                self.reporter.note(f"database backup {why}")
            return 0
        started = time.monotonic()
        self.reporter.phase("backup", f"{self.backup_vars(release)['database']} on {self.db_host}")
        result = executor.run_play(plays["backup"], [self.db_host])
        self._timed("backup", started)
        if not result.ok:
            self._backup = f"failed: {self._why(result)}"
            raise self._failed(f"the database backup on {self.db_host} failed; no migration ran and no host "
                               "was switched", result, release, extra)
        self._backup = f"took {release}" if result.changed() else f"kept {release}"
        return result.changed()

    def _migrate(self, executor: Executor, plays: Mapping[str, Play], release: str,
                 extra: Mapping[str, Any]) -> str:
        """Run ``migrate`` on the leader; returns what the outcome says of migrations.

        Raises:
            DeployFailed: the migration failed (the release is recorded failed).
        """
        spec = self.target.spec
        if not spec.migrate and not spec.release:
            return "none"
        what = " and ".join((["migrations"] if spec.migrate else [])
                            + ([f"{len(spec.release)} release step(s)"] if spec.release else []))
        if self.target.leader not in self.target.web:
            note = f"not run: the leader {self.target.leader} is outside --limit"
            self.reporter.note(f"{what} {note}")
            return note
        started = time.monotonic()
        self.reporter.phase("migrate", f"{what} on {self.target.leader}")
        result = executor.run_play(plays["migrate"], [self.target.leader])
        self._timed("migrate", started)
        if not result.ok:
            failed = [t.task for t in result.tasks if t.status == "failed"]
            label = ("a release step failed" if any(t.startswith("Release steps") for t in failed)
                     else "migrations failed")
            raise self._failed(f"{label} on the leader; no host was switched", result, release, extra)
        return "ran" if spec.migrate else "none"

    def _roll(self, plays: Mapping[str, Play], extra: Mapping[str, Any], release: str,
              before: Mapping[str, Mapping[str, Any]], executor: Executor) -> PlayResult:
        """Switch batch by batch; a failed batch's switched hosts go back to their previous release.

        Hosts already serving their target are checked first, all at once (nothing to protect
        there, and a no-op deploy then costs one parallel round trip, not one per batch); the
        canary is the first batch of the hosts that really switch.
        """
        spec = self.target.spec
        targets: Mapping[str, str] = extra["host_release"]
        web = list(self.target.web)
        already = [h for h in web if before.get(h, {}).get("current") == targets.get(h)]
        self._already = set(already)
        pending = [h for h in web if h not in already]
        if pending:
            self._prepare(plays, extra, pending)
        plan = ([already] if already else []) + batches(pending, spec.serial)
        if pending:
            self.reporter.phase("switch", f"canary {', '.join(plan[1 if already else 0])}"
                                + (f"; {len(plan) - 1 - (1 if already else 0)} more batch(es)" if len(plan) > 1 else ""))
        play = replace(plays["switch"], serial=(), max_fail_percentage=spec.max_fail)
        canary_index = 1 if already else 0

        def bake(index: int, batch: list[str], failed: list[str]) -> Mapping[str, str]:
            if index != canary_index or not pending or spec.canary_bake <= 0:
                return {}
            return self._bake([h for h in batch if h not in failed])

        def restore(batch: list[str], failed: list[str]) -> None:
            back = {h: before[h]["current"] for h in batch
                    if h not in failed and h not in already and before.get(h, {}).get("current")}
            if back:
                self.reporter.note(f"restoring {', '.join(back)} to the previous release")
                self._executor({**extra, "host_release": {**targets, **back}, "action": "rollback"}) \
                    .run_play(play, list(back))

        result = executor.run_play(play, web, batch_plan=plan, on_batch_failed=restore, after_batch=bake)
        left = [h for h in pending if not any(h in b for b in result.batches)]
        if left:  # the roll stopped before them: their prepared slots must not keep running
            self._executor(extra).run_play(plays["unprepare"], left)
        return result

    def _prepare(self, plays: Mapping[str, Play], extra: Mapping[str, Any], hosts: list[str]) -> None:
        """Start the new release in the idle slot of every host that switches, all in
        parallel (bounded by forks), before the first switch.

        Raises:
            DeployFailed: a slot failed to start somewhere; every prepared slot is stopped
                again and no host was switched.
        """
        started = time.monotonic()
        self.reporter.phase("prepare", f"start {extra['release']} in the idle slot of {', '.join(hosts)}")
        result = self._executor(extra).run_play(plays["prepare"], hosts)
        self._timed("prepare", started)
        if result.ok:
            return
        self._executor(extra).run_play(plays["unprepare"], hosts)
        bad = sorted({*result.failed, *result.unreachable})
        message = f"the release did not start on {', '.join(bad)}; no host was switched"
        outcome = self._outcome_from(self.states(), str(extra["action"]), str(extra["release"]), extra)
        detail = self._why(result)
        outcome = replace(outcome, ok=False, message=f"{message}\n  {detail}")
        raise DeployFailed(f"{message}\n  {detail}\n{self.where_each_host_stands(outcome)}", outcome)

    def _bake(self, hosts: list[str]) -> dict[str, str]:
        """Watch the canary ``hosts`` for ``canary.bake`` seconds: a live web unit that is no
        longer active, or restarted meanwhile, fails its host. One round trip before, one after."""
        query = app_status(self.target.spec.name)
        before = self._executor({}).gather_facts(hosts, [query])
        self.reporter.note(f"watching the canary for {self.target.spec.canary_bake:g} s")
        self._sleep(self.target.spec.canary_bake)
        after = self._executor({}).gather_facts(hosts, [query])
        failed: dict[str, str] = {}
        for host in hosts:
            a, b = before.get(host), after.get(host)
            if isinstance(a, ShipitError) or isinstance(b, ShipitError) or a is None or b is None:
                failed[host] = f"could not watch the canary: {a if isinstance(a, ShipitError) else b}"
                continue
            live = str(b[query]["live_port"])
            units_a = {u["instance"]: u for u in a[query]["units"].values() if u["kind"] == "web"}
            units_b = {u["instance"]: u for u in b[query]["units"].values() if u["kind"] == "web"}
            unit = units_b.get(live)
            if unit is None or unit["active_state"] != "active":
                failed[host] = f"the canary's web slot {live} stopped while it was watched"
            elif unit["restarts"] > units_a.get(live, unit)["restarts"]:
                failed[host] = f"the canary's web slot {live} restarted while it was watched (a crash)"
        return failed

    # ---- failure reporting ------------------------------------------------------------------
    @staticmethod
    def _roll_stopped(result: PlayResult, before: Mapping[str, Mapping[str, Any]],
                      extra: Mapping[str, Any]) -> str:
        """"canary failed on web1; the roll stopped" (or "batch 3 failed on ...")."""
        targets: Mapping[str, str] = extra["host_release"]
        real = [b for b in result.batches
                if any(before.get(h, {}).get("current") != targets.get(h) for h in b)]
        bad = sorted({*result.failed, *result.unreachable})
        label = "canary" if len(real) <= 1 else f"batch {len(real)}"
        return f"{label} failed on {', '.join(bad) or '?'}; the roll stopped"

    @staticmethod
    def where_each_host_stands(outcome: DeployOutcome) -> str:
        """Lines ``  web1: serving <release>`` (or unreachable) for a message."""
        lines = []
        for host, o in outcome.hosts.items():
            lines.append(f"  {host}: " + (f"serving {o.serving or 'nothing'}" if o.reachable
                                          else f"unreachable ({o.message})"))
        return "Where each host stands:\n" + "\n".join(lines)

    @staticmethod
    def _why(result: PlayResult) -> str:
        parts = [f"{h}: {m.strip().splitlines()[-1] if m.strip() else 'failed'}"
                 for h, m in {**result.failed, **result.unreachable}.items()]
        return "; ".join(parts) or result.stopped

    def _failed(self, why: str, result: PlayResult, release: str, extra: Mapping[str, Any],
                mark_failed: bool = True, migrations: str = "none") -> DeployFailed:
        """The DeployFailed to raise: records the release ``failed`` where it is (when it never
        served), and reads where each host stands."""
        if mark_failed:
            self._executor(extra).run_play(self._playbook(extra)["failed"], list(self.target.web))
        outcome = self._outcome_from(self.states(), str(extra["action"]), release, extra, result)
        detail = self._why(result)
        message = why + (f"\n  {detail}" if detail and detail not in why else "")
        outcome = replace(outcome, ok=False, message=message, migrations=migrations)
        return DeployFailed(f"{message}\n{self.where_each_host_stands(outcome)}", outcome)

    def _outcome_from(self, states: Mapping[str, dict[str, Any] | str], action: str, release: str,
                      extra: Mapping[str, Any], switch: PlayResult | None = None) -> DeployOutcome:
        targets: Mapping[str, str] = extra.get("host_release", {}) if extra else {}
        hosts: dict[str, HostOutcome] = {}
        for host in self.target.web:
            state = states.get(host, "not read")
            if isinstance(state, str):
                hosts[host] = HostOutcome(host, None, "unreachable", False, state)
                continue
            serving = state["current"]
            if switch is not None and host in switch.failed:
                result, message = "failed", switch.failed[host].strip().splitlines()[-1:]
                hosts[host] = HostOutcome(host, serving, result, True, " ".join(message))
                continue
            if switch is not None and host in switch.unreachable:
                hosts[host] = HostOutcome(host, serving, "unreachable", False, switch.unreachable[host])
                continue
            target = targets.get(host, release)
            if serving == target and serving:
                result = ("switched" if switch is not None and host in switch.succeeded
                          and host not in self._already else "serving it")
            elif switch is not None and any(host in b for b in switch.batches):
                result = "restored"
            else:
                result = "not switched"
            hosts[host] = HostOutcome(host, serving, result)
        ok = all(o.serving == targets.get(h, release) for h, o in hosts.items()) and bool(release)
        opened = self.pool.opened()
        uploaded = {h: opened[h].stats.sftp_bytes if h in opened else 0 for h in self.target.web}
        return DeployOutcome(action, release, hosts, durations=dict(self._durations), ok=ok,
                             uploaded=uploaded, backup=self._backup)

    # ---- database backups (shipit db …, rollback --restore-db) -------------------------------
    def _require_db(self) -> str:
        """The db host, after checking the app has a database.

        Raises:
            ValidationError: (exit 2, nothing touched) the app spec has no ``database:``.
        """
        spec = self.target.spec
        if not spec.database or not self.db_host:
            file, line = spec.where("database")
            raise ValidationError([Problem(file, line, "database", "the app has no database: backups need "
                                           "database: {name, user, password_secret} and a group db")])
        return self.db_host

    def _db_extra(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        """The plays' variables for a backup or restore of backup ``name`` outside a deploy."""
        app = app_vars(self.target.spec, 1, {}, "")
        return {**self._base_extra(app, "", "deploy", self.lock_token(name)),
                "backup": self.backup_vars(name, timeout)}

    def list_backups(self) -> list[backups.Backup]:
        """The app's backups on the db host, newest first (one read-only command of at most
        :data:`shipit.backups.QUICK_TIMEOUT` seconds).

        Raises:
            ValidationError: the app has no database.
            DeployFailed: the db host is unreachable or the listing failed.
        """
        host = self._require_db()
        try:
            result = self.pool.get(host).run(backups.list_script(self.target.spec.layout), become=True,
                                             timeout=backups.QUICK_TIMEOUT)
        except ShipitError as exc:
            raise DeployFailed(f"cannot list the backups on {host}: {exc.message}") from None
        if result.rc != 0:
            why = (result.stderr.strip().splitlines() or [f"exit status {result.rc}"])[-1]
            raise DeployFailed(f"cannot list the backups on {host}: {why}")
        return backups.parse_list(result.stdout)

    def backup_now(self, timeout: float | None = None) -> str:
        """Take a backup now (``shipit db backup``), named :func:`shipit.backups.manual_name`,
        pruning to ``database.backup.keep``; no lock (a dump is a consistent snapshot while the
        app runs). Returns its name.

        Raises:
            ValidationError: the app has no database.
            DeployFailed: the dump failed (pg_dump's reason given) or the db host is unreachable.
        """
        host = self._require_db()
        name = backups.manual_name()
        extra = self._db_extra(name, timeout)
        self.reporter.phase("backup", f"{extra['backup']['database']} on {host}")
        result = self._executor(extra).run_play(self._playbook(extra)["backup"], [host])
        if not result.ok:
            raise DeployFailed(f"the backup on {host} failed: {self._why(result)}")
        return name

    def find_backup(self, name: str) -> backups.Backup:
        """Backup ``name`` (with or without ``.dump``) as the db host lists it.

        Raises:
            ValidationError: not a backup name; the app has no database.
            DeployFailed: there is no such backup, or the db host cannot be read.
        """
        problem = backups.backup_name_problem(name)
        if problem:
            raise ValidationError([Problem("NAME", 0, "NAME", problem)])
        found = {b.name: b for b in self.list_backups()}
        backup = found.get(name.removesuffix(".dump"))
        if backup is None:
            raise DeployFailed(f"no backup {name} on {self.db_host} (`shipit db backups {self.target.env_name}` "
                               "lists them); nothing was changed")
        return backup

    def restore_db(self, name: str, timeout: float | None = None) -> backups.Backup:
        """Restore backup ``name`` into the app's database (``shipit db restore``): under the
        deploy lock, the app's units stopped on every web host meanwhile (:meth:`_restore`).

        Raises:
            ValidationError: the app has no database, ``name`` is not a backup name, or
                ``--limit`` was given (every web host uses the database).
            DeployFailed: no such backup, the lock is held, or a step failed (the message says
                what state the database and the app are in).
        """
        self._refuse_limit("a restore")
        backup = self.find_backup(name)
        extra = self._db_extra(backup.name, timeout)
        plays = self._playbook(extra)
        self._locked(plays, extra, lambda: self._schedule_paused(
            plays, extra, backup.name, lambda: self._restore(plays, extra, backup.name), deploy=False))
        return backup

    def rollback_backup(self, to: str | None = None) -> backups.Backup:
        """The backup ``rollback --restore-db`` restores: the one taken before the release the
        leader serves now (the release being rolled back), i.e. the database before its
        migrations. Read-only.

        Raises:
            ValidationError: no database, ``--to`` (not supported: restore a chosen backup with
                ``shipit db restore``) or ``--limit`` given.
            DeployFailed: the leader serves nothing or cannot be read, or no such backup exists.
        """
        self._require_db()
        if to is not None:
            raise ValidationError([Problem("--restore-db", 0, "--to", "--restore-db restores the backup taken "
                                           "before the current release, so it rolls back one release only; "
                                           "with --to, roll back first, then `shipit db restore ENV NAME`")])
        self._refuse_limit("--restore-db")
        leader = self.target.leader
        state = self.states([leader])[leader]
        if isinstance(state, str):
            raise DeployFailed(f"cannot read the release state of {leader}: {state}; nothing was changed")
        current = state["current"]
        if not current:
            raise DeployFailed(f"{leader} serves no release: nothing to roll back; nothing was changed")
        found = {b.name: b for b in self.list_backups()}
        if current not in found:
            raise DeployFailed(f"no backup was taken before release {current} (the one being rolled back) on "
                               f"{self.db_host}: database.backup.before_migrate was off, or it was pruned "
                               f"(`shipit db backups {self.target.env_name}` lists them); nothing was changed")
        return found[current]

    def _refuse_limit(self, what: str) -> None:
        if self.target.limit:
            raise ValidationError([Problem("--limit", 0, str(self.target.limit),
                                           f"{what} stops the app on every web host (they all use the "
                                           "database): drop --limit")])

    def _restore(self, plays: Mapping[str, Play], extra: Mapping[str, Any], name: str) -> str:
        """Stop the app's units on every web host (``pause``), restore backup ``name`` on the db
        host (``restore``: one transaction), start the units again (``resume``, also when the
        restore failed). Returns ``name``.

        Raises:
            DeployFailed: a host could not stop its units (nothing restored, the app started
                again), the restore failed (the database as it was), or the units could not be
                started again (restored; which hosts are down is said).
        """
        web = list(self.target.web)
        host = self.db_host
        executor = self._executor(extra)
        started = time.monotonic()
        self.reporter.phase("restore", f"{name} into {extra['backup']['database']} on {host}; "
                            f"the app is stopped on {', '.join(web)} meanwhile")
        paused = executor.run_play(plays["pause"], web)
        if not paused.ok:
            executor.run_play(plays["resume"], web)
            raise DeployFailed(f"could not stop the app ({self._why(paused)}); the database was not restored "
                               "and the app was started again")
        try:
            restored = executor.run_play(plays["restore"], [host])
        finally:
            resumed = executor.run_play(plays["resume"], web)
            self._timed("restore", started)
        if not restored.ok:
            raise DeployFailed(f"restoring {name} on {host} failed ({self._why(restored)}); the database is as "
                               "it was before (one transaction) and the app was started again")
        if not resumed.ok:
            raise DeployFailed(f"restored {name}, but the app's units could not be started again: "
                               f"{self._why(resumed)}")
        self._backup = f"restored {name}"
        return name

    # ---- rollback --------------------------------------------------------------------------
    def rollback(self, to: str | None = None, force: bool = False, restore_db: str | None = None) -> DeployOutcome:
        """Switch the web hosts back to the release each served before its current one (or to
        ``to``), rolling and health-checked like a deploy. Database migrations are not reverted,
        unless ``restore_db`` names the backup taken before the release being rolled back (see
        :meth:`rollback_backup`): then, once every host is back, under the same lock, the app's
        units are stopped, that backup is restored and they are started again
        (:meth:`_restore`); whatever was written to the database since is lost.

        A release that never went live is refused as ``to`` unless ``force``.

        Raises:
            ValidationError: ``restore_db`` for an app without a database, or with ``--limit``.
            DeployFailed: no release to go back to, not on every host, a host unreachable
                (nothing changed), or the roll stopped (``outcome`` says where each host is).
        """
        spec = self.target.spec
        if restore_db is not None:
            self._require_db()
            self._refuse_limit("--restore-db")
        states = self.states()
        down = [h for h, s in states.items() if isinstance(s, str)]
        if down:
            raise DeployFailed(f"cannot read the release state of {', '.join(down)}; nothing was changed",
                               self._outcome_from(states, "rollback", "", {}))
        live: dict[str, dict[str, Any]] = {h: s for h, s in states.items() if isinstance(s, dict)}
        targets: dict[str, str] = {}
        problems: list[str] = []
        for host, state in live.items():
            if to is not None:
                if to not in state["ready"]:
                    problems.append(f"release {to} is not on {host} (pruned?)")
                    continue
                info = history(state["log"]).get(to)
                if not force and not (info and info.ever_live):
                    problems.append(f"release {to} never went live on {host} (it failed before serving); "
                                    "use --force to switch to it anyway")
                    continue
                targets[host] = to
            else:
                target = rollback_target(state["current"], state["log"], state["ready"])
                if target is None:
                    problems.append(f"{host}: no release that served before {state['current'] or 'nothing'} "
                                    "is still on the host")
                    continue
                targets[host] = target
        if restore_db is not None and live.get(self.target.leader, {}).get("current") != restore_db:
            problems.append(f"the backup {restore_db} is of the release before {restore_db}, but the leader "
                            f"{self.target.leader} now serves {live.get(self.target.leader, {}).get('current')}")
        if problems:
            raise DeployFailed("; ".join(problems) + "; nothing was changed")
        release = to or max(targets.values())
        workers = size_workers(spec, {h: s["facts"] for h, s in live.items()}, self.budgets())
        try:  # the hosts' Python (not the runner's) for `app.python`; rollback builds nothing
            python = python_for_hosts({h: s["facts"] for h, s in live.items()},
                                      PythonNeed(exact=spec.python))
        except ValidationError:
            python = None
        app = app_vars(spec, workers, self.target.secrets, release, python)
        extra = {**self._base_extra(app, release, "rollback", self.lock_token(release)), "host_release": targets}
        if restore_db is not None:
            extra["backup"] = self.backup_vars(restore_db)
        plays = self._playbook(extra)

        def body() -> DeployOutcome:
            executor = self._executor(extra)
            started, prepared = time.monotonic(), self._durations.get("prepare", 0.0)
            switched = self._roll(plays, extra, release, live, executor)
            self._timed("switch", started, minus=self._durations.get("prepare", 0.0) - prepared)
            outcome = self._outcome_from(self.states(), "rollback", release, extra, switched)
            if not switched.ok:
                message = f"the rollback stopped: {self._roll_stopped(switched, live, extra)}"
                if restore_db is not None:
                    message += f"; the database was NOT restored (backup {restore_db} is still there)"
                outcome = replace(outcome, ok=False, message=message)
                raise DeployFailed(f"{message}\n{self.where_each_host_stands(outcome)}", outcome)
            if restore_db is not None:
                try:
                    self._restore(plays, extra, restore_db)
                except DeployFailed as exc:
                    outcome = replace(outcome, ok=False, message=f"the hosts were rolled back, but {exc.message}")
                    raise DeployFailed(f"{outcome.message}\n{self.where_each_host_stands(outcome)}", outcome) from None
                outcome = replace(outcome, backup=f"restored {restore_db}")
            return replace(outcome, changed=switched.changed())

        started = time.monotonic()
        # the scheduled jobs paused for the roll and a restore of the database
        outcome = self._locked(plays, extra, lambda: self._schedule_paused(plays, extra, release, body,
                                                                           deploy=False))
        self._hook("post-rollback", "rollback", release, started)
        return outcome


def releases_rows(states: Mapping[str, Mapping[str, Any] | str]) -> list[dict[str, str]]:
    """Per host and release (newest first): current or not, its state (see
    :mod:`shipit.releases`), when it was deployed (first ``built``), by whom; or the reason a
    host could not be read."""
    rows: list[dict[str, str]] = []
    for host, state in states.items():
        if isinstance(state, str):
            rows.append({"host": host, "release": "-", "current": "-", "state": f"unreachable: {state}",
                         "deployed": "-", "live_at": "-", "by": "-"})
            continue
        info = history(state["log"])
        for release in reversed(state["releases"]):
            i = info.get(release)
            rows.append({"host": host, "release": release,
                         "current": "yes" if release == state["current"] else "",
                         "state": i.state if i else "", "deployed": i.built_at if i else "",
                         "live_at": i.live_at if i else "", "by": i.by if i else ""})
    return rows
