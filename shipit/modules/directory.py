"""The ``directory`` module: a directory with owner, group and mode, or none.

``recurse: true`` applies owner and group to everything below (``chown -R``) and reports drift
when any entry below differs (``tree_owner`` fact); the mode applies to the directory itself
only, since one mode for files and directories alike is rarely wanted (Ansible's ``file``
module with ``recurse`` would chmod the files too). Missing parents are created (``mkdir -p``)
with the default mode and owner root. ``state: absent`` removes the tree (``rm -rf``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, files
from shipit.modules import _files
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q


class DirectoryModule(Module):
    """Manage one directory's existence, owner, group and mode."""

    name = "directory"
    doc = "A directory with the given owner, group and mode (or absent, with its content)."
    params = {
        "path": Param(str, required=True, help="absolute path of the directory"),
        "owner": Param(str, help="user name owning the directory"),
        "group": Param(str, help="group name owning the directory"),
        "mode": Param(str, help='octal mode as a quoted string, e.g. "0755"'),
        "state": Param(str, default="present", choices=("present", "absent")),
        "recurse": Param(bool, default=False,
                         help="apply owner and group to everything below too"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _files.check_path_and_mode(params, "path")

    def _tree_query(self, params: Mapping[str, Any]) -> FactQuery | None:
        if not params.get("recurse") or params.get("state") == "absent":
            return None
        if params.get("owner") is None and params.get("group") is None:
            return None
        return files.tree_owner(params["path"], params.get("owner"), params.get("group"))

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        tree = self._tree_query(params)
        return [files.file(params["path"])] + ([tree] if tree else [])

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        path = params["path"].rstrip("/") or "/"
        fact = facts[files.file(params["path"])]
        mode, owner, group = params.get("mode"), params.get("owner"), params.get("group")
        if params.get("state") == "absent":
            if not fact["exists"]:
                return Plan()
            return Plan((Change(f"remove {path}" + (" and its content"
                                                    if fact["type"] == "directory" else ""),
                                f"rm -rf -- {q(path)}"),))
        recurse = bool(params.get("recurse"))
        if not fact["exists"]:
            script = f"mkdir -p -- {q(path)}\n" + _files.attr_script(path, mode, owner, group)
            return Plan((Change(f"create {path}", script.strip()),))
        if fact["type"] != "directory":
            return Plan(failed=f"{path} exists and is a {fact['type']}, not a directory")
        drift = _files.attr_drift(fact, mode, owner, group)
        tree = self._tree_query(params)
        tree_drift = bool(tree is not None and facts[tree]["drift"])
        if tree is not None and tree_drift and not any(r.startswith(("owner", "group")) for r in drift):
            drift.append(f"owner/group differs below {path} (e.g. {facts[tree]['example']})"
                         if facts[tree]["example"] else f"owner/group differs below {path}")
        if not drift:
            return Plan()
        owner_drift = tree_drift or any(r.startswith(("owner", "group")) for r in drift)
        script = _files.attr_script(path, mode if any(r.startswith("mode") for r in drift)
                                    else None,
                                    owner if owner_drift else None,
                                    group if owner_drift else None,
                                    recurse_owner=recurse)
        return Plan((Change(", ".join(drift), script),))
