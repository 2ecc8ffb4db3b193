"""``shipit check`` and ``shipit config``: look before you deploy.

``check ENV`` loads and validates everything ``deploy`` validates (the inventory, the app spec
with the inventory's overrides, the secrets' presence, the env file, the built-in deploy and
provision playbooks with the real variables, the app's hooks, and any ``--playbook`` given)
through a transport pool that refuses to connect: it opens no connection by construction, so
it runs in CI before any credentials exist. Every problem of every stage is reported at
once, exit 2. ``--hosts`` then also connects: reachability and host keys, sudo, and the
hosts' platform and Python (the artifact is built for them), one round trip per host.

``config ENV`` prints the merged app spec, each value with where it came from
(``shipit.yml:12``, ``inventories/prod.yml:30``, or ``default``); secrets are listed by name
with ``set``/``missing``, never their values, and ``env:`` values are shown as written (the
templates, not rendered).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipit.app import AppSpec, load_app_spec
from shipit.errors import Problem, ShipitError, ValidationError
from shipit.hooks import find_hooks
from shipit.inventory import Inventory
from shipit.pool import TransportPool
from shipit.transport import Transport


class ConnectionRefusedByCheck(ShipitError):
    """``check`` without ``--hosts`` tried to open a connection: a bug, never a host problem."""


def refusing_pool() -> TransportPool:
    """A pool whose every transport request raises :class:`ConnectionRefusedByCheck`."""

    def factory(host: str) -> Transport:
        raise ConnectionRefusedByCheck(f"{host}: shipit check connects to no host (use --hosts)")

    return TransportPool(factory)


@dataclass
class CheckReport:
    """What ``check`` looked at (``checked``: one line each) and found (``problems``)."""

    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def stage(self, what: Callable[[], str | None]) -> bool:
        """Run one stage; a ValidationError's problems are kept. True when it passed."""
        try:
            line = what()
        except ValidationError as exc:
            self.problems.extend(exc.problems)
            return False
        if line:
            self.checked.append(line)
        return True


def check_offline(env_name: str, inv: Inventory, app_dir: str, playbooks: Sequence[str],
                  limit: str | None, load_book: Callable[[str], Any],
                  make_deployer: Callable[[Any], Any]) -> tuple[CheckReport, Any]:
    """Every check that needs no host (see the module docstring).

    ``load_book(name)`` loads a user playbook (raising ValidationError); ``make_deployer``
    builds a Deployer of a target over :func:`refusing_pool`. Returns the report and the
    deployer (None when the app could not be loaded).
    """
    from shipit.deploy import load_target

    report = CheckReport()
    report.checked.append(f"inventory {inv.path}: {len(inv.hosts)} hosts ({', '.join(inv.hosts)})")
    for name in playbooks:
        def book(name: str = name) -> str:
            load_book(name)
            return f"playbook {name}"

        report.stage(book)
    target: list[Any] = []

    def app() -> str:
        target.append(load_target(env_name, inv, app_dir, limit=limit, need_secrets=True))
        t = target[0]
        secrets = f"; secrets {', '.join(t.spec.secrets)} set" if t.spec.secrets else ""
        return f"app {t.spec.name} ({t.spec.file}): web {', '.join(t.web)}, leader {t.leader}{secrets}"

    report.stage(app)
    report.stage(lambda: (lambda found: f"hooks: {', '.join(found) or 'none'}")(find_hooks(app_dir)))
    deployer = None
    if target:
        deployer = make_deployer(target[0])
        report.stage(lambda: (deployer.validate(), "env file and the deploy and provision playbooks")[1])
    return report, deployer


def check_hosts(deployer: Any) -> dict[str, dict[str, Any]]:
    """Connect to the web hosts: per host ``{"ok", "message", "python", "platform"}``, plus
    ``"*"`` for the fleet-wide platform check (hosts must share machine and Python)."""
    from shipit.platform import PlatformError, from_host_facts, target_for_hosts

    states = deployer.states()
    python = deployer.target.spec.python
    rows: dict[str, dict[str, Any]] = {}
    facts = {}
    for host, state in states.items():
        if isinstance(state, str):
            rows[host] = {"ok": False, "message": state}
            continue
        facts[host] = state["facts"]
        try:
            platform = from_host_facts(state["facts"], python, host)
            rows[host] = {"ok": True, "message": f"reachable, sudo ok, {platform.describe()}"}
        except PlatformError as exc:
            rows[host] = {"ok": False, "message": exc.message}
    if facts and all(r["ok"] for r in rows.values()):
        try:
            rows["*"] = {"ok": True, "message": f"artifact target: {target_for_hosts(facts, python).describe()}"}
        except PlatformError as exc:
            rows["*"] = {"ok": False, "message": exc.message}
    return rows


