"""The file_block module: one app's block in a file other apps also keep blocks in (pg_hba)."""

from __future__ import annotations

from pathlib import Path

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext
from shipit.modules.file_block import FileBlockModule, edit
from shipit.testing import run_local

CTX = PlanContext(host="db1", host_facts={})
M = FileBlockModule()
DEBIAN_HBA = "local   all   postgres   peer\nhost    all   all   127.0.0.1/32   scram-sha-256\n"


def params(**kw: object) -> dict[str, object]:
    return {k: s.default for k, s in M.params.items()} | kw


def test_a_new_block_is_appended_and_the_rest_kept() -> None:
    text = edit(DEBIAN_HBA, "shop", "host shop shop 10.0.0.1/32 scram-sha-256")
    assert text == DEBIAN_HBA + ("# BEGIN shipit shop\nhost shop shop 10.0.0.1/32 scram-sha-256\n"
                                 "# END shipit shop\n")


def test_two_apps_keep_their_own_blocks() -> None:
    text = edit(DEBIAN_HBA, "shop", "host shop shop 10.0.0.1/32 scram-sha-256")
    text = edit(text, "blog", "host blog blog 10.0.0.2/32 scram-sha-256")
    text = edit(text, "shop", "host shop shop 10.0.0.9/32 scram-sha-256")  # shop's web hosts changed
    assert text.splitlines() == [
        *DEBIAN_HBA.splitlines(),
        "# BEGIN shipit shop", "host shop shop 10.0.0.9/32 scram-sha-256", "# END shipit shop",
        "# BEGIN shipit blog", "host blog blog 10.0.0.2/32 scram-sha-256", "# END shipit blog",
    ]
    assert edit(text, "shop", None).splitlines() == [
        *DEBIAN_HBA.splitlines(),
        "# BEGIN shipit blog", "host blog blog 10.0.0.2/32 scram-sha-256", "# END shipit blog"]


def test_same_block_again_is_unchanged() -> None:
    once = edit("a\n", "x", "1\n2\n")
    assert edit(once, "x", "1\n2\n") == once


def test_a_file_without_final_newline_keeps_its_last_line() -> None:
    assert edit("last", "x", "1") == "last\n# BEGIN shipit x\n1\n# END shipit x\n"


def test_check_params() -> None:
    assert M.check_params(params(path="etc/x", block="a")) == [("path", "expected an absolute path other than /")]
    assert [k for k, _ in M.check_params(params(path="/etc/x", block="a b\n"))] == ["block"]
    assert [k for k, _ in M.check_params(params(path="/etc/x", block="a", content="# END shipit a"))] == ["content"]


def _facts(path: str, content: bytes | None) -> dict[FactQuery, object]:
    if content is None:
        return {FactQuery("file", path): {"exists": False, "type": None, "mode": None, "owner": None,
                                          "group": None, "size": 0, "sha256": None},
                FactQuery("file_content", path): {"state": "absent", "content": None}}
    return {FactQuery("file", path): {"exists": True, "type": "file", "mode": "0640", "owner": "postgres",
                                      "group": "postgres", "size": len(content), "sha256": "x"},
            FactQuery("file_content", path): {"state": "ok", "content": content}}


def test_plan_keeps_owner_and_mode_and_says_what() -> None:
    path = "/etc/postgresql/15/main/pg_hba.conf"
    plan = M.plan(params(path=path, block="shop", content="host shop shop 10.0.0.1/32 scram-sha-256"),
                  _facts(path, DEBIAN_HBA.encode()), CTX)
    assert [c.reason for c in plan.changes] == [f"add block shop in {path}"]
    assert "chown -- postgres:postgres" in plan.changes[0].script and "chmod 00640" in plan.changes[0].script
    done = edit(DEBIAN_HBA, "shop", "host shop shop 10.0.0.1/32 scram-sha-256").encode()
    assert not M.plan(params(path=path, block="shop", content="host shop shop 10.0.0.1/32 scram-sha-256"),
                      _facts(path, done), CTX).changes


def test_missing_file_fails_unless_create() -> None:
    assert "does not exist" in str(M.plan(params(path="/etc/x", block="a", content="1"), _facts("/etc/x", None), CTX).failed)
    assert not M.plan(params(path="/etc/x", block="a", state="absent"), _facts("/etc/x", None), CTX).changes


def test_runs_locally_and_second_run_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pg_hba.conf"
    target.write_text(DEBIAN_HBA)
    p = {"path": str(target), "block": "shop", "content": "host shop shop 10.0.0.1/32 scram-sha-256\n"}
    first = run_local(M, p, CTX)
    assert first.ok and first.plan.changes
    assert target.read_text() == edit(DEBIAN_HBA, "shop", "host shop shop 10.0.0.1/32 scram-sha-256")
    assert not run_local(M, p, CTX).plan.changes
    assert run_local(M, {**p, "block": "blog"}, CTX).ok
    assert target.read_text().count("# BEGIN shipit") == 2
