"""Database backups (issue 13 item 6), stubbed layer: the pure builders of shipit.backups as
data, the decision to back up (backup_skip_reason), the Deployer's backup before migrate,
restore and rollback --restore-db over the simulated fleet (tests/unit/fakefleet.py), and the
`shipit db` verbs and `rollback --restore-db` through the CLI."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shipit import backups, cli, dbcli
from shipit.app import AppSpec, BackupPolicy, load_app_spec
from shipit.deploy import Deployer, DeployFailed, backup_skip_reason, load_target
from shipit.errors import ValidationError
from shipit.inventory import load_inventory
from shipit.layout import Layout
from shipit.pool import TransportPool
from tests.unit.fakefleet import FakeHost, fake_kinds, fake_modules, fake_pool
from tests.unit.test_deployer import WEB, Fleet, Recorder

LAY = Layout("example")
R1 = "20261201T100000Z-aaaaaaaaaaaa"
R2 = "20261202T100000Z-bbbbbbbbbbbb"


# ---- the builders, as data ------------------------------------------------------------------

def test_backup_script_dumps_as_postgres_into_a_partial_file_then_renames_and_prunes() -> None:
    script = backups.backup_script(LAY, "example", R2, 7, 600)
    assert "install -d -o postgres -g postgres -m 0700 /srv/example/backups\n" in script
    assert (f"runuser -u postgres -- timeout -k 10 600 pg_dump -Fc -d example -f "
            f"/srv/example/backups/.{R2}.partial") in script
    assert f"runuser -u postgres -- mv -f -- /srv/example/backups/.{R2}.partial /srv/example/backups/{R2}.dump" in script
    assert f"if [ -e /srv/example/backups/{R2}.dump ]; then\n  echo exists {R2}" in script  # never overwritten
    assert "tail -n +8 " in script  # keep 7
    assert "PGPASSWORD" not in script and "password" not in script.lower()
    assert script.rstrip().endswith("fi")


def test_backup_script_quotes_what_it_is_given() -> None:
    script = backups.backup_script(Layout("my-app"), "my_db", R1, 1, 5.7)
    assert "timeout -k 10 5 pg_dump -Fc -d my_db" in script and "tail -n +2 " in script
    assert "'shipit: the backup of database my_db failed (pg_dump exit '\"$rc): $why\"" in script


def test_dump_and_restore_argv_are_words() -> None:
    assert backups.dump_argv("example", "/x/y.partial", 90) == [
        "timeout", "-k", "10", "90", "pg_dump", "-Fc", "-d", "example", "-f", "/x/y.partial"]
    assert backups.restore_sql_argv("/x/y.dump", "/x/.y.sql", 0.2) == [
        "timeout", "-k", "10", "1", "pg_restore", "--clean", "--if-exists", "-f", "/x/.y.sql", "/x/y.dump"]
    # one transaction stopping at the first error: the role's objects dropped, then the dump's
    assert backups.restore_argv("example", "example", "/x/.y.sql", 90) == [
        "timeout", "-k", "10", "90", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
        "-d", "example", "-c", 'DROP OWNED BY "example"', "-f", "/x/.y.sql"]


def test_restore_script_refuses_a_missing_backup_and_reports_the_tools_reason() -> None:
    script = backups.restore_script(LAY, "example", "example", R1, 300)
    assert script.startswith(f"if [ ! -f /srv/example/backups/{R1}.dump ]; then")
    sql = f"/srv/example/backups/.{R1}.restore.sql"
    assert ("runuser -u postgres -- timeout -k 10 300 pg_restore --clean --if-exists "
            f"-f {sql} /srv/example/backups/{R1}.dump") in script
    assert ("runuser -u postgres -- timeout -k 10 300 psql -X -q -v ON_ERROR_STOP=1 --single-transaction "
            f"-d example -c 'DROP OWNED BY \"example\"' -f {sql}") in script
    assert script.count(f"rm -f {sql}") == 1 and "nothing was changed" in script


def test_list_script_and_parse_list_newest_first_ignoring_what_is_not_a_backup() -> None:
    assert "find /srv/example/backups -maxdepth 1 -type f -name '*.dump'" in backups.list_script(LAY)
    out = (f"{R1}.dump\t100\t1796230000.5\n{R2}.dump\t2048\t1796240000.0\n"
           "notes.txt\t1\t1\n.x.partial\t1\t1\nweird name.dump\t1\t1\n"
           f"20261203T100000Z-manual.dump\tabc\t1\n")
    found = backups.parse_list(out)
    assert [b.name for b in found] == [R2, R1]
    assert found[0].size == 2048 and found[0].time == datetime.fromtimestamp(1796240000.0, UTC)
    assert found[1].as_dict() == {"name": R1, "size": 100,
                                  "time": datetime.fromtimestamp(1796230000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert backups.parse_list("") == []


def test_backup_names() -> None:
    assert backups.manual_name(datetime(2026, 12, 3, 10, 15, 0, tzinfo=UTC)) == "20261203T101500Z-manual"
    for ok in (R1, R1 + ".dump", "20261203T101500Z-manual"):
        assert backups.backup_name_problem(ok) is None, ok
    for bad in ("", "../etc/passwd", f"{R1}; rm -rf /", "latest", None, 3, f"{R1}\n"):
        assert "expected a backup name" in str(backups.backup_name_problem(bad)), bad


def test_pause_and_resume_scripts_stop_the_slots_sockets_and_processes_then_start_those() -> None:
    pause = backups.pause_script(LAY, ["heartbeat", "worker-2"])
    assert ("systemctl list-units --plain --no-legend --state=active -- 'example-web@*.service' "
            "'example-web@*.socket' 'example-heartbeat@*.service' 'example-worker-2@*.service'") in pause
    assert "> /srv/example/.paused-units.tmp\nmv -f /srv/example/.paused-units.tmp /srv/example/.paused-units" in pause
    assert "cat /srv/example/.paused-units 2>/dev/null" in pause  # an interrupted restore's list is kept
    resume = backups.resume_script(LAY)
    assert "systemctl start $units" in resume and "rm -f /srv/example/.paused-units" in resume
    assert backups.unit_patterns(Layout("a"), []) == ["a-web@*.service", "a-web@*.socket"]


def test_psql_argv_runs_as_postgres_with_the_apps_role_and_no_password() -> None:
    argv = backups.psql_argv("example", "example_role", ["-c", "select 1"])
    assert argv == ["runuser", "-u", "postgres", "--", "env", "PGOPTIONS=-c role=example_role", "psql",
                    "-d", "example", "-c", "select 1"]


def test_layout_paths() -> None:
    assert LAY.backups_dir == "/srv/example/backups"
    assert LAY.backup(R1) == f"/srv/example/backups/{R1}.dump"
    assert LAY.paused_units == "/srv/example/.paused-units"


# ---- the spec ---------------------------------------------------------------------------------

def spec_with(tmp_path: Path, database: str, migrate: bool = True) -> AppSpec:
    (tmp_path / "shipit.yml").write_text(
        "name: example\nweb: {app: m:app}\ndomains: [example.test]\nsecrets: [DB_PASSWORD]\n"
        + ("migrate: alembic upgrade head\n" if migrate else "") + f"database: {database}\n")
    return load_app_spec(tmp_path)


def test_backup_policy_defaults_and_values(tmp_path: Path) -> None:
    base = "{name: example, user: example, password_secret: DB_PASSWORD"
    assert spec_with(tmp_path, base + "}").backup is None
    assert spec_with(tmp_path, base + ", backup: {}}").backup == BackupPolicy(True, 7)
    assert spec_with(tmp_path, base + ", backup: {before_migrate: false, keep: 1}}").backup == BackupPolicy(False, 1)
    spec = spec_with(tmp_path, base + ", backup: {keep: 1000}}")
    assert spec.backup == BackupPolicy(True, 1000)
    assert dict(spec.database or {}) == {"name": "example", "user": "example", "password_secret": "DB_PASSWORD"}


def test_bad_backup_policy_names_file_line_and_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        spec_with(tmp_path, "{name: example, user: example, password_secret: DB_PASSWORD,\n"
                            "  backup: {keep: -1, before_migrate: 1, every: daily}}")
    got = {(p.key, p.line) for p in info.value.problems}
    assert got == {("database.backup.keep", 7), ("database.backup.before_migrate", 7),
                   ("database.backup.every", 7)}, info.value.problems
    assert all(p.file == str(tmp_path / "shipit.yml") for p in info.value.problems)


def test_backup_skip_reason(tmp_path: Path) -> None:
    base = "{name: example, user: example, password_secret: DB_PASSWORD"
    on = spec_with(tmp_path, base + ", backup: {keep: 3}}")
    off = spec_with(tmp_path, base + ", backup: {before_migrate: false}}")
    none = spec_with(tmp_path, base + "}")
    no_migrate = spec_with(tmp_path, base + ", backup: {}}", migrate=False)
    before = {"web1": {"current": R1}, "web2": {"current": R1}}
    to_r2 = {"web1": R2, "web2": R2}
    assert backup_skip_reason(on, True, "db1", before, to_r2) is None
    assert backup_skip_reason(on, True, "db1", {"web1": {"current": R2}, "web2": {"current": R1}}, to_r2) is None
    assert backup_skip_reason(on, True, "db1", {"web1": {"current": R2}, "web2": {"current": R2}},
                              to_r2) == "not taken: the release already serves on every host (its migrations ran)"
    assert backup_skip_reason(on, False, "db1", before, to_r2) == \
        "not taken: the migrations do not run (the leader is outside --limit)"
    assert backup_skip_reason(on, True, "", before, to_r2) == "not taken: the inventory has no host in the group db"
    for spec in (off, none, no_migrate):
        assert backup_skip_reason(spec, True, "db1", before, to_r2) == "none"


# ---- the Deployer over the simulated fleet ----------------------------------------------------

class DbFleet(Fleet):
    """Fleet's three web hosts plus db1, and an app with a database backed up before migrate."""

    def __init__(self, tmp: Path, keep: int = 3) -> None:
        super().__init__(tmp)
        (tmp / "inv.yml").write_text(
            "hosts:\n" + "".join(f"  {h}: {{address: 127.0.0.{i + 1}}}\n" for i, h in enumerate(WEB))
            + "  db1: {address: 127.0.0.9}\n"
            + "groups: {web: {hosts: [web1, web2, web3]}, db: {hosts: [db1]}}\n")
        spec = tmp / "app" / "shipit.yml"
        spec.write_text(spec.read_text() + "secrets: [DB_PASSWORD]\n"
                        f"database: {{name: example, user: example, password_secret: DB_PASSWORD, "
                        f"backup: {{before_migrate: true, keep: {keep}}}}}\n")
        facts = FakeHost("db1").fact("host", "") + "pg_cluster=15 main 5432 online\n"
        self.hosts["db1"] = FakeHost("db1", host_facts=facts)

    def serving(self) -> dict[str, str | None]:
        return {h: self.hosts[h].current for h in WEB}

    def deployer(self, limit: str | None = None, lock_wait: float = 0.0) -> tuple[Deployer, Recorder]:
        inv = load_inventory(self.tmp / "inv.yml")
        target = load_target("prod", inv, str(self.tmp / "app"), limit=limit)
        rec = Recorder()
        return Deployer(target, fake_pool(self.hosts), rec, forks=5, lock_wait=lock_wait, build=self.build,
                        modules=fake_modules(), kinds=fake_kinds(), sleep=lambda s: None), rec


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DbFleet:
    monkeypatch.setenv("DB_PASSWORD", "s3cret-pw")
    return DbFleet(tmp_path)


