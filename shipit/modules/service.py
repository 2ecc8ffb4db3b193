"""The ``service`` module: state and enablement of an existing systemd unit (caddy, postgresql…).

As Ansible's ``systemd``/``service``: ``started`` and ``stopped`` are idempotent; ``restarted``
always restarts and ``reloaded`` always reloads (use them as handlers, notified when something
changed, or they report "changed" on every run). A unit that does not exist fails the task,
except in check mode where an earlier task (e.g. ``apt``) would have installed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, systemd
from shipit.modules import _systemd
from shipit.modules.base import Module, Param, Plan, PlanContext


class ServiceModule(Module):
    """Start/stop/restart/reload and enable/disable one systemd unit."""

    name = "service"
    doc = "State and enablement of an existing systemd unit."
    params = {
        "name": Param(str, required=True, help="unit name, e.g. caddy or caddy.service"),
        "state": Param(str, choices=_systemd.STATES,
                       help="started|stopped (idempotent), restarted|reloaded (always)"),
        "enabled": Param(bool, help="start at boot"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = []
        if (msg := _systemd.check_unit_name(params.get("name"))) is not None:
            errors.append(("name", msg))
        if params.get("state") is None and params.get("enabled") is None:
            errors.append(("state", "give state and/or enabled"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [systemd.unit(_systemd.unit_name(params["name"]))]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        name = _systemd.unit_name(params["name"])
        changes, failed = _systemd.plan_unit(name, facts[systemd.unit(name)],
                                             params.get("enabled"), params.get("state"),
                                             check=ctx.check)
        return Plan(tuple(changes), failed=failed)
