"""``shipit init``: look at an app's directory and write a commented ``shipit.yml``, an
``inventories/prod.example.yml`` and, with ``--ci github``, a GitHub Actions workflow.

Static inspection only (the app is never imported): the dependencies (``pyproject.toml``'s
``[project].dependencies``, ``requirements*.txt``), the layout (``manage.py``, a ``src/``
layout) and the Python files' syntax trees (:mod:`ast`), looking for a module-level web app:
``app = FastAPI(...)`` / ``Flask(...)`` / ``Starlette(...)`` / ``Quart(...)`` / ``Litestar(...)``,
Django's ``application`` in the settings package's ``wsgi.py``, an application factory (a
module-level ``create_app()``/``make_app()``/... building one of those, callable with no
arguments: ``module:create_app()``), or a plain callable named
``app``/``application`` (``(scope, receive, send)``: ASGI, ``(environ, start_response)``: WSGI).

Pure: :func:`detect` reads files and returns a :class:`Detected`; :func:`render_spec`,
:func:`render_inventory` and :func:`render_workflow` return text; :func:`plan_files` says
which files would be written and which already exist. Writing is the CLI's
(:func:`shipit.daytwo.init_cmd`).
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from shipit.errors import Problem, ValidationError
from shipit.layout import Layout

#: Constructors of framework app objects -> (framework, interface).
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "FastAPI": ("fastapi", "asgi"), "Starlette": ("starlette", "asgi"), "Quart": ("quart", "asgi"),
    "Litestar": ("litestar", "asgi"), "Flask": ("flask", "wsgi"),
}
#: Names of application factories looked for (Flask's ``create_app()`` pattern): a module-level
#: function of one of these names, callable with no arguments, that constructs a framework object.
FACTORY_NAMES = ("create_app", "make_app", "get_app", "get_application", "app_factory")
#: Directories never searched for the app.
SKIP_DIRS = {"tests", "test", "migrations", "node_modules", "venv", "env", "build", "dist", "site-packages",
             "__pycache__", "alembic", "docs"}
#: Files looked at, at most (a big repository is not read whole).
MAX_FILES = 2000

_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
#: Extras that bring a web server along: (distribution, extra) -> the distributions it adds
#: (FastAPI's ``standard`` and ``all`` install uvicorn).
IMPLIED_BY_EXTRAS: dict[tuple[str, str], tuple[str, ...]] = {
    ("fastapi", "standard"): ("uvicorn",), ("fastapi", "standard-no-fastapi-cloud-cli"): ("uvicorn",),
    ("fastapi", "all"): ("uvicorn",),
}
_SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")
_STATIC_ROOT = re.compile(r"""^STATIC_ROOT\s*=\s*BASE_DIR\s*/\s*["'](\w[\w-]*)["']""", re.M)


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lowercase, runs of ``-_.`` -> ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Detected:
    """What :func:`detect` found in an app's directory.

    ``framework``: fastapi, django, flask, starlette, quart, litestar, or ``asgi``/``wsgi``
    (a plain callable); ``app_ref``: ``module:attribute`` or ``module:factory()``;
    ``interface``: asgi or wsgi;
    ``source_file``: where the app object is (relative); ``dependencies``: normalized names;
    ``env``: (name, value) pairs for ``env:``, values as written in YAML (a template quoted);
    ``secrets``: names for ``secrets:``, each used by an ``env:`` value; ``database``: a
    PostgreSQL driver is a dependency; ``database_env``: the code reads its database from the
    environment and ``env`` maps it (the spec then declares ``database:``);
    ``notes``: things the user should know (a missing server dependency, ...).
    """

    name: str
    framework: str
    app_ref: str
    interface: str
    source_file: str
    dependencies: frozenset[str]
    migrate: str | None = None
    health_path: str = "/health"
    env: tuple[tuple[str, str], ...] = ()
    build: tuple[str, ...] = ()
    static_dir: str | None = None
    database: bool = False
    database_env: bool = False
    secrets: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def server(self) -> str:
        return "uvicorn" if self.interface == "asgi" else "gunicorn"


def dependencies(root: Path) -> frozenset[str]:
    """Normalized names of the app's dependencies: ``[project].dependencies`` (and optional
    ones) of ``pyproject.toml`` and every ``requirements*.txt`` at the top, with what their
    extras imply (:data:`IMPLIED_BY_EXTRAS`). Unreadable files count as none."""
    names: set[str] = set()
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text()).get("project", {})
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            project = {}
        deps = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            deps += list(extra)
        for dep in deps:
            if isinstance(dep, str):
                names |= _requirement_names(dep)
    for req in sorted(root.glob("requirements*.txt")):
        try:
            lines = req.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                names |= _requirement_names(line)
    return frozenset(names)