def test_a_deploy_backs_up_before_migrating_named_after_the_release(db: DbFleet) -> None:
    deployer, rec = db.deployer()
    outcome = deployer.deploy(str(db.tmp / "out"))
    assert outcome.ok and outcome.backup == f"took {outcome.release}"
    assert list(db.hosts["db1"].backups) == [outcome.release]
    phases = [line.split()[1] for line in rec.lines if line.startswith("phase ")]
    assert phases.index("backup") < phases.index("migrate")
    assert outcome.as_dict()["backup"] == f"took {outcome.release}"
    assert "backup" in outcome.durations
    assert not any("s3cret-pw" in s for s in db.hosts["db1"].scripts)


def test_a_second_deploy_is_a_no_op_without_a_backup(db: DbFleet) -> None:
    first = db.deploy()
    again = db.deploy()
    assert again.release == first.release and again.changed == 0
    assert again.backup == "not taken: the release already serves on every host (its migrations ran)"
    assert list(db.hosts["db1"].backups) == [first.release]


def test_a_retried_release_keeps_the_backup_of_its_first_attempt(db: DbFleet) -> None:
    db.deploy()
    db.version += 1
    db.hosts["web1"].fail_switch = True
    with pytest.raises(DeployFailed):
        db.deploy()
    taken = dict(db.hosts["db1"].backups)
    db.hosts["web1"].fail_switch = False
    outcome = db.deploy()
    assert outcome.ok and outcome.backup == f"kept {outcome.release}"
    assert db.hosts["db1"].backups == taken  # the dump before its first migration, not after it


