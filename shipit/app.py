"""The app spec: what ``shipit deploy`` ships, read from ``shipit.yml`` in the app's directory
and overridden key by key by the inventory's ``app:`` section (e.g. domains per environment).

Shape (every key but ``name``, the web app and ``domains`` optional)::

    name: example                     # /srv/<name>, the app user, unit names ([a-z][a-z0-9-]*, <= 31)
    source: .                         # the app's source dir, relative to the file setting it
    python: "3.11"                    # a Python the hosts have (default: theirs that fits requires-python)
    web:
      asgi: example_app.main:app      # the ASGI app (uvicorn); or wsgi: mysite.wsgi:application
                                      # (gunicorn); app: is the old spelling of asgi:
      server: uvicorn                 # asgi: uvicorn | gunicorn (uvicorn-worker); wsgi: gunicorn
      threads: 4                      # gunicorn threads per worker (WSGI only; default 1: sync)
      workers: 2                      # 1-64, or "auto" (see shipit.deploy.size_workers)
      memory_per_worker: 150M         # what one worker holds (for auto and the budget check)
      port: 8000                      # first of the two local ports (blue/green: 8000, 8001)
    processes:                        # background processes, each a systemd unit per instance
      - {name: heartbeat, command: "python -m example_app.worker", instances: 1}
    schedule:                         # jobs as systemd timers, in the current release's environment
      - {name: cleanup, command: "python manage.py clearsessions", on_calendar: daily}
      - {name: report, command: "python -m app.report", on_calendar: "*-*-* 03:00:00",
         on: all, timeout: 30m}         # on: leader (default) | all; timeout: default 1h
    migrate: alembic upgrade head     # run once, on the leader, before any host switches
    migrate_timeout: 600              # seconds the migration (and each release step) may take
    build: ["python manage.py collectstatic --noinput"]   # on the runner, in a copy of the
                                      # source with the dependencies installed; output ships
    release: ["python manage.py clearsessions"]   # once per release on the leader, after
                                      # migrate, before any switch (as migrate runs)
    static: {url: /static/, dir: staticfiles}   # served by Caddy from the release
    shared_dirs: [media]              # shared/<dir>, linked into every release (app user's)
    health: {path: /health, timeout: 30}   # seconds for the new release to answer 200 (1-3600)
    domains: [example.test]           # at least one: hostnames (lowercased), *.wildcards, IPv4
    tls: internal                     # Caddy's own CA; or {acme_email: ops@example.com}
    env: {WORKER_INTERVAL: "5"}       # values may use {{ secrets.X }}, {{ hostvars[h].address }}
    secrets: [DB_PASSWORD]            # from the runner's environment, else the secrets file;
                                      # each must be used by env: or database.password_secret
    secrets_file: ~/.config/shipit/{env}.env   # KEY=VALUE lines, outside the repo
    secrets_command: sops -d secrets.$SHIPIT_ENV.env   # run on the runner (sh -c, in the app
                                      # dir, SHIPIT_ENV set); its stdout: KEY=VALUE lines
    database: {name: example, user: example, password_secret: DB_PASSWORD}  # PostgreSQL on group db
      # backup: {before_migrate: true, keep: 7}   # pg_dump -Fc on the db host before each
      #                                 # deploy's migrations, named after the release; the
      #                                 # newest `keep` (1-1000) are kept (see shipit.backups)
    keep_releases: 5
    serial: 1                         # batch size of the rolling switch: 1, "25%", [1, "50%"]
    max_fail: 0                       # percent of a batch that may fail before the roll stops
    canary: {bake: 0}                 # seconds to watch the canary after its switch (0-3600)
    memory_budget: 80%                # of a host's memory the workers may take (or bytes: 2G);
                                      # both slots run during a switch, so 2 x the workers fit
"""

from __future__ import annotations

import io
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
from dotenv import dotenv_values

from shipit import webserver
from shipit.errors import Problem, ValidationError, did_you_mean
from shipit.layout import Layout
from shipit.templating import make_environment, template_problems, variables_in
from shipit.yamlfile import LineDict, line_of, load_yaml_file, type_name

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.I)


@dataclass(frozen=True)
class Process:
    """A background process: ``command`` run from the release dir with its venv on PATH."""

    name: str
    command: str
    instances: int = 1


@dataclass(frozen=True)
class Job:
    """A scheduled job (``schedule:``): ``command`` (sh -c) run in the current release as the
    app user at each ``on_calendar`` time (systemd ``OnCalendar=`` expressions, one or more),
    on the leader (``on="leader"``) or on every web host (``"all"``), stopped after
    ``timeout`` seconds; ``random_delay`` seconds of ``RandomizedDelaySec=`` (0: none)."""

    name: str
    command: str
    on_calendar: tuple[str, ...]
    on: str = "leader"
    timeout: float = 3600.0
    random_delay: float = 0.0


@dataclass(frozen=True)
class BackupPolicy:
    """``database.backup``: ``before_migrate`` (dump the database before each deploy's
    migrations, named after the release) and ``keep`` (backups kept on the db host, newest
    first, 1-1000). See :mod:`shipit.backups`."""

    before_migrate: bool = True
    keep: int = 7


@dataclass(frozen=True)
class AppSpec:
    """A validated app spec (see the module docstring). Sizes in bytes, times in seconds.

    ``migrate_timeout`` is how long the ``migrate`` command may run on the leader (seconds,
    default 600). ``file`` is the ``shipit.yml`` read and ``origins`` maps each top-level key
    to the (file, line) it came from (see :meth:`where`).
    """

    name: str
    source: str
    app_ref: str
    interface: str = "asgi"
    server: str = "uvicorn"
    threads: int | None = None
    python: str | None = None
    workers: int | str = 2
    memory_per_worker: int | None = None
    port: int = 8000
    processes: tuple[Process, ...] = ()
    schedule: tuple[Job, ...] = ()
    migrate: str | None = None
    health_path: str = "/health"
    health_timeout: float = 30.0
    domains: tuple[str, ...] = ()
    tls_internal: bool = True
    acme_email: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    secrets_file: str | None = None
    secrets_command: str | None = None
    database: Mapping[str, str] | None = None
    backup: BackupPolicy | None = None
    keep_releases: int = 5
    serial: tuple[int | str, ...] = (1,)
    max_fail: float = 0.0
    canary_bake: float = 0.0
    memory_budget: str = "80%"
    migrate_timeout: float = 600.0
    build: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    static_url: str | None = None
    static_dir: str | None = None
    shared_dirs: tuple[str, ...] = ()
    file: str = ""
    origins: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    def where(self, key: str) -> tuple[str, int]:
        """(file, line) a top-level key of the spec came from (``shipit.yml`` or the
        inventory's ``app:``), for errors found after loading; line 0 when unknown."""
        return self.origins.get(key, (self.file or "shipit.yml", 0))

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