def _requirement_names(requirement: str) -> set[str]:
    """The normalized name a requirement line names, plus what its extras imply
    (:data:`IMPLIED_BY_EXTRAS`): ``fastapi[standard]>=0.114`` -> {fastapi, uvicorn}."""
    m = _REQ_NAME.match(requirement)
    if m is None:
        return set()
    name = normalize(m.group(1))
    extras = [normalize(e.strip()) for e in (m.group(2) or "").split(",") if e.strip()]
    return {name, *(d for e in extras for d in IMPLIED_BY_EXTRAS.get((name, e), ()))}


def _project_name(root: Path) -> str:
    """The app's name for shipit: the pyproject project's name, else the directory's, made a
    valid app name (``[a-z][a-z0-9-]{0,30}``; ``shipit-``/``-example`` decorations kept)."""
    raw = root.resolve().name
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            raw = str(tomllib.loads(pyproject.read_text()).get("project", {}).get("name") or raw)
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            pass
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:31].rstrip("-")
    return name or "app"


def _source_roots(root: Path) -> list[Path]:
    """Where importable modules start: ``src/`` when there is one, and the directory itself."""
    return [r for r in (root / "src", root) if r.is_dir()]


def _python_files(base: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base).parts
        if any(p.startswith(".") or p in SKIP_DIRS for p in rel[:-1]) or (base.name != "src" and rel[0] == "src"):
            continue
        if not all(p.isidentifier() for p in (*rel[:-1], path.stem)):
            continue  # not importable as a module path
        found.append(path)
        if len(found) >= MAX_FILES:
            break
    return found