def test_the_newest_keep_backups_are_kept(db: DbFleet) -> None:
    releases = []
    for _ in range(5):
        releases.append(db.deploy().release)
        db.version += 1
    assert set(db.hosts["db1"].backups) == set(releases[-3:])


def test_a_failing_backup_stops_before_migrate_old_release_serving_lock_free(db: DbFleet) -> None:
    first = db.deploy()
    migrations = db.hosts["web1"].migrations
    db.version += 1
    db.hosts["db1"].fail_backup = True
    with pytest.raises(DeployFailed) as info:
        db.deploy()
    assert "the database backup on db1 failed; no migration ran and no host was switched" in info.value.message
    assert "pg_dump: error: connection to server failed" in info.value.message
    assert db.hosts["web1"].migrations == migrations
    assert db.serving() == {h: first.release for h in WEB}
    assert db.hosts["web1"].lock is None
    assert info.value.outcome is not None and info.value.outcome.backup.startswith("failed: ")


def test_a_hanging_backup_is_stopped_by_its_timeout_and_the_deploy_stops_before_migrate(db: DbFleet) -> None:
    first = db.deploy()
    db.version += 1
    db.hosts["db1"].hang = "__change db_backup"
    with pytest.raises(DeployFailed) as info:
        db.deploy()
    assert "the database backup on db1 failed" in info.value.message and "timeout" in info.value.message
    assert db.hosts["web1"].migrations == 1 and db.serving() == {h: first.release for h in WEB}
    assert db.hosts["web1"].lock is None


