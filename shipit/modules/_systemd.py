"""Helpers shared by ``systemd_unit`` and ``service``: enable/disable and start/stop plans.

Pure: they read the ``unit`` fact (:mod:`shipit.facts.systemd`) and return changes whose
scripts call ``systemctl``. When a start, restart or reload fails, the script prints the
unit's status (last journal lines) to stderr so the report shows why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipit.facts.systemd import is_running
from shipit.modules.base import Change, q

STATES = ("started", "stopped", "restarted", "reloaded")
UNIT_RE = re.compile(r"[A-Za-z0-9:_.\\@-]+\.(service|socket|timer|path|target|mount|"
                     r"automount|swap|slice)")
_ENABLED = ("enabled", "enabled-runtime", "static", "indirect", "generated", "alias")


def unit_name(name: str) -> str:
    """``caddy`` -> ``caddy.service``; names with a unit suffix are kept."""
    return name if UNIT_RE.fullmatch(name) else name + ".service"


def check_unit_name(value: Any) -> str | None:
    """Error message when ``value`` is not a valid unit name (suffix optional), else None."""
    if not isinstance(value, str) or not UNIT_RE.fullmatch(unit_name(value)):
        return "expected a systemd unit name like app.service"
    return None


def _run(verb: str, name: str) -> str:
    status = f"systemctl status --no-pager --lines=20 -- {q(name)} >&2 || true"
    if verb in ("start", "restart", "reload"):
        return f"systemctl {verb} -- {q(name)} || {{ rc=$?; {status}; exit $rc; }}"
    return f"systemctl {verb} -- {q(name)}"


def plan_unit(name: str, fact: Mapping[str, Any], enabled: bool | None, state: str | None,
              file_changed: bool = False, check: bool = False
              ) -> tuple[list[Change], str | None]:
    """Changes bringing unit ``name`` to ``enabled`` and ``state`` (None: leave alone).

    ``file_changed``: the task is also (re)writing the unit file, so the unit's state in
    ``fact`` is stale: a running unit is restarted (``started``) for the new definition to take
    effect, and a not-yet-known unit is planned as if it existed. Returns (changes, failure).
    Semantics (as Ansible's ``systemd``): ``started``/``stopped`` are idempotent;
    ``restarted`` always restarts; ``reloaded`` reloads a running unit, starts a stopped one.
    """
    if enabled is None and state is None:
        return [], None  # only the file is managed (e.g. a template unit like app@.service)
    load = fact["load_state"]
    if load == "" and not file_changed:
        return [], f"cannot read the state of {name}: is systemd running on this host?"
    if load == "masked" or fact["unit_file_state"] == "masked":
        return [], f"{name} is masked; unmask it (systemctl unmask {name}) to manage it"
    missing = load == "not-found" and not file_changed
    if missing and not check:
        return [], f"unit {name} not found on this host (is its package installed?)"
    note = " (unit not installed yet)" if missing else ""
    changes: list[Change] = []
    file_state = "" if file_changed and load in ("not-found", "") else fact["unit_file_state"]
    if enabled is True and file_state not in _ENABLED:
        changes.append(Change(f"enable {name}{note}", _run("enable", name)))
    elif enabled is False and file_state in ("enabled", "enabled-runtime"):
        changes.append(Change(f"disable {name}", _run("disable", name)))
    running = is_running(fact) and not missing
    if state == "started":
        if not running:
            changes.append(Change(f"start {name}{note}", _run("start", name)))
        elif file_changed:
            changes.append(Change(f"restart {name} (unit file changed)", _run("restart", name)))
    elif state == "stopped" and (running or fact["active_state"] == "activating"):
        changes.append(Change(f"stop {name}", _run("stop", name)))
    elif state == "restarted":
        changes.append(Change(f"restart {name}{note}", _run("restart", name)))
    elif state == "reloaded":
        if running:
            changes.append(Change(f"reload {name}", _run("reload", name)))
        else:
            changes.append(Change(f"start {name} (was not running){note}", _run("start", name)))
    return changes, None