def _module_of(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    return None


def _framework_built_in(node: ast.FunctionDef) -> tuple[str, str] | None:
    """(framework, interface) of the first framework object constructed in ``node``'s body."""
    for sub in ast.walk(node):
        called = _call_name(sub) if isinstance(sub, ast.Call) else None
        if called in FRAMEWORKS:
            return FRAMEWORKS[called]
    return None


def _no_required_args(node: ast.FunctionDef) -> bool:
    """Whether ``node`` can be called with no arguments (every parameter has a default)."""
    a = node.args
    required_kw = [d for d in a.kw_defaults if d is None]
    return len(a.posonlyargs) + len(a.args) <= len(a.defaults) and not required_kw


def _candidates(tree: ast.Module) -> list[tuple[int, str, str, str]]:
    """(rank, attribute, framework, interface) of each module-level app in ``tree``; a lower
    rank is a better guess (framework objects named ``app`` first, then other framework objects
    and app factories, whose attribute is the call ``create_app()``, then plain callables)."""
    out: list[tuple[int, str, str, str]] = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            called = _call_name(node.value) if node.value is not None else None
            if called in FRAMEWORKS:
                for target in targets:
                    if isinstance(target, ast.Name):
                        framework, interface = FRAMEWORKS[called]
                        out.append((0 if target.id == "app" else 1, target.id, framework, interface))
            elif called == "get_wsgi_application":
                for target in targets:
                    if isinstance(target, ast.Name):
                        out.append((0, target.id, "django", "wsgi"))
        elif isinstance(node, ast.FunctionDef) and node.name in FACTORY_NAMES and _no_required_args(node):
            built = _framework_built_in(node)
            if built is not None:
                out.append((1, f"{node.name}()", *built))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ("app", "application"):
            args = [a.arg for a in node.args.args]
            if isinstance(node, ast.AsyncFunctionDef) and len(args) == 3:
                out.append((2, node.name, "asgi", "asgi"))
            elif isinstance(node, ast.FunctionDef) and len(args) == 2:
                out.append((2, node.name, "wsgi", "wsgi"))
    return out


def _find_app(root: Path) -> tuple[str, str, str, str] | None:
    """(module:attribute, framework, interface, file relative to root) of the best guess."""
    best: tuple[tuple[int, int, str], tuple[str, str, str, str]] | None = None
    for base in _source_roots(root):
        for path in _python_files(base):
            try:
                tree = ast.parse(path.read_bytes(), filename=str(path))
            except (SyntaxError, ValueError, OSError):
                continue
            module = _module_of(path, base)
            if not module:
                continue
            for rank, attr, framework, interface in _candidates(tree):
                key = (rank, module.count("."), module)
                if best is None or key < best[0]:
                    best = (key, (f"{module}:{attr}", framework, interface, str(path.relative_to(root))))
    return best[1] if best else None


def _mentions_health(root: Path) -> bool:
    for base in _source_roots(root):
        for path in _python_files(base)[:500]:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if re.search(r"""["']/?health/?["']""", text):
                return True
    return False


def detect(root: Path) -> Detected:
    """Find the app in ``root`` (see the module docstring). Reads files, imports nothing.

    Raises:
        ValidationError: ``root`` is not a directory, or no web app could be found (the
            message says what was looked for).
    """
    if not root.is_dir():
        raise ValidationError([Problem(str(root), 0, "", "not a directory")])
    deps = dependencies(root)
    notes: list[str] = []
    name = _project_name(root)
    found: tuple[str, str, str, str] | None = None
    env: list[tuple[str, str]] = []
    build: list[str] = []
    migrate: str | None = None
    static_dir: str | None = None
    secrets: list[str] = []
    manage = root / "manage.py"
    if manage.is_file():  # Django: the settings module names the project package
        m = _SETTINGS.search(manage.read_text(errors="replace"))
        if m:
            settings = m.group(1)
            package = settings.rsplit(".", 1)[0]
            wsgi = root.joinpath(*package.split("."), "wsgi.py")
            if wsgi.is_file():
                found = (f"{package}.wsgi:application", "django", "wsgi", str(wsgi.relative_to(root)))
            env.append(("DJANGO_SETTINGS_MODULE", settings))
            migrate = "python manage.py migrate --noinput"
            settings_file = root.joinpath(*settings.split(".")).with_suffix(".py")
            text = settings_file.read_text(errors="replace") if settings_file.is_file() else ""
            if (s := _STATIC_ROOT.search(text)) is not None:
                static_dir = s.group(1)
                build.append("python manage.py collectstatic --noinput")
            read = django_settings_env(text)
            settings_name = settings_file.name
            if read.get("ALLOWED_HOSTS"):  # the health check asks for the first domain too
                env.append((str(read["ALLOWED_HOSTS"]), "\"{{ domains | join(',') }}\""))
            elif "ALLOWED_HOSTS" in read:
                notes.append(f"ALLOWED_HOSTS is fixed in {settings_name}: it must hold your domains, or be "
                             "read from the environment (env: then sets it from the domains)")
            if read.get("SECRET_KEY"):
                secret = str(read["SECRET_KEY"])
                env.append((secret, f"\"{{{{ secrets.{secret} }}}}\""))
                secrets.append(secret)
            elif "SECRET_KEY" in read:
                notes.append(f"SECRET_KEY is written in {settings_name}: read it from the environment, e.g. "
                             "os.environ[\"DJANGO_SECRET_KEY\"], and list it under secrets:")
            if not (root / "pyproject.toml").is_file() and (root / package).is_dir():
                name = _project_name(root / package)  # no project name: the project package's
    if found is None:
        found = _find_app(root)
    if found is None:
        raise ValidationError([Problem(str(root), 0, "", "no web app found: looked for manage.py (Django) and "
                                       "a module-level app object (app = FastAPI()/Flask()/Starlette()..., an "
                                       "app factory create_app() building one, or an ASGI/WSGI callable named "
                                       "app or application) in the Python files; "
                                       "no file was written")])
    app_ref, framework, interface, source_file = found
    if migrate is None:
        if (root / "alembic.ini").is_file():
            migrate = "alembic upgrade head"
        elif "flask-migrate" in deps:
            migrate = "flask db upgrade"
    server = "uvicorn" if interface == "asgi" else "gunicorn"
    if deps and server not in deps:
        notes.append(f"add {server} to your dependencies: shipit serves {interface.upper()} apps with it")
    database = bool(deps & {"psycopg", "psycopg2", "psycopg2-binary", "asyncpg", "psycopg-binary"})
    db_env = database_env(_env_names(root), deps) if database else []
    if db_env:
        env += db_env
        secrets.append(DB_SECRET)
    return Detected(name=name, framework=framework, app_ref=app_ref, interface=interface,
                    source_file=source_file, dependencies=deps, migrate=migrate,
                    health_path="/health" if _mentions_health(root) else "/",
                    env=tuple(env), build=tuple(build), static_dir=static_dir, database=database,
                    database_env=bool(db_env), secrets=tuple(secrets), notes=tuple(notes))


#: Calls that read one environment variable, named by their first argument: ``os.getenv``,
#: django-environ's ``env(...)``, python-decouple's ``config(...)``; and django-environ's typed
#: readers, called on its ``env`` object (``env.str(...)``, ``env.list(...)``).
_ENV_READERS = {"getenv", "env", "config"}
_ENV_TYPED_READERS = {"str", "list", "bool", "int"}


def _env_variable_read(value: ast.expr) -> str | None:
    """The name of the environment variable ``value`` reads (``os.environ["X"]``,
    ``os.environ.get("X", ...)``, ``os.getenv("X")``, ``env("X")``, ``config("X")``, also inside
    e.g. ``.split(",")``), or None."""
    for node in ast.walk(value):
        arg: ast.expr | None = None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            arg = node.slice
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and isinstance(func.value, ast.Attribute) \
                    and func.value.attr == "environ":
                arg = node.args[0]
            elif _call_name(node) in _ENV_READERS or (
                    isinstance(func, ast.Attribute) and func.attr in _ENV_TYPED_READERS
                    and isinstance(func.value, ast.Name) and func.value.id == "env"):
                arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and re.fullmatch(r"[A-Za-z_]\w*", arg.value):
            return arg.value
    return None


def django_settings_env(text: str) -> dict[str, str | None]:
    """For Django settings source ``text``: ``SECRET_KEY`` and ``ALLOWED_HOSTS`` -> the
    environment variable each is read from (None: set in the file itself). A setting the file
    does not assign at module level is absent. Pure; a file that does not parse gives {}."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, str | None] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ("SECRET_KEY", "ALLOWED_HOSTS"):
                    found[target.id] = _env_variable_read(node.value)
    return found


#: An environment variable holding one part of the database's address, by its last word:
#: ``DATABASE_HOST``, ``POSTGRES_SERVER``, ``DB_NAME``, ``POSTGRES_DB``, ``PGUSER``, ...
_DB_PART = re.compile(r"^(?:DATABASE|DB|POSTGRES|POSTGRESQL|PG)_?"
                      r"(HOST|SERVER|NAME|DB|DATABASE|USER|USERNAME|PASSWORD|PASS)$")
#: An environment variable holding the database's URL.
_DB_URL = re.compile(r"^(?:DATABASE|DB|POSTGRES|POSTGRESQL)_URL$")
#: The secret init names for the database's password.
DB_SECRET = "DB_PASSWORD"
_DB_HOST = "{{ hostvars[groups.db[0]].address }}"


def env_names_read(tree: ast.Module) -> set[str]:
    """Names of the environment variables a module reads (pure): ``os.environ["X"]``,
    ``os.environ.get("X")``, ``os.getenv("X")``, ``"X" in os.environ``, ``env("X")``/``config("X")``
    (django-environ, python-decouple), and the fields of a pydantic-settings ``BaseSettings`` class (read from
    the environment by name, here uppercased)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
                (b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "")
                == "BaseSettings" for b in node.bases):
            names |= {n.target.id.upper() for n in node.body
                      if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        elif isinstance(node, (ast.Subscript, ast.Call)):
            if (name := _env_variable_read(node)) is not None:
                names.add(name)
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) \
                and isinstance(node.left.value, str) and any(
                    isinstance(c, ast.Attribute) and c.attr == "environ" for c in node.comparators):
            names.add(node.left.value)  # "X" in os.environ
    return names