def test_the_backup_runs_under_the_lock_after_the_upload_before_migrate(db: DbFleet) -> None:
    deployer, rec = db.deployer()
    deployer.deploy(str(db.tmp / "out"))
    plays = [line for line in rec.lines if line.startswith("play ")]
    names = [line.split()[1] for line in plays]
    assert names.index("lock") < names.index("upload") < names.index("backup") < names.index("migrate") \
        < names.index("unlock")
    assert plays[names.index("backup")] == "play backup db1"


def test_module_timeouts_cover_the_commands_own() -> None:
    from shipit.modules.database import AppPauseModule, DbBackupModule, DbRestoreModule

    assert DbBackupModule().timeout_of({"timeout": 600}) == 630
    assert DbRestoreModule().timeout_of({"timeout": 5}) == 35
    assert AppPauseModule().timeout_of({}) == backups.QUICK_TIMEOUT + 30
    assert DbBackupModule().check_params({"app": "example", "database": "x; drop", "name": "latest",
                                          "keep": 0, "timeout": -1}) == [
        ("database", "expected the database's name (an SQL identifier)"),
        ("name", backups.backup_name_problem("latest")),
        ("timeout", "expected a number of seconds > 0"),
        ("keep", "expected a number of backups to keep, from 1 to 1000")]


def test_no_backup_when_the_leader_is_outside_the_limit(db: DbFleet) -> None:
    db.deploy()
    db.version += 1
    deployer, rec = db.deployer(limit="web2")
    outcome = deployer.deploy(str(db.tmp / "out"))
    assert outcome.backup == "not taken: the migrations do not run (the leader is outside --limit)"
    assert len(db.hosts["db1"].backups) == 1