# ---- config -----------------------------------------------------------------------------------

def _where(spec: AppSpec, key: str) -> str:
    file, line = spec.where(key)
    if key not in spec.origins:
        return "default"
    return f"{file}:{line}" if line else file


def config_rows(spec: AppSpec, secrets_set: Mapping[str, bool]) -> list[tuple[str, str, str]]:
    """``(key, value, origin)`` for every setting of the merged spec. Pure.

    ``secrets_set``: secret name -> whether a value is available (its value is never given).
    """
    rows: list[tuple[str, str, str]] = []

    def add(key: str, value: Any, top: str | None = None) -> None:
        rows.append((key, value if isinstance(value, str) else repr(value) if value is not None else "-",
                     _where(spec, top or key)))

    add("name", spec.name)
    add("source", spec.source)
    add("python", spec.python or "the distro's", "python")
    add(f"web.{spec.interface}", spec.app_ref, "web")
    add("web.server", spec.server, "web")
    add("web.workers", str(spec.workers), "web")
    add("web.memory_per_worker", spec.memory_per_worker, "web")
    add("web.port", str(spec.port), "web")
    for p in spec.processes:
        add(f"processes.{p.name}", f"{p.command} (x{p.instances})", "processes")
    for j in spec.schedule:
        add(f"schedule.{j.name}", f"{j.command} (on_calendar {', '.join(j.on_calendar)}; on {j.on}; "
            f"timeout {j.timeout:g} s)", "schedule")
    add("migrate", spec.migrate)
    add("migrate_timeout", f"{spec.migrate_timeout:g}")
    add("health.path", spec.health_path, "health")
    add("health.timeout", f"{spec.health_timeout:g}", "health")
    add("domains", ", ".join(spec.domains))
    add("tls", "internal" if spec.tls_internal else f"acme ({spec.acme_email})")
    for key, value in spec.env.items():
        add(f"env.{key}", value, "env")  # as written: templates, never rendered secrets
    for name in spec.secrets:
        add(f"secrets.{name}", "set (value hidden)" if secrets_set.get(name) else "MISSING", f"secrets.{name}")
    add("secrets_file", spec.secrets_file or "~/.config/shipit/{env}.env", "secrets_file")
    if spec.database:
        for key, value in spec.database.items():
            add(f"database.{key}", str(value), "database")
        if spec.backup is not None:
            add("database.backup.before_migrate", str(spec.backup.before_migrate).lower(), "database")
            add("database.backup.keep", str(spec.backup.keep), "database")
    add("keep_releases", str(spec.keep_releases))
    add("serial", ", ".join(str(s) for s in spec.serial))
    add("max_fail", f"{spec.max_fail:g}%")
    add("canary.bake", f"{spec.canary_bake:g}", "canary")
    add("memory_budget", spec.memory_budget)
    return rows


def load_config(env_name: str, inv: Inventory, app_dir: str,
                environ: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """The merged spec's rows for ``config`` (see :func:`config_rows`); which secrets are
    available is asked of :func:`shipit.app.load_secrets` (values dropped at once).

    Raises:
        ValidationError: the spec or inventory is invalid.
    """
    from shipit.app import load_secrets

    spec = load_app_spec(app_dir, inv.app, inv.path)
    try:
        load_secrets(spec, env_name, environ)  # one run of secrets_command, if any
        missing: set[str] = set()
    except ValidationError as exc:
        keys = {p.key for p in exc.problems}
        missing = set(spec.secrets) if "secrets_command" in keys else {
            k.removeprefix("secrets.") for k in keys}
    return config_rows(spec, {name: name not in missing for name in spec.secrets})