_TOP = {"name", "python", "web", "processes", "migrate", "migrate_timeout", "health", "domains", "tls",
        "env", "secrets", "secrets_file", "secrets_command", "database", "keep_releases", "serial",
        "max_fail", "memory_budget", "source", "canary", "build", "release", "static", "shared_dirs",
        "schedule"}

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_PATH_CHAR = r"(?:[A-Za-z0-9\-._~!&()*+,=:@/]|%[0-9A-Fa-f]{2})"
_HEALTH_PATH = re.compile(rf"^/{_PATH_CHAR}*(?:\?(?:{_PATH_CHAR}|\?)*)?$")
_SQL_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_POSTGRES_RESERVED = {"postgres", "template0", "template1"}
#: Variables an ``env:`` value may use (what the env file is rendered with).
ENV_VARIABLES = frozenset({"secrets", "hostvars", "groups", "env_name", "domains", "database"})
"""The variables an ``env:`` value's template may use (see :func:`shipit.deploy.render_env_file`)."""
MAX_HEALTH_TIMEOUT = 3600.0
MAX_MIGRATE_TIMEOUT = 86400.0


def domain_problem(domain: Any) -> str | None:
    """Why ``domain`` cannot be a site address of the app, or None if it can.

    Accepted: a hostname per RFC 1123 (labels of 1-63 letters, digits and ``-``, not starting
    or ending with ``-``, 253 characters at most, the last label not all digits), a wildcard
    ``*.`` followed by such a hostname, or an IPv4 address (Caddy serves it with its internal
    CA; useful in a lab). Domains are compared and written in lowercase: the caller lowercases
    before checking (DNS is case-insensitive). IPv6 addresses, trailing dots, ports, schemes
    and paths are refused.
    """
    if not isinstance(domain, str) or not domain:
        return f"expected a domain name, got {type_name(domain)} {domain!r}"
    name = domain[2:] if domain.startswith("*.") else domain
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        if address.version == 6 or domain.startswith("*."):
            return f"expected a domain name or an IPv4 address, got {domain!r}"
        return None
    if len(name) > 253 or not _HOSTNAME.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
        return ("expected a domain name (letters, digits and - in dot-separated labels of at most 63, "
                f"e.g. example.com or *.example.com) or an IPv4 address, got {domain!r}")
    return None


def health_path_problem(path: Any) -> str | None:
    """Why ``path`` cannot be the app's health check path, or None if it can: an absolute URL
    path (RFC 3986 path and query characters, at most 2048) with no space, quote, ``$``, ``;``,
    backtick, brace, ``#`` or control character (it reaches a root shell script and a URL)."""
    if not isinstance(path, str) or len(path) > 2048 or not _HEALTH_PATH.fullmatch(path):
        return ("expected an absolute URL path such as /health or /healthz?full=1: "
                "starting with /, of RFC 3986 path and query characters, without spaces, quotes, $, ;, `, "
                f"braces or # (use %XX escapes); got {path!r}")
    return None


def command_problem(value: Any, what: str) -> str | None:
    """Why ``value`` is not a one-line command (a non-empty string without NUL or newline)."""
    if not isinstance(value, str):
        return f"expected {what} (a string), got {type_name(value)} {value!r}"
    if not value.strip():
        return f"expected {what}, got an empty string"
    if "\x00" in value:
        return f"expected {what}: a NUL character cannot be part of a command"
    if "\n" in value or "\r" in value:
        return (f"expected {what} on one line: join steps with && or move them into a script "
                "in the app and run that")
    return None