def test_rollback_restore_db_rolls_back_then_restores_with_the_app_stopped(db: DbFleet) -> None:
    r1 = db.deploy().release
    db.version += 1
    r2 = db.deploy().release
    deployer, rec = db.deployer()
    backup = deployer.rollback_backup()
    assert backup.name == r2
    outcome = deployer.rollback(restore_db=backup.name)
    assert outcome.ok and db.serving() == {h: r1 for h in WEB}
    assert outcome.backup == f"restored {r2}"
    assert db.hosts["db1"].restored == [r2]
    assert all(db.hosts[h].pauses == ["stopped", "started"] for h in WEB)
    assert all(db.hosts[h].active and db.hosts[h].paused is None for h in WEB)
    plays = [line.split()[1] for line in rec.lines if line.startswith("play ")]
    assert plays.index("switch") < plays.index("pause") < plays.index("restore") < plays.index("resume") < plays.index("unlock")
    assert db.hosts["web1"].lock is None


def test_rollback_restore_db_refuses_without_a_backup_of_the_current_release(db: DbFleet) -> None:
    db.deploy()
    db.version += 1
    r2 = db.deploy().release
    del db.hosts["db1"].backups[r2]
    deployer, _ = db.deployer()
    with pytest.raises(DeployFailed) as info:
        deployer.rollback_backup()
    assert f"no backup was taken before release {r2}" in info.value.message
    assert "nothing was changed" in info.value.message
    with pytest.raises(ValidationError):
        deployer.rollback_backup(to=r2)
    with pytest.raises(ValidationError):
        db.deployer(limit="web1")[0].rollback_backup()


def test_a_failing_restore_starts_the_app_again_and_says_so(db: DbFleet) -> None:
    db.deploy()
    db.version += 1
    r2 = db.deploy().release
    db.hosts["db1"].fail_restore = True
    deployer, _ = db.deployer()
    with pytest.raises(DeployFailed) as info:
        deployer.rollback(restore_db=r2)
    assert "the hosts were rolled back, but restoring" in info.value.message
    assert "the database is as it was before" in info.value.message
    assert all(db.hosts[h].pauses == ["stopped", "started"] and db.hosts[h].active for h in WEB)
    assert db.hosts["web1"].lock is None


def test_restore_db_takes_the_lock_and_refuses_an_unknown_backup(db: DbFleet) -> None:
    r1 = db.deploy().release
    deployer, _ = db.deployer()
    assert deployer.restore_db(r1).name == r1
    assert db.hosts["db1"].restored == [r1]
    with pytest.raises(DeployFailed, match="no backup 20261203T000000Z-manual on db1"):
        deployer.restore_db("20261203T000000Z-manual")
    db.hosts["web1"].lock = "who=someone else"
    with pytest.raises(DeployFailed, match="lock is held"):
        deployer.restore_db(r1)
    assert db.hosts["db1"].restored == [r1]
    assert db.hosts["web1"].pauses == ["stopped", "started"]


# ---- the CLI ------------------------------------------------------------------------------------

