"""Scheduled jobs (``schedule:`` in the app spec) as systemd ``.service`` + ``.timer`` pairs.

Each job becomes, on the hosts it runs on (the leader web host by default, every web host with
``on: all``), ``<app>-job-<name>.service`` (one run) and ``<app>-job-<name>.timer`` (when), as
:class:`shipit.layout.Layout` names them. A run gets exactly what the app's background process
units get: the app user and group, the CURRENT release (``/srv/<app>/current``, resolved when
the run starts) as working directory, its ``release.env`` and env file read by systemd, its
venv first on ``PATH``, and the sandbox of :func:`shipit.hardening.directives` (read-only
system but ``shared/``). The command line itself lives in the release (``SHIPIT_JOB_<name>``
in its ``release.env``, like the processes' commands), so a rollback runs the rolled-back
release's command; it is run by ``sh -c`` as ``migrate`` and ``release:`` steps are (``a && b``,
redirections and quotes work).

Never two runs at once: the service is ``Type=oneshot``, so while a run is under way the unit
is "activating" and a timer firing again starts nothing (systemd merges the start into the one
under way); the timer then computes its next time when the run ends, so a time that passed
meanwhile starts one more run right after (once, however many passed; seen in the lab).
``timeout`` is the oneshot's ``TimeoutStartSec=`` (``RuntimeMaxSec=`` has no effect on a
oneshot service, systemd.service(5)): a run taking longer is stopped and its result is
``timeout``. Not during a deploy either: the deploy pauses the timers (stops them and waits
for a run under way to end, at most its timeout) before the backup, the migrations and the
switch (and a rollback or a restore of the database), and starts them again once they are
over, on every exit path (see
:class:`shipit.modules.schedule.AppScheduleModule`). A pause was chosen over a lock taken by
the job (``flock``): shipit's deploy lock is a directory on the leader held across many SSH
commands, which no ``flock`` can share, and a job waiting on a lock would start in the middle
of a roll on the hosts that switch later; stopping the timers is what systemd offers for it,
and ``Persistent=true`` makes a run missed while paused happen as soon as the timer starts
again.

Pure: unit texts as strings (tested as data).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shipit import hardening
from shipit.app import Job
from shipit.layout import Layout

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""What follows the release's venv on a job's ``PATH`` (as for release commands)."""


def jobs_for_host(jobs: Iterable[Job], is_leader: bool) -> list[Job]:
    """The jobs that run on a host: all of them on the leader, the ``on: all`` ones elsewhere."""
    return [j for j in jobs if is_leader or j.on == "all"]


def _seconds(value: float) -> str:
    return f"{max(1, int(value))}s"


def service_unit(layout: Layout, job: Job) -> str:
    """The ``.service`` of ``job``: one run of its command (``sh -c "$SHIPIT_JOB_<name>"``) in
    the current release as the app user, sandboxed, stopped after ``job.timeout`` seconds."""
    current = layout.current
    variable = layout.job_variable(job.name)
    lines = [
        f"# managed by shipit: scheduled job {job.name} of {layout.app} (schedule: in the app spec)",
        "[Unit]",
        f"Description={layout.app} scheduled job {job.name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        # oneshot: "activating" while it runs, so a timer firing meanwhile starts no second run
        "Type=oneshot",
        f"User={layout.app}",
        f"Group={layout.app}",
        f"WorkingDirectory={current}",
        f"EnvironmentFile={current}/.shipit/release.env",
        f"EnvironmentFile={current}/.shipit/app.env",
        f"Environment=PATH={current}/venv/bin:{DEFAULT_PATH}",
        # the command comes from the release; a release from before the job has none
        f"ExecStart=/bin/sh -c 'eval \"$${{{variable}:?is not set: the current release has no job {job.name}}}\"'",
        # the oneshot's run limit (RuntimeMaxSec= has no effect on Type=oneshot)
        f"TimeoutStartSec={_seconds(job.timeout)}",
        "# the sandbox (shipit/hardening.py): read-only system but the shared dir, no privileges",
        *hardening.directives([layout.shared]),
    ]
    return "\n".join(lines) + "\n"


def timer_unit(layout: Layout, job: Job) -> str:
    """The ``.timer`` of ``job``: its ``OnCalendar=`` expressions, ``Persistent=true`` (a run
    missed while the host was down or the deploy paused the timer happens when it starts),
    ``AccuracySec=1s`` (systemd's default coalesces runs within a minute) and
    ``RandomizedDelaySec=`` when the job asks for one."""
    lines = [
        f"# managed by shipit: when the scheduled job {job.name} of {layout.app} runs",
        "[Unit]",
        f"Description={layout.app} scheduled job {job.name} (timer)",
        "",
        "[Timer]",
        *(f"OnCalendar={c}" for c in job.on_calendar),
        "Persistent=true",
        "AccuracySec=1s",
        *([f"RandomizedDelaySec={_seconds(job.random_delay)}"] if job.random_delay > 0 else []),
        f"Unit={layout.job_service(job.name)}",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return "\n".join(lines) + "\n"


def unit_files(layout: Layout, jobs: Sequence[Job]) -> dict[str, str]:
    """Unit file name -> text, for ``jobs`` (the ones of one host): a service and a timer each."""
    out: dict[str, str] = {}
    for job in jobs:
        out[layout.job_service(job.name)] = service_unit(layout, job)
        out[layout.job_timer(job.name)] = timer_unit(layout, job)
    return out


def job_vars(jobs: Iterable[Job]) -> list[dict[str, object]]:
    """The ``app.schedule`` variable of the built-in playbooks: one mapping per job (what the
    ``app_schedule`` module takes), its command excluded (it lives in the release)."""
    return [{"name": j.name, "on_calendar": list(j.on_calendar), "on": j.on, "timeout": j.timeout,
             "random_delay": j.random_delay} for j in jobs]


def job_from_vars(value: object) -> Job:
    """A :class:`Job` (without its command) from one mapping of :func:`job_vars`.

    Raises:
        ValueError: not such a mapping.
    """
    if not isinstance(value, dict):
        raise ValueError(f"expected a job mapping, got {value!r}")
    try:
        calendars = value["on_calendar"]
        return Job(str(value["name"]), "", tuple(str(c) for c in calendars), str(value.get("on", "leader")),
                   float(value.get("timeout", 3600.0)), float(value.get("random_delay", 0.0)))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"expected a job mapping with name and on_calendar: {exc}") from None
