"""The ``file`` module: a regular file with given content, mode, owner and group, or none.

Content is installed atomically (temp file in the same directory, then ``mv -f``); see
:mod:`shipit.modules._files`. Without ``content`` an existing file's content is left alone and
a missing file is created empty (like ``touch``). ``state: absent`` removes a file or symlink
(a directory at ``path`` is an error: use the ``directory`` module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, files
from shipit.modules import _files
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q


class FileModule(Module):
    """Manage one regular file: content (text), mode, owner, group; or make sure it is absent."""

    name = "file"
    doc = "A regular file with the given content and attributes (or absent)."
    params = {
        "path": Param(str, required=True, help="absolute path of the file"),
        "content": Param(str, help="full content of the file (text); omit to leave it alone"),
        "mode": Param(str, help='octal mode as a quoted string, e.g. "0644"'),
        "owner": Param(str, help="user name owning the file"),
        "group": Param(str, help="group name owning the file"),
        "state": Param(str, default="present", choices=("present", "absent")),
        "secret": Param(bool, default=False,
                        help="content is secret: --diff shows only 'content differs (secret)'"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _files.check_path_and_mode(params, "path")

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return _files.file_queries(params["path"])

    def diff_facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        if params.get("state") == "absent" or params.get("content") is None:
            return []
        return _files.content_queries(params["path"])

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        path = params["path"]
        if params.get("state") == "absent":
            fact = facts[files.file(path)]
            if not fact["exists"]:
                return Plan()
            if fact["type"] == "directory":
                return Plan(failed=f"{path} is a directory; use the directory module to remove it")
            return Plan((Change(f"remove {path}", f"rm -f -- {q(path)}"),))
        content = params.get("content")
        changes, failed = _files.plan_file(
            path, None if content is None else content.encode("utf-8"), params.get("mode"),
            params.get("owner"), params.get("group"), facts, ctx,
            secret=bool(params.get("secret")))
        return Plan(tuple(changes), failed=failed)
