"""Database backups before migrations on the lab (issue 13 item 6): a deploy whose app asks
for ``database.backup`` dumps the database on db1 before its migrations, named after the
release; a migration that deletes rows is undone by ``shipit rollback --restore-db --yes``
(the row count comes back, the previous release serves); ``shipit db backups|backup|restore|psql``
work; a pg_dump that fails (here: it cannot get its lock within the timeout) stops the deploy
before any migration, the previous release still serving and the lock free.

The tests in this file run in order and build on each other (one app, one database).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipit.lab import LabState
from tests.e2e.test_deploy import WEB, Env, copy_app, https_get

pytestmark = pytest.mark.e2e

ENV = "shipit-test"
# its own app, port, site and database: the example app's may share this lab (test_deploy's)
APP = "backupdemo"
DOMAIN = "backups.shipit.test"
NOTES = '''"""create the notes table (the e2e's own rows)

Revision ID: 0003_notes
Revises: 0002_jobs
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_notes"
down_revision = "0002_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))


def downgrade() -> None:
    op.drop_table("notes")
'''
PURGE = '''"""a migration that deletes every note and adds a table (what a restore must undo, both)

Revision ID: 0004_purge
Revises: 0003_notes
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_purge"
down_revision = "0003_notes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM notes")
    op.create_table("purge_log", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    pass
'''


def app_copy(dest: Path, suffix: str, migrations: dict[str, str], spec_extra: str = "") -> Path:
    """The example app with ``database.backup`` on, extra migrations and a changed response."""
    app = copy_app(dest, main_suffix=f"\n# {suffix}\n")
    spec = app / "shipit.yml"
    text = spec.read_text()
    for old, new in (("name: example\n", f"name: {APP}\n"), ("port: 8000", "port: 8800"),
                     ("example.shipit.test", DOMAIN),
                     ("postgresql+psycopg://example:", f"postgresql+psycopg://{APP}:"),
                     ("}}/example\"", f"}}}}/{APP}\""),
                     ("database: {name: example, user: example, password_secret: DB_PASSWORD}",
                      f"database: {{name: {APP}, user: {APP}, password_secret: DB_PASSWORD,\n"
                      "           backup: {before_migrate: true, keep: 3}}")):
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text + spec_extra)
    for name, body in migrations.items():
        (app / "migrations" / "versions" / name).write_text(body)
    return app


def sql(env: Env, query: str) -> str:
    return env.run_on("db1", f"runuser -u postgres -- psql -X -d {APP} -tAc {json.dumps(query)}\n").strip()


def notes(env: Env) -> int:
    return int(sql(env, "select count(*) from notes"))


def run_json(env: Env, *args: str, app: Path, ok: bool = True) -> dict[str, Any]:
    result = env.shipit(*args, "--json", app=app)
    if ok:
        assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    doc: dict[str, Any] = json.loads(result.stdout)
    doc["_stderr"] = result.stderr
    doc["_rc"] = result.returncode
    return doc


def served(env: Env, release: str, within: float = 60.0) -> dict[str, str]:
    """host -> release answering /health through Caddy, waiting up to ``within`` s for ``release``."""
    deadline = time.monotonic() + within
    while True:
        seen: dict[str, str] = {}
        for host in WEB:
            try:
                status, doc = https_get(env.address(host), env.cafile(host), "/health", domain=DOMAIN)
                seen[host] = str(doc.get("release")) if status == 200 else f"HTTP {status}"
            except OSError as exc:
                seen[host] = f"{type(exc).__name__}"
        if all(r == release for r in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("backups")
    (work / "home").mkdir()
    env = Env(lab, work / "home", work)
    # from scratch (a kept lab may hold this app from an earlier run): no app, no database
    for host in WEB:
        env.run_on(host, f"systemctl stop '{APP}-*' 2>/dev/null || true\n"
                         f"rm -rf /srv/{APP} /etc/caddy/sites/{APP}.caddy\n")
    env.run_on("db1", f"if command -v dropdb >/dev/null; then runuser -u postgres -- dropdb --if-exists --force {APP}; fi\n"
                      f"rm -rf /srv/{APP}\n")
    yield env


@pytest.fixture(scope="module")
def apps(env: Env) -> dict[str, Path]:
    return {"r1": app_copy(env.work / "r1", "r1", {"0003_notes.py": NOTES}),
            "r2": app_copy(env.work / "r2", "r2", {"0003_notes.py": NOTES, "0004_purge.py": PURGE}),
            "r3": app_copy(env.work / "r3", "r3", {"0003_notes.py": NOTES, "0004_purge.py": PURGE},
                           spec_extra="migrate_timeout: 5\n")}


@pytest.fixture(scope="module")
def r1(env: Env, apps: dict[str, Path]) -> dict[str, Any]:
    doc = run_json(env, "deploy", ENV, app=apps["r1"])
    sql(env, "insert into notes (id, body) select g, 'note ' || g from generate_series(1, 5) g")
    return doc


@pytest.fixture(scope="module")
def r2(env: Env, apps: dict[str, Path], r1: dict[str, Any]) -> dict[str, Any]:
    assert notes(env) == 5
    return run_json(env, "deploy", ENV, app=apps["r2"])


def test_each_deploy_with_migrations_backs_the_database_up_first_named_after_its_release(
        env: Env, apps: dict[str, Path], r1: dict[str, Any], r2: dict[str, Any]) -> None:
    assert r1["backup"] == f"took {r1['release']}", r1
    assert r2["backup"] == f"took {r2['release']}", r2
    assert notes(env) == 0  # R2's migration deleted them: after its backup
    listed = run_json(env, "db", "backups", ENV, app=apps["r2"])
    names = [b["name"] for b in listed["backups"]]
    assert names[:2] == [r2["release"], r1["release"]], listed
    assert all(b["size"] > 0 for b in listed["backups"])
    # the dir is postgres's own, 0700, and holds no partial file
    assert env.run_on("db1", f"stat -c '%U %a' /srv/{APP}/backups\n").strip() == "postgres 700"
    assert env.run_on("db1", f"ls -A /srv/{APP}/backups\n").split() == sorted(f"{n}.dump" for n in names)
    # R2's backup holds the 5 notes R2's migration deleted
    out = env.run_on("db1", f"runuser -u postgres -- pg_restore -a -t notes -f - /srv/{APP}/backups/{r2['release']}.dump\n")
    assert "note 5" in out


def test_a_second_deploy_changes_nothing_and_takes_no_backup(env: Env, apps: dict[str, Path],
                                                             r2: dict[str, Any]) -> None:
    again = run_json(env, "deploy", ENV, app=apps["r2"])
    assert again["release"] == r2["release"] and again["changed"] == 0, again
    assert again["backup"].startswith("not taken: the release already serves"), again


def test_db_psql_runs_as_the_apps_role(env: Env, apps: dict[str, Path], r2: dict[str, Any]) -> None:
    result = env.shipit_raw("db", "psql", ENV, "-i", env.lab.inventory, "--app", apps["r2"], "--",
                            "-tAc", "select current_user || ' ' || count(*) from notes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{APP} 0"


def test_rollback_restore_db_brings_the_rows_back_and_the_previous_release_serves(
        env: Env, apps: dict[str, Path], r1: dict[str, Any], r2: dict[str, Any]) -> None:
    assert sql(env, "select coalesce(to_regclass('public.purge_log')::text, 'absent')") == "purge_log"
    without_yes = env.shipit("rollback", ENV, "--restore-db", app=apps["r2"])
    assert without_yes.returncode == 2 and "--yes" in without_yes.stderr  # no terminal to ask on
    doc = run_json(env, "rollback", ENV, "--restore-db", "--yes", app=apps["r2"])
    assert doc["ok"] and doc["serving"] == {h: r1["release"] for h in WEB}, doc
    assert doc["backup"] == f"restored {r2['release']}", doc
    assert "LOST" in doc["_stderr"]
    assert notes(env) == 5
    assert sql(env, "select version_num from alembic_version") == "0003_notes"
    # the table R2's migration added is gone too: the database is the backup's, exactly, so
    # R2's migrations could run again
    assert sql(env, "select coalesce(to_regclass('public.purge_log')::text, 'absent')") == "absent"
    assert served(env, r1["release"]) == {h: r1["release"] for h in WEB}
    # the app's units run again (the worker too), and nothing is left paused
    for host in WEB:
        assert env.run_on(host, f"systemctl is-active {APP}-heartbeat@1.service\n").strip() == "active"
        assert env.run_on(host, f"test ! -e /srv/{APP}/.paused-units && echo gone\n").strip() == "gone"


def test_rollback_restore_db_refuses_when_no_backup_was_taken_before_the_current_release(
        env: Env, apps: dict[str, Path], r1: dict[str, Any]) -> None:
    env.run_on("db1", f"mv /srv/{APP}/backups/{r1['release']}.dump /tmp/r1.dump\n")
    try:
        result = env.shipit("rollback", ENV, "--restore-db", "--yes", app=apps["r1"])
    finally:
        env.run_on("db1", f"mv /tmp/r1.dump /srv/{APP}/backups/{r1['release']}.dump\n")
    assert result.returncode == 1
    assert f"no backup was taken before release {r1['release']}" in result.stderr
    assert "nothing was changed" in result.stderr
    assert served(env, r1["release"], within=5) == {h: r1["release"] for h in WEB}


def test_db_backup_takes_one_now(env: Env, apps: dict[str, Path], r1: dict[str, Any]) -> None:
    doc = run_json(env, "db", "backup", ENV, app=apps["r1"])
    assert doc["name"].endswith("-manual") and doc["size"] > 0, doc
    listed = run_json(env, "db", "backups", ENV, app=apps["r1"])
    assert listed["backups"][0]["name"] == doc["name"]
    assert len(listed["backups"]) == 3  # keep: 3


def test_db_restore_puts_a_chosen_backup_back_with_the_app_stopped_meanwhile(
        env: Env, apps: dict[str, Path], r1: dict[str, Any]) -> None:
    manual = run_json(env, "db", "backups", ENV, app=apps["r1"])["backups"][0]["name"]
    assert manual.endswith("-manual")
    sql(env, "delete from notes where id > 2")
    assert notes(env) == 2
    result = env.shipit("db", "restore", ENV, manual, "--yes", app=apps["r1"])
    assert result.returncode == 0, result.stderr
    assert "LOST" in result.stderr and f"restored {manual}" in result.stdout
    assert notes(env) == 5
    assert served(env, r1["release"]) == {h: r1["release"] for h in WEB}
    missing = env.shipit("db", "restore", ENV, "20200101T000000Z-manual", "--yes", app=apps["r1"])
    assert missing.returncode == 1 and "no backup 20200101T000000Z-manual on db1" in missing.stderr


def test_a_failing_backup_stops_the_deploy_before_migrating_old_release_serving_lock_free(
        env: Env, apps: dict[str, Path], r1: dict[str, Any]) -> None:
    # a session holding an exclusive lock on notes: pg_dump waits for it past the 5 s limit
    env.run_on("db1", f"nohup runuser -u postgres -- env PGAPPNAME=shipit-e2e-locker psql -X -d {APP} -c "
               "'begin; lock table notes in access exclusive mode; select pg_sleep(120);' "
               ">/dev/null 2>&1 </dev/null &\nsleep 1\n")
    try:
        doc = run_json(env, "deploy", ENV, app=apps["r3"], ok=False)
    finally:
        sql(env, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'shipit-e2e-locker'")
    assert doc["_rc"] == 1, doc
    assert "the database backup on db1 failed; no migration ran" in doc["error"], doc
    assert "did not finish within 5 s" in doc["error"], doc
    assert doc["serving"] == {h: r1["release"] for h in WEB}, doc
    assert notes(env) == 5  # R3's migration (the purge) never ran
    assert env.run_on("web1", f"test ! -e /srv/{APP}/.deploy-lock && echo free\n").strip() == "free"
    assert ".partial" not in env.run_on("db1", f"ls -A /srv/{APP}/backups\n")
    assert served(env, r1["release"], within=5) == {h: r1["release"] for h in WEB}
