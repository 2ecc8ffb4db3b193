"""Parsers of the path fact kinds, on output recorded on Debian 12 (tests/unit/recorded/)."""

from __future__ import annotations

import json
from pathlib import Path

from shipit.facts import FactQuery, build_gather_script, files, split_gather_output
from shipit.facts.registry import fact_kinds

REC = Path(__file__).parent / "recorded"


def rec(name: str) -> str:
    return (REC / name).read_text()


def test_file_regular() -> None:
    assert files.parse_file(rec("file_regular.txt")) == {
        "exists": True, "type": "file", "mode": "0644", "owner": "root", "group": "root",
        "size": 12,
        "sha256": "4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92"}


def test_file_directory_keeps_sticky_bit() -> None:
    fact = files.parse_file(rec("file_directory_tmp.txt"))
    assert fact["type"] == "directory" and fact["mode"] == "1777" and fact["sha256"] is None


def test_file_symlink_and_absent() -> None:
    assert files.parse_file(rec("file_symlink.txt"))["type"] == "link"
    absent = files.parse_file(rec("file_absent.txt"))
    assert absent["exists"] is False and absent["mode"] is None
    assert files.parse_file("") == absent


def test_file_content() -> None:
    assert files.parse_file_content(rec("file_content_ok.txt")) == {
        "state": "ok", "content": b"hello\nworld\n"}
    assert files.parse_file_content(rec("file_content_absent.txt"))["content"] is None
    assert files.parse_file_content("state=too_large\n")["state"] == "too_large"
    assert files.parse_file_content("state=ok\n!!notbase64\n")["state"] == "absent"


def test_path_exists_and_check() -> None:
    assert files.parse_path_exists(rec("path_exists_yes.txt")) is True
    assert files.parse_path_exists(rec("path_exists_no.txt")) is False
    assert files.parse_check(rec("check_true.txt")) == 0
    assert files.parse_check(rec("check_false.txt")) == 1
    assert files.parse_check("") == -1


def test_tree_owner() -> None:
    assert files.parse_tree_owner(rec("tree_owner_ok.txt")) == {"drift": False, "example": None}
    assert files.parse_tree_owner(rec("tree_owner_drift.txt")) == {
        "drift": True, "example": "/tmp/shipit-rec"}
    assert files.parse_tree_owner(rec("tree_owner_unknown_user.txt"))["drift"] is True


def test_tree_owner_arg_is_canonical_json() -> None:
    arg = files.tree_owner_arg("/srv/a", "app", None)
    assert json.loads(arg) == {"path": "/srv/a", "owner": "app", "group": None}
    assert arg == files.tree_owner_arg("/srv/a", "app", None)


def test_commands_quote_hostile_paths() -> None:
    cmd = files.file_command("/tmp/x'; rm -rf /; '")
    assert "'\"'\"'" in cmd


def test_gather_roundtrip_through_shared_script() -> None:
    kinds = fact_kinds()
    queries = [FactQuery("file", "/etc/passwd"), FactQuery("path_exists", "/nonexistent"),
               FactQuery("check", "true")]
    script = build_gather_script(queries, kinds, "n1")
    outputs = [rec("file_regular.txt"), rec("path_exists_no.txt"), rec("check_true.txt")]
    stdout = "".join(f"@@shipit:n1:fact:{i}\n{out}" for i, out in enumerate(outputs))
    facts = split_gather_output(stdout, queries, kinds, "n1")
    assert facts[queries[1]] is False and facts[queries[2]] == 0
    assert "sha256sum" in script