def _env_names(root: Path) -> set[str]:
    names: set[str] = set()
    for base in _source_roots(root):
        for path in _python_files(base):
            try:
                names |= env_names_read(ast.parse(path.read_bytes(), filename=str(path)))
            except (SyntaxError, ValueError, OSError):
                continue
    return names


def _url_scheme(deps: frozenset[str]) -> str:
    """The URL scheme the app's PostgreSQL driver wants: SQLAlchemy's dialect+driver when
    SQLAlchemy is there (its default for ``postgresql`` is psycopg2), else ``postgresql``."""
    if deps & {"sqlalchemy", "sqlmodel", "flask-sqlalchemy"}:
        if deps & {"psycopg", "psycopg-binary"}:
            return "postgresql+psycopg"
        if "asyncpg" in deps and not deps & {"psycopg2", "psycopg2-binary"}:
            return "postgresql+asyncpg"
    return "postgresql"


def database_env(names: set[str], deps: frozenset[str]) -> list[tuple[str, str]]:
    """``env:`` entries (name, YAML value) pointing the environment variables the app reads
    for its database (``names``) at the spec's ``database:`` on the group ``db``'s first host:
    a ``*_URL``, or the parts (host, name, user, password). [] when the app reads none of
    them, or no password/URL (then it is not configured from the environment). Pure."""
    url = sorted(n for n in names if _DB_URL.match(n))
    if url:
        value = (f"{_url_scheme(deps)}://{{{{ database.user }}}}:{{{{ secrets.{DB_SECRET} | urlquote }}}}@{_DB_HOST}"
                 f"/{{{{ database.name }}}}")
        return [(url[0], f'"{value}"')]
    values = {"HOST": _DB_HOST, "SERVER": _DB_HOST, "NAME": "{{ database.name }}", "DB": "{{ database.name }}",
              "DATABASE": "{{ database.name }}", "USER": "{{ database.user }}", "USERNAME": "{{ database.user }}",
              "PASSWORD": f"{{{{ secrets.{DB_SECRET} }}}}", "PASS": f"{{{{ secrets.{DB_SECRET} }}}}"}
    parts = [(n, f'"{values[m.group(1)]}"') for n in sorted(names) if (m := _DB_PART.match(n))]
    return parts if any(DB_SECRET in v for _, v in parts) else []


