"""The app spec: what ``shipit deploy`` ships, read from ``shipit.yml`` in the app's directory
and overridden key by key by the inventory's ``app:`` section (e.g. domains per environment).

Shape (every key but ``name`` and ``web.app`` optional)::

    name: example                     # /srv/<name>, the app user, unit names
    python: "3.11"                    # distro Python on the hosts (default: the distro's)
    web:
      app: example_app.main:app       # the ASGI app (uvicorn)
      workers: 2                      # a number, or "auto" (see shipit.sizing)
      memory_per_worker: 150M         # what one worker holds (for auto and the budget check)
      port: 8000                      # first of the two local ports (blue/green: 8000, 8001)
    processes:                        # background processes, each a systemd unit per instance
      - {name: heartbeat, command: "python -m example_app.worker", instances: 1}
    migrate: alembic upgrade head     # run once, on the leader, before any host switches
    health: {path: /health, timeout: 30}   # seconds for the new release to answer 200
    domains: [example.test]
    tls: internal                     # Caddy's own CA; or {acme_email: ops@example.com}
    env: {WORKER_INTERVAL: "5"}       # values may use {{ secrets.X }}, {{ hostvars[h].address }}
    secrets: [DB_PASSWORD]            # from the runner's environment, else the secrets file
    secrets_file: ~/.config/shipit/{env}.env   # KEY=VALUE lines, outside the repo
    database: {name: example, user: example, password_secret: DB_PASSWORD}  # PostgreSQL on group db
    keep_releases: 5
    serial: 1                         # batch size of the rolling switch: 1, "25%", [1, "50%"]
    max_fail: 0                       # percent of a batch that may fail before the roll stops
    memory_budget: 80%                # of a host's memory the workers may take (or bytes: 2G)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipit.errors import Problem, ValidationError
from shipit.layout import Layout
from shipit.yamlfile import LineDict, line_of, load_yaml_file

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.I)


@dataclass(frozen=True)
class Process:
    """A background process: ``command`` run from the release dir with its venv on PATH."""

    name: str
    command: str
    instances: int = 1


@dataclass(frozen=True)
class AppSpec:
    """A validated app spec (see the module docstring). Sizes in bytes, times in seconds."""

    name: str
    source: str
    asgi: str
    python: str | None = None
    workers: int | str = 2
    memory_per_worker: int | None = None
    port: int = 8000
    processes: tuple[Process, ...] = ()
    migrate: str | None = None
    health_path: str = "/health"
    health_timeout: float = 30.0
    domains: tuple[str, ...] = ()
    tls_internal: bool = True
    acme_email: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    secrets_file: str | None = None
    database: Mapping[str, str] | None = None
    keep_releases: int = 5
    serial: tuple[int | str, ...] = (1,)
    max_fail: float = 0.0
    memory_budget: str = "80%"

    @property
    def layout(self) -> Layout:
        """Where this app lives on a host (see :class:`shipit.layout.Layout`)."""
        return Layout(self.name)

    @property
    def root(self) -> str:
        """The app's root on a host (``Layout.root``)."""
        return self.layout.root


