"""The ``job_units`` fact kind: an app's scheduled-job units on a host (see :mod:`shipit.schedule`).

``arg`` is the app's name. The command lists the unit files ``<app>-job-*.service`` and
``<app>-job-*.timer`` of ``/etc/systemd/system`` (with their sha256) and shows each one's state
with ``systemctl show --timestamp=unix`` (timestamps as ``@<epoch seconds>``). Parsed shape
(all keys always present)::

    {"current": "<release id>" | None,            # what the app's `current` points to
     "files": {"example-job-cleanup.timer": "<sha256>", ...},
     "jobs": {"cleanup": {
         "timer": "active" | "inactive" | "failed" | "",   # the timer's ActiveState
         "enabled": "enabled" | "disabled" | "",           # the timer's UnitFileState
         "state": "inactive" | "activating" | "failed" | "",  # the service's (activating: running)
         "running": False,                         # a run is under way
         "last": 1764756000 | None,                # LastTriggerUSec (epoch seconds)
         "next": 1764756010 | None,                # NextElapseUSecRealtime (epoch seconds; None
                                                   # while a run is under way: systemd computes
                                                   # it when the run ends)
         "result": "success" | "exit-code" | "timeout" | "signal" | ... | None,   # of the last run
         "exit_status": 0 | None,                  # ExecMainStatus of the last run
         "started": EPOCH | None, "finished": EPOCH | None},   # the last run's start and end
       ...}}

``result`` is None when the job never ran (no trigger recorded and no run seen).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.layout import SYSTEMD_UNIT_DIR, Layout
from shipit.quoting import q

TIMER_PROPERTIES = "ActiveState,UnitFileState,LastTriggerUSec,NextElapseUSecRealtime"
SERVICE_PROPERTIES = "ActiveState,Result,ExecMainStatus,ExecMainStartTimestamp,ExecMainExitTimestamp"
_RUNNING = ("activating", "deactivating", "active", "reloading")


def command(app: str) -> str:
    """Shell printing ``app=``, ``current=``, ``file <unit> <sha256>`` and ``show <unit>
    Key=Value`` lines (exits 0 always)."""
    lay = Layout(app)
    prefix = q(f"{SYSTEMD_UNIT_DIR}/{lay.job_unit_prefix}")
    return f"""echo app={q(app)}
echo "current=$(readlink {q(lay.current)} 2>/dev/null | sed 's|.*/||')"
for f in {prefix}*.service {prefix}*.timer; do
  [ -f "$f" ] || continue
  u=${{f##*/}}
  echo "file $u $(sha256sum < "$f" | cut -d' ' -f1)"
  case "$u" in
    *.timer) p={q(TIMER_PROPERTIES)};;
    *) p={q(SERVICE_PROPERTIES)};;
  esac
  TZ=UTC LC_ALL=C systemctl show -p "$p" -- "$u" 2>/dev/null | sed "s|^|show $u |"
done
"""


def _epoch(value: str) -> int | None:
    """``Thu 2026-12-03 09:57:40 UTC`` (``systemctl show`` with ``TZ=UTC``) or ``@1764756000``
    (``--timestamp=unix``) -> epoch seconds; empty, ``n/a``, 0 or anything else -> None."""
    text = value.strip()
    if text.startswith("@"):
        digits = text[1:].split(".")[0]
        return int(digits) if digits.isdigit() and int(digits) > 0 else None
    try:
        when = datetime.strptime(" ".join(text.split()[1:3]), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if not text.endswith(" UTC"):
        return None
    return int(when.replace(tzinfo=UTC).timestamp())


def _new_job() -> dict[str, Any]:
    return {"timer": "", "enabled": "", "state": "", "running": False, "last": None, "next": None,
            "result": None, "exit_status": None, "started": None, "finished": None}


def parse_for(app: str, stdout: str) -> dict[str, Any]:
    """Parse :func:`command`'s output for app ``app`` (pure; unknown lines ignored)."""
    lay = Layout(app)
    out: dict[str, Any] = {"current": None, "files": {}, "jobs": {}}
    raw: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        if line.startswith("current="):
            out["current"] = line.partition("=")[2].strip() or None
            continue
        tag, _, rest = line.partition(" ")
        unit, _, value = rest.partition(" ")
        if lay.job_of_unit(unit) is None:
            continue
        if tag == "file":
            out["files"][unit] = value.strip()
        elif tag == "show":
            key, _, val = value.partition("=")
            raw.setdefault(unit, {})[key] = val.strip()
    for unit in out["files"]:
        name = lay.job_of_unit(unit)
        assert name is not None
        job = out["jobs"].setdefault(name, _new_job())
        props = raw.get(unit, {})
        if unit.endswith(".timer"):
            job["timer"] = props.get("ActiveState", "")
            job["enabled"] = props.get("UnitFileState", "")
            job["last"] = _epoch(props.get("LastTriggerUSec", ""))
            job["next"] = _epoch(props.get("NextElapseUSecRealtime", ""))
        else:
            job["state"] = props.get("ActiveState", "")
            job["running"] = job["state"] in _RUNNING
            job["started"] = _epoch(props.get("ExecMainStartTimestamp", ""))
            job["finished"] = _epoch(props.get("ExecMainExitTimestamp", ""))
            status = props.get("ExecMainStatus", "")
            job["exit_status"] = int(status) if status.isdigit() else None
            job["result"] = props.get("Result") or None
    for job in out["jobs"].values():
        if job["last"] is None and job["started"] is None and not job["running"]:
            job["result"] = None  # systemd says "success" for a unit that never ran
    return out


def parse(stdout: str) -> dict[str, Any]:
    """Parse :func:`command`'s output (the app's name from its ``app=`` line: a unit's name
    alone cannot say where the app's name ends, as it may hold ``-``)."""
    app = ""
    for line in stdout.splitlines():
        if line.startswith("app="):
            app = line.partition("=")[2].strip()
    return parse_for(app, stdout)


JOB_UNITS = FactKind("job_units", command, parse,
                     "an app's scheduled jobs: their unit files, timers' last and next runs, results")
KINDS = [JOB_UNITS]


def job_units(app: str) -> FactQuery:
    """The ``job_units`` fact of app ``app`` on a host (shape in the module doc)."""
    return JOB_UNITS.query(app)
