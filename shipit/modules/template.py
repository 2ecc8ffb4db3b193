"""The ``template`` module: render a local Jinja2 template and install it as a file.

Rendering happens on the runner with the host's variables (``ctx.render``, Jinja2); the result
is then handled exactly like the ``file`` module's ``content`` (atomic install, diff, secrets
masked). ``src`` is relative to the playbook's directory (``ctx.local_path``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery
from shipit.modules import _files
from shipit.modules.base import Module, Param, Plan, PlanContext


class TemplateModule(Module):
    """Render ``src`` (Jinja2, UTF-8) and install it at ``dest``."""

    name = "template"
    doc = "A file rendered from a local Jinja2 template."
    params = {
        "src": Param(str, required=True, help="local template path, relative to the playbook"),
        "dest": Param(str, required=True, help="absolute path on the host"),
        "mode": Param(str, help='octal mode as a quoted string, e.g. "0644"'),
        "owner": Param(str, help="user name owning the file"),
        "group": Param(str, help="group name owning the file"),
        "secret": Param(bool, default=False,
                        help="rendered content is secret: --diff shows no content"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _files.check_path_and_mode(params, "dest")

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return _files.file_queries(params["dest"])

    def diff_facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return _files.content_queries(params["dest"])

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        """Render the template, then plan as :func:`_files.plan_file`.

        A template that cannot be read or rendered fails the task with the error's message
        (``OSError`` or the exception ``ctx.render`` raised, e.g. a Jinja2 error).
        """
        rendered, error = _files.render_local(ctx, params["src"])
        if rendered is None:
            return Plan(failed=error)
        changes, failed = _files.plan_file(
            params["dest"], rendered.encode("utf-8"), params.get("mode"), params.get("owner"),
            params.get("group"), facts, ctx, secret=bool(params.get("secret")))
        return Plan(tuple(changes), failed=failed)
