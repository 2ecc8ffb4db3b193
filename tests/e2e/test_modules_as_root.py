"""Real runs of modules on THIS machine that need root (another owner, runuser, useradd).

They were root-only tests in the unit layer, skipped without root; the unit layer now runs as
any user (its own real runs use the current user), and these run where root is a given: the
e2e layer, in CI as root. Without root they fail in CI (``SHIPIT_E2E_REQUIRED=1``) and skip
elsewhere, like the lab's tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from shipit.modules.base import PlanContext
from shipit.modules.command import CommandModule, ShellModule
from shipit.modules.directory import DirectoryModule
from shipit.modules.file import FileModule
from shipit.modules.user import GroupModule, UserModule
from shipit.testing import run_local

CTX = PlanContext(host="web1", host_facts={}, secrets=("tok3n",))
C, S = CommandModule(), ShellModule()
D, F = DirectoryModule(), FileModule()
U, G = UserModule(), GroupModule()


@pytest.fixture(autouse=True)
def root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("SHIPIT_E2E_REQUIRED") == "1":
            pytest.fail("these tests need root (SHIPIT_E2E_REQUIRED=1)", pytrace=False)
        pytest.skip("needs root")


def test_command_become_user_real_run() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="shipit-test-", dir="/tmp"))  # nobody can enter
    os.chmod(tmp_path, 0o777)
    marker = tmp_path / "done"
    p = {"cmd": f"sh -c 'echo \"$GREETING\" > {marker}; whoami >> {marker}'",
         "creates": str(marker), "chdir": str(tmp_path), "become_user": "nobody",
         "env": {"GREETING": "it's $fine"}}
    first = run_local(C, p, CTX)
    assert first.ok and first.plan.changed, first.results
    assert marker.read_text() == "it's $fine\nnobody\n"
    assert run_local(C, p, CTX).plan.skipped
    s = {"cmd": f"echo x >> {tmp_path}/log", "unless": f"grep -q x {tmp_path}/log"}
    assert run_local(S, s, CTX).ok
    assert run_local(S, s, CTX).plan.skipped
    shutil.rmtree(tmp_path)


def test_directory_owned_by_another_user_real_run(tmp_path: Path) -> None:
    path = str(tmp_path / "a" / "b")
    p = {"path": path, "owner": "nobody", "group": "nogroup", "mode": "2750", "recurse": True}
    first = run_local(D, p, CTX)
    assert first.ok and first.plan.changed
    assert oct(os.stat(path).st_mode & 0o7777) == "0o2750"
    assert not run_local(D, p, CTX).plan.changed
    (Path(path) / "f").write_text("x")          # root-owned file below: drift
    third = run_local(D, p, CTX)
    assert third.plan.changed and third.ok
    assert os.stat(Path(path) / "f").st_uid == 65534
    assert not run_local(D, p, CTX).plan.changed
    gone = run_local(D, {"path": path, "state": "absent"}, CTX)
    assert gone.ok and not Path(path).exists()


def test_file_owned_by_another_user_real_run(tmp_path: Path) -> None:
    path = str(tmp_path / "app.conf")
    ctx = PlanContext(host="local", host_facts={}, diff=True)
    content = "a=1\n'quotes' \"and\" $dollars `ticks` SHIPIT_EOF\n"
    first = run_local(F, {"path": path, "content": content, "mode": "0600",
                          "owner": "nobody", "group": "nogroup"}, ctx)
    assert first.plan.changed and first.ok, first.results
    assert Path(path).read_text() == content
    st = os.stat(path)
    assert oct(st.st_mode & 0o7777) == "0o600" and st.st_uid == 65534
    second = run_local(F, {"path": path, "content": content, "mode": "0600",
                           "owner": "nobody", "group": "nogroup"}, ctx)
    assert not second.plan.changed
    third = run_local(F, {"path": path, "content": "b\n"}, ctx)
    assert third.plan.changes[0].reason == "content differs" and third.ok
    assert "-a=1" in third.plan.changes[0].diff
    st = os.stat(path)
    assert oct(st.st_mode & 0o7777) == "0o600" and st.st_uid == 65534  # attributes kept
    assert [p.name for p in tmp_path.iterdir()] == ["app.conf"]          # no temp left
    gone = run_local(F, {"path": path, "state": "absent"}, ctx)
    assert gone.ok and not Path(path).exists()


def test_user_and_group_real_run() -> None:
    name = "shipit-test-user"
    try:
        g = run_local(G, {"name": name, "system": True}, CTX)
        assert g.ok and g.plan.changed
        p = {"name": name, "system": True, "home": "/nonexistent", "shell": "/usr/sbin/nologin",
             "groups": ["nogroup"], "create_home": False}
        first = run_local(U, p, CTX)
        assert first.ok and first.plan.changed, first.results
        assert not run_local(U, p, CTX).plan.changed
        drift = run_local(U, dict(p, shell="/bin/sh"), CTX)
        assert drift.plan.changes[0].reason == "shell /usr/sbin/nologin -> /bin/sh" and drift.ok
        gone = run_local(U, {"name": name, "state": "absent"}, CTX)
        assert gone.ok and gone.plan.changed
        assert not run_local(U, {"name": name, "state": "absent"}, CTX).plan.changed
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", name], capture_output=True, check=False)