def _timeout_problem(value: Any, high: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number of seconds, got {type_name(value)} {value!r}"
    if not math.isfinite(value) or not 1 <= value <= high:
        return f"expected a number of seconds from 1 to {high:g}, got {value!r}"
    return None


def secret_references(env: Any, text: str) -> tuple[set[str], list[str]]:
    """Secrets a template names (``secrets.NAME`` or ``secrets['NAME']``), statically, and
    the problems with how it uses ``secrets`` (any other use, e.g. ``secrets[name]`` or
    ``secrets | tojson``, which could reveal every secret and cannot be checked).

    Raises:
        jinja2.TemplateSyntaxError: ``text`` does not parse.
    """
    tree = env.parse(text)
    names: set[str] = set()
    named: set[int] = set()
    for node in tree.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        target = node.node
        if not (isinstance(target, jinja2.nodes.Name) and target.name == "secrets"):
            continue
        if isinstance(node, jinja2.nodes.Getattr):
            names.add(node.attr)
            named.add(id(target))
        elif isinstance(node.arg, jinja2.nodes.Const) and isinstance(node.arg.value, str):
            names.add(node.arg.value)
            named.add(id(target))
    problems = []
    for node in tree.find_all(jinja2.nodes.Name):
        if node.name == "secrets" and node.ctx == "load" and id(node) not in named:
            problems.append("use a secret by its name, as {{ secrets.NAME }} or {{ secrets['NAME'] }}")
            break
    return names, problems


def serial_item_problem(item: object) -> str | None:
    """Why ``item`` is not one batch size of ``serial`` (as Ansible's ``serial``: a whole number
    >= 1, or a percentage of the hosts from ``"1%"`` to ``"100%"``), or None when it is one."""
    if isinstance(item, int) and not isinstance(item, bool) and item >= 1:
        return None
    if isinstance(item, str) and re.fullmatch(r"\d+%", item) and 1 <= int(item[:-1]) <= 100:
        return None
    return f"expected a batch size: a whole number >= 1 or a percentage from 1% to 100%; got {item!r}"


def parse_serial(text: str) -> tuple[int | str, ...]:
    """The batch sizes of a ``--serial`` option, as :attr:`AppSpec.serial`: sizes separated by
    commas, each a whole number or a percentage (``"1"`` -> ``(1,)``, ``"1,50%"`` -> ``(1, "50%")``,
    ``"100%"``: every host in one batch).

    Raises:
        ValueError: an empty value or a bad size, with what was expected.
    """
    items: list[int | str] = []
    for raw in text.split(","):
        word = raw.strip()
        item: int | str = int(word) if word.isdigit() else word
        if (problem := serial_item_problem(item)) is not None:
            raise ValueError(problem)
        items.append(item)
    return tuple(items)


def load_app_spec(app_dir: str | Path, overrides: Mapping[str, Any] | None = None,
                  overrides_file: str = "") -> AppSpec:
    """Read ``<app_dir>/shipit.yml``, apply the inventory's ``app:`` overrides, validate.

    Everything a value cannot be is refused here, before any connection (see the module
    docstring for the shape): domains are hostnames (lowercased), IPv4 addresses or ``*.``
    wildcards (:func:`domain_problem`); ``health.path`` is an absolute URL path of RFC 3986
    characters without quotes, ``$``, ``;``, backticks, braces or whitespace; database names
    and users are SQL identifiers (``[a-z_][a-z0-9_]{0,62}``, not ``postgres``/``template0``/
    ``template1``) and ``password_secret`` names a listed secret; ``database.backup`` is
    ``{before_migrate: bool, keep: 1-1000}`` (:class:`BackupPolicy`); commands are one line;
    timeouts are seconds (``health.timeout`` 1-3600, ``migrate_timeout`` 1-86400); every
    listed secret is used by an ``env:`` value or the database, and every ``secrets.X`` an
    ``env:`` value uses is listed; ``env:`` templates may use only :data:`ENV_VARIABLES` and are checked by the template sandbox's static rules;
    ``web`` names exactly one of ``asgi``/``wsgi``/``app`` (``module:attribute``) and a
    ``server`` that interface accepts (:data:`shipit.webserver.SERVERS`), ``threads`` only for
    WSGI; ``build``/``release`` are one-line commands; ``static.dir`` and ``shared_dirs`` are
    relative directories (:func:`relative_dir_problem`), the static dir not under a shared one.

    Raises:
        ValidationError: every problem, with file:line, key and expected form.
    """
    spec_path = Path(app_dir) / "shipit.yml"
    base = load_yaml_file(spec_path) or LineDict()
    c = _Checker()
    if not isinstance(base, dict):
        raise ValidationError([Problem(str(spec_path), 0, "", "expected a mapping (the app spec)")])
    if overrides is not None and not isinstance(overrides, dict):
        raise ValidationError([Problem(overrides_file, 0, "app", "expected a mapping (the app spec overrides)")])
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
            c.add(file, container, key, str(key), f"unknown app key; expected one of {', '.join(sorted(_TOP))}"
                  + did_you_mean(key, _TOP))
    origins: dict[str, tuple[str, int]] = {str(k): (f, line_of(ct, k)) for k, (_, f, ct) in merged.items()}

    def get(key: str, default: Any = None) -> tuple[Any, str, Any]:
        return merged.get(key, (default, str(spec_path), base))

    name, f, ct = get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        c.add(f, ct, "name", "name", "expected a short lowercase name (letters, digits, -), e.g. 'example'")
    source, f, ct = get("source", ".")
    source_dir = ""
    if not isinstance(source, str) or not source or "\x00" in source:
        c.add(f, ct, "source", "source", f"expected the app's source directory (a path), got {source!r}")
    else:
        source_dir = str((Path(app_dir) / source).resolve()) if f == str(spec_path) else \
            str((Path(f).parent / source).resolve())
        if not Path(source_dir).is_dir():
            c.add(f, ct, "source", "source", f"no such directory: {source_dir}")
    python, f, ct = get("python")
    if python is not None and not (isinstance(python, str) and re.fullmatch(r"3\.\d+", python)):
        c.add(f, ct, "python", "python", 'expected "3.X" as a quoted string, e.g. "3.11"')
    web_spec = _check_web(c, *get("web"))
    processes = _check_processes(c, *get("processes", []))
    schedule = _check_schedule(c, *get("schedule", []))
    raw_schedule, f, ct = get("schedule", [])
    taken = {p.name for p in processes} | {"web", "release"}
    for i, job in enumerate(raw_schedule if isinstance(raw_schedule, list) else []):
        if isinstance(job, dict) and job.get("name") in taken:
            c.add(f, job, "name", f"schedule[{i}].name", f"{job['name']!r} already names a process (or shipit's "
                  "web or release units): `shipit logs ENV NAME` could not tell them apart; choose another")
    migrate, f, ct = get("migrate")
    if migrate is not None:
        problem = command_problem(migrate, "the migration command (e.g. alembic upgrade head)")
        if problem:
            c.add(f, ct, "migrate", "migrate", problem)
    migrate_timeout, f, ct = get("migrate_timeout", 600)
    problem = _timeout_problem(migrate_timeout, MAX_MIGRATE_TIMEOUT)
    if problem:
        c.add(f, ct, "migrate_timeout", "migrate_timeout", problem)
        migrate_timeout = 600
    build = _check_commands(c, *get("build", []), key="build",
                            example="python manage.py collectstatic --noinput")
    release_steps = _check_commands(c, *get("release", []), key="release",
                                    example="python manage.py clearsessions")
    static_url, static_dir = _check_static(c, *get("static"))
    shared_dirs = _check_shared_dirs(c, *get("shared_dirs", []))
    if static_dir and static_dir.split("/")[0] in shared_dirs:
        f, line = origins.get("static", (str(spec_path), 0))
        c.problems.append(Problem(f, line, "static.dir", f"{static_dir!r} is under a shared dir: static files "
                                  "come from the release (build:), shared dirs hold data that outlives it"))
    health_path, health_timeout = _check_health(c, *get("health", {}))
    domains = _check_domains(c, *get("domains"))
    tls, f, ct = get("tls", "internal")
    acme_email = None
    if isinstance(tls, dict) and set(tls) == {"acme_email"}:
        acme_email = tls["acme_email"]
        if not isinstance(acme_email, str) or not EMAIL_RE.fullmatch(acme_email):
            c.add(f, tls, "acme_email", "tls.acme_email", f"expected an email address (you@example.com), got {acme_email!r}")
            acme_email = None
    elif tls != "internal":
        c.add(f, ct, "tls", "tls", "expected 'internal' (Caddy's own CA) or {acme_email: you@example.com}")
    secrets = _check_secrets(c, *get("secrets", []))
    raw_secrets, f, ct = get("secrets", [])
    if isinstance(raw_secrets, list):
        origins.update({f"secrets.{n}": (f, line_of(raw_secrets, i)) for i, n in enumerate(raw_secrets)
                        if isinstance(n, str)})
    env = _check_env(c, *get("env", {}), secrets=secrets)
    database = _check_database(c, *get("database"), secrets=secrets)
    backup = _check_backup(c, *get("database"))
    raw_db = get("database")[0]
    db_secret = raw_db.get("password_secret") if isinstance(raw_db, dict) else None
    _check_unused_secrets(c, *get("secrets", []), env=env[1], database_secret=db_secret)
    secrets_file, f, ct = get("secrets_file")
    if secrets_file is not None and (not isinstance(secrets_file, str) or not secrets_file.strip()
                                     or "\x00" in secrets_file):
        c.add(f, ct, "secrets_file", "secrets_file",
              f"expected the path of a KEY=VALUE file, e.g. ~/.config/shipit/{{env}}.env; got {secrets_file!r}")
    secrets_command, f, ct = get("secrets_command")
    if secrets_command is not None:
        problem = command_problem(secrets_command, "a command printing KEY=VALUE lines (e.g. sops -d secrets.env)")
        if problem:
            c.add(f, ct, "secrets_command", "secrets_command", problem)
    keep, f, ct = get("keep_releases", 5)
    if not isinstance(keep, int) or isinstance(keep, bool) or not 2 <= keep <= 1000:
        c.add(f, ct, "keep_releases", "keep_releases",
              "expected a number from 2 to 1000 (a rollback needs the previous release)")
    serial, f, ct = get("serial", 1)
    serial_items = serial if isinstance(serial, list) else [serial]
    if not serial_items:
        c.add(f, ct, "serial", "serial", "expected a batch size: 1, '25%', or a non-empty list like [1, '50%']")
    for i, item in enumerate(serial_items):
        if serial_item_problem(item) is not None:
            at, where = (serial, i) if isinstance(serial, list) else (ct, "serial")
            c.add(f, at, where, "serial", "expected a batch size: a whole number >= 1, a percentage from "
                  f"1% to 100%, or a list like [1, '50%']; got {item!r}")
    max_fail, f, ct = get("max_fail", 0)
    if isinstance(max_fail, bool) or not isinstance(max_fail, (int, float)) or not 0 <= max_fail <= 100:
        c.add(f, ct, "max_fail", "max_fail", "expected a percentage from 0 to 100")
    canary, f, ct = get("canary", {})
    bake: Any = 0
    if not isinstance(canary, dict) or set(canary) - {"bake"}:
        c.add(f, ct, "canary", "canary", "expected {bake: seconds}")
    else:
        bake = canary.get("bake", 0)
        if isinstance(bake, bool) or not isinstance(bake, (int, float)) or not 0 <= bake <= 3600:
            c.add(f, canary if "bake" in canary else ct, "bake" if "bake" in canary else "canary",
                  "canary.bake", "expected seconds to watch the canary, from 0 to 3600")
            bake = 0
    budget, f, ct = get("memory_budget", "80%")
    if isinstance(budget, str) and budget.endswith("%"):
        if not (re.fullmatch(r"\d+%", budget) and 1 <= int(budget[:-1]) <= 100):
            c.add(f, ct, "memory_budget", "memory_budget", "expected a percentage of host memory from 1% to 100%")
    else:
        try:
            if isinstance(budget, bool) or parse_size(budget) <= 0:
                raise ValueError(budget)
        except ValueError:
            c.add(f, ct, "memory_budget", "memory_budget", "expected a percentage of host memory ('80%') or a size ('2G')")
    if c.problems:
        raise ValidationError(sorted(c.problems, key=lambda p: (p.file, p.line)))
    return AppSpec(name=name, source=source_dir, app_ref=web_spec.app_ref, interface=web_spec.interface,
                   server=web_spec.server, threads=web_spec.threads, python=python, workers=web_spec.workers,
                   memory_per_worker=web_spec.memory_per_worker, port=web_spec.port, processes=tuple(processes), schedule=tuple(schedule), migrate=migrate,
                   health_path=health_path, health_timeout=float(health_timeout), domains=tuple(domains),
                   tls_internal=acme_email is None, acme_email=acme_email,
                   env=env[0], secrets=tuple(secrets),
                   secrets_file=secrets_file, secrets_command=secrets_command, database=database, backup=backup,
                   keep_releases=keep, serial=tuple(serial_items), max_fail=float(max_fail),
                   canary_bake=float(bake),
                   memory_budget=str(budget), migrate_timeout=float(migrate_timeout),
                   build=tuple(build), release=tuple(release_steps), static_url=static_url,
                   static_dir=static_dir, shared_dirs=tuple(shared_dirs),
                   file=str(spec_path), origins=origins)


@dataclass(frozen=True)
class Web:
    """The validated ``web:`` section: the app reference and how it is served."""

    app_ref: str = ""
    interface: str = "asgi"
    server: str = "uvicorn"
    workers: int | str = 2
    threads: int | None = None
    memory_per_worker: int | None = None
    port: int = 8000


_WEB_KEYS = ("asgi", "wsgi", "app", "server", "workers", "threads", "memory_per_worker", "port")
_WEB_FORMS = ("expected a mapping with the app, as {asgi: module:app} (uvicorn), {wsgi: module:application} "
              "(gunicorn) or {app: module:app} (ASGI, as before); e.g. web: {wsgi: mysite.wsgi:application}")


def _check_web(c: _Checker, web: Any, wf: str, wct: Any) -> Web:
    if not isinstance(web, dict):
        c.add(wf, wct, "web", "web", _WEB_FORMS)
        return Web()
    for key in web:
        if key not in _WEB_KEYS:
            c.add(wf, web, key, f"web.{key}", f"unknown key; expected {', '.join(_WEB_KEYS)}"
                  + did_you_mean(key, _WEB_KEYS))
    given = [k for k in ("asgi", "wsgi", "app") if k in web]
    interface = "wsgi" if given == ["wsgi"] else "asgi"
    ref: Any = ""
    if len(given) != 1:
        at = given[1] if len(given) > 1 else None
        if at:
            c.add(wf, web, at, f"web.{at}", f"give one of asgi:, wsgi: or app:, not {' and '.join(given)}")
        else:
            c.add(wf, wct, "web", "web", _WEB_FORMS)
    else:
        ref = web[given[0]]
        if not isinstance(ref, str) or not webserver.APP_REF.match(ref):
            example = "mysite.wsgi:application" if interface == "wsgi" else "example_app.main:app"
            c.add(wf, web, given[0], f"web.{given[0]}",
                  f"expected module:attribute of the {interface.upper()} app, e.g. {example}, or "
                  f"module:factory() for an app factory, e.g. myapp:create_app(); got {ref!r}")
            ref = ""
    server: Any = web.get("server", webserver.SERVERS[interface][0])
    if server not in webserver.SERVERS[interface]:
        c.add(wf, web, "server", "web.server", f"expected {' or '.join(webserver.SERVERS[interface])} to serve "
              f"{'an' if interface == 'asgi' else 'a'} {interface.upper()} app, got {server!r}")
        server = webserver.SERVERS[interface][0]
    threads: Any = web.get("threads")
    if threads is not None:
        if interface != "wsgi" or server != "gunicorn":
            c.add(wf, web, "threads", "web.threads", "threads: is for WSGI apps served by gunicorn (its gthread "
                  "worker); remove it for an ASGI app")
            threads = None
        elif isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 64:
            c.add(wf, web, "threads", "web.threads", f"expected a number of threads per worker (1-64), got {threads!r}")
            threads = None
    workers = web.get("workers", 2)
    if not (workers == "auto" or (isinstance(workers, int) and not isinstance(workers, bool) and 1 <= workers <= 64)):
        c.add(wf, web, "workers", "web.workers", "expected a number of worker processes (1-64) or 'auto'")
    mem: int | None = None
    if web.get("memory_per_worker") is not None:
        try:
            value = web["memory_per_worker"]
            if isinstance(value, bool) or parse_size(value) <= 0:
                raise ValueError(value)
            mem = parse_size(value)
        except ValueError:
            c.add(wf, web, "memory_per_worker", "web.memory_per_worker", "expected a size such as 150M or 1G")
    port = web.get("port", 8000)
    if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65000:
        c.add(wf, web, "port", "web.port", "expected a local port number from 1024 to 65000")
    return Web(str(ref), interface, str(server), workers, threads, mem, port)


_REL_DIR = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
_RESERVED_DIRS = {".shipit", "venv", ".git"}
_STATIC_URL = re.compile(r"^/(?:[A-Za-z0-9_.~-]+/)+$")


def relative_dir_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a directory of the release (relative, no ``..``, no dot-first
    names, not ``.shipit``/``venv``), or None. Letters, digits, ``_ . -`` and ``/`` only: it is
    written into the Caddy site and into shell commands."""
    if not isinstance(value, str) or not _REL_DIR.match(value) or ".." in value.split("/"):
        return ("expected a directory relative to the app's source, of letters, digits, _ . - and /, "
                f"e.g. staticfiles or var/media; got {value!r}")
    if value.split("/")[0] in _RESERVED_DIRS:
        return f"{value!r} is shipit's own (.shipit, venv) or the VCS's"
    return None


def _check_commands(c: _Checker, raw: Any, f: str, ct: Any, key: str, example: str) -> list[str]:
    if isinstance(raw, str):
        raw_list: list[Any] = [raw]
        where_list: Any = None
    elif isinstance(raw, list):
        raw_list, where_list = raw, raw
    else:
        c.add(f, ct, key, key, f"expected a list of one-line commands, e.g. [{example}]")
        return []
    out: list[str] = []
    for i, command in enumerate(raw_list):
        problem = command_problem(command, f"a one-line command (e.g. {example})")
        if problem:
            c.add(f, where_list if where_list is not None else ct, i if where_list is not None else key,
                  f"{key}[{i}]", problem)
        else:
            out.append(command)
    return out


def _check_static(c: _Checker, static: Any, f: str, ct: Any) -> tuple[str | None, str | None]:
    if static is None:
        return None, None
    if not isinstance(static, dict) or set(static) - {"url", "dir"} or "dir" not in static:
        c.add(f, ct, "static", "static", "expected {url: /static/, dir: staticfiles} (dir relative to the source)")
        return None, None
    url = static.get("url", "/static/")
    ok = True
    if not isinstance(url, str) or not _STATIC_URL.match(url):
        c.add(f, static, "url", "static.url", f"expected a URL path prefix that starts and ends with /, "
              f"e.g. /static/ (letters, digits, _ . ~ -); got {url!r}")
        ok = False
    problem = relative_dir_problem(static.get("dir"))
    if problem:
        c.add(f, static, "dir", "static.dir", problem)
        ok = False
    return (str(url), str(static["dir"]).rstrip("/")) if ok else (None, None)


def _check_shared_dirs(c: _Checker, raw: Any, f: str, ct: Any) -> list[str]:
    if not isinstance(raw, list):
        c.add(f, ct, "shared_dirs", "shared_dirs", "expected a list of directories, e.g. [media]")
        return []
    out: list[str] = []
    for i, d in enumerate(raw):
        problem = relative_dir_problem(d)
        if problem:
            c.add(f, raw, i, f"shared_dirs[{i}]", problem)
        elif d in out or any(d.startswith(o + "/") or o.startswith(d + "/") for o in out):
            c.add(f, raw, i, f"shared_dirs[{i}]", f"{d!r} is listed twice or inside another shared dir")
        else:
            out.append(d)
    return out


def _check_processes(c: _Checker, raw: Any, f: str, ct: Any) -> list[Process]:
    if not isinstance(raw, list):
        c.add(f, ct, "processes", "processes", "expected a list of {name, command, instances}")
        return []
    processes: list[Process] = []
    seen: set[str] = set()
    for i, p in enumerate(raw):
        where = f"processes[{i}]"
        if not isinstance(p, dict):
            c.add(f, raw, i, where, "expected {name: short-name, command: a one-line command, instances: 1}")
            continue
        ok = True
        for key in p:
            if key not in ("name", "command", "instances"):
                c.add(f, p, key, f"{where}.{key}", "unknown key; expected name, command, instances"
                      + did_you_mean(key, ("name", "command", "instances")))
                ok = False
        name = p.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            c.add(f, p, "name", f"{where}.name", "expected a short lowercase name (letters, digits, -), e.g. 'worker'")
            ok = False
        elif name in seen:
            c.add(f, p, "name", f"{where}.name", f"another process is already named {name!r}")
            ok = False
        else:
            seen.add(name)
        command = p.get("command")
        problem = command_problem(command, "the process's command line")
        if problem is None and "'" in str(command):
            problem = "expected a command without ' (it is written into the env file in single quotes)"
        if problem:
            c.add(f, p, "command", f"{where}.command", problem)
            ok = False
        instances = p.get("instances", 1)
        if isinstance(instances, bool) or not isinstance(instances, int) or not 1 <= instances <= 64:
            c.add(f, p, "instances", f"{where}.instances", f"expected a number of instances from 1 to 64, got {instances!r}")
            ok = False
        if ok:
            processes.append(Process(str(name), str(command), int(instances)))
    return processes


_CALENDAR_CHARS = re.compile(r"^[A-Za-z0-9 ,.*:/~+_-]+$")
CALENDAR_SHORTHANDS = ("minutely", "hourly", "daily", "monthly", "weekly", "yearly", "quarterly",
                       "semiannually", "annually")
"""The one-word ``OnCalendar=`` values systemd knows (systemd.time(7))."""
_DURATION = re.compile(r"^(?:(\d+)\s*(d|h|min|m|s|sec)\s*)+$")
_DURATION_PART = re.compile(r"(\d+)\s*(d|h|min|m|s|sec)")
_DURATION_UNITS = {"d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1, "sec": 1}
MAX_JOB_TIMEOUT = 86400.0
DEFAULT_JOB_TIMEOUT = 3600.0
_JOB_KEYS = ("name", "command", "on_calendar", "on", "timeout", "random_delay")


def parse_duration(value: Any) -> float:
    """Seconds from a number of seconds or a span such as ``90s``, ``30m``, ``1h30m``, ``1d``
    (units d, h, m/min, s/sec, as systemd.time(7) spells them).

    Raises:
        ValueError: anything else (a bool, a negative number, an unknown unit).
    """
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(value)
        return float(value)
    if not isinstance(value, str) or not _DURATION.fullmatch(value.strip()):
        raise ValueError(value)
    return float(sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value)))


def calendar_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a systemd ``OnCalendar=`` expression, as far as a pure check
    sees (systemd.time(7) parses the rest on the host): a non-empty one-line string of the
    characters calendar expressions use (letters, digits, space and ``, . * : / ~ + _ -``: no
    ``%``, ``$``, quotes or backslashes, which a unit file would read otherwise), at most 200
    characters; a single word must be one of :data:`CALENDAR_SHORTHANDS`. None when it can."""
    example = "e.g. daily, hourly, \"*-*-* 03:00:00\" or \"Mon..Fri *-*-* 09:00\""
    if not isinstance(value, str):
        return f"expected a systemd OnCalendar expression ({example}), got {type_name(value)} {value!r}"
    text = value.strip()
    if not text:
        return f"expected a systemd OnCalendar expression ({example}), got an empty string"
    if "\n" in value or "\r" in value:
        return f"expected a systemd OnCalendar expression on one line ({example})"
    if len(text) > 200 or not _CALENDAR_CHARS.fullmatch(text):
        return (f"expected a systemd OnCalendar expression ({example}): letters, digits, spaces and "
                f", . * : / ~ + _ - only; got {value!r}")
    if text.isalpha() and text.lower() not in CALENDAR_SHORTHANDS:
        return (f"{value!r} is not one of systemd's calendar shorthands ({', '.join(CALENDAR_SHORTHANDS)})"
                + did_you_mean(text.lower(), CALENDAR_SHORTHANDS))
    return None


def _check_schedule(c: _Checker, raw: Any, f: str, ct: Any) -> list[Job]:
    """The ``schedule:`` list (see :class:`Job`). YAML 1.1 reads a bare ``on`` key as the
    boolean true: that key is taken as ``on``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        c.add(f, ct, "schedule", "schedule", "expected a list of jobs, e.g. "
              "[{name: cleanup, command: \"python manage.py clearsessions\", on_calendar: daily}]")
        return []
    jobs: list[Job] = []
    seen: set[str] = set()
    for i, job in enumerate(raw):
        where = f"schedule[{i}]"
        if not isinstance(job, dict):
            c.add(f, raw, i, where, "expected {name: short-name, command: a one-line command, on_calendar: daily}")
            continue
        ok = True
        for key in job:
            name_of_key = "on" if key is True else key
            if name_of_key not in _JOB_KEYS:
                c.add(f, job, key, f"{where}.{key}", f"unknown key; expected {', '.join(_JOB_KEYS)}"
                      + did_you_mean(str(key), _JOB_KEYS))
                ok = False
        name = job.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            c.add(f, job, "name", f"{where}.name", "expected a short lowercase name (letters, digits, -), "
                  f"e.g. 'cleanup'; got {name!r}")
            ok = False
        elif name in seen:
            c.add(f, job, "name", f"{where}.name", f"another job is already named {name!r}")
            ok = False
        else:
            seen.add(name)
        command = job.get("command")
        problem = command_problem(command, "the job's command line (e.g. python manage.py clearsessions)")
        if problem:
            c.add(f, job, "command", f"{where}.command", problem)
            ok = False
        calendar = job.get("on_calendar")
        calendars = calendar if isinstance(calendar, list) else [calendar]
        if "on_calendar" not in job:
            c.add(f, job, "name", f"{where}.on_calendar", "missing: when the job runs, as systemd's OnCalendar "
                  "(e.g. daily, hourly, \"*-*-* 03:00:00\")")
            ok = False
        elif not calendars:
            c.add(f, job, "on_calendar", f"{where}.on_calendar", "expected at least one OnCalendar expression")
            ok = False
        for j, one in enumerate(calendars if "on_calendar" in job else []):
            problem = calendar_problem(one)
            if problem:
                at, key, label = ((calendar, j, f"{where}.on_calendar[{j}]") if isinstance(calendar, list)
                                  else (job, "on_calendar", f"{where}.on_calendar"))
                c.add(f, at, key, label, problem)
                ok = False
        on_key = "on" if "on" in job else True
        on = job.get(on_key, "leader")
        if on not in ("leader", "all"):
            c.add(f, job, on_key, f"{where}.on", f"expected leader (the leader web host only, the default) "
                  f"or all (every web host); got {on!r}")
            ok = False
        timeout: float = DEFAULT_JOB_TIMEOUT
        if "timeout" in job:
            try:
                timeout = parse_duration(job["timeout"])
                if not 1 <= timeout <= MAX_JOB_TIMEOUT:
                    raise ValueError(timeout)
            except ValueError:
                c.add(f, job, "timeout", f"{where}.timeout", "expected how long a run may take before it is "
                      f"stopped, from 1 s to 1 d: seconds or a span such as 90s, 30m, 1h30m; got {job['timeout']!r}")
                ok = False
        delay = 0.0
        if "random_delay" in job:
            try:
                delay = parse_duration(job["random_delay"])
                if delay > MAX_JOB_TIMEOUT:
                    raise ValueError(delay)
            except ValueError:
                c.add(f, job, "random_delay", f"{where}.random_delay", "expected a delay of at most 1 d: "
                      f"seconds or a span such as 30s, 5m; got {job['random_delay']!r}")
                ok = False
        if ok:
            jobs.append(Job(str(name), str(command), tuple(str(x).strip() for x in calendars), str(on),
                            float(timeout), float(delay)))
    return jobs


def _check_health(c: _Checker, health: Any, f: str, ct: Any) -> tuple[str, float]:
    if health is None:
        return "/health", 30.0
    if not isinstance(health, dict):
        c.add(f, ct, "health", "health", "expected {path: /health, timeout: seconds}")
        return "/health", 30.0
    for key in health:
        if key not in ("path", "timeout"):
            c.add(f, health, key, f"health.{key}", "unknown key; expected path, timeout"
                  + did_you_mean(key, ("path", "timeout")))
    path = health.get("path", "/health")
    if (problem := health_path_problem(path)) is not None:
        c.add(f, health, "path", "health.path", problem)
        path = "/health"
    timeout = health.get("timeout", 30)
    problem = _timeout_problem(timeout, MAX_HEALTH_TIMEOUT)
    if problem:
        c.add(f, health, "timeout", "health.timeout", problem)
        timeout = 30
    return path, float(timeout)


def _check_domains(c: _Checker, domains: Any, f: str, ct: Any) -> list[str]:
    if domains is None:
        c.add(f, ct, "domains", "domains", "a deploy needs at least one domain: domains: [example.com]")
        return []
    if not isinstance(domains, list):
        c.add(f, ct, "domains", "domains", f"expected a list of domain names, got {type_name(domains)}")
        return []
    if not domains:
        c.add(f, ct, "domains", "domains", "expected at least one domain name (Caddy serves the app on them)")
    result: list[str] = []
    for i, domain in enumerate(domains):
        value = domain.lower() if isinstance(domain, str) else domain
        problem = domain_problem(value)
        if problem:
            c.add(f, domains, i, f"domains[{i}]", problem)
        elif value in result:
            c.add(f, domains, i, f"domains[{i}]", f"{value!r} is listed twice")
        else:
            result.append(value)
    return result


def _check_secrets(c: _Checker, secrets: Any, f: str, ct: Any) -> list[str]:
    if secrets is None:
        return []
    if not isinstance(secrets, list):
        c.add(f, ct, "secrets", "secrets", "expected a list of secret names (environment variable names)")
        return []
    result: list[str] = []
    for i, name in enumerate(secrets):
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            c.add(f, secrets, i, f"secrets[{i}]", f"expected a secret name like DB_PASSWORD ([A-Za-z_][A-Za-z0-9_]*), got {name!r}")
        elif name in result:
            c.add(f, secrets, i, f"secrets[{i}]", f"{name} is listed twice")
        else:
            result.append(name)
    return result


def _check_env(c: _Checker, env: Any, f: str, ct: Any, secrets: list[str]) -> tuple[dict[str, str], set[str]]:
    """Validated env values and the secrets they use."""
    used: set[str] = set()
    if env is None:
        return {}, used
    if not isinstance(env, dict):
        c.add(f, ct, "env", "env", "expected a mapping of VARIABLE_NAME: value")
        return {}, used
    jinja = make_environment()
    result: dict[str, str] = {}
    for key, value in env.items():
        where = f"env.{key}"
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            c.add(f, env, key, where, "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            c.add(f, env, key, where, f"expected a string or number (quote it; use \"\" for empty), got {type_name(value)}")
            continue
        text = str(value)
        is_template = "{{" in text or "{%" in text
        if "\x00" in text:
            c.add(f, env, key, where, "values cannot contain a NUL byte (no environment variable can hold one)")
            continue
        if is_template:
            problems = template_problems(jinja, text)
            if not problems:
                names, problems = secret_references(jinja, text)
                used |= names
                for missing in sorted(names - set(secrets)):
                    problems.append(f"uses secrets.{missing}, which is not listed: add {missing} to secrets:")
                undeclared = sorted(variables_in(jinja, text) - ENV_VARIABLES)
                if undeclared:
                    problems.append(f"undefined variable {', '.join(undeclared)}; env values may use "
                                    f"{', '.join(sorted(ENV_VARIABLES))}")
            if problems:
                for message in problems:
                    c.add(f, env, key, where, message)
                continue
        result[key] = text
    return result, used


def _check_database(c: _Checker, database: Any, f: str, ct: Any, secrets: list[str]) -> dict[str, str] | None:
    if database is None:
        return None
    expected = "expected {name: db, user: role, password_secret: SECRET_NAME}"
    if not isinstance(database, dict):
        c.add(f, ct, "database", "database", expected)
        return None
    ok = True
    for key in database:
        if key not in _DATABASE_KEYS:
            c.add(f, database, key, f"database.{key}", f"unknown key; expected {', '.join(_DATABASE_KEYS)}"
                  + did_you_mean(key, _DATABASE_KEYS))
            ok = False
    for key in ("name", "user"):
        value = database.get(key)
        if not isinstance(value, str) or not _SQL_IDENT.fullmatch(value):
            c.add(f, database, key, f"database.{key}", "expected an SQL identifier: lowercase letters, digits "
                  f"and _, not starting with a digit, at most 63 characters; got {value!r}")
            ok = False
        elif value in _POSTGRES_RESERVED:
            c.add(f, database, key, f"database.{key}", f"{value!r} is PostgreSQL's own; choose the app's name")
            ok = False
    secret = database.get("password_secret")
    if secret is None:
        c.add(f, database, "password_secret", "database.password_secret",
              "expected the name of the secret holding the role's password (listed under secrets:)")
        ok = False
    elif not isinstance(secret, str) or secret not in secrets:
        c.add(f, database, "password_secret", "database.password_secret",
              f"{secret!r} is not listed under secrets: add it to secrets:")
        ok = False
    return {k: str(database[k]) for k in ("name", "user", "password_secret")} if ok else None


_DATABASE_KEYS = ("name", "user", "password_secret", "backup")
_BACKUP_KEYS = ("before_migrate", "keep")


def _check_backup(c: _Checker, database: Any, f: str, ct: Any) -> BackupPolicy | None:
    """``database.backup``: absent -> None; a mapping of ``before_migrate`` (true/false,
    default true) and ``keep`` (1-1000, default 7)."""
    if not isinstance(database, dict) or database.get("backup") is None:
        return None
    raw = database["backup"]
    expected = "expected {before_migrate: true, keep: 7} (keep: how many backups the db host keeps)"
    if not isinstance(raw, dict):
        c.add(f, database, "backup", "database.backup", f"{expected}; got {type_name(raw)} {raw!r}")
        return None
    ok = True
    for key in raw:
        if key not in _BACKUP_KEYS:
            c.add(f, raw, key, f"database.backup.{key}", f"unknown key; expected {', '.join(_BACKUP_KEYS)}"
                  + did_you_mean(key, _BACKUP_KEYS))
            ok = False
    before = raw.get("before_migrate", True)
    if not isinstance(before, bool):
        c.add(f, raw, "before_migrate", "database.backup.before_migrate",
              f"expected true or false, got {type_name(before)} {before!r}")
        ok = False
    keep = raw.get("keep", 7)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= 1000:
        c.add(f, raw, "keep", "database.backup.keep",
              f"expected how many backups to keep, a whole number from 1 to 1000; got {keep!r}")
        ok = False
    return BackupPolicy(bool(before), int(keep)) if ok else None


def _check_unused_secrets(c: _Checker, raw: Any, f: str, ct: Any, env: set[str],
                          database_secret: Any) -> None:
    if not isinstance(raw, list):
        return
    used = env | {database_secret}
    for i, name in enumerate(raw):
        if isinstance(name, str) and _ENV_NAME.fullmatch(name) and name not in used:
            c.add(f, raw, i, f"secrets[{i}]", f"secret {name} is never used: map it in env: e.g. "
                  f"{name}: '{{{{ secrets.{name} }}}}' (or name it as database.password_secret)")


#: Seconds ``secrets_command`` may run (a password manager may ask to unlock).
SECRETS_COMMAND_TIMEOUT = 120.0


def run_secrets_command(spec: AppSpec, env_name: str) -> dict[str, str]:
    """Run ``spec.secrets_command`` on the runner and parse its stdout as dotenv lines.

    ``sh -c`` in the directory of ``shipit.yml`` with the runner's environment plus
    ``SHIPIT_ENV``; stdin is the terminal's (an ``op`` or ``bws`` login may prompt); at most
    :data:`SECRETS_COMMAND_TIMEOUT` seconds. Its stdout is parsed by python-dotenv (quoted
    values keep quotes, ``$``, spaces and newlines) and never printed; on failure only the
    last line of its stderr is quoted.

    Raises:
        ValidationError: it could not start, timed out or exited non-zero (key
            ``secrets_command``), before any connection.
    """
    import subprocess

    assert spec.secrets_command is not None
    file, line = spec.where("secrets_command")
    cwd = Path(spec.file).parent if spec.file else Path.cwd()

    def fail(why: str) -> ValidationError:
        return ValidationError([Problem(file, line, "secrets_command", why)])

    try:
        done = subprocess.run(["/bin/sh", "-c", spec.secrets_command], cwd=cwd, capture_output=True,
                              env={**os.environ, "SHIPIT_ENV": env_name}, timeout=SECRETS_COMMAND_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise fail(f"still running after {SECRETS_COMMAND_TIMEOUT:g} s; stopped") from None
    except OSError as exc:
        raise fail(f"could not run: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:300]
        raise fail(f"exited {done.returncode}" + (f": {last}" if last else ""))
    try:
        text = done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise fail("its output is not UTF-8 text (expected KEY=VALUE lines)") from None
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text), interpolate=False).items() if v is not None}


def load_secrets(spec: AppSpec, env_name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the spec's secrets: the runner's environment first, then what
    ``secrets_command`` prints (run only if a secret is not in the environment, see
    :func:`run_secrets_command`), then the secrets file.

    The secrets file (default ``~/.config/shipit/<env>.env``) is a dotenv file, read with
    python-dotenv (``KEY=VALUE``, quoted values may hold quotes, ``$``, spaces and newlines).
    A value may hold any text but a NUL byte (no environment variable can); problems name the
    secret, never its value.

    Raises:
        ValidationError: a secret has no value or an impossible one, or the secrets file cannot
            be read; each problem names the secret, where it is listed, and both places looked.
    """
    environ = os.environ if environ is None else environ
    path = Path((spec.secrets_file or "~/.config/shipit/{env}.env").replace("{env}", env_name)).expanduser()
    from_file: dict[str, str] = {}
    problems: list[Problem] = []
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            file, line = spec.where("secrets_file")
            raise ValidationError([Problem(file, line, "secrets_file", f"cannot read {path}: {exc}")]) from None
        from_file = {k: v for k, v in dotenv_values(stream=io.StringIO(text), interpolate=False).items()
                     if v is not None}
    from_command: dict[str, str] = {}
    if spec.secrets_command and any(not environ.get(name) for name in spec.secrets):
        from_command = run_secrets_command(spec, env_name)
    values: dict[str, str] = {}
    for name in spec.secrets:
        file, line = spec.where(f"secrets.{name}")
        secret = environ.get(name) or from_command.get(name) or from_file.get(name)
        if not secret:
            also = " (secrets_command did not print it)" if spec.secrets_command else ""
            problems.append(Problem(file, line, f"secrets.{name}",
                                    f"no value: set the environment variable {name} or add {name}=… to {path}{also}"))
        elif "\x00" in secret:
            problems.append(Problem(file, line, f"secrets.{name}",
                                    "its value contains a NUL byte, which no environment variable can hold"))
        else:
            values[name] = secret
    if problems:
        raise ValidationError(problems)
    return values
