"""upload: skip on equal sha256, Upload spec, and a real run with a simulated SFTP put."""

from __future__ import annotations

import os
from pathlib import Path

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext, sha256_hex
from shipit.modules.upload import UploadModule
from shipit.testing import run_local, run_script, upload_path

M = UploadModule()
DATA = b"artifact bytes\n"
CTX = PlanContext(host="web1", host_facts={}, read_local=lambda p: DATA,
                  local_path=lambda p: "/play/" + p)
Q = FactQuery("file", "/srv/app/a.tar.gz")
ABSENT = {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
          "size": 0, "sha256": None}
P = {"src": "a.tar.gz", "dest": "/srv/app/a.tar.gz", "mode": "0640", "owner": "app"}


def same(**kw: object) -> dict[str, object]:
    return {"exists": True, "type": "file", "mode": "0640", "owner": "app", "group": "app",
            "size": len(DATA), "sha256": sha256_hex(DATA)} | kw


def test_fresh_converged_drift() -> None:
    plan = M.plan(P, {Q: ABSENT}, CTX)
    change = plan.changes[0]
    assert change.reason == "upload a.tar.gz to /srv/app/a.tar.gz"
    assert change.upload is not None and change.upload.local == "/play/a.tar.gz"
    assert change.upload.sha256 == sha256_hex(DATA)
    # never in /tmp (#15): a relative SFTP path, in the SSH user's home
    assert change.upload.remote.startswith(".shipit-upload-") and change.upload.remote in change.script
    assert "/tmp" not in change.script
    assert not M.plan(P, {Q: same()}, CTX).changed
    assert M.plan(P, {Q: same(mode="0644")}, CTX).changes[0].reason == "mode 0644 -> 0640"
    assert M.plan(P, {Q: same(mode="0644")}, CTX).changes[0].upload is None
    assert M.plan(P, {Q: same(sha256="0" * 64)}, CTX).changes[0].reason == "content differs"


def test_unreadable_local_file_fails() -> None:
    def boom(path: str) -> bytes:
        raise FileNotFoundError(2, "No such file or directory", path)
    ctx = PlanContext(host="web1", host_facts={}, read_local=boom)
    assert "cannot read a.tar.gz" in (M.plan(P, {Q: ABSENT}, ctx).failed or "")


def test_real_run(tmp_path: Path) -> None:
    src = tmp_path / "local.bin"
    src.write_bytes(os.urandom(5000))
    ctx = PlanContext(host="local", host_facts={})
    p = {"src": str(src), "dest": str(tmp_path / "dest.bin"), "mode": "0600"}
    first = run_local(M, p, ctx)
    assert first.ok and first.plan.changed, first.results
    assert (tmp_path / "dest.bin").read_bytes() == src.read_bytes()
    assert not Path(upload_path(first.plan.changes[0].upload.remote)).exists()   # type: ignore[union-attr]
    assert not run_local(M, p, ctx).plan.changed
    # a corrupted transfer fails and leaves dest untouched
    src.write_bytes(b"new")
    plan = run_local(M, p, ctx, execute=False).plan
    change = plan.changes[0]
    assert change.upload is not None
    Path(upload_path(change.upload.remote)).write_bytes(b"corrupt")
    rc, err = run_script(change.script)
    assert rc != 0 and "does not match sha256" in err
    assert (tmp_path / "dest.bin").read_bytes() != b"new"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["dest.bin", "local.bin"]


def test_a_planted_symlink_is_not_read_through(tmp_path: Path) -> None:
    """The uploaded name is checked to be the SSH user's regular file before root reads it."""
    src = tmp_path / "local.bin"
    src.write_bytes(b"artifact")
    dest = tmp_path / "dest.bin"
    plan = run_local(M, {"src": str(src), "dest": str(dest)}, PlanContext(host="local", host_facts={}),
                     execute=False).plan
    change = plan.changes[0]
    assert change.upload is not None
    canary = tmp_path / "canary"
    canary.write_bytes(b"artifact")  # same content: only the symlink check stops it
    planted = Path(upload_path(change.upload.remote))
    planted.symlink_to(canary)
    try:
        rc, err = run_script(change.script)
    finally:
        planted.unlink(missing_ok=True)
    assert rc != 0 and "not a regular file" in err and not dest.exists()
    assert canary.read_bytes() == b"artifact"