@pytest.fixture
def clifleet(db: DbFleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[DbFleet]:
    opened: list[str] = []

    def pool(inv: object, accept: bool = False) -> TransportPool:
        real = fake_pool(db.hosts)
        return TransportPool(lambda name: (opened.append(name), real.get(name))[1])

    def deployer(*args: Any, **kw: Any) -> Deployer:
        d = real_deployer(*args, **kw)
        d.modules, d.kinds = fake_modules(), fake_kinds()
        return d

    real_deployer = cli._deployer
    monkeypatch.setattr(cli, "ssh_pool", pool)
    monkeypatch.setattr(dbcli, "ssh_pool", pool)
    monkeypatch.setattr(cli, "_deployer", deployer)
    monkeypatch.chdir(db.tmp)
    db.opened = opened  # type: ignore[attr-defined]
    yield db


def shipit(fleet: DbFleet, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    where = ["-i", str(fleet.tmp / "inv.yml"), "--app", str(fleet.tmp / "app")]
    if "--" in args:
        i = args.index("--")
        args = (*args[:i], *where, *args[i:])
    else:
        args = (*args, *where)
    result = CliRunner().invoke(cli.main, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_db_backups_lists_name_size_and_time(clifleet: DbFleet) -> None:
    clifleet.hosts["db1"].backups = {R1: (2048, 1796230000.0), R2: (4096, 1796240000.0)}
    code, out, err = shipit(clifleet, "db", "backups", "prod", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["host"] == "db1" and [b["name"] for b in doc["backups"]] == [R2, R1]
    code, out, err = shipit(clifleet, "db", "backups", "prod")
    assert code == 0 and R1 in out and "4.0 KiB" in out
    assert clifleet.opened == ["db1", "db1"]  # type: ignore[attr-defined]


def test_cli_db_backup_takes_a_manual_backup(clifleet: DbFleet) -> None:
    code, out, err = shipit(clifleet, "db", "backup", "prod", "--json")
    assert code == 0, err
    name = json.loads(out)["name"]
    assert name.endswith("-manual") and name in clifleet.hosts["db1"].backups


def test_cli_db_restore_asks_and_refuses_without_a_terminal(clifleet: DbFleet) -> None:
    clifleet.hosts["db1"].backups = {R1: (2048, 1796230000.0)}
    code, out, err = shipit(clifleet, "db", "restore", "prod", R1)
    assert code == 2 and "give --yes" in err
    assert clifleet.hosts["db1"].restored == []
    code, out, err = shipit(clifleet, "db", "restore", "prod", R1, "--yes")
    assert code == 0, err
    assert "LOST" in err and f"restored {R1}" in out
    assert clifleet.hosts["db1"].restored == [R1]


def test_cli_db_restore_bad_name_is_exit_2_before_any_connection(clifleet: DbFleet) -> None:
    code, out, err = shipit(clifleet, "db", "restore", "prod", "../../etc/shadow", "--yes")
    assert code == 2 and "expected a backup name" in err
    assert clifleet.opened == []  # type: ignore[attr-defined]


def test_cli_rollback_restore_db(clifleet: DbFleet) -> None:
    r1 = clifleet.deploy().release
    clifleet.version += 1
    r2 = clifleet.deploy().release
    code, out, err = shipit(clifleet, "rollback", "prod", "--restore-db")
    assert code == 2 and "give --yes" in err and clifleet.serving()["web1"] == r2
    code, out, err = shipit(clifleet, "rollback", "prod", "--restore-db", "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["backup"] == f"restored {r2}" and doc["serving"] == {h: r1 for h in WEB}
    assert "LOST" in err and r2 in err


def test_cli_rollback_restore_db_without_a_backup_changes_nothing(clifleet: DbFleet) -> None:
    clifleet.deploy()
    clifleet.version += 1
    r2 = clifleet.deploy().release
    clifleet.hosts["db1"].backups.clear()
    code, out, err = shipit(clifleet, "rollback", "prod", "--restore-db", "--yes")
    assert code == 1 and f"no backup was taken before release {r2}" in err
    assert clifleet.serving() == {h: r2 for h in WEB}


def test_cli_db_psql_runs_psql_as_the_apps_role_on_the_db_host(clifleet: DbFleet) -> None:
    code, out, err = shipit(clifleet, "db", "psql", "prod", "--", "-c", "select 1")
    assert code == 0, err
    script = clifleet.hosts["db1"].scripts[-1]
    assert shlex.split(script.strip().removesuffix("</dev/null")) == [
        "timeout", "3600", "runuser", "-u", "postgres", "--", "env", "PGOPTIONS=-c role=example", "psql",
        "-d", "example", "-c", "select 1"]
    code, out, err = shipit(clifleet, "db", "psql", "prod", "--tty")
    assert clifleet.hosts["db1"].scripts[-1] == "runuser -u postgres -- env PGOPTIONS=-c role=example psql -d example"


def test_cli_db_verbs_need_a_database(clifleet: DbFleet) -> None:
    spec = clifleet.tmp / "app" / "shipit.yml"
    spec.write_text("\n".join(line for line in spec.read_text().splitlines()
                              if not line.startswith(("database:", "secrets:"))) + "\n")
    for verb in (["backups"], ["backup"], ["psql"]):
        code, out, err = shipit(clifleet, "db", *verb, "prod")
        assert code == 2 and "the app has no database" in err, (verb, err)
    assert clifleet.opened == []  # type: ignore[attr-defined]
