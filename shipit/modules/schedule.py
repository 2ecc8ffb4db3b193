"""The ``app_schedule`` module: an app's scheduled jobs on a host (see :mod:`shipit.schedule`).

``state: present`` (provisioning) writes the ``.service`` and ``.timer`` of each job that runs
on this host (``jobs``, all on the leader, the ``on: all`` ones elsewhere), enables the timers
for boot, and removes the units of any job that no longer does (a job dropped from
``schedule:``, or moved to the leader only): its timer and a run under way are stopped, its
files removed. A file is rewritten only when its content differs; a timer that runs is
restarted when its file changed. It starts no timer: ``resumed`` does, once a release is live.

``state: paused`` (a deploy, before the migrations and the switch) stops the app's timers on
this host and waits until no run of any of its jobs is under way (at most the longest job's
``timeout`` plus a margin: systemd stops a run at its timeout), so no job runs while the deploy
migrates and switches. ``state: resumed`` (after the roll, on every exit path) starts the
timers of this host's jobs again when the app has a ``current`` release.

Pure planning over the ``job_units`` fact (:mod:`shipit.facts.schedule`) and the unit files'
``file`` facts; scripts call ``systemctl``, unit names from :class:`shipit.layout.Layout`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipit import schedule
from shipit.app import DEFAULT_JOB_TIMEOUT, Job, calendar_problem
from shipit.facts import FactQuery, files
from shipit.facts.schedule import job_units
from shipit.layout import SYSTEMD_UNIT_DIR, Layout
from shipit.modules import _files
from shipit.modules.base import DEFAULT_TIMEOUT, Change, Module, Param, Plan, PlanContext, q
from shipit.modules.deploy_state import _app_release_checks

_JOB_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
WAIT_MARGIN = 30.0
"""Seconds waited past a job's timeout for systemd to have stopped a run."""


def _jobs(params: Mapping[str, Any]) -> list[Job]:
    return schedule.jobs_for_host([schedule.job_from_vars(j) for j in params["jobs"]], bool(params["leader"]))


def _longest(jobs: list[Job]) -> float:
    """The longest timeout of ``jobs`` (seconds; the default one when there are none)."""
    return max((j.timeout for j in jobs), default=DEFAULT_JOB_TIMEOUT)


def wait_script(services: list[str], seconds: int) -> str:
    """Shell waiting until none of ``services`` is running (``ActiveState`` activating,
    deactivating, active or reloading), at most ``seconds``; exits 1 naming the one still
    running then."""
    names = " ".join(q(s) for s in services)
    return f"""deadline=$(( $(date +%s) + {seconds} ))
for s in {names}; do
  while case "$(systemctl show -P ActiveState -- "$s" 2>/dev/null)" in activating|deactivating|active|reloading) true;; *) false;; esac; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "shipit: $s is still running after {seconds} s" >&2; exit 1; fi
    sleep 0.5
  done
done"""