def parse_size(text: str | int) -> int:
    """Bytes from ``512M``, ``2G``, ``1.5GiB`` or a plain number of bytes (powers of 1024).

    Raises:
        ValueError: not a size.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.match(str(text).strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()[0]
    return int(number * 1024 ** "BKMGT".index(unit))


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, file: str, container: Any, key: Any, name: str, message: str) -> None:
        self.problems.append(Problem(file, line_of(container, key), name, message))


_TOP = {"name", "python", "web", "processes", "migrate", "health", "domains", "tls", "env", "secrets",
        "secrets_file", "database", "keep_releases", "serial", "max_fail", "memory_budget", "source"}


def load_app_spec(app_dir: str | Path, overrides: Mapping[str, Any] | None = None,
                  overrides_file: str = "") -> AppSpec:
    """Read ``<app_dir>/shipit.yml``, apply the inventory's ``app:`` overrides, validate.

    Raises:
        ValidationError: every problem, with file:line, key and expected form.
    """
    spec_path = Path(app_dir) / "shipit.yml"
    base = load_yaml_file(spec_path) or LineDict()
    c = _Checker()
    if not isinstance(base, dict):
        raise ValidationError([Problem(str(spec_path), 0, "", "expected a mapping (the app spec)")])
    merged: dict[str, tuple[Any, str, Any]] = {k: (v, str(spec_path), base) for k, v in base.items()}
    for k, v in (overrides or {}).items():
        if k == "web" and isinstance(v, dict) and isinstance(base.get("web"), dict):
            web = LineDict({**base["web"], **v})
            web.line, web.key_lines = getattr(v, "line", 0), {**getattr(base["web"], "key_lines", {}),
                                                             **getattr(v, "key_lines", {})}
            merged[k] = (web, overrides_file, overrides)
        else:
            merged[k] = (v, overrides_file, overrides)
    for key, (_, file, container) in merged.items():
        if key not in _TOP:
            c.add(file, container, key, key, f"unknown app key; expected one of {', '.join(sorted(_TOP))}")

    def get(key: str, default: Any = None) -> tuple[Any, str, Any]:
        return merged.get(key, (default, str(spec_path), base))

    name, f, ct = get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        c.add(f, ct, "name", "name", "expected a short lowercase name (letters, digits, -), e.g. 'example'")
    source, f, ct = get("source", ".")
    source_dir = str((Path(app_dir) / str(source)).resolve()) if f == str(spec_path) else \
        str((Path(f).parent / str(source)).resolve())
    python, f, ct = get("python")
    if python is not None and not (isinstance(python, str) and re.fullmatch(r"3\.\d+", python)):
        c.add(f, ct, "python", "python", 'expected "3.X" as a quoted string, e.g. "3.11"')
    web, wf, wct = get("web")
    asgi, workers, mem, port = "", 2, None, 8000
    if not isinstance(web, dict):
        c.add(wf, wct, "web", "web", "expected a mapping with app: (the ASGI app, e.g. main:app)")
    else:
        for key in web:
            if key not in ("app", "workers", "memory_per_worker", "port"):
                c.add(wf, web, key, f"web.{key}", "unknown key; expected app, workers, memory_per_worker, port")
        asgi = web.get("app", "")
        if not isinstance(asgi, str) or not re.fullmatch(r"[\w.]+:[\w.]+", asgi):
            c.add(wf, web, "app", "web.app", "expected module:attribute of the ASGI app, e.g. example_app.main:app")
        workers = web.get("workers", 2)
        if not (workers == "auto" or (isinstance(workers, int) and not isinstance(workers, bool) and 1 <= workers <= 64)):
            c.add(wf, web, "workers", "web.workers", "expected a number of worker processes (1-64) or 'auto'")
        if web.get("memory_per_worker") is not None:
            try:
                mem = parse_size(web["memory_per_worker"])
            except ValueError:
                c.add(wf, web, "memory_per_worker", "web.memory_per_worker", "expected a size such as 150M or 1G")
        port = web.get("port", 8000)
        if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65000:
            c.add(wf, web, "port", "web.port", "expected a local port number from 1024 to 65000")
    processes: list[Process] = []
    raw_procs, f, ct = get("processes", [])
    if not isinstance(raw_procs, list):
        c.add(f, ct, "processes", "processes", "expected a list of {name, command, instances}")
        raw_procs = []
    for i, p in enumerate(raw_procs):
        if not (isinstance(p, dict) and isinstance(p.get("name"), str) and _NAME.match(p["name"])
                and isinstance(p.get("command"), str) and "'" not in p["command"] and "\n" not in p["command"]
                and isinstance(p.get("instances", 1), int)
                and not set(p) - {"name", "command", "instances"}):
            c.add(f, raw_procs, i, f"processes[{i}]",
                  "expected {name: short-name, command: a one-line command without ', instances: a number}")
            continue
        processes.append(Process(p["name"], p["command"], int(p.get("instances", 1))))
    migrate, f, ct = get("migrate")
    if migrate is not None and not isinstance(migrate, str):
        c.add(f, ct, "migrate", "migrate", "expected a command line, e.g. alembic upgrade head")
    health, f, ct = get("health", {})
    health = health or {}
    if not isinstance(health, dict) or not str(health.get("path", "/health")).startswith("/"):
        c.add(f, ct, "health", "health", "expected {path: /health, timeout: seconds}")
        health = {}
    domains, f, ct = get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        c.add(f, ct, "domains", "domains", "expected a list of domain names")
        domains = []
    tls, f, ct = get("tls", "internal")
    acme_email = None
    if isinstance(tls, dict) and isinstance(tls.get("acme_email"), str) and "@" in tls["acme_email"]:
        acme_email = tls["acme_email"]
    elif tls != "internal":
        c.add(f, ct, "tls", "tls", "expected 'internal' (Caddy's own CA) or {acme_email: you@example.com}")
    env, f, ct = get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
                                            for k in env):
        c.add(f, ct, "env", "env", "expected a mapping of VARIABLE_NAME: value")
        env = {}
    secrets, f, ct = get("secrets", [])
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        c.add(f, ct, "secrets", "secrets", "expected a list of secret names (environment variable names)")
        secrets = []
    database, f, ct = get("database")
    if database is not None and not (isinstance(database, dict) and {"name", "user"} <= set(database)):
        c.add(f, ct, "database", "database", "expected {name: db, user: role, password_secret: SECRET_NAME}")
    keep, f, ct = get("keep_releases", 5)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 2:
        c.add(f, ct, "keep_releases", "keep_releases", "expected a number >= 2 (a rollback needs the previous release)")
    serial, f, ct = get("serial", 1)
    serial_items = serial if isinstance(serial, list) else [serial]
    for item in serial_items:
        if not ((isinstance(item, int) and not isinstance(item, bool) and item >= 1)
                or (isinstance(item, str) and re.fullmatch(r"\d+%", item))):
            c.add(f, ct, "serial", "serial", "expected a batch size: 1, '25%', or a list like [1, '50%']")
    max_fail, f, ct = get("max_fail", 0)
    if isinstance(max_fail, bool) or not isinstance(max_fail, (int, float)) or not 0 <= max_fail <= 100:
        c.add(f, ct, "max_fail", "max_fail", "expected a percentage from 0 to 100")
    budget, f, ct = get("memory_budget", "80%")
    budget_ok = isinstance(budget, str) and re.fullmatch(r"\d+%", budget)
    if not budget_ok:
        try:
            parse_size(budget)
        except ValueError:
            c.add(f, ct, "memory_budget", "memory_budget", "expected a percentage of host memory ('80%') or a size ('2G')")
    secrets_file, f, ct = get("secrets_file")
    if c.problems:
        raise ValidationError(c.problems)
    return AppSpec(name=name, source=source_dir, asgi=asgi, python=python, workers=workers,
                   memory_per_worker=mem, port=port, processes=tuple(processes), migrate=migrate,
                   health_path=str(health.get("path", "/health")),
                   health_timeout=float(health.get("timeout", 30)), domains=tuple(domains),
                   tls_internal=acme_email is None, acme_email=acme_email,
                   env={k: str(v) for k, v in env.items()}, secrets=tuple(secrets),
                   secrets_file=secrets_file, database=dict(database) if database else None,
                   keep_releases=keep, serial=tuple(serial_items), max_fail=float(max_fail),
                   memory_budget=str(budget))


def load_secrets(spec: AppSpec, env_name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the spec's secrets: the runner's environment first, then the secrets file.

    The secrets file (default ``~/.config/shipit/<env>.env``) has ``KEY=VALUE`` lines.

    Raises:
        ValidationError: a secret has no value; the message names it and both places looked.
    """
    environ = os.environ if environ is None else environ
    path = Path((spec.secrets_file or "~/.config/shipit/{env}.env").replace("{env}", env_name)).expanduser()
    from_file: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                from_file[key.strip()] = value.strip().strip("'\"")
    values: dict[str, str] = {}
    problems = []
    for name in spec.secrets:
        value = environ.get(name) or from_file.get(name)
        if not value:
            problems.append(Problem("shipit.yml", 0, f"secrets.{name}",
                                    f"no value: set the environment variable {name} or add {name}=… to {path}"))
        else:
            values[name] = value
    if problems:
        raise ValidationError(problems)
    return values
