"""The directory module: plans on fact shapes, and real runs in a temp dir."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from shipit.facts import FactQuery
from shipit.facts.files import tree_owner_arg
from shipit.modules.base import PlanContext
from shipit.modules.directory import DirectoryModule
from shipit.testing import run_local

CTX = PlanContext(host="web1", host_facts={})
M = DirectoryModule()
ABSENT = {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
          "size": 0, "sha256": None}


def params(**kw: object) -> dict[str, object]:
    return {k: s.default for k, s in M.params.items()} | kw


def d(mode: str = "0755", owner: str = "root", group: str = "root",
      type_: str = "directory") -> dict[str, object]:
    return {"exists": True, "type": type_, "mode": mode, "owner": owner, "group": group,
            "size": 4096, "sha256": None}


def test_fresh_converged_drift() -> None:
    p = params(path="/srv/app", owner="app", group="app", mode="0750")
    q = FactQuery("file", "/srv/app")
    plan = M.plan(p, {q: ABSENT}, CTX)
    assert plan.changes[0].reason == "create /srv/app"
    assert "mkdir -p -- /srv/app" in plan.changes[0].script
    assert not M.plan(p, {q: d("0750", "app", "app")}, CTX).changed
    plan = M.plan(p, {q: d("0755", "app", "app")}, CTX)
    assert plan.changes[0].reason == "mode 0755 -> 0750"
    assert "chown" not in plan.changes[0].script


def test_file_in_the_way_fails() -> None:
    plan = M.plan(params(path="/srv/app"), {FactQuery("file", "/srv/app"): d(type_="file")}, CTX)
    assert plan.failed == "/srv/app exists and is a file, not a directory"


def test_recurse_uses_tree_fact() -> None:
    p = params(path="/srv/app", owner="app", recurse=True)
    tree = FactQuery("tree_owner", tree_owner_arg("/srv/app", "app", None))
    assert M.facts(p) == [FactQuery("file", "/srv/app"), tree]
    facts = {FactQuery("file", "/srv/app"): d(owner="app"),
             tree: {"drift": True, "example": "/srv/app/x"}}
    plan = M.plan(p, facts, CTX)
    assert plan.changes[0].reason == "owner/group differs below /srv/app (e.g. /srv/app/x)"
    assert "chown -R -- app /srv/app" in plan.changes[0].script
    facts[tree] = {"drift": False, "example": None}
    assert not M.plan(p, facts, CTX).changed


def test_absent() -> None:
    p = params(path="/srv/old", state="absent")
    plan = M.plan(p, {FactQuery("file", "/srv/old"): d()}, CTX)
    assert plan.changes[0].reason == "remove /srv/old and its content"
    assert not M.plan(p, {FactQuery("file", "/srv/old"): ABSENT}, CTX).changed
    assert M.check_params(params(path="/", state="absent"))[0][0] == "path"


def test_real_run_as_this_user(tmp_path: Path) -> None:
    """Owned by whoever runs the tests (chown to oneself needs no root; another owner and
    drift below: tests/e2e/test_modules_as_root.py)."""
    me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    path = str(tmp_path / "a" / "b")
    p = {"path": path, "owner": me, "group": group, "mode": "2750", "recurse": True}
    first = run_local(M, p, CTX)
    assert first.ok and first.plan.changed, first.results
    assert oct(os.stat(path).st_mode & 0o7777) == "0o2750" and os.stat(path).st_uid == os.getuid()
    assert not run_local(M, p, CTX).plan.changed
    (Path(path) / "f").write_text("x")          # ours too: no drift
    assert not run_local(M, p, CTX).plan.changed
    mode = run_local(M, dict(p, mode="0700"), CTX)
    assert mode.ok and mode.plan.changed and oct(os.stat(path).st_mode & 0o7777) == "0o700"  # setgid cleared
    assert not run_local(M, dict(p, mode="0700"), CTX).plan.changed
    gone = run_local(M, {"path": path, "state": "absent"}, CTX)
    assert gone.ok and not Path(path).exists()
    assert not run_local(M, {"path": path, "state": "absent"}, CTX).plan.changed
