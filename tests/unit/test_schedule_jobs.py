"""Scheduled jobs (issue 13 item 4): the spec's ``schedule:`` (good and bad input), the unit
texts as data, the ``app_schedule`` module's plans (present, paused, resumed), the
``job_units`` fact's parser and the status lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipit import hardening
from shipit.app import Job, calendar_problem, load_app_spec, parse_duration
from shipit.deploy import app_vars, render_release_env
from shipit.errors import ValidationError
from shipit.facts import files
from shipit.facts.schedule import job_units, parse
from shipit.layout import Layout
from shipit.modules.base import PlanContext, sha256_hex
from shipit.modules.schedule import AppScheduleModule
from shipit.schedule import job_vars, jobs_for_host, service_unit, timer_unit, unit_files
from shipit.status import job_line, job_result, status_lines

LAY = Layout("shop")
BASE = "name: shop\nweb: {app: shop.main:app}\ndomains: [shop.test]\n"


def spec_with(tmp_path: Path, schedule: str) -> Any:
    (tmp_path / "shipit.yml").write_text(BASE + schedule)
    return load_app_spec(tmp_path)


def problems(tmp_path: Path, schedule: str, overrides: dict[str, Any] | None = None) -> str:
    (tmp_path / "shipit.yml").write_text(BASE + schedule)
    with pytest.raises(ValidationError) as info:
        load_app_spec(tmp_path, overrides, "inventories/prod.yml")
    return str(info.value)


# ---- the spec --------------------------------------------------------------------------------

def test_schedule_loads_with_defaults_and_yaml_s_bare_on_key(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, "schedule:\n"
                     '  - {name: cleanup, command: "python manage.py clearsessions", on_calendar: daily}\n'
                     '  - {name: report, command: "python -m app.report", on_calendar: "*-*-* 03:00:00", '
                     "on: all, timeout: 30m, random_delay: 5m}\n"
                     '  - {name: two, command: "true", on_calendar: [hourly, "Mon *-*-* 09:00"], timeout: 90}\n')
    assert spec.schedule == (
        Job("cleanup", "python manage.py clearsessions", ("daily",), "leader", 3600.0, 0.0),
        Job("report", "python -m app.report", ("*-*-* 03:00:00",), "all", 1800.0, 300.0),
        Job("two", "true", ("hourly", "Mon *-*-* 09:00"), "leader", 90.0, 0.0),
    )
    assert spec_with(tmp_path, "").schedule == ()


def test_the_inventory_overrides_the_schedule(tmp_path: Path) -> None:
    (tmp_path / "shipit.yml").write_text(BASE + 'schedule: [{name: a, command: "true", on_calendar: daily}]\n')
    spec = load_app_spec(tmp_path, {"schedule": [{"name": "b", "command": "false", "on_calendar": "hourly"}]},
                         "inventories/prod.yml")
    assert [j.name for j in spec.schedule] == ["b"]
    assert spec.where("schedule")[0] == "inventories/prod.yml"


@pytest.mark.parametrize(("schedule", "expected"), [
    ("schedule: daily\n", "shipit.yml:4: schedule: expected a list of jobs"),
    ("schedule:\n  - cleanup\n", "shipit.yml:5: schedule[0]: expected {name"),
    ('schedule:\n  - {name: Bad_Name, command: "true", on_calendar: daily}\n',
     "shipit.yml:5: schedule[0].name: expected a short lowercase name"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: daily}\n  - {name: a, command: "x", on_calendar: daily}\n',
     "shipit.yml:6: schedule[1].name: another job is already named 'a'"),
    ("schedule:\n  - {name: a, on_calendar: daily}\n", "schedule[0].command: expected the job's command line"),
    ('schedule:\n  - {name: a, command: "a\\nb", on_calendar: daily}\n', "schedule[0].command: expected the job's "
     "command line (e.g. python manage.py clearsessions) on one line"),
    ('schedule:\n  - {name: a, command: "true"}\n', "shipit.yml:5: schedule[0].on_calendar: missing"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: ""}\n',
     "schedule[0].on_calendar: expected a systemd OnCalendar expression (e.g. daily"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: dialy}\n',
     "schedule[0].on_calendar: 'dialy' is not one of systemd's calendar shorthands"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: "daily\\nhourly"}\n',
     "schedule[0].on_calendar: expected a systemd OnCalendar expression on one line"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: "*-*-* 03:00 %H"}\n',
     "schedule[0].on_calendar: expected a systemd OnCalendar expression"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: [daily, 5]}\n',
     "shipit.yml:5: schedule[0].on_calendar[1]: expected a systemd OnCalendar expression"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: []}\n',
     "schedule[0].on_calendar: expected at least one OnCalendar expression"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: daily, on: some}\n',
     "schedule[0].on: expected leader (the leader web host only, the default) or all"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: daily, timeout: 0}\n',
     "schedule[0].timeout: expected how long a run may take"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: daily, timeout: 2days}\n',
     "schedule[0].timeout: expected how long a run may take"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: daily, timeout: 2d}\n',
     "schedule[0].timeout: expected how long a run may take before it is stopped, from 1 s to 1 d"),
    ('schedule:\n  - {name: a, command: "true", on_calendar: daily, random_delay: soon}\n',
     "schedule[0].random_delay: expected a delay of at most 1 d"),
    ('schedule:\n  - {name: a, command: "true", on_calendr: daily}\n',
     "schedule[0].on_calendr: unknown key; expected name, command, on_calendar, on, timeout, random_delay; "
     "did you mean 'on_calendar'?"),
])
def test_bad_schedules_name_file_line_key_and_what_was_expected(tmp_path: Path, schedule: str, expected: str) -> None:
    assert expected in problems(tmp_path, schedule)


def test_a_bad_schedule_in_the_inventory_names_the_inventory(tmp_path: Path) -> None:
    text = problems(tmp_path, "", {"schedule": [{"name": "a", "command": "true", "on_calendar": "whenever"}]})
    assert "inventories/prod.yml: schedule[0].on_calendar: 'whenever' is not one of systemd's" in text


def test_durations_and_calendars() -> None:
    assert [parse_duration(v) for v in (90, "90s", "30m", "1h30m", "1d", "2 min", 1.5)] == \
        [90.0, 90.0, 1800.0, 5400.0, 86400.0, 120.0, 1.5]
    for bad in ("soon", "-1", True, -3, "1y"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for good in ("daily", "Daily", "*-*-* *:*:0/10", "Mon..Fri *-*-* 09:00", "*-*~01", "2026-12-24 18:00 Europe/Berlin"):
        assert calendar_problem(good) is None, good
    for bad in ("", "  ", "nightly", "daily; rm -rf /", "$(date)", "a\nb", "x" * 201, None, 3):
        assert calendar_problem(bad) is not None, bad


# ---- unit texts ------------------------------------------------------------------------------

JOB = Job("cleanup", "python manage.py clearsessions", ("daily", "*-*-* 12:00"), "leader", 1800.0, 0.0)


def test_the_service_runs_the_current_release_s_command_as_the_app_user_sandboxed() -> None:
    text = service_unit(LAY, JOB)
    head = text.split("# the sandbox")[0].splitlines()
    assert head[1:] == [
        "[Unit]",
        "Description=shop scheduled job cleanup",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        "User=shop",
        "Group=shop",
        "WorkingDirectory=/srv/shop/current",
        "EnvironmentFile=/srv/shop/current/.shipit/release.env",
        "EnvironmentFile=/srv/shop/current/.shipit/app.env",
        "Environment=PATH=/srv/shop/current/venv/bin:/usr/local/bin:/usr/bin:/bin",
        "ExecStart=/bin/sh -c 'eval \"$${SHIPIT_JOB_cleanup:?is not set: the current release has no job cleanup}\"'",
        "TimeoutStartSec=1800s",
    ]
    assert text.endswith("".join(line + "\n" for line in hardening.directives([LAY.shared])))
    assert "clearsessions" not in text  # the command lives in the release, not in the unit


def test_the_timer_is_persistent_precise_and_names_its_service() -> None:
    assert timer_unit(LAY, JOB).splitlines()[1:] == [
        "[Unit]", "Description=shop scheduled job cleanup (timer)", "",
        "[Timer]", "OnCalendar=daily", "OnCalendar=*-*-* 12:00", "Persistent=true", "AccuracySec=1s",
        "Unit=shop-job-cleanup.service", "", "[Install]", "WantedBy=timers.target"]
    delayed = Job("r", "x", ("hourly",), "all", 60.0, 300.0)
    assert "RandomizedDelaySec=300s" in timer_unit(LAY, delayed)


def test_leader_runs_every_job_others_the_on_all_ones() -> None:
    other = Job("report", "x", ("hourly",), "all")
    assert jobs_for_host([JOB, other], True) == [JOB, other]
    assert jobs_for_host([JOB, other], False) == [other]
    assert list(unit_files(LAY, [other])) == ["shop-job-report.service", "shop-job-report.timer"]


def test_the_release_env_carries_each_job_s_command(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, "schedule:\n  - {name: clean-up, command: 'echo \"$HOME\" > x', on_calendar: daily}\n")
    env = render_release_env(spec, "20261203T000000Z-abcdef012345", 2)
    assert 'SHIPIT_JOB_clean_up="echo \\"\\$HOME\\" > x"' in env.splitlines()
    assert app_vars(spec, 2, {})["schedule"] == [{"name": "clean-up", "on_calendar": ["daily"], "on": "leader",
                                                 "timeout": 3600.0, "random_delay": 0.0}]


# ---- the module ------------------------------------------------------------------------------

MOD = AppScheduleModule()
CTX = PlanContext(host="web1", host_facts={})


def fact(jobs: dict[str, dict[str, Any]] | None = None, file_texts: dict[str, str] | None = None,
         current: str | None = "R1") -> dict[str, Any]:
    out = {"current": current, "files": {u: sha256_hex(t.encode()) for u, t in (file_texts or {}).items()},
           "jobs": {}}
    for name, info in (jobs or {}).items():
        out["jobs"][name] = {"timer": "inactive", "enabled": "enabled", "state": "inactive", "running": False,
                             "last": None, "next": None, "result": None, "exit_status": None,
                             "started": None, "finished": None, **info}
    return out


def plan(state: str, jobs: list[Job], units: dict[str, Any], leader: bool = True,
         file_facts: dict[str, str] | None = None) -> Any:
    params = {"app": "shop", "jobs": job_vars(jobs), "leader": leader, "state": state}
    assert MOD.check_params(params) == []
    facts: dict[Any, Any] = {job_units("shop"): units}
    for unit in unit_files(LAY, jobs_for_host(jobs, leader)) if state == "present" else ():
        path = f"/etc/systemd/system/{unit}"
        text = (file_facts or {}).get(unit)
        facts[files.file(path)] = ({"exists": True, "type": "file", "mode": "0644", "owner": "root", "group": "root",
                                    "size": len(text), "sha256": sha256_hex(text.encode())} if text is not None
                                   else {"exists": False, "type": None, "mode": None, "owner": None,
                                         "group": None, "size": 0, "sha256": None})
    assert set(MOD.facts(params)) == set(facts)
    return MOD.plan(params, facts, CTX)


def test_present_writes_the_units_and_enables_the_timer_without_starting_it() -> None:
    result = plan("present", [JOB], fact())
    reasons = [c.reason for c in result.changes]
    assert reasons == ["shop-job-cleanup.service: create /etc/systemd/system/shop-job-cleanup.service",
                       "shop-job-cleanup.timer: create /etc/systemd/system/shop-job-cleanup.timer",
                       "reload systemd, enable the timers"]
    assert result.changes[-1].script == "systemctl daemon-reload\nsystemctl enable --quiet -- shop-job-cleanup.timer"
    assert "start" not in result.changes[-1].script


def test_present_is_a_no_op_when_the_units_are_as_wanted() -> None:
    texts = unit_files(LAY, [JOB])
    result = plan("present", [JOB], fact({"cleanup": {"timer": "active"}}, texts), file_facts=texts)
    assert result.changes == ()


def test_present_restarts_a_running_timer_whose_file_changed() -> None:
    old = unit_files(LAY, [Job("cleanup", "", ("hourly",), timeout=1800.0)])
    result = plan("present", [JOB], fact({"cleanup": {"timer": "active"}}, old), file_facts=old)
    assert [c.reason for c in result.changes] == ["shop-job-cleanup.timer: content differs",
                                                  "reload systemd, enable the timers"]
    assert "systemctl restart -- shop-job-cleanup.timer" in result.changes[-1].script


def test_present_removes_the_units_of_a_job_no_longer_scheduled_here() -> None:
    texts = {**unit_files(LAY, [JOB]), **unit_files(LAY, [Job("old", "", ("daily",))])}
    result = plan("present", [JOB], fact({"cleanup": {"timer": "active"}, "old": {"timer": "active"}}, texts),
                  file_facts=texts)
    assert [c.reason for c in result.changes] == ["remove the units of job old (no longer scheduled on this host)",
                                                  "reload systemd, enable the timers"]
    script = result.changes[0].script
    assert "systemctl disable --now --quiet shop-job-old.timer shop-job-old.service" in script
    assert "rm -f -- /etc/systemd/system/shop-job-old.timer /etc/systemd/system/shop-job-old.service" in script
    assert result.changes[1].script == "systemctl daemon-reload"
    # a non-leader host loses the leader-only job
    on_web2 = plan("present", [JOB], fact({"cleanup": {}}, unit_files(LAY, [JOB])), leader=False)
    assert [c.reason for c in on_web2.changes] == ["remove the units of job cleanup (no longer scheduled on this host)",
                                                   "reload systemd, enable the timers"]


def test_paused_stops_the_timers_and_waits_for_any_run_bounded_by_the_timeout() -> None:
    texts = unit_files(LAY, [JOB])
    result = plan("paused", [JOB], fact({"cleanup": {"timer": "active", "running": True}}, texts))
    (change,) = result.changes
    assert change.reason == "pause the timers of cleanup; wait for the run of cleanup"
    assert change.script.startswith("systemctl stop -- shop-job-cleanup.timer\n")
    assert "deadline=$(( $(date +%s) + 1830 ))" in change.script
    assert "for s in shop-job-cleanup.service; do" in change.script
    assert MOD.timeout_of({"app": "shop", "jobs": job_vars([JOB]), "leader": True, "state": "paused"}) == 1890.0
    assert plan("paused", [JOB], fact({"cleanup": {}}, texts)).changes == ()  # already paused, nothing runs
    assert plan("paused", [], fact()).changes == ()


def test_resumed_starts_idle_timers_once_a_release_is_live() -> None:
    texts = unit_files(LAY, [JOB])
    (change,) = plan("resumed", [JOB], fact({"cleanup": {}}, texts)).changes
    assert (change.reason, change.script) == ("start the timers of cleanup", "systemctl start -- shop-job-cleanup.timer")
    assert plan("resumed", [JOB], fact({"cleanup": {"timer": "active"}}, texts)).changes == ()
    first = plan("resumed", [JOB], fact({"cleanup": {}}, texts, current=None))
    assert first.changes == () and first.skipped and "first switch" in first.skipped


def test_module_refuses_bad_jobs() -> None:
    bad = {"app": "shop", "jobs": [{"name": "x", "on_calendar": ["daily; reboot"]}, {"name": "Y!", "on_calendar": []},
                                   "nope"], "leader": True, "state": "present"}
    keys = [k for k, _ in MOD.check_params(bad)]
    assert keys == ["jobs[0].on_calendar", "jobs[1].name", "jobs[1].on_calendar", "jobs[2]"]


# ---- the fact and status ---------------------------------------------------------------------

RECORDED = """app=shop
current=20261203T100000Z-abcdef012345
file shop-job-cleanup.service 1111
show shop-job-cleanup.service ActiveState=inactive
show shop-job-cleanup.service Result=exit-code
show shop-job-cleanup.service ExecMainStatus=3
show shop-job-cleanup.service ExecMainStartTimestamp=Wed 2025-12-03 10:00:00 UTC
show shop-job-cleanup.service ExecMainExitTimestamp=@1764756004
file shop-job-never.service 2222
show shop-job-never.service ActiveState=inactive
show shop-job-never.service Result=success
show shop-job-never.service ExecMainStatus=0
show shop-job-never.service ExecMainStartTimestamp=
show shop-job-never.service ExecMainExitTimestamp=
file shop-job-cleanup.timer 3333
show shop-job-cleanup.timer ActiveState=active
show shop-job-cleanup.timer UnitFileState=enabled
show shop-job-cleanup.timer LastTriggerUSec=Wed 2025-12-03 10:00:00 UTC
show shop-job-cleanup.timer NextElapseUSecRealtime=@1764756010
file shop-job-never.timer 4444
show shop-job-never.timer ActiveState=inactive
show shop-job-never.timer UnitFileState=enabled
show shop-job-never.timer LastTriggerUSec=n/a
show shop-job-never.timer NextElapseUSecRealtime=
file shop-web@8000.service 5555
"""


def test_the_fact_parses_last_next_and_result() -> None:
    state = parse(RECORDED)
    assert state["current"] == "20261203T100000Z-abcdef012345"
    assert sorted(state["files"]) == ["shop-job-cleanup.service", "shop-job-cleanup.timer",
                                      "shop-job-never.service", "shop-job-never.timer"]
    assert state["jobs"]["cleanup"] == {"timer": "active", "enabled": "enabled", "state": "inactive", "running": False,
                                        "last": 1764756000, "next": 1764756010, "result": "exit-code",
                                        "exit_status": 3, "started": 1764756000, "finished": 1764756004}
    never = state["jobs"]["never"]
    assert (never["result"], never["last"], never["next"], never["timer"]) == (None, None, None, "inactive")
    assert parse("app=shop\ncurrent=\n") == {"current": None, "files": {}, "jobs": {}}


def test_status_lines_show_each_job_per_host() -> None:
    state = parse(RECORDED)
    assert job_line("cleanup", state["jobs"]["cleanup"]) == "cleanup: last 12-03 10:00:00 failed (exit 3), next 12-03 10:00:10"
    assert job_line("never", state["jobs"]["never"]) == "never: last - never ran, next paused"
    assert job_result({"running": True}) == "running"
    assert job_result({"result": "timeout"}) == "timed out"
    assert job_result({"result": "success"}) == "ok"
    from rich.console import Console

    console = Console(width=80, record=True)
    host = {"reachable": True, "current": "20261203T100000Z-abcdef012345", "live_port": 8000, "units": {},
            "web_unit": None, "web_active": False, "workers": None, "restarts": 0, "memory": 0, "cpu_percent": 0.0,
            "host": {"cpus": 1, "mem_total": 0, "mem_available": 0, "load": [0.1, 0.1, 0.1]}, "probe": None,
            "jobs": state["jobs"]}
    console.print(status_lines({"web1": host}))
    text = console.export_text()
    assert "web1 cleanup: last 12-03 10:00:00 failed (exit 3), next 12-03 10:00:10" in text
    assert all(len(line) <= 80 for line in text.splitlines())


# ---- the deploy: pause before migrate, resume after the roll on every exit path ------------

def _plays(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("play ")]


def _scheduled_fleet(tmp_path: Path) -> Any:
    from tests.unit.test_deployer import Fleet

    fleet = Fleet(tmp_path)
    spec = tmp_path / "app" / "shipit.yml"
    spec.write_text(spec.read_text() + 'schedule: [{name: tick, command: "true", on_calendar: hourly}]\n')
    return fleet


def test_the_deploy_pauses_the_schedule_around_migrate_and_the_roll(tmp_path: Path) -> None:
    fleet = _scheduled_fleet(tmp_path)
    deployer, rec = fleet.deployer()
    outcome = deployer.deploy(str(tmp_path / "out"))
    assert outcome.ok
    plays = _plays(rec.lines)
    assert plays.index("upload") < plays.index("pause_schedule") < plays.index("migrate") \
        < plays.index("switch") < plays.index("resume_schedule") < plays.index("prune")
    # a rollback is framed the same way
    fleet.version += 1
    fleet.deploy()
    deployer, rec = fleet.deployer()
    deployer.rollback()
    plays = _plays(rec.lines)
    assert plays.index("pause_schedule") < plays.index("switch") < plays.index("resume_schedule")


def test_the_schedule_resumes_when_the_roll_fails(tmp_path: Path) -> None:
    from shipit.deploy import DeployFailed

    fleet = _scheduled_fleet(tmp_path)
    fleet.hosts["web1"].fail_switch = True
    deployer, rec = fleet.deployer()
    with pytest.raises(DeployFailed):
        deployer.deploy(str(tmp_path / "out"))
    plays = _plays(rec.lines)
    assert plays.index("pause_schedule") < plays.index("switch") < plays.index("resume_schedule") < plays.index("unlock")
    fleet.hosts["web1"].fail_switch = False
    fleet.hosts["web1"].fail_migrate = True
    deployer, rec = fleet.deployer()
    with pytest.raises(DeployFailed):
        deployer.deploy(str(tmp_path / "out"))
    plays = _plays(rec.lines)
    assert "switch" not in plays and plays.index("migrate") < plays.index("resume_schedule")


def test_an_app_without_jobs_pays_no_pause(tmp_path: Path) -> None:
    from tests.unit.test_deployer import Fleet

    fleet = Fleet(tmp_path)
    deployer, rec = fleet.deployer()
    deployer.deploy(str(tmp_path / "out"))
    assert "pause_schedule" not in _plays(rec.lines) and "resume_schedule" not in _plays(rec.lines)


def test_a_job_cannot_take_a_process_s_name_and_logs_read_the_jobs(tmp_path: Path) -> None:
    from shipit import logs

    text = problems(tmp_path, 'processes: [{name: worker, command: "python -m w"}]\n'
                    'schedule: [{name: worker, command: "true", on_calendar: daily}]\n')
    assert "shipit.yml:5: schedule[0].name: 'worker' already names a process" in text
    assert logs.unit_patterns(LAY, ["worker"], None, ["cleanup"]) == (
        "shop-web@*.service", "shop-release-command.service", "shop-worker@*.service", "shop-job-cleanup.service")
    assert logs.unit_patterns(LAY, ["worker"], "cleanup", ["cleanup"]) == ("shop-job-cleanup.service",)
    entry = logs.parse_entry(LAY, "web1", '{"__REALTIME_TIMESTAMP": "1764756000000000", "MESSAGE": "done", '
                             '"_SYSTEMD_UNIT": "shop-job-cleanup.service"}')
    assert entry is not None and entry.process == "job:cleanup"


def test_config_shows_each_job_and_where_it_came_from(tmp_path: Path) -> None:
    from shipit.check import config_rows

    spec = spec_with(tmp_path, 'schedule: [{name: cleanup, command: "python -m c", on_calendar: daily, timeout: 5m}]\n')
    rows = [r for r in config_rows(spec, {}) if r[0].startswith("schedule.")]
    assert rows == [("schedule.cleanup", "python -m c (on_calendar daily; on leader; timeout 300 s)",
                     f"{tmp_path / 'shipit.yml'}:4")]


def test_the_schedule_is_paused_around_the_backup_and_a_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_db_backups import DbFleet

    monkeypatch.setenv("DB_PASSWORD", "s3cret-pw")
    db = DbFleet(tmp_path)
    spec = tmp_path / "app" / "shipit.yml"
    spec.write_text(spec.read_text() + 'schedule: [{name: tick, command: "true", on_calendar: hourly}]\n')
    deployer, rec = db.deployer()
    assert deployer.deploy(str(tmp_path / "out")).ok
    plays = _plays(rec.lines)
    assert plays.index("pause_schedule") < plays.index("backup") < plays.index("migrate") \
        < plays.index("switch") < plays.index("resume_schedule")
    db.version += 1
    db.deploy()
    deployer, rec = db.deployer()
    deployer.rollback(restore_db=deployer.rollback_backup().name)
    plays = _plays(rec.lines)
    assert plays.index("pause_schedule") < plays.index("switch") < plays.index("restore") \
        < plays.index("resume_schedule") < plays.index("unlock")
    deployer, rec = db.deployer()
    deployer.restore_db(deployer.list_backups()[0].name)
    plays = _plays(rec.lines)
    assert plays.index("pause_schedule") < plays.index("restore") < plays.index("resume_schedule")
