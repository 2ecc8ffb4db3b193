"""``shipit init``: detection on copies of the example apps (the generated spec validates with
shipit's own loader and declares the same web entry point as the committed one), plain
ASGI/WSGI apps, what is never looked at or run, refusing to overwrite, and the CI workflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from shipit import cli
from shipit import init as initmod
from shipit.app import load_app_spec
from shipit.inventory import load_inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args))


def _copy(example: str, tmp: Path) -> Path:
    dest = tmp / example
    shutil.copytree(EXAMPLES / example, dest, ignore=shutil.ignore_patterns("shipit.yml", ".venv", "__pycache__"))
    return dest


@pytest.mark.parametrize("example, framework", [("app", "fastapi"), ("flask-app", "flask"), ("django-app", "django")])
def test_init_on_each_example_writes_a_spec_with_the_committed_entry_point(tmp_path: Path, example: str,
                                                                          framework: str) -> None:
    app = _copy(example, tmp_path)
    result = invoke("init", str(app))
    assert result.exit_code == 0, result.output
    assert f"{framework} app" in result.stdout
    generated = load_app_spec(app)  # shipit's own loader: exit-2 problems would raise here
    committed = load_app_spec(EXAMPLES / example)
    assert (generated.interface, generated.app_ref, generated.server) == \
        (committed.interface, committed.app_ref, committed.server)
    assert generated.health_path == committed.health_path
    # migrations where the layout says how (alembic.ini, manage.py); the flask example's own
    # schema script cannot be guessed: init leaves migrate commented out
    assert generated.migrate == (None if example == "flask-app" else committed.migrate)
    inv = load_inventory(app / "inventories" / "prod.example.yml")
    assert inv.select("web") == ["web1", "web2"]
    assert load_app_spec(app, inv.app, inv.path).domains == (f"{generated.name}.example.com",)


def test_django_gets_its_settings_module_and_collectstatic(tmp_path: Path) -> None:
    app = _copy("django-app", tmp_path)
    assert invoke("init", str(app)).exit_code == 0
    spec = load_app_spec(app)
    assert spec.name == "mysite" and spec.env["DJANGO_SETTINGS_MODULE"] == "mysite.settings"
    assert spec.build == ("python manage.py collectstatic --noinput",) and spec.static_dir == "staticfiles"


def test_a_second_init_refuses_to_overwrite_and_names_the_files_unless_forced(tmp_path: Path) -> None:
    app = _copy("flask-app", tmp_path)
    assert invoke("init", str(app)).exit_code == 0
    (app / "shipit.yml").write_text("# mine\n")
    again = invoke("init", str(app), "--ci", "github")
    assert again.exit_code == 2 and "Traceback" not in again.output
    assert f"{app / 'shipit.yml'}: exists" in again.stderr and "prod.example.yml: exists" in again.stderr
    assert (app / "shipit.yml").read_text() == "# mine\n"
    assert not (app / ".github").exists()  # nothing written, not even the files that were free
    forced = invoke("init", str(app), "--force")
    assert forced.exit_code == 0 and load_app_spec(app).app_ref == "flask_app:create_app()"


def test_ci_github_writes_a_workflow_with_pinned_host_keys(tmp_path: Path) -> None:
    app = _copy("app", tmp_path)
    assert invoke("init", str(app), "--ci", "github").exit_code == 0
    text = (app / ".github" / "workflows" / "deploy.yml").read_text()
    flow = yaml.safe_load(text)
    steps = flow["jobs"]["deploy"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "shipit deploy prod --json" in runs
    keys = next(s for s in steps if "KNOWN_HOSTS" in s.get("env", {}))
    assert keys["env"]["KNOWN_HOSTS"] == "${{ secrets.SHIPIT_KNOWN_HOSTS }}"
    assert "inventories/prod.known_hosts" in keys["run"]
    assert "accept-new" not in text and "StrictHostKeyChecking" not in text
    assert flow["concurrency"]["cancel-in-progress"] is False
    inv = yaml.safe_load((app / "inventories" / "prod.example.yml").read_text())
    assert inv["ssh"]["known_hosts"] == "prod.known_hosts"  # where the workflow puts the secret


def _app(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "proj"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_plain_asgi_and_wsgi_callables(tmp_path: Path) -> None:
    asgi = initmod.detect(_app(tmp_path / "a", {
        "requirements.txt": "uvicorn==0.30\n",
        "server.py": "async def app(scope, receive, send):\n    pass\n"}))
    assert (asgi.framework, asgi.app_ref, asgi.interface, asgi.notes) == ("asgi", "server:app", "asgi", ())
    wsgi = initmod.detect(_app(tmp_path / "w", {
        "requirements.txt": "werkzeug\n",
        "site/web.py": "def application(environ, start_response):\n    return []\n",
        "site/__init__.py": ""}))
    assert (wsgi.app_ref, wsgi.interface) == ("site.web:application", "wsgi")
    assert wsgi.notes == ("add gunicorn to your dependencies: shipit serves WSGI apps with it",)
    assert wsgi.health_path == "/" and "no /health route found" in initmod.render_spec(wsgi)


def test_framework_objects_win_and_tests_migrations_and_broken_files_are_skipped(tmp_path: Path) -> None:
    root = _app(tmp_path, {
        "pyproject.toml": '[project]\nname = "My_Service"\ndependencies = ["starlette>=0.3", "uvicorn"]\n',
        "src/svc/__init__.py": "",
        "src/svc/asgi.py": "async def app(scope, receive, send): ...\n",
        "src/svc/deep/main.py": "from starlette.applications import Starlette\napi = Starlette()\n",
        "tests/conftest.py": "from fastapi import FastAPI\napp = FastAPI()\n",
        "src/svc/broken.py": "app = (\n",
        "src/svc/migrations/env.py": "import flask\napp = flask.Flask(__name__)\n"})
    found = initmod.detect(root)
    assert (found.name, found.framework, found.app_ref) == ("my-service", "starlette", "svc.deep.main:api")
    assert found.dependencies == {"starlette", "uvicorn"}


def test_an_app_factory_is_found_and_named_as_a_call(tmp_path: Path) -> None:
    """Flask's application factory: ``create_app()`` building the app (defaults allowed)."""
    root = _app(tmp_path / "f", {
        "requirements.txt": "flask\ngunicorn\n",
        "shop/__init__.py": "from flask import Flask\n\ndef create_app(config=None, *, debug=False):\n"
                            "    app = Flask(__name__)\n    return app\n",
        "shop/helpers.py": "def make_app():\n    return 1\n"})  # builds no app object: not one
    found = initmod.detect(root)
    assert (found.framework, found.app_ref, found.interface) == ("flask", "shop:create_app()", "wsgi")
    assert invoke("init", str(root)).exit_code == 0
    assert load_app_spec(root).app_ref == "shop:create_app()"  # the written spec validates
    # a module-level app object still wins over a factory
    both = initmod.detect(_app(tmp_path / "b", {
        "requirements.txt": "fastapi\nuvicorn\n",
        "api.py": "from fastapi import FastAPI\ndef get_app():\n    return FastAPI()\napp = get_app()\n",
        "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}))
    assert both.app_ref == "main:app"
    asgi = initmod.detect(_app(tmp_path / "a", {
        "requirements.txt": "fastapi\nuvicorn\n",
        "svc.py": "import fastapi\ndef get_application():\n    return fastapi.FastAPI()\n"}))
    assert (asgi.app_ref, asgi.interface) == ("svc:get_application()", "asgi")


def test_the_app_is_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    root = _app(tmp_path, {"main.py": f"open({str(marker)!r}, 'w').close()\nfrom flask import Flask\n"
                                      "app = Flask(__name__)\n", "requirements.txt": "flask\ngunicorn\n"})
    assert invoke("init", str(root)).exit_code == 0
    assert not marker.exists()


def test_no_app_found_or_no_directory_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    # a factory that needs an argument cannot be called by the server: not an app
    root = _app(tmp_path, {"factory.py": "from flask import Flask\ndef create_app(config):\n    return Flask(__name__)\n"})
    result = invoke("init", str(root))
    assert result.exit_code == 2 and "no web app found" in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in root.iterdir()) == ["factory.py"]
    missing = invoke("init", str(tmp_path / "nope"))
    assert missing.exit_code == 2
    (tmp_path / "file").write_text("")
    assert invoke("init", str(tmp_path / "file")).exit_code == 2


@pytest.mark.parametrize("source, expected", [
    ('import os\nSECRET_KEY = os.environ["DJ_KEY"]\nALLOWED_HOSTS = os.environ.get("HOSTS", "").split(",")\n',
     {"SECRET_KEY": "DJ_KEY", "ALLOWED_HOSTS": "HOSTS"}),
    ('import os\nSECRET_KEY = os.getenv("K")\n', {"SECRET_KEY": "K"}),
    ('import environ\nenv = environ.Env()\nSECRET_KEY = env("SECRET_KEY")\nALLOWED_HOSTS = env.list("AH")\n',
     {"SECRET_KEY": "SECRET_KEY", "ALLOWED_HOSTS": "AH"}),
    ('from decouple import config\nSECRET_KEY = config("SK")\n', {"SECRET_KEY": "SK"}),
    ('SECRET_KEY = "django-insecure-abc"\nALLOWED_HOSTS = []\n', {"SECRET_KEY": None, "ALLOWED_HOSTS": None}),
    ('SECRET_KEY = str("notavariable")\n', {"SECRET_KEY": None}),
    ('DEBUG = True\n', {}),
    ('SECRET_KEY = (\n', {}),
])
def test_django_settings_read_from_the_environment(source: str, expected: dict[str, str | None]) -> None:
    assert initmod.django_settings_env(source) == expected


def test_django_init_maps_its_secret_key_and_allowed_hosts(tmp_path: Path) -> None:
    """The settings read SECRET_KEY and ALLOWED_HOSTS from the environment: init's spec sets
    them (the key as a secret, the hosts from the domains, which the health check asks for too)."""
    app = _copy("django-app", tmp_path)
    assert invoke("init", str(app)).exit_code == 0
    spec = load_app_spec(app)
    assert spec.secrets == ("DJANGO_SECRET_KEY", "DB_PASSWORD")  # the key, and the database's
    assert spec.env["DJANGO_SECRET_KEY"] == "{{ secrets.DJANGO_SECRET_KEY }}"
    assert spec.env["DJANGO_ALLOWED_HOSTS"] == "{{ domains | join(',') }}"
    # hard-coded settings are pointed out, not rewritten
    settings = app / "mysite" / "settings.py"
    text = settings.read_text()
    settings.write_text(text.replace('SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-secret")',
                                     'SECRET_KEY = "django-insecure-x"')
                        .replace('ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")'
                                 '.split(",")', 'ALLOWED_HOSTS = ["example.com"]'))
    found = initmod.detect(app)
    assert found.secrets == ("DB_PASSWORD",) and [k for k, _ in found.env][:1] == ["DJANGO_SETTINGS_MODULE"]
    assert not {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"} & {k for k, _ in found.env}
    assert any("SECRET_KEY is written in settings.py" in n for n in found.notes)
    assert any("ALLOWED_HOSTS is fixed in settings.py" in n for n in found.notes)


def test_fastapi_standard_brings_uvicorn_so_no_note_asks_for_it(tmp_path: Path) -> None:
    """The FastAPI template depends on fastapi[standard] only: that installs uvicorn."""
    root = _app(tmp_path, {
        "pyproject.toml": '[project]\nname = "app"\ndependencies = ["fastapi[standard]<1.0.0,>=0.114.2"]\n',
        "app/__init__.py": "", "app/main.py": "from fastapi import FastAPI\napp = FastAPI()\n"})
    found = initmod.detect(root)
    assert found.dependencies == {"fastapi", "uvicorn"} and found.notes == ()
    plain = initmod.detect(_app(tmp_path / "p", {
        "requirements.txt": "fastapi[testing]==0.115\n", "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}))
    assert plain.notes == ("add uvicorn to your dependencies: shipit serves ASGI apps with it",)


def test_the_database_the_code_reads_from_the_environment_is_mapped() -> None:
    """A URL or its parts, read however (os.environ, "X" in os.environ, pydantic-settings
    fields), point at the spec's database on the group db, the password a listed secret."""
    import ast
    tree = ast.parse('import os\nfrom pydantic_settings import BaseSettings\n'
                     'class Settings(BaseSettings):\n    POSTGRES_SERVER: str\n    postgres_password: str = ""\n'
                     'if "DATABASE_URL" in os.environ: pass\nX = os.getenv("PGUSER")\n')
    assert initmod.env_names_read(tree) == {"POSTGRES_SERVER", "POSTGRES_PASSWORD", "DATABASE_URL", "PGUSER"}
    url = initmod.database_env({"DATABASE_URL", "OTHER"}, frozenset({"sqlalchemy", "psycopg"}))
    assert url == [("DATABASE_URL", '"postgresql+psycopg://{{ database.user }}:{{ secrets.DB_PASSWORD | urlquote }}'
                                    '@{{ hostvars[groups.db[0]].address }}/{{ database.name }}"')]
    assert initmod.database_env({"DB_URL"}, frozenset({"psycopg2-binary"}))[0][1].startswith('"postgresql://')
    parts = dict(initmod.database_env({"POSTGRES_SERVER", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD",
                                       "POSTGRES_PORT"}, frozenset()))
    assert parts == {"POSTGRES_SERVER": '"{{ hostvars[groups.db[0]].address }}"',
                     "POSTGRES_DB": '"{{ database.name }}"', "POSTGRES_USER": '"{{ database.user }}"',
                     "POSTGRES_PASSWORD": '"{{ secrets.DB_PASSWORD }}"'}
    assert initmod.database_env({"DATABASE_HOST"}, frozenset()) == []  # no password: not from the env


@pytest.mark.parametrize("example", ["app", "django-app"])
def test_the_examples_database_is_declared_and_mapped(tmp_path: Path, example: str) -> None:
    app = _copy(example, tmp_path)
    assert invoke("init", str(app)).exit_code == 0
    spec = load_app_spec(app)
    assert spec.database is not None and spec.database["password_secret"] == "DB_PASSWORD"
    assert "DB_PASSWORD" in spec.secrets
    assert any("{{ secrets.DB_PASSWORD" in v for v in spec.env.values())