class AppScheduleModule(Module):
    """An app's scheduled jobs as systemd timers: written (present), paused, resumed."""

    name = "app_schedule"
    doc = "An app's scheduled jobs (schedule:) as systemd .service + .timer units: present, paused, resumed."
    params = {
        "app": Param(str, required=True, help="app name (the app user has the same name)"),
        "jobs": Param(list, default=[], help="the app's jobs: [{name, on_calendar: [...], on, timeout, random_delay}]"),
        "leader": Param(bool, default=False, help="this host is the leader (it runs the on: leader jobs)"),
        "state": Param(str, default="present", choices=("present", "paused", "resumed")),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _app_release_checks({k: v for k, v in params.items() if k != "release"})
        for i, raw in enumerate(params.get("jobs") or []):
            try:
                job = schedule.job_from_vars(raw)
            except ValueError as exc:
                errors.append((f"jobs[{i}]", str(exc)))
                continue
            if not _JOB_NAME.fullmatch(job.name):
                errors.append((f"jobs[{i}].name", "expected a short lowercase name (letters, digits, -)"))
            for c in job.on_calendar:
                if (problem := calendar_problem(c)) is not None:
                    errors.append((f"jobs[{i}].on_calendar", problem))
            if not job.on_calendar:
                errors.append((f"jobs[{i}].on_calendar", "expected at least one OnCalendar expression"))
            if job.on not in ("leader", "all"):
                errors.append((f"jobs[{i}].on", "expected leader or all"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        queries = [job_units(params["app"])]
        if params["state"] == "present":
            lay = Layout(params["app"])
            queries += [files.file(f"{SYSTEMD_UNIT_DIR}/{unit}") for unit in schedule.unit_files(lay, _jobs(params))]
        return queries

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        """Seconds the remote script may take: the pause waits for the longest job's run."""
        if params["state"] != "paused":
            return DEFAULT_TIMEOUT
        return _longest(_jobs(params)) + WAIT_MARGIN + 60.0

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        lay = Layout(params["app"])
        state = facts[job_units(params["app"])]
        jobs = _jobs(params)
        if params["state"] == "present":
            return self._present(lay, jobs, state, facts, ctx)
        if params["state"] == "paused":
            return self._paused(lay, jobs, state)
        return self._resumed(lay, jobs, state)

    @staticmethod
    def _present(lay: Layout, jobs: list[Job], state: Mapping[str, Any], facts: Mapping[FactQuery, Any],
                 ctx: PlanContext) -> Plan:
        wanted = schedule.unit_files(lay, jobs)
        changes: list[Change] = []
        stale = sorted({n for u in state["files"] if (n := lay.job_of_unit(u)) is not None}
                       - {j.name for j in jobs})
        for name in stale:
            present = [u for u in (lay.job_timer(name), lay.job_service(name)) if u in state["files"]]
            units = " ".join(q(u) for u in present)
            paths = " ".join(q(f"{SYSTEMD_UNIT_DIR}/{u}") for u in present)
            changes.append(Change(
                f"remove the units of job {name} (no longer scheduled on this host)",
                f"systemctl disable --now --quiet {units} 2>/dev/null || true\n"
                f"systemctl stop {units} 2>/dev/null || true\n"
                f"rm -f -- {paths}\n"
                f"systemctl reset-failed {units} 2>/dev/null || true"))
        changed_units: set[str] = set()
        for unit, text in wanted.items():
            file_changes, failed = _files.plan_file(f"{SYSTEMD_UNIT_DIR}/{unit}", text.encode(), "0644",
                                                    "root", "root", facts, ctx)
            if failed:
                return Plan(failed=failed)
            if file_changes:
                changed_units.add(unit)
                changes += [Change(f"{unit}: {c.reason}", c.script, c.diff) for c in file_changes]
        after: list[str] = []
        if changes:
            after.append("systemctl daemon-reload")
        for job in jobs:
            timer = lay.job_timer(job.name)
            info = state["jobs"].get(job.name, {})
            if info.get("enabled") != "enabled" or timer in changed_units:
                after.append(f"systemctl enable --quiet -- {q(timer)}")
            if info.get("timer") == "active" and timer in changed_units:
                after.append(f"systemctl restart -- {q(timer)}")
        if after:
            reason = "reload systemd, enable the timers" if changes else "enable the timers"
            changes.append(Change(reason, "\n".join(after)))
        return Plan(changes=tuple(changes))

    @staticmethod
    def _paused(lay: Layout, jobs: list[Job], state: Mapping[str, Any]) -> Plan:
        names = sorted(state["jobs"])
        if not names:
            return Plan()
        active = [n for n in names if state["jobs"][n]["timer"] == "active"]
        running = [n for n in names if state["jobs"][n]["running"]]
        if not active and not running:
            return Plan()
        longest = _longest(jobs)
        timers = " ".join(q(lay.job_timer(n)) for n in names)
        services = [lay.job_service(n) for n in names]
        what = ", ".join(names)
        reason = f"pause the timers of {what}" + (f"; wait for the run of {', '.join(running)}" if running else "")
        # every service is waited for, not only those seen running: a timer may have fired
        # between the facts and the stop
        script = (f"systemctl stop -- {timers}\n"
                  + wait_script(services, int(longest + WAIT_MARGIN)))
        return Plan(changes=(Change(reason, script),))

    @staticmethod
    def _resumed(lay: Layout, jobs: list[Job], state: Mapping[str, Any]) -> Plan:
        if not jobs:
            return Plan()
        if not state["current"]:
            return Plan(skipped="no release is live here yet: the timers start after the first switch")
        idle = [j.name for j in jobs if state["jobs"].get(j.name, {}).get("timer") != "active"
                and lay.job_timer(j.name) in state["files"]]
        if not idle:
            return Plan()
        timers = " ".join(q(lay.job_timer(n)) for n in idle)
        return Plan(changes=(Change(f"start the timers of {', '.join(idle)}", f"systemctl start -- {timers}"),))