def _db_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name)[:63]


def render_spec(d: Detected) -> str:
    """A commented ``shipit.yml`` for ``d`` that :func:`shipit.app.load_app_spec` accepts as it is."""
    health_note = "" if d.health_path == "/health" else "   # no /health route found: / must answer 200"
    lines = [
        f"# shipit.yml, written by `shipit init` for a {d.framework} app ({d.source_file}).",
        "# Format: README \"The app spec\"; the inventory's `app:` overrides any key per environment.",
        f"name: {d.name}  # {Layout(d.name).root}, its user and units",
        "# python: \"3.11\"                  # default: the hosts' Python that fits requires-python",
        "web:",
        f"  {d.interface}: {d.app_ref}  # module:attribute, found statically",
        f"  server: {d.server}",
        "  workers: 2                       # or \"auto\" (with memory_per_worker)",
        "  # memory_per_worker: 120M",
        "  port: 8000                       # slots 8000 and 8001 (blue/green)",
    ]
    if d.interface == "wsgi":
        lines.append("  # threads: 4                     # gunicorn's gthread worker")
    lines.append("# processes:                       # background processes, a systemd unit per instance")
    lines.append("#   - {name: worker, command: \"python -m myapp.worker\", instances: 1}")
    lines.append("# schedule:                        # jobs as systemd timers, on the leader (or on: all)")
    lines.append("#   - {name: cleanup, command: \"python -m myapp.cleanup\", on_calendar: daily, timeout: 30m}")
    lines.append(f"migrate: {d.migrate}" if d.migrate else "# migrate: alembic upgrade head    # once per deploy, on the leader")
    if d.build:
        lines.append("build:                             # on the runner; its output ships in the release")
        lines += [f"  - {b}" for b in d.build]
    if d.static_dir:
        lines.append(f"static: {{url: /static/, dir: {d.static_dir}}}   # served by Caddy from the release")
    lines += [
        f"health: {{path: {d.health_path}, timeout: 40}}{health_note}",
        f"domains: [{d.name}.example.test]  # per environment in the inventory's app: (see prod.example.yml)",
        "tls: internal                      # Caddy's own CA; production: {acme_email: you@example.com}",
    ]
    if d.env:
        lines.append("env:")
        lines += [f"  {k}: {v}" for k, v in d.env]
    else:
        lines.append("# env: {LOG_LEVEL: info}         # values may use {{ secrets.X }}, {{ hostvars[h].address }}")
    if d.secrets:
        lines.append(f"secrets: [{', '.join(d.secrets)}]  # from the runner's environment or a secrets file, "
                     "never committed")
    else:
        lines.append("# secrets: [SECRET_KEY]            # from the runner's environment or a secrets file, "
                     "never committed")
    if d.database:
        db = _db_name(d.name)
        database = f"database: {{name: {db}, user: {db}, password_secret: {DB_SECRET}}}"
        lines.append(f"{database}  # PostgreSQL on group db" if d.database_env
                     else f"# {database}   # PostgreSQL on group db")
    lines += ["keep_releases: 5", "serial: 1                          # hosts switched at once: 1, \"25%\", [1, \"50%\"]"]
    return "\n".join(_align(line) for line in lines) + "\n"


