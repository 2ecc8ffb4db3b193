"""The ``user`` and ``group`` modules: local accounts (useradd/usermod/userdel, groupadd…).

``groups`` only ever adds supplementary groups (``usermod -aG``, as Ansible's
``append: true``): a deploy tool should not strip a group someone else granted. ``home`` and
``shell`` are corrected when they differ (the home directory is not moved). A user whose
same-named group already exists (e.g. made by the ``group`` module) gets it as primary group.
``system`` only matters at creation (system uid range, no aging).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, accounts
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q

NAME_RE = re.compile(r"[a-z_][a-z0-9_-]*\$?")
"""Debian's default NAME_REGEX for user and group names (adduser.conf), max 32 chars."""


def _check_name(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 32 or not NAME_RE.fullmatch(value):
        return "expected a user/group name: lowercase letters, digits, _ and -"
    return None


class UserModule(Module):
    """Create, update or remove a local user."""

    name = "user"
    doc = "A local user account (useradd/usermod/userdel)."
    params = {
        "name": Param(str, required=True, help="user name"),
        "system": Param(bool, default=False, help="create as a system user"),
        "home": Param(str, help="home directory (absolute path)"),
        "shell": Param(str, help="login shell, e.g. /usr/sbin/nologin"),
        "groups": Param(list, help="supplementary groups the user must be in (appended)"),
        "state": Param(str, default="present", choices=("present", "absent")),
        "create_home": Param(bool, default=True, help="create the home directory"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = []
        if (msg := _check_name(params.get("name"))) is not None:
            errors.append(("name", msg))
        for g in params.get("groups") or []:
            if (msg := _check_name(g)) is not None:
                errors.append(("groups", f"{g!r}: {msg}"))
        if params.get("home") is not None and not str(params["home"]).startswith("/"):
            errors.append(("home", "expected an absolute path"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [accounts.user(params["name"]), accounts.group(params["name"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        name = params["name"]
        user = facts[accounts.user(name)]
        if params.get("state") == "absent":
            if not user["exists"]:
                return Plan()
            return Plan((Change(f"remove user {name}", f"userdel -- {q(name)}"),))
        home, shell = params.get("home"), params.get("shell")
        groups = list(params.get("groups") or [])
        if not user["exists"]:
            args = ["useradd"]
            args += ["--system"] if params.get("system") else []
            args += ["--home-dir", q(home)] if home else []
            args += ["--shell", q(shell)] if shell else []
            args += ["--create-home"] if params.get("create_home", True) else ["--no-create-home"]
            group_exists = facts[accounts.group(name)]["exists"]
            args += ["--gid", q(name)] if group_exists else ["--user-group"]
            args += ["--groups", q(",".join(groups))] if groups else []
            kind = "system user" if params.get("system") else "user"
            return Plan((Change(f"create {kind} {name}", " ".join(args + ["--", q(name)])),))
        reasons, args = [], []
        if home and user["home"] != home:
            reasons.append(f"home {user['home']} -> {home}")
            args += ["--home", q(home)]
        if shell and user["shell"] != shell:
            reasons.append(f"shell {user['shell']} -> {shell}")
            args += ["--shell", q(shell)]
        missing = [g for g in groups if g not in user["groups"]]
        if missing:
            reasons.append("add to group" + ("s " if len(missing) > 1 else " ")
                           + ", ".join(missing))
            args += ["--append", "--groups", q(",".join(missing))]
        if not args:
            return Plan()
        return Plan((Change(", ".join(reasons), " ".join(["usermod", *args, "--", q(name)])),))


class GroupModule(Module):
    """Create or remove a local group."""

    name = "group"
    doc = "A local group (groupadd/groupdel)."
    params = {
        "name": Param(str, required=True, help="group name"),
        "system": Param(bool, default=False, help="create as a system group"),
        "state": Param(str, default="present", choices=("present", "absent")),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        msg = _check_name(params.get("name"))
        return [("name", msg)] if msg else []

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [accounts.group(params["name"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        name = params["name"]
        exists = facts[accounts.group(name)]["exists"]
        if params.get("state") == "absent":
            return Plan((Change(f"remove group {name}", f"groupdel -- {q(name)}"),)) \
                if exists else Plan()
        if exists:
            return Plan()
        system = "--system " if params.get("system") else ""
        kind = "system group" if params.get("system") else "group"
        return Plan((Change(f"create {kind} {name}", f"groupadd {system}-- {q(name)}"),))
