"""The example app (examples/app) runs for real: alembic migrations, the FastAPI
endpoints and the worker, against a throwaway SQLite database.

The app is imported from examples/app/src; its dependencies (fastapi, sqlalchemy,
alembic, uvicorn, httpx) come from shipit's ``[test]`` extra. If they are missing the
tests fail (not skip), saying what to install.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "app"
APP_SRC = APP_DIR / "src"
RELEASE = "20250101-000000-test"
REQUIRED = ("fastapi", "sqlalchemy", "alembic", "uvicorn", "httpx")


@pytest.fixture(scope="module")
def app_modules() -> dict[str, ModuleType]:
    """Import the example app from examples/app/src, failing clearly if its deps are missing."""
    missing = []
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pytest.fail(
            f"the example app's dependencies are not installed: {', '.join(missing)}; "
            "install shipit's test extra: pip install -e '.[test]'",
            pytrace=False,
        )
    if str(APP_SRC) not in sys.path:
        sys.path.insert(0, str(APP_SRC))
    return {
        "db": importlib.import_module("example_app.db"),
        "main": importlib.import_module("example_app.main"),
        "worker": importlib.import_module("example_app.worker"),
    }


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APP_SRC), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _upgrade_head() -> None:
    from alembic import command

    command.upgrade(_alembic_config(), "head")


def _alembic_config() -> Any:
    """Alembic config for examples/app that leaves pytest's logging setup alone."""
    from alembic.config import Config

    config = Config(str(APP_DIR / "alembic.ini"))
    config.attributes["configure_logger"] = False
    return config


def _rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def db_path(
    app_modules: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A migrated SQLite database in DATABASE_URL, with SHIPIT_RELEASE set."""
    path = tmp_path / "app.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("SHIPIT_RELEASE", RELEASE)
    monkeypatch.delenv("EXAMPLE_FAIL_HEALTH", raising=False)
    _upgrade_head()
    yield path
    app_modules["db"].dispose_engine()


@pytest.fixture
def client(app_modules: dict[str, ModuleType], db_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app_modules["main"].app) as test_client:
        yield test_client


def test_alembic_upgrade_from_release_dir_logs_every_invocation(
    app_modules: dict[str, ModuleType], tmp_path: Path
) -> None:
    path = tmp_path / "release.db"
    env = _subprocess_env(DATABASE_URL=f"sqlite:///{path}", SHIPIT_RELEASE=RELEASE)
    alembic = [sys.executable, "-m", "alembic"]

    # As shipit runs it: `alembic upgrade head` with the release dir as working directory.
    for _ in range(2):
        subprocess.run([*alembic, "upgrade", "head"], cwd=APP_DIR, env=env, check=True)
    # Read-only commands are not logged; -c works from any directory.
    subprocess.run(
        [*alembic, "-c", str(APP_DIR / "alembic.ini"), "current"], cwd=tmp_path, env=env, check=True
    )

    tables = {name for (name,) in _rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"visits", "jobs", "migration_log", "alembic_version"} <= tables
    assert _rows(path, "SELECT id, count FROM visits") == [(1, 0)]
    log = _rows(
        path,
        "SELECT hostname, release, release_dir, command, from_revision, to_revision"
        " FROM migration_log ORDER BY id",
    )
    host, release_dir = socket.gethostname(), str(APP_DIR)
    assert log == [
        (host, RELEASE, release_dir, "upgrade", "base", "0002_jobs"),
        (host, RELEASE, release_dir, "upgrade", "0002_jobs", "0002_jobs"),
    ]


def test_downgrade_and_upgrade_round_trip(db_path: Path) -> None:
    from alembic import command

    config = _alembic_config()
    command.downgrade(config, "base")
    tables = {name for (name,) in _rows(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert "visits" not in tables and "jobs" not in tables
    command.upgrade(config, "head")
    assert [c for (c,) in _rows(db_path, "SELECT command FROM migration_log ORDER BY id")] == [
        "upgrade",
        "downgrade",
        "upgrade",
    ]


def test_index_counts_visits(client: Any) -> None:
    for expected in (1, 2, 3):
        response = client.get("/")
        assert response.status_code == 200
        assert response.json() == {
            "app": "example",
            "release": RELEASE,
            "hostname": socket.gethostname(),
            "visits": expected,
        }


def test_health_ok(client: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "release": RELEASE, "pid": os.getpid()}


def test_health_fails_when_forced(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_FAIL_HEALTH", "1")
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["reason"] == "EXAMPLE_FAIL_HEALTH=1"


def test_health_fails_when_database_unreachable(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/no/such/dir/app.db")
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database unreachable: OperationalError")

    monkeypatch.delenv("DATABASE_URL")
    response = client.get("/health")
    assert response.status_code == 503
    assert "DATABASE_URL is not set" in response.json()["reason"]


def test_jobs_lists_worker_heartbeats_newest_first(
    client: Any, app_modules: dict[str, ModuleType]
) -> None:
    assert client.get("/jobs").json() == {"jobs": []}
    first = app_modules["worker"].run_once()
    second = app_modules["worker"].run_once()

    jobs = client.get("/jobs").json()["jobs"]
    assert [job["id"] for job in jobs] == [second, first]
    assert jobs[0]["hostname"] == socket.gethostname()
    assert jobs[0]["release"] == RELEASE
    assert jobs[0]["pid"] == os.getpid()
    assert jobs[0]["created_at"].endswith("+00:00")
    assert [job["id"] for job in client.get("/jobs", params={"limit": 1}).json()["jobs"]] == [second]
    assert client.get("/jobs", params={"limit": 0}).status_code == 422


def test_worker_writes_heartbeats_and_exits_0_on_sigterm(db_path: Path) -> None:
    env = _subprocess_env(WORKER_INTERVAL="0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "example_app.worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_rows(db_path, "SELECT id FROM jobs")) < 2:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "worker wrote no heartbeats in 30 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "SIGTERM received" in output
    assert {release for (release,) in _rows(db_path, "SELECT release FROM jobs")} == {RELEASE}


def test_database_url_defaults_postgresql_to_psycopg(
    app_modules: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = app_modules["db"]
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:secret@db.internal:5432/app")
    assert db.database_url() == "postgresql+psycopg://app:secret@db.internal:5432/app"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app:secret@db.internal/app")
    assert db.database_url() == "postgresql+psycopg://app:secret@db.internal/app"
