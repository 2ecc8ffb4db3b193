"""Fact kinds about accounts: ``user`` (getent passwd + id) and ``group`` (getent group).

``user`` (arg: user name)::

    {"exists": True, "uid": 1000, "gid": 1000, "home": "/home/app", "shell": "/bin/sh",
     "primary_group": "app", "groups": ["app", "www-data"]}   # id -nG: primary included
    {"exists": False, "uid": None, "gid": None, "home": None, "shell": None,
     "primary_group": None, "groups": []}

``group`` (arg: group name)::

    {"exists": True, "gid": 998, "members": ["app"]}  |  {"exists": False, "gid": None,
                                                        "members": []}
"""

from __future__ import annotations

from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.quoting import q


def user_command(name: str) -> str:
    """``getent passwd`` line, then ``id -nG`` and ``id -gn`` of user ``name``."""
    n = q(name)
    return f"""if line=$(getent passwd {n}); then
  echo "passwd=$line"; echo "groups=$(id -nG -- {n})"; echo "primary=$(id -gn -- {n})"
else echo "passwd="; fi"""


def _kv(stdout: str) -> dict[str, str]:
    raw: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key] = value
    return raw


def parse_user(stdout: str) -> dict[str, Any]:
    """Parse :func:`user_command` output (passwd fields: name:x:uid:gid:gecos:home:shell)."""
    raw = _kv(stdout)
    fields = raw.get("passwd", "").split(":")
    if len(fields) < 7:
        return {"exists": False, "uid": None, "gid": None, "home": None, "shell": None,
                "primary_group": None, "groups": []}
    return {"exists": True, "uid": int(fields[2]), "gid": int(fields[3]), "home": fields[5],
            "shell": fields[6], "primary_group": raw.get("primary", "").strip() or None,
            "groups": raw.get("groups", "").split()}


def group_command(name: str) -> str:
    """``getent group`` line of group ``name`` (nothing when absent)."""
    return f"getent group {q(name)} || true"


def parse_group(stdout: str) -> dict[str, Any]:
    """Parse a ``name:x:gid:member,member`` line."""
    fields = stdout.strip().split(":")
    if len(fields) < 4 or not fields[2].isdigit():
        return {"exists": False, "gid": None, "members": []}
    return {"exists": True, "gid": int(fields[2]),
            "members": [m for m in fields[3].split(",") if m]}


USER = FactKind("user", user_command, parse_user, "passwd entry and groups of a user")
GROUP = FactKind("group", group_command, parse_group, "group entry")
KINDS = [USER, GROUP]


def user(name: str) -> FactQuery:
    """The ``user`` fact of user ``name``: passwd entry and groups."""
    return USER.query(name)


def group(name: str) -> FactQuery:
    """The ``group`` fact of group ``name``: gid and members."""
    return GROUP.query(name)
