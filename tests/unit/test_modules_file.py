"""The file module: plans on recorded-shape facts, and real runs in a temp dir."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext, sha256_hex
from shipit.modules.file import FileModule
from shipit.testing import run_local

CTX = PlanContext(host="web1", host_facts={})
M = FileModule()
ROOT = os.geteuid() == 0


def params(**kw: object) -> dict[str, object]:
    return {k: s.default for k, s in M.params.items()} | kw


def fact(exists: bool = True, content: bytes = b"a\n", mode: str = "0644", owner: str = "root",
         group: str = "root", type_: str = "file") -> dict[str, object]:
    if not exists:
        return {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
                "size": 0, "sha256": None}
    return {"exists": True, "type": type_, "mode": mode, "owner": owner, "group": group,
            "size": len(content), "sha256": sha256_hex(content) if type_ == "file" else None}


def test_fresh_host_creates() -> None:
    p = params(path="/etc/app.conf", content="x=1\n", mode="0640")
    plan = M.plan(p, {FactQuery("file", "/etc/app.conf"): fact(False)}, CTX)
    assert [c.reason for c in plan.changes] == ["create /etc/app.conf"]
    assert "chmod 00640" in plan.changes[0].script
    assert "<<'SHIPIT_EOF'" in plan.changes[0].script and "mv -f" in plan.changes[0].script


def test_converged_is_ok() -> None:
    p = params(path="/etc/a", content="a\n", mode="0644", owner="root")
    assert not M.plan(p, {FactQuery("file", "/etc/a"): fact()}, CTX).changed


def test_drift_reasons() -> None:
    p = params(path="/etc/a", content="a\n", mode="0600", owner="app")
    plan = M.plan(p, {FactQuery("file", "/etc/a"): fact()}, CTX)
    assert plan.changes[0].reason == "mode 0644 -> 0600, owner root -> app"
    p = params(path="/etc/a", content="b\n")
    plan = M.plan(p, {FactQuery("file", "/etc/a"): fact()}, CTX)
    assert plan.changes[0].reason == "content differs"
    # an existing file keeps its mode/owner when the task does not say
    assert "chmod 00644" in plan.changes[0].script and "chown -- root:root" in plan.changes[0].script


def test_diff_uses_old_content_and_masks_secrets() -> None:
    ctx = PlanContext(host="web1", host_facts={}, diff=True, secrets=("hunter2",))
    p = params(path="/etc/a", content="user=app\npassword=hunter2\n")
    facts = {FactQuery("file", "/etc/a"): fact(content=b"user=app\n"),
             FactQuery("file_content", "/etc/a"): {"state": "ok", "content": b"user=app\n"}}
    assert M.diff_facts(p) == [FactQuery("file_content", "/etc/a")]
    plan = M.plan(p, facts, ctx)
    change = plan.changes[0]
    assert "hunter2" not in change.diff and "hunter2" not in change.reason
    # content holding a known secret is treated as secret: no content diff at all
    assert change.diff == "/etc/a: content differs (secret)\n"
    assert change.reason == "content differs (secret)"


def test_diff_headers_and_masking_without_secret_content() -> None:
    ctx = PlanContext(host="web1", host_facts={}, diff=True, secrets=("s3cr3t",))
    p = params(path="/etc/a", content="b\n")
    facts = {FactQuery("file", "/etc/a"): fact(content=b"a s3cr3t\n"),
             FactQuery("file_content", "/etc/a"): {"state": "ok", "content": b"a s3cr3t\n"}}
    diff = M.plan(p, facts, ctx).changes[0].diff
    assert diff.startswith("--- /etc/a (before)\n+++ /etc/a (after)\n")
    assert "-a ********\n" in diff and "+b\n" in diff and "s3cr3t" not in diff


def test_secret_param_hides_diff() -> None:
    ctx = PlanContext(host="web1", host_facts={}, diff=True)
    p = params(path="/srv/app/shared/.env", content="TOKEN=abc\n", secret=True)
    plan = M.plan(p, {FactQuery("file", "/srv/app/shared/.env"): fact(False)}, ctx)
    assert "abc" not in plan.changes[0].diff and "secret" in plan.changes[0].diff


def test_directory_in_the_way_fails_and_absent() -> None:
    p = params(path="/etc/a", content="a")
    plan = M.plan(p, {FactQuery("file", "/etc/a"): fact(type_="directory")}, CTX)
    assert plan.failed and "directory" in plan.failed
    p = params(path="/etc/a", state="absent")
    assert M.plan(p, {FactQuery("file", "/etc/a"): fact()}, CTX).changes[0].reason == \
        "remove /etc/a"
    assert not M.plan(p, {FactQuery("file", "/etc/a"): fact(False)}, CTX).changed


def test_check_params() -> None:
    assert M.check_params(params(path="rel", mode="644")) == [
        ("path", "expected an absolute path other than /")]
    assert M.check_params(params(path="/a", mode="u+x"))[0][0] == "mode"


def test_real_run_as_this_user_converges_then_is_idempotent(tmp_path: Path) -> None:
    """Owned by whoever runs the tests (another owner: tests/e2e/test_modules_as_root.py)."""
    me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    path = str(tmp_path / "app.conf")
    ctx = PlanContext(host="local", host_facts={}, diff=True)
    content = "a=1\n'quotes' \"and\" $dollars `ticks` SHIPIT_EOF\n"
    p = {"path": path, "content": content, "mode": "0600", "owner": me, "group": group}
    first = run_local(M, p, ctx)
    assert first.plan.changed and first.ok, first.results
    assert Path(path).read_text() == content
    st = os.stat(path)
    assert oct(st.st_mode & 0o7777) == "0o600" and st.st_uid == os.getuid()
    assert not run_local(M, p, ctx).plan.changed
    third = run_local(M, {"path": path, "content": "b\n"}, ctx)
    assert third.plan.changes[0].reason == "content differs" and third.ok
    assert "-a=1" in third.plan.changes[0].diff
    assert oct(os.stat(path).st_mode & 0o7777) == "0o600"              # attributes kept
    assert [p.name for p in tmp_path.iterdir()] == ["app.conf"]          # no temp left
    gone = run_local(M, {"path": path, "state": "absent"}, ctx)
    assert gone.ok and not Path(path).exists()


def test_real_run_missing_parent_fails_clearly(tmp_path: Path) -> None:
    run = run_local(M, {"path": str(tmp_path / "no" / "f"), "content": "x"}, CTX)
    assert not run.ok and "does not exist" in run.results[0][1]
