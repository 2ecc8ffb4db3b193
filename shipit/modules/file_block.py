"""The ``file_block`` module: one named block of lines inside a file others also write.

As Ansible's ``blockinfile``: the block sits between ``# BEGIN shipit <block>`` and
``# END shipit <block>`` marker lines; a run replaces what is between them (or appends the
block at the end of the file when it is not there yet, or removes it with ``state: absent``)
and leaves every other line alone. Several apps on one host each keep their own block in a
shared file (their ``pg_hba.conf`` entries), so one app's deploy never overwrites another's.

The new content is computed here from the file's current content (the ``file_content``
fact), then installed atomically by the same helper as the ``file`` module (temp file in the
destination's directory, then ``mv -f``), keeping the file's owner, group and mode. A missing
file is an error unless ``create: true``. Two runs editing the same file on the same host at
the same moment could lose one block (read, then write); shipit runs one task at a time per
host, and the next run puts a lost block back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, files
from shipit.modules import _files
from shipit.modules.base import Change, Module, Param, Plan, PlanContext

_BLOCK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def markers(block: str, comment: str = "#") -> tuple[str, str]:
    """The ``BEGIN`` and ``END`` marker lines (without newline) of ``block``."""
    return f"{comment} BEGIN shipit {block}", f"{comment} END shipit {block}"


def edit(text: str, block: str, lines: str | None, comment: str = "#") -> str:
    """``text`` with ``block`` set to ``lines`` (None: removed); pure.

    Every other line is kept as it is. A block that is there is replaced in place; a new one is
    appended at the end (after a newline when ``text`` does not end with one). ``lines`` empty
    keeps an empty block (the markers only); trailing empty lines of ``lines`` are dropped. A BEGIN marker without its END is treated as a
    block running to the end of the file.
    """
    begin, end = markers(block, comment)
    new_block = [] if lines is None else [begin, *lines.rstrip("\n").splitlines(), end]
    old = text.splitlines()
    if begin in old:
        start = old.index(begin)
        stop = old.index(end, start) + 1 if end in old[start:] else len(old)
        result = old[:start] + new_block + old[stop:]
    else:
        result = old + new_block
    return "".join(line + "\n" for line in result)


class FileBlockModule(Module):
    """Keep one named block of lines in a file, leaving the rest of the file alone."""

    name = "file_block"
    doc = "A named block of lines (between BEGIN/END markers) in a file shared with others."
    params = {
        "path": Param(str, required=True, help="absolute path of the file"),
        "block": Param(str, required=True, help="the block's name, e.g. the app's name"),
        "content": Param(str, default="", help="the block's lines (without markers)"),
        "state": Param(str, default="present", choices=("present", "absent")),
        "comment": Param(str, default="#", help="the file format's comment prefix"),
        "create": Param(bool, default=False, help="create the file when missing"),
        "mode": Param(str, help='mode of a created file, e.g. "0640"'),
        "owner": Param(str, help="owner of a created file"),
        "group": Param(str, help="group of a created file"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _files.check_path_and_mode(params, "path")
        if not isinstance(params.get("block"), str) or not _BLOCK_NAME.fullmatch(params["block"]):
            errors.append(("block", "expected a block name (letters, digits, . _ -), like the app's name"))
        comment = params.get("comment", "#")
        if not isinstance(comment, str) or not comment or any(c.isspace() for c in comment):
            errors.append(("comment", "expected a comment prefix like # or ;"))
        content = params.get("content") or ""
        begin_end = ("BEGIN shipit ", "END shipit ")
        if isinstance(content, str) and any(m in line for line in content.splitlines() for m in begin_end):
            errors.append(("content", "the block's lines cannot contain shipit's BEGIN/END markers"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [files.file(params["path"]), files.file_content(params["path"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        path = params["path"]
        fact = facts[files.file(path)]
        absent = params.get("state") == "absent"
        lines = None if absent else (params.get("content") or "")
        if not fact["exists"]:
            if absent:
                return Plan()
            if not params.get("create"):
                return Plan(failed=f"{path} does not exist (give create: true to create it)")
            old = b""
        elif fact["type"] != "file":
            return Plan(failed=f"{path} is a {fact['type']}, expected a regular file")
        else:
            content = facts[files.file_content(path)]
            if content["state"] != "ok":
                return Plan(failed=f"cannot read {path} ({content['state']})")
            old = content["content"]
        try:
            text = old.decode("utf-8")
        except UnicodeDecodeError:
            return Plan(failed=f"{path} is not UTF-8 text")
        new = edit(text, params["block"], lines, params.get("comment") or "#").encode("utf-8")
        if fact["exists"] and new == old:
            return Plan()
        comment = params.get("comment") or "#"
        verb = "remove" if absent else ("update" if markers(params["block"], comment)[0] in text else "add")
        mode = fact["mode"] if fact["exists"] else (params.get("mode") or _files.DEFAULT_FILE_MODE)
        owner = fact["owner"] if fact["exists"] else params.get("owner")
        group = fact["group"] if fact["exists"] else params.get("group")
        script = _files.install_script(path, new, mode, owner, group)
        diff = _files.content_diff(path, old if fact["exists"] else None, new, ctx.secrets) if ctx.diff else ""
        return Plan((Change(f"{verb} block {params['block']} in {path}", script, diff),))
