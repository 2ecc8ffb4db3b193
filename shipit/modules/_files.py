"""Helpers shared by the modules that write files (file, template, systemd_unit, caddy_site…).

Pure functions: they build sh fragments and reasons from desired state and the ``file`` /
``file_content`` facts (shapes in :mod:`shipit.facts.files`). A file is always installed
atomically: written to a temporary file in the destination's directory, given its owner,
group and mode, then renamed over the destination with ``mv -f`` (a rename within one
filesystem), so readers see the old or the new content, never a half-written file.
"""

from __future__ import annotations

import base64
import difflib
import re
from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, files
from shipit.modules.base import Change, PlanContext, mask, q, sha256_hex

HEREDOC = "SHIPIT_EOF"
"""Heredoc delimiter; base64 text (A-Z, a-z, 0-9, +, /, =) can never contain it."""

DEFAULT_FILE_MODE = "0644"
"""Mode of a new file when the task gives none (what ``umask 022`` would give)."""

_MODE_RE = re.compile(r"[0-7]{3,4}")


def check_mode(value: Any) -> str | None:
    """Error message when ``value`` is not an octal mode string like ``"0644"``, else None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MODE_RE.fullmatch(value):
        return ("expected an octal mode as a quoted string, like \"0644\" "
                "(unquoted 0644 is read by YAML as the number 420)")
    return None


def check_abs_path(value: Any) -> str | None:
    """Error message when ``value`` is not an absolute path other than ``/``, else None."""
    if not isinstance(value, str) or not value.startswith("/") or value.rstrip("/") == "":
        return "expected an absolute path other than /"
    return None


def check_path_and_mode(params: Mapping[str, Any], path_key: str) -> list[tuple[str, str]]:
    """``check_params`` of the file-like modules: ``params[path_key]`` absolute, ``mode`` octal."""
    errors = []
    if (msg := check_abs_path(params.get(path_key))) is not None:
        errors.append((path_key, msg))
    if (msg := check_mode(params.get("mode"))) is not None:
        errors.append(("mode", msg))
    return errors


def norm_mode(mode: str) -> str:
    """``"644"`` -> ``"0644"``; ``"01777"`` -> ``"1777"`` (4 octal digits)."""
    return f"{int(mode, 8):04o}"


def file_queries(path: str) -> list[FactQuery]:
    """The fact queries a file-writing task needs for ``path``."""
    return [files.file(path)]


def content_queries(path: str) -> list[FactQuery]:
    """The extra fact queries for ``--diff`` of ``path`` (its old content)."""
    return [files.file_content(path)]


def attr_drift(fact: Mapping[str, Any], mode: str | None, owner: str | None,
               group: str | None) -> list[str]:
    """Reasons like ``"mode 0644 -> 0600"`` for each attribute differing from ``fact``."""
    reasons = []
    if mode is not None and fact.get("mode") != norm_mode(mode):
        reasons.append(f"mode {fact.get('mode')} -> {norm_mode(mode)}")
    if owner is not None and fact.get("owner") != owner:
        reasons.append(f"owner {fact.get('owner')} -> {owner}")
    if group is not None and fact.get("group") != group:
        reasons.append(f"group {fact.get('group')} -> {group}")
    return reasons


def attr_script(path: str, mode: str | None, owner: str | None, group: str | None,
                recurse_owner: bool = False) -> str:
    """sh lines setting owner/group (``chown``) and mode (``chmod``) of ``path``."""
    return _attr_lines(q(path), mode, owner, group, recurse_owner)


def _attr_lines(word: str, mode: str | None, owner: str | None, group: str | None,
                recurse_owner: bool = False) -> str:
    """Like :func:`attr_script` for an already-quoted shell ``word`` (e.g. ``"$tmp"``)."""
    lines = []
    if owner is not None or group is not None:
        spec = (owner or "") + (f":{group}" if group is not None else "")
        lines.append(f"chown {'-R ' if recurse_owner else ''}-- {q(spec)} {word}")
    if mode is not None:
        # five digits: GNU chmod keeps a directory's setuid/setgid bits on a 4-digit mode
        # (chmod 0700 of a 2750 directory leaves 2700: the next run would plan it again)
        lines.append(f"chmod 0{norm_mode(mode)} {word}")
    return "\n".join(lines)


def base64_text(data: bytes) -> str:
    """``data`` as base64 lines of 76 characters, each ending in a newline (heredoc body)."""
    return base64.encodebytes(data).decode("ascii")


def install_script(dest: str, data: bytes, mode: str | None, owner: str | None,
                   group: str | None) -> str:
    """sh fragment writing ``data`` to ``dest`` atomically with the given attributes.

    The content travels inside the script as base64 in a quoted heredoc (never in argv). Fails
    (exit 1, message on stderr) when the destination's directory does not exist.
    """
    encoded = base64_text(data)
    attrs = _attr_lines('"$tmp"', mode, owner, group)
    return f"""dest={q(dest)}
