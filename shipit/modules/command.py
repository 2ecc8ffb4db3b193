"""The ``command`` and ``shell`` modules: run something on the host, guarded or not.

As Ansible's modules of the same names: ``command`` splits ``cmd`` with ``shlex`` and runs the
words without a shell (no pipes, globs or ``$VARS``); ``shell`` hands ``cmd`` to ``sh -c``.
Without a guard they always report "changed". Guards (checked at fact-gathering time, i.e.
before any change of the play is made, with facts refreshed after each changed task):

- ``creates``: skip when this path exists (Ansible's ``creates``);
- ``removes``: skip when this path does not exist (Ansible's ``removes``);
- ``unless``: a shell command; skip when it exits 0 (like Puppet's ``unless``). It runs with
  the task's ``chdir``, ``env`` and ``become_user``, with stdin from /dev/null and output
  discarded, killed after 120 s.

``become_user`` runs the command as that user with ``runuser -u USER --`` (the script itself
runs as root). ``env`` values are exported in the script (not put on the command line), so
they stay out of process listings; the ``unless`` check gets them the same way (its text
reaches ``sh`` in an environment variable, see :func:`shipit.facts.files.check_command`).
Stdin of the command is /dev/null. Reasons mask ``ctx.secrets``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, files
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, mask, q

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CommandModule(Module):
    """Run ``cmd`` as an argument vector (no shell)."""

    name = "command"
    doc = "Run a command (argv, no shell); always changed unless guarded."
    shell = False
    params = {
        "cmd": Param(str, required=True, help="the command line"),
        "creates": Param(str, help="skip when this path exists"),
        "removes": Param(str, help="skip when this path does not exist"),
        "unless": Param(str, help="shell command run at fact time; skip when it exits 0"),
        "chdir": Param(str, help="directory to run in"),
        "become_user": Param(str, help="run as this user (runuser -u USER --)"),
        "env": Param(dict, help="environment variables (mapping name -> value)"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = []
        if not self.shell:
            try:
                if not shlex.split(params.get("cmd") or ""):
                    errors.append(("cmd", "expected a command"))
            except ValueError as exc:
                errors.append(("cmd", f"cannot split the command line: {exc}"))
        for key in (params.get("env") or {}):
            if not isinstance(key, str) or not ENV_NAME_RE.fullmatch(key):
                errors.append(("env", f"{key!r} is not a valid variable name"))
        return errors

    def _prefix(self, params: Mapping[str, Any]) -> str:
        lines = [f"export {k}={q(str(v))}" for k, v in (params.get("env") or {}).items()]
        if params.get("chdir"):
            lines.append(f"cd -- {q(params['chdir'])}")
        return "".join(line + "\n" for line in lines)

    def _argv(self, params: Mapping[str, Any], cmd: str, shell: bool) -> str:
        words = f"sh -c {q(cmd)}" if shell else " ".join(q(w) for w in shlex.split(cmd))
        user = params.get("become_user")
        return f"runuser -u {q(user)} -- {words}" if user else words

    def unless_command(self, params: Mapping[str, Any]) -> str | None:
        """The full shell text the ``check`` fact runs for ``unless`` (or None)."""
        if params.get("unless") is None:
            return None
        return self._prefix(params) + self._argv(params, params["unless"], shell=True)

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        queries = [files.path_exists(params[k]) for k in ("creates", "removes")
                   if params.get(k)]
        unless = self.unless_command(params)
        return queries + ([files.check(unless)] if unless else [])

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        if params.get("creates") and facts[files.path_exists(params["creates"])]:
            return Plan(skipped=f"{params['creates']} exists")
        if params.get("removes") and not facts[files.path_exists(params["removes"])]:
            return Plan(skipped=f"{params['removes']} does not exist")
        unless = self.unless_command(params)
        if unless and facts[files.check(unless)] == 0:
            return Plan(skipped=f"unless: {mask(params['unless'], ctx.secrets)} succeeded")
        script = self._prefix(params) + self._argv(params, params["cmd"], self.shell) \
            + " </dev/null"
        who = f" as {params['become_user']}" if params.get("become_user") else ""
        return Plan((Change(f"run{who}: {mask(params['cmd'], ctx.secrets)}", script),))


class ShellModule(CommandModule):
    """Run ``cmd`` with ``sh -c`` (pipes, redirections, variables allowed)."""

    name = "shell"
    doc = "Run a shell command line (sh -c); always changed unless guarded."
    shell = True
