"""The deploy smoke test, per Debian release (#10 item 7): scripts/test runs this file on a
trixie lab (``SHIPIT_TEST_SUITE=trixie``) beside the bookworm suite, so a deploy is proven on
both. First deploy over HTTPS on every host, the release venv on the distro's own Python
(found from the host's facts: 3.11 on bookworm, 3.13 on trixie), a re-deploy that changes
nothing, a code change rolled out and rolled back; and an app whose ``requires-python`` the
hosts cannot meet refused with exit 2 before anything changes.

The app is the example app as it is (PostgreSQL from the distro: 15 on bookworm, 17 on
trixie; alembic migrations on the leader; its background worker), renamed with a database of
its own so that it may share a lab with test_deploy's.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipit.distro import RELEASES
from shipit.lab import LabState
from tests.e2e.conftest import SUITE
from tests.e2e.test_deploy import EXAMPLE, WEB, Env

pytestmark = pytest.mark.e2e

APP = "distro-smoke"
DOMAIN = "distro.shipit.test"  # its own app, port and site: it may share a lab with test_deploy's
DB = "distro_smoke"


def smoke_app(dest: Path, requires_python: str | None = None, suffix: str = "") -> Path:
    """The example app renamed (its own app, port, site and database); optionally another
    requires-python and a changed response (``suffix`` appended to main.py)."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".venv"))
    spec = dest / "shipit.yml"
    text = spec.read_text()
    for old, new in (("name: example\n", f"name: {APP}\n"), ("port: 8000", "port: 8700"),
                     ("example.shipit.test", DOMAIN), ("postgresql+psycopg://example:", f"postgresql+psycopg://{DB}:"),
                     ("}}/example\"", f"}}}}/{DB}\""),
                     ("database: {name: example, user: example,", f"database: {{name: {DB}, user: {DB},")):
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text)
    if requires_python:
        pyproject = dest / "pyproject.toml"
        pyproject.write_text(re.sub(r'requires-python = "[^"]*"', f'requires-python = "{requires_python}"',
                                    pyproject.read_text()))
    if suffix:
        main = dest / "src" / "example_app" / "main.py"
        main.write_text(main.read_text() + suffix)
    return dest


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("distro")
    (work / "home").mkdir()
    yield Env(lab, work / "home", work)


def deploy(env: Env, app: Path, command: str = "deploy", *args: str) -> dict[str, Any]:
    result = env.shipit(command, "shipit-test", "--json", *args, app=app)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def health(address: str, cafile: str) -> tuple[int, dict[str, Any]]:
    """GET https://DOMAIN/health from ``address``, verified against ``cafile``, SNI DOMAIN."""
    context = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection(DOMAIN, 443, timeout=10, context=context)
    conn.sock = context.wrap_socket(socket.create_connection((address, 443), timeout=10),
                                    server_hostname=DOMAIN)
    try:
        conn.request("GET", "/health", headers={"Host": DOMAIN, "Connection": "close"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def answers(env: Env) -> dict[str, str]:
    """host -> the release its app reports over HTTPS through Caddy."""
    out = {}
    for host in WEB:
        status, doc = health(env.address(host), env.cafile(host))
        assert status == 200, f"{host}: {status} {doc}"
        out[host] = doc["release"]
    return out


def test_a_python_the_hosts_lack_is_exit_2_before_anything_changes(env: Env) -> None:
    app = smoke_app(env.work / "too-new", requires_python=">=3.99")
    result = env.shipit("deploy", "shipit-test", app=app)
    assert result.returncode == 2, result.stdout + result.stderr
    release = RELEASES[SUITE]
    assert (f"requires-python: web1 runs Debian {release.version} ({SUITE}) with Python "
            f"{release.python}") in result.stderr
    assert "the app needs Python >=3.99" in result.stderr and "Traceback" not in result.stderr
    assert "lock" not in result.stdout.lower()
    assert env.run_on("web1", f"test -e /srv/{APP} && echo present || echo absent\n").strip() == "absent"


def test_deploy_redeploy_and_rollback_on_the_suite(env: Env) -> None:
    app = smoke_app(env.work / "app")
    first = deploy(env, app)
    assert first["ok"] and answers(env) == {h: first["release"] for h in WEB}
    python = env.run_on("web1", f"/srv/{APP}/current/venv/bin/python -c "
                                "'import sys; print(\"%d.%d\" % sys.version_info[:2])'\n").strip()
    assert python == RELEASES[SUITE].python, f"{SUITE}: release venv on Python {python}"
    cfg = env.run_on("web1", f"cat /srv/{APP}/current/venv/pyvenv.cfg\n")
    assert "uv = " in cfg, "the release venv is created by the shipped uv"
    # /health answered 200 above only after a SELECT 1 on the distro's own PostgreSQL
    clusters = env.run_on("db1", "pg_lsclusters -h\n").split()
    assert clusters[:1] == [RELEASES[SUITE].postgresql], f"{SUITE}: PostgreSQL {clusters[:1]}"
    tables = env.run_on("db1", f"sudo -u postgres psql -tAc '\\dt' {DB}\n")
    assert "alembic_version" in tables, "the migrations ran on the leader against it"

    again = deploy(env, app)
    assert again["release"] == first["release"] and again["changed"] == 0

    changed = smoke_app(env.work / "app2", suffix="\n# a code change\n")
    second = deploy(env, changed)
    assert second["release"] != first["release"] and answers(env) == {h: second["release"] for h in WEB}
    back = deploy(env, changed, "rollback")
    assert back["release"] == first["release"] and answers(env) == {h: first["release"] for h in WEB}