dir=$(dirname "$dest")
[ -d "$dir" ] || {{ echo "shipit: directory $dir does not exist" >&2; exit 1; }}
tmp=$(mktemp "$dir/.shipit-XXXXXXXX")
trap 'rm -f "$tmp"' EXIT
base64 -d > "$tmp" <<'{HEREDOC}'
{encoded}{HEREDOC}
{attrs}
mv -f "$tmp" "$dest"
trap - EXIT"""


def content_diff(path: str, old: bytes | None, new: bytes, secrets: tuple[str, ...]) -> str:
    """Unified diff (difflib) of ``old`` -> ``new`` with ``path`` in the headers, secrets masked.

    ``old`` None means the file does not exist (header ``/dev/null``). Binary content (a NUL
    byte or invalid UTF-8) gives a one-line note instead of a diff.
    """
    try:
        before = "" if old is None else old.decode("utf-8")
        after = new.decode("utf-8")
    except UnicodeDecodeError:
        return f"{path}: binary content differs\n"
    if "\0" in before or "\0" in after:
        return f"{path}: binary content differs\n"
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"{path} (before)",
        tofile=f"{path} (after)")
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
    return mask(text, secrets)


def plan_file(path: str, content: bytes | None, mode: str | None, owner: str | None,
              group: str | None, facts: Mapping[FactQuery, Any], ctx: PlanContext,
              secret: bool = False) -> tuple[list[Change], str | None]:
    """Changes making ``path`` a regular file with ``content`` (None: keep/empty) and attrs.

    Returns ``(changes, failure)``; ``failure`` is a message when ``path`` is a directory.
    ``secret`` (or content containing one of ``ctx.secrets``) replaces the diff with a note.
    Reasons: ``create PATH``, ``content differs``, ``mode 0644 -> 0600``, ``owner a -> b``,
    ``replace symlink PATH with a file``.
    """
    fact = facts[files.file(path)]
    secret = secret or (content is not None and any(
        s and s.encode() in content for s in ctx.secrets))
    old_fact = facts.get(files.file_content(path))

    def diff(old: bytes | None, new: bytes) -> str:
        if secret:
            return f"{path}: content differs (secret)\n"
        if old is None and fact["exists"]:
            if old_fact is not None and old_fact.get("state") == "too_large":
                return f"{path}: content differs (old content too large to show)\n"
            return ""                     # old content not gathered (no --diff)
        return content_diff(path, old, new, ctx.secrets)

    old = old_fact.get("content") if old_fact else None
    if not fact["exists"]:
        data = content if content is not None else b""
        return [Change(f"create {path}", install_script(path, data, mode or DEFAULT_FILE_MODE,
                                                        owner, group),
                       diff(None, data))], None
    if fact["type"] == "directory":
        return [], f"{path} is a directory, expected a regular file"
    keep_mode = mode or (fact["mode"] if fact["type"] == "file" else DEFAULT_FILE_MODE)
    keep_owner = owner or (fact["owner"] if fact["type"] == "file" else None)
    keep_group = group or (fact["group"] if fact["type"] == "file" else None)
    if fact["type"] != "file":
        data = content if content is not None else b""
        return [Change(f"replace {fact['type']} {path} with a file",
                       install_script(path, data, keep_mode, keep_owner, keep_group),
                       diff(None, data))], None
    drift = attr_drift(fact, mode, owner, group)
    if content is not None and fact["sha256"] != sha256_hex(content):
        reason = "; ".join(["content differs" + (" (secret)" if secret else "")] + drift)
        return [Change(reason, install_script(path, content, keep_mode, keep_owner, keep_group),
                       diff(old, content))], None
    if drift:
        return [Change(", ".join(drift), attr_script(path, mode, owner, group))], None
    return [], None


def render_local(ctx: PlanContext, src: str) -> tuple[str | None, str]:
    """Read the local Jinja2 template ``src`` and render it: ``(text, "")`` or ``(None, error)``.

    Errors name the template: an ``OSError``/``UnicodeDecodeError`` reading it, or whatever
    ``ctx.render`` raised (e.g. Jinja2's ``UndefinedError``), with secrets masked.
    """
    try:
        text = ctx.read_local(ctx.local_path(src)).decode("utf-8")
    except (OSError, UnicodeDecodeError, KeyError) as exc:
        return None, f"cannot read template {src}: {exc}"
    try:
        return ctx.render(text), ""
    except Exception as exc:  # noqa: BLE001 - the renderer's own error type
        return None, f"cannot render template {src}: {type(exc).__name__}: " \
                     f"{mask(str(exc), ctx.secrets)}"