def _align(line: str, column: int = 36) -> str:
    """Put a line's trailing ``# comment`` (after 2+ spaces) at ``column``."""
    m = re.match(r"^(.*?\S)\s{2,}(# .*)$", line)
    if m is None:
        return line
    return f"{m.group(1):<{column}}{m.group(2)}" if len(m.group(1)) < column else f"{m.group(1)}  {m.group(2)}"


def render_inventory(d: Detected) -> str:
    """A commented ``inventories/prod.example.yml`` (copy to prod.yml and edit)."""
    db = d.database
    return "\n".join([
        "# An example production inventory, written by `shipit init`: copy to inventories/prod.yml",
        "# and edit. Format: README \"Inventory\".",
        "ssh:",
        "  user: deploy",
        "  key: ~/.ssh/id_ed25519",
        "  known_hosts: prod.known_hosts      # pinned host keys (ssh-keyscan, checked); unknown keys are refused",
        "hosts:",
        "  web1: {address: 203.0.113.10, leader: true}   # the leader runs migrations and holds the deploy lock",
        "  web2: {address: 203.0.113.11}",
        *(["  db1: {address: 203.0.113.20}"] if db else []),
        "groups:",
        "  web: {hosts: [web1, web2]}",
        *(["  db: {hosts: [db1]}"] if db else []),
        "app:                                 # overrides of shipit.yml for this environment",
        f"  domains: [{d.name}.example.com]",
        "  tls: {acme_email: ops@example.com}",
        "",
    ])


def render_workflow(d: Detected) -> str:
    """``.github/workflows/deploy.yml``: on a push to main (or by hand), deploy ``prod`` with
    ``--json``; the SSH key and the pinned known_hosts come from repository secrets
    (``SHIPIT_SSH_KEY``, ``SHIPIT_KNOWN_HOSTS``), never an accept-new-keys."""
    return f"""# Deploy {d.name} to prod, written by `shipit init --ci github`.
# Repository secrets: SHIPIT_SSH_KEY (the deploy user's private key) and SHIPIT_KNOWN_HOSTS
# (the hosts' keys, pinned: `ssh-keyscan -t ed25519 HOST...` checked against the hosts), plus
# each secret shipit.yml lists (as environment variables of the deploy step).
name: deploy
on:
  push:
    branches: [main]
  workflow_dispatch:
concurrency:
  group: deploy-prod          # one deploy at a time (shipit's lock also guards the hosts)
  cancel-in-progress: false
jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: prod
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install shipit
        run: python -m pip install shipit   # pin the version you tested
      - name: SSH key and pinned host keys
        env:
          SSH_KEY: ${{{{ secrets.SHIPIT_SSH_KEY }}}}
          KNOWN_HOSTS: ${{{{ secrets.SHIPIT_KNOWN_HOSTS }}}}
        run: |
          install -d -m 700 ~/.ssh
          printf '%s\\n' "$SSH_KEY" > ~/.ssh/id_ed25519
          chmod 600 ~/.ssh/id_ed25519
          printf '%s\\n' "$KNOWN_HOSTS" > inventories/prod.known_hosts
      - name: Deploy
        # env:                      # each secret shipit.yml lists, e.g.
        #   DB_PASSWORD: ${{{{ secrets.DB_PASSWORD }}}}
        run: shipit deploy prod --json > deploy.json
      - name: Keep the deploy's report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: deploy-report
          path: deploy.json
"""


SPEC, INVENTORY, WORKFLOW = "shipit.yml", "inventories/prod.example.yml", ".github/workflows/deploy.yml"


def plan_files(root: Path, d: Detected, ci: str | None) -> dict[str, str]:
    """Relative path -> content of every file ``init`` writes (the workflow with ``ci``)."""
    files = {SPEC: render_spec(d), INVENTORY: render_inventory(d)}
    if ci == "github":
        files[WORKFLOW] = render_workflow(d)
    return files


def existing(root: Path, files: dict[str, str]) -> list[str]:
    """Which of ``files`` already exist under ``root``."""
    return [rel for rel in files if (root / rel).exists()]
