"""The apps people have (issue 10 item 8), on real hosts: the Flask example (WSGI, gunicorn) and
the Django example (requirements.txt only; collectstatic as a build step, static files served by
Caddy from the release, media uploads in a shared dir, migrations and a release step on the
leader) deployed over HTTPS to the lab; an uploaded file survives a deploy and a rollback; the
WSGI app rolls under load with zero failed requests.

Both apps share the lab's hosts (ports 8100 and 8200, their own Caddy sites). The tests run in
order and build on each other.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipit.lab import LabState
from tests.e2e.test_deploy import WEB, Env, Load, deploy_json, https_get

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FLASK = REPO / "examples" / "flask-app"
DJANGO = REPO / "examples" / "django-app"
FLASK_DOMAIN = "flask.shipit.test"
DJANGO_DOMAIN = "django.shipit.test"
SECRETS = {"DJANGO_SECRET_KEY": "e2e-django-key-" + "x" * 40, "MYSITE_DB_PASSWORD": "e2e-Mysite-pw-1"}


def request(env: Env, host: str, domain: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTPS request through ``host``'s Caddy, verified against its root CA, SNI ``domain``."""
    context = ssl.create_default_context(cafile=env.cafile(host))
    sock = socket.create_connection((env.address(host), 443), timeout=10)
    conn = http.client.HTTPSConnection(domain, 443, timeout=10, context=context)
    conn.sock = context.wrap_socket(sock, server_hostname=domain)
    try:
        conn.request(method, path, body=body, headers={"Host": domain, "Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def health(env: Env, domain: str) -> dict[str, str]:
    """host -> the release the app reports on /health through Caddy."""
    out = {}
    for host in WEB:
        status, doc = https_get(env.address(host), env.cafile(host), "/health", domain=domain)
        assert status == 200, f"{host}: {status} {doc}"
        out[host] = doc["release"]
    return out


def changed_copy(src: Path, dest: Path, relpath: str) -> Path:
    """A copy of an example app with a comment appended to ``relpath`` (a new release)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("staticfiles", "media", "data", "__pycache__",
                                                             "*.egg-info", "build"))
    target = dest / relpath
    target.write_text(target.read_text() + f"\n# changed {uuid.uuid4().hex}\n")
    return dest


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("apps")
    (work / "home").mkdir()
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    try:
        yield Env(lab, work / "home", work)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def flask_first(env: Env) -> dict[str, Any]:
    return deploy_json(env, "deploy", FLASK)


@pytest.fixture(scope="module")
def django_first(env: Env, flask_first: dict[str, Any]) -> dict[str, Any]:
    return deploy_json(env, "deploy", DJANGO)


def test_the_flask_app_is_served_by_gunicorn_over_https(env: Env, flask_first: dict[str, Any]) -> None:
    assert flask_first["ok"] and health(env, FLASK_DOMAIN) == {h: flask_first["release"] for h in WEB}
    status, _, body = request(env, "web2", FLASK_DOMAIN, "GET", "/")
    assert status == 200 and json.loads(body)["app"] == "flaskapp"
    # gunicorn is the web unit's main process, as the app user, with its 2 workers
    main = env.run_on("web1", "systemctl show -p MainPID --value flaskapp-web@8100.service flaskapp-web@8101.service"
                              " | grep -v '^0$' | head -n1\n").strip()
    ps = env.run_on("web1", f"ps -o user=,args= -p {main}; pgrep -c -P {main}\n").splitlines()
    assert ps[0].split()[0] == "flaskapp" and "gunicorn flask_app:create_app()" in ps[0] and "--threads 4" in ps[0]
    assert ps[1].strip() == "2"
    # the SQLite file is in the shared dir, owned by the app user (the migrate step made it)
    owner = env.run_on("web1", "stat -c %U /srv/flaskapp/shared/data/app.db\n").strip()
    assert owner == "flaskapp"


def test_a_redeploy_of_the_unchanged_flask_app_changes_nothing(env: Env, flask_first: dict[str, Any]) -> None:
    again = deploy_json(env, "deploy", FLASK)
    assert again["release"] == flask_first["release"] and again["changed"] == 0, again


def test_the_django_app_deploys_with_migrations_and_a_release_step(env: Env, flask_first: dict[str, Any],
                                                                   django_first: dict[str, Any]) -> None:
    assert django_first["ok"] and django_first["migrations"] == "ran"
    assert health(env, DJANGO_DOMAIN) == {h: django_first["release"] for h in WEB}
    status, _, body = request(env, "web3", DJANGO_DOMAIN, "GET", "/admin/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body  # the admin answers (its tables migrated)
    # the flask app on the same hosts is untouched
    assert health(env, FLASK_DOMAIN) == {h: flask_first["release"] for h in WEB}


def test_django_static_files_are_served_by_caddy_from_the_release(env: Env, django_first: dict[str, Any]) -> None:
    status, headers, body = request(env, "web1", DJANGO_DOMAIN, "GET", "/static/staticfiles.json")
    assert status == 200, body[:200]
    hashed = json.loads(body)["paths"]["admin/css/base.css"]
    assert hashed != "admin/css/base.css"  # collectstatic (the build step) named it by its content
    for host in WEB:
        status, headers, body = request(env, host, DJANGO_DOMAIN, "GET", f"/static/{hashed}")
        assert status == 200 and headers["content-type"].startswith("text/css"), (host, status, headers)
        assert "immutable" in headers.get("cache-control", ""), headers  # Caddy's file_server block
        assert "x-frame-options" not in headers  # not Django's answer (its middleware sets it)
    status, headers, _ = request(env, "web1", DJANGO_DOMAIN, "GET", "/static/uploads/site.css")
    assert status == 200 and "immutable" not in headers.get("cache-control", "")
    # the files come from the release itself: root-owned, in its staticfiles/
    release = django_first["release"]
    listing = env.run_on("web1", f"stat -c %U /srv/mysite/releases/{release}/staticfiles/{hashed}\n")
    assert listing.strip() == "root"


def upload(env: Env, host: str, name: str, content: bytes) -> str:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = request(env, host, DJANGO_DOMAIN, "POST", "/upload", body,
                                {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 201, answer[:300]
    url: str = json.loads(answer)["url"]
    return url


def test_an_uploaded_media_file_survives_a_deploy_and_a_rollback(env: Env, django_first: dict[str, Any]) -> None:
    content = f"uploaded at {time.time()}\n".encode()
    url = upload(env, "web1", "note.txt", content)
    assert request(env, "web1", DJANGO_DOMAIN, "GET", url)[2] == content
    # shared/media is the app user's, and the release links it
    first = django_first["release"]
    out = env.run_on("web1", f"stat -c %U /srv/mysite/shared/media; readlink /srv/mysite/releases/{first}/media\n")
    assert out.split() == ["mysite", "/srv/mysite/shared/media"]

    second = deploy_json(env, "deploy", changed_copy(DJANGO, env.work / "django-v2", "uploads/views.py"))
    assert second["release"] != first and health(env, DJANGO_DOMAIN) == {h: second["release"] for h in WEB}
    assert request(env, "web1", DJANGO_DOMAIN, "GET", url)[2] == content

    back = deploy_json(env, "rollback", env.work / "django-v2")
    assert back["release"] == first and health(env, DJANGO_DOMAIN) == {h: first for h in WEB}
    assert request(env, "web1", DJANGO_DOMAIN, "GET", url)[2] == content


def test_the_wsgi_app_rolls_under_load_with_zero_failed_requests(env: Env, flask_first: dict[str, Any]) -> None:
    changed = changed_copy(FLASK, env.work / "flask-v2", "flask_app/__init__.py")
    with Load(env, domain=FLASK_DOMAIN) as load:
        second = deploy_json(env, "deploy", changed)
        time.sleep(1)
    assert second["release"] != flask_first["release"]
    assert health(env, FLASK_DOMAIN) == {h: second["release"] for h in WEB}
    assert load.failed == [], f"{len(load.failed)} failed requests during the deploy: {load.failed[:5]}"
    assert load.ok > 50 and {flask_first["release"], second["release"]} <= load.releases
    print(f"\nflask roll under load: {load.ok} requests ok, 0 failed")


def deploy_what_init_writes(env: Env, example: Path, env_name: str,
                            overrides: str) -> tuple[Path, dict[str, Any], str]:
    """``shipit init`` on a copy of ``example`` without its shipit.yml, then a deploy of the
    spec as written; only the inventory's ``app:`` (``overrides``, YAML lines under it) sets
    what differs per environment (domain, port, names the other apps on these hosts hold).
    Returns the app's copy, the first deploy's outcome and what init printed."""
    app = env.work / f"{example.name}-init"
    shutil.copytree(example, app, ignore=shutil.ignore_patterns("shipit.yml", "data", "media", "staticfiles",
                                                                "__pycache__", "*.egg-info", "build"))
    init = env.shipit_raw("init", str(app))
    assert init.returncode == 0, init.stderr
    inventory = env.lab.inventory.parent / f"shipit-test-{env_name}.yml"
    inventory.write_text(env.lab.inventory.read_text() + "app:\n" + overrides)
    result = env.shipit_raw("deploy", env_name, "--json", "-i", str(inventory), "--app", str(app))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["ok"]
    again = env.shipit_raw("deploy", env_name, "--json", "-i", str(inventory), "--app", str(app))
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] == 0, again.stdout
    return app, doc, init.stdout


def test_the_spec_shipit_init_writes_deploys_as_written(env: Env, flask_first: dict[str, Any]) -> None:
    """`shipit init` on the Flask app without its shipit.yml (an app factory, gunicorn), then a
    deploy of the spec as written: only the inventory's app: sets what differs per environment
    (the domain, and the port: the Flask example holds 8100 on these hosts)."""
    _, doc, printed = deploy_what_init_writes(env, FLASK, "init",
                                              "  domains: [init.shipit.test]\n  web: {port: 8300}\n")
    assert "flask app flask_app:create_app() (wsgi, gunicorn)" in printed
    assert health(env, "init.shipit.test") == {h: doc["release"] for h in WEB}
    ps = env.run_on("web1", "systemctl show -p MainPID --value shipit-flask-example-web@8300.service "
                            "shipit-flask-example-web@8301.service | grep -v '^0$' | head -n1\n").strip()
    assert "gunicorn flask_app:create_app()" in env.run_on("web1", f"ps -o args= -p {ps}\n")


def test_the_spec_init_writes_for_the_fastapi_example_deploys_with_its_database(env: Env) -> None:
    """init maps the DATABASE_URL the example reads to a declared database on the group db:
    its /health answers 200 only after a SELECT 1 there."""
    app, doc, _ = deploy_what_init_writes(env, REPO / "examples" / "app", "initfastapi",
                                       "  domains: [initfastapi.shipit.test]\n  web: {port: 8320}\n")
    assert "database:" in (app / "shipit.yml").read_text()
    assert health(env, "initfastapi.shipit.test") == {h: doc["release"] for h in WEB}


def test_the_spec_init_writes_for_the_django_example_deploys_with_its_database(env: Env) -> None:
    """init maps Django's SECRET_KEY, ALLOWED_HOSTS (the domains) and the DATABASE_* parts the
    settings read; renamed by the inventory, as the Django example holds mysite on these hosts."""
    _, doc, _ = deploy_what_init_writes(
        env, DJANGO, "initdjango",
        "  name: initdjango\n  domains: [initdjango.shipit.test]\n  web: {port: 8330}\n"
        "  database: {name: initdjango, user: initdjango, password_secret: DB_PASSWORD}\n")
    assert health(env, "initdjango.shipit.test") == {h: doc["release"] for h in WEB}
    # the database is PostgreSQL on db1, not a SQLite file: the migrations made its tables there
    tables = env.run_on("db1", "runuser -u postgres -- psql -X -d initdjango -tAc "
                               "\"select count(*) from pg_tables where tablename = 'django_migrations'\"\n")
    assert tables.strip() == "1"
