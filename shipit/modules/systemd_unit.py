"""The ``systemd_unit`` module: a unit file in /etc/systemd/system/, enabled and running.

The unit file (``content``, or the Jinja2 template ``src``) is installed atomically like the
``file`` module's, mode 0644 root:root, followed by ``systemctl daemon-reload`` whenever it was
created or its content changed. Then ``enabled`` and ``state`` as the ``service`` module, with
one addition: ``started`` restarts a running unit whose file just changed, so the new
definition takes effect. ``restarted``/``reloaded`` as a plain task always restart/reload
(they report changed every run); as a handler they run only when notified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shipit.facts import FactQuery, files, systemd
from shipit.modules import _files, _systemd
from shipit.modules.base import Module, Param, Plan, PlanContext, sha256_hex

UNIT_DIR = "/etc/systemd/system"


class SystemdUnitModule(Module):
    """Write a systemd unit file and manage the unit's enablement and state."""

    name = "systemd_unit"
    doc = "A systemd unit file under /etc/systemd/system, enabled and started as asked."
    params = {
        "name": Param(str, required=True, help="unit file name, e.g. app.service"),
        "content": Param(str, help="unit file text"),
        "src": Param(str, help="local Jinja2 template of the unit file (instead of content)"),
        "enabled": Param(bool, help="start at boot"),
        "state": Param(str, choices=_systemd.STATES,
                       help="started|stopped; restarted|reloaded always act (use as handler)"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = []
        name = params.get("name")
        if not isinstance(name, str) or not _systemd.UNIT_RE.fullmatch(name):
            errors.append(("name", "expected a unit file name with its suffix, like app.service"))
        if (params.get("content") is None) == (params.get("src") is None):
            errors.append(("content", "give exactly one of content or src"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [files.file(f"{UNIT_DIR}/{params['name']}"),
                systemd.unit(params["name"])]

    def diff_facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return _files.content_queries(f"{UNIT_DIR}/{params['name']}")

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        name = params["name"]
        path = f"{UNIT_DIR}/{name}"
        if params.get("src") is not None:
            text, error = _files.render_local(ctx, params["src"])
            if text is None:
                return Plan(failed=error)
        else:
            text = params["content"]
        data = text.encode("utf-8")
        fact = facts[files.file(path)]
        file_changed = not fact["exists"] or fact["sha256"] != sha256_hex(data)
        changes, failed = _files.plan_file(path, data, "0644", "root", "root", facts, ctx)
        if failed:
            return Plan(failed=failed)
        if file_changed:
            changes = [replace(c, script=c.script + "\nsystemctl daemon-reload")
                       for c in changes]
        unit_changes, failed = _systemd.plan_unit(
            name, facts[systemd.unit(name)], params.get("enabled"), params.get("state"),
            file_changed=file_changed, check=ctx.check)
        if failed:
            return Plan(failed=failed)
        return Plan(tuple(changes + unit_changes))
