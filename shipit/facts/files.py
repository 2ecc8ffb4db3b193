"""Fact kinds about paths: ``file``, ``file_content``, ``path_exists``, ``tree_owner``, ``check``.

Commands are POSIX sh + coreutils/findutils only (hosts have no Python). Each prints
``key=value`` lines (or base64) and exits 0 whether or not the path exists.

Parsed shapes:

``file`` (arg: absolute path; does not follow a final symlink, like ``stat``)::

    {"exists": True, "type": "file" | "directory" | "link" | "other",
     "mode": "0644", "owner": "root", "group": "root", "size": 1221,   # size in bytes
     "sha256": "ab12…" | None}            # regular files only
    {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
     "size": 0, "sha256": None}

``file_content`` (arg: path; asked only for ``--diff``; capped at :data:`CONTENT_CAP` bytes)::

    {"state": "ok" | "absent" | "too_large", "content": b"…" | None}

``path_exists`` (arg: path): ``True`` / ``False`` (a dangling symlink counts as existing).

``tree_owner`` (arg: JSON ``{"path", "owner", "group"}`` with sorted keys; owner/group may be
null): ``{"drift": True | False, "example": "/srv/app/x" | None}`` — whether any entry below
``path`` (inclusive) has another owner or group; an unknown user or group counts as drift.

``check`` (arg: a shell command run by ``sh -c`` as the gathering user, stdin from /dev/null,
output discarded, killed after :data:`CHECK_TIMEOUT` s): its exit status as an ``int``.
Used by the ``command``/``shell`` modules' ``unless`` guard (the command runs at fact-gathering
time, before any change of the play is made).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.quoting import q

CONTENT_CAP = 256 * 1024
"""Largest file (bytes) whose content is fetched for ``--diff``."""

CHECK_TIMEOUT = 120
"""Seconds a ``check`` command may run before it is killed (exit status 124)."""

_TYPES = {"regular file": "file", "regular empty file": "file", "directory": "directory",
          "symbolic link": "link"}


def _kv(stdout: str) -> dict[str, str]:
    raw: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value
    return raw


def file_command(path: str) -> str:
    """Print type/mode/owner/group/size (and sha256 of a regular file) of ``path``."""
    return f"""p={q(path)}
if [ -e "$p" ] || [ -L "$p" ]; then
  stat --printf 'type=%F\\nmode=%a\\nowner=%U\\ngroup=%G\\nsize=%s\\n' -- "$p"
  if [ -f "$p" ] && [ ! -L "$p" ]; then echo "sha256=$(sha256sum < "$p" | cut -d' ' -f1)"; fi
else
  echo "type=absent"
fi"""


def file_batch_command(paths: Sequence[str]) -> str:
    """:func:`file_command` for many paths in two processes: one ``stat``, one ``sha256sum``.

    Prints a ``@@path=<path>`` line before each existing path's stat fields, then
    ``<sha256>  <path>`` for each regular file; :func:`split_file_batch` reads it back.
    """
    return f"""set --
for p in {' '.join(q(p) for p in paths)}; do
  if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "$p"; fi
done
if [ $# -gt 0 ]; then
  stat --printf '@@path=%n\\ntype=%F\\nmode=%a\\nowner=%U\\ngroup=%G\\nsize=%s\\n' -- "$@"
  for p do shift; if [ -f "$p" ] && [ ! -L "$p" ]; then set -- "$@" "$p"; fi; done
  if [ $# -gt 0 ]; then sha256sum -- "$@"; fi
fi"""


_SHA_LINE = re.compile(r"([0-9a-f]{64})  (.*)")


def split_file_batch(stdout: str, paths: Sequence[str]) -> list[str]:
    """Cut :func:`file_batch_command` output into :func:`file_command` output per path."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        sha = _SHA_LINE.fullmatch(line)
        if line.startswith("@@path="):
            current = fields.setdefault(line[len("@@path="):], [])
        elif sha and sha.group(2) in fields:
            fields[sha.group(2)].append(f"sha256={sha.group(1)}")
            current = None
        elif current is not None:
            current.append(line)
    return ["".join(f"{line}\n" for line in fields[p]) if p in fields else "type=absent\n"
            for p in paths]


def parse_file(stdout: str) -> dict[str, Any]:
    """Parse :func:`file_command` output into the ``file`` shape (see module doc)."""
    raw = _kv(stdout)
    kind = raw.get("type", "absent")
    if kind == "absent" or "mode" not in raw:
        return {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
                "size": 0, "sha256": None}
    size = raw.get("size", "0")
    return {
        "exists": True,
        "type": _TYPES.get(kind, "other"),
        "mode": raw["mode"].strip().zfill(4),
        "owner": raw.get("owner"),
        "group": raw.get("group"),
        "size": int(size) if size.isdigit() else 0,
        "sha256": raw.get("sha256") or None,
    }


def file_content_command(path: str) -> str:
    """Print ``state=…`` then the base64 of ``path`` on one line (regular files ≤ the cap)."""
    return f"""p={q(path)}
if [ -f "$p" ]; then
  if [ "$(stat -L -c %s -- "$p")" -le {CONTENT_CAP} ]; then
    echo state=ok; base64 -w0 < "$p"; echo
  else echo state=too_large; fi
else echo state=absent; fi"""


def parse_file_content(stdout: str) -> dict[str, Any]:
    """Parse :func:`file_content_command` output; undecodable base64 reads as absent."""
    lines = stdout.splitlines()
    state = lines[0].partition("=")[2] if lines else "absent"
    if state != "ok":
        return {"state": state if state == "too_large" else "absent", "content": None}
    try:
        content = base64.b64decode("".join(lines[1:]), validate=True)
    except (binascii.Error, ValueError):
        return {"state": "absent", "content": None}
    return {"state": "ok", "content": content}


def path_exists_command(path: str) -> str:
    """Print ``yes`` when ``path`` exists (or is a symlink), else ``no``."""
    return f'if [ -e {q(path)} ] || [ -L {q(path)} ]; then echo yes; else echo no; fi'


def parse_path_exists(stdout: str) -> bool:
    """``True`` when the output is ``yes``."""
    return stdout.strip() == "yes"


def tree_owner_arg(path: str, owner: str | None, group: str | None) -> str:
    """Canonical ``tree_owner`` arg for ``path`` owned by ``owner``:``group`` (either None)."""
    return json.dumps({"path": path, "owner": owner, "group": group}, sort_keys=True)


def tree_owner_command(arg: str) -> str:
    """Print the first entry under the path with another owner/group, and find's status."""
    spec = json.loads(arg)
    tests = []
    if spec.get("owner"):
        tests.append(f"! -user {q(spec['owner'])}")
    if spec.get("group"):
        tests.append(f"! -group {q(spec['group'])}")
    if not tests:
        return "echo rc=0"
    expr = " -o ".join(tests)
    return f"""out=$(find {q(spec['path'])} \\( {expr} \\) -print -quit 2>/dev/null) && rc=0 || rc=$?
echo "rc=$rc"
[ -z "$out" ] || echo "example=$out\""""


def parse_tree_owner(stdout: str) -> dict[str, Any]:
    """Parse :func:`tree_owner_command` output; a failed ``find`` counts as drift."""
    raw = _kv(stdout)
    example = raw.get("example") or None
    return {"drift": raw.get("rc", "0") != "0" or example is not None, "example": example}


def check_command(cmd: str) -> str:
    """Run ``cmd`` with ``sh`` (no stdin, no output, with a timeout) and print ``rc=N``.

    ``cmd`` travels as base64 in a heredoc and reaches ``sh`` in an environment variable
    (``eval "$SHIPIT_CHECK"``), never in an argv: a guard may export a secret (the ``shell``
    module's ``env``) and argvs are world-readable in ``ps``.
    """
    encoded = base64.b64encode(cmd.encode("utf-8")).decode("ascii")
    return (f"SHIPIT_CHECK=$(base64 -d <<'SHIPIT_EOF'\n{encoded}\nSHIPIT_EOF\n)\n"
            f"if SHIPIT_CHECK=\"$SHIPIT_CHECK\" timeout {CHECK_TIMEOUT} sh -c 'eval \"$SHIPIT_CHECK\"' "
            f"</dev/null >/dev/null 2>&1; "
            f'then echo rc=0; else echo "rc=$?"; fi')


def parse_check(stdout: str) -> int:
    """The exit status printed by :func:`check_command` (``-1`` if missing)."""
    value = _kv(stdout).get("rc", "").strip()
    return int(value) if value.isdigit() else -1


FILE = FactKind("file", file_command, parse_file, "type, mode, owner, group, size, sha256 of a path",
                batch=file_batch_command, split=split_file_batch)
FILE_CONTENT = FactKind("file_content", file_content_command, parse_file_content,
                        "content of a regular file (base64, capped), for --diff")
PATH_EXISTS = FactKind("path_exists", path_exists_command, parse_path_exists, "whether a path exists")
TREE_OWNER = FactKind("tree_owner", tree_owner_command, parse_tree_owner,
                      "whether anything under a path has another owner or group")
CHECK = FactKind("check", check_command, parse_check, "exit status of a shell command")
KINDS = [FILE, FILE_CONTENT, PATH_EXISTS, TREE_OWNER, CHECK]


def file(path: str) -> FactQuery:
    """The ``file`` fact of ``path`` (absolute; a final symlink is not followed)."""
    return FILE.query(path)


def file_content(path: str) -> FactQuery:
    """The ``file_content`` fact of ``path`` (for ``--diff``; capped at :data:`CONTENT_CAP`)."""
    return FILE_CONTENT.query(path)


def path_exists(path: str) -> FactQuery:
    """The ``path_exists`` fact of ``path`` (a dangling symlink counts as existing)."""
    return PATH_EXISTS.query(path)


def tree_owner(path: str, owner: str | None, group: str | None) -> FactQuery:
    """The ``tree_owner`` fact: does anything under ``path`` have another owner or group than
    ``owner``:``group`` (either None: not checked)? The arg is :func:`tree_owner_arg`."""
    return TREE_OWNER.query(tree_owner_arg(path, owner, group))


def check(cmd: str) -> FactQuery:
    """The ``check`` fact: the exit status of shell command ``cmd`` (run at gathering time)."""
    return CHECK.query(cmd)
