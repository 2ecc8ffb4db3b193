"""How an app declares its dependencies, and the parsers for the lock formats shipit reads.

Three layouts (:func:`detect_layout`), first match wins:

``uv.lock``
    a ``pyproject.toml`` with ``[project]`` and a ``uv.lock`` beside it, or in the root of the
    uv workspace the app is a member of (:func:`workspace_root`): dependencies are exactly the
    lock's (``uv export --frozen``), the app ships as its own wheel too. Locked.
``requirements``
    a ``requirements.txt`` (Django style, with or without a pyproject): dependencies are its
    lines; locked when every line is ``name==version`` (``--hash`` options allowed). With a
    ``[project]`` the app also ships as its wheel; without, the source tree is the release.
``pyproject``
    a ``[project]`` with ranges and no lock: resolved by uv at build time, recorded as
    *resolved, not locked* in the artifact's metadata.

Everything here is pure text parsing except :func:`detect_layout`, which reads two files.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from shipit.errors import ShipitError


class LockError(ShipitError):
    """A lock or requirements file shipit cannot read, or an app with no dependency file."""


def normalize(name: str) -> str:
    """PEP 503 name: ``Typing_Extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class AppLayout:
    """What :func:`detect_layout` found.

    Attributes:
        kind: ``"uv.lock"``, ``"requirements"`` or ``"pyproject"``.
        distribution: the ``[project].name`` (the app ships as this wheel), or None (the
            source tree is the release; no app wheel).
        lock: the file the dependencies come from, relative to the source (``uv.lock``,
            ``requirements.txt``, ``pyproject.toml``; ``../uv.lock`` for a workspace member).
        workspace: the app is a member of a uv workspace whose ``uv.lock`` is in a parent
            directory (see :func:`workspace_root`): its dependencies are that lock's for it.
    """

    kind: str
    distribution: str | None
    lock: str
    workspace: bool = False


def detect_layout(source: Path, requirements: str = "requirements.txt") -> AppLayout:
    """Find the app's layout in ``source`` (see the module docstring).

    Raises:
        LockError: unreadable pyproject.toml, or neither a ``[project]`` nor ``requirements``.
    """
    dist: str | None = None
    pyproject = source / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LockError(f"{pyproject}: cannot read it ({exc})") from None
        project = data.get("project")
        if isinstance(project, dict) and isinstance(project.get("name"), str):
            dist = project["name"]
    if dist and (source / "uv.lock").is_file():
        return AppLayout("uv.lock", dist, "uv.lock")
    if dist and (root := workspace_root(source)) is not None:
        return AppLayout("uv.lock", dist, os.path.relpath(root / "uv.lock", source), workspace=True)
    if (source / requirements).is_file():
        return AppLayout("requirements", dist, requirements)
    if dist:
        return AppLayout("pyproject", dist, "pyproject.toml")
    raise LockError(f"{source}: no dependencies to ship: expected a pyproject.toml with a "
                    f"[project] name (optionally with uv.lock), or a {requirements}")


def workspace_root(source: Path, max_depth: int = 8) -> Path | None:
    """The root of the uv workspace ``source`` is a member of, or None.

    As uv finds it: the nearest parent directory (at most ``max_depth`` up) whose
    ``pyproject.toml`` has ``[tool.uv.workspace]`` and whose ``members`` globs match
    ``source`` (``exclude`` globs not), with a ``uv.lock`` beside it. A monorepo's backend
    (``source: backend``) then ships exactly the workspace lock's versions instead of a fresh
    resolution. Reads files only; an unreadable ``pyproject.toml`` on the way is skipped.
    """
    here = source.resolve()
    for depth, parent in enumerate(here.parents):
        if depth >= max_depth:
            break
        pyproject = parent / "pyproject.toml"
        if not pyproject.is_file():
            continue
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        tool = data.get("tool")
        uv = tool.get("uv") if isinstance(tool, dict) else None
        ws = uv.get("workspace") if isinstance(uv, dict) else None
        if not isinstance(ws, dict):
            continue
        rel = PurePosixPath(here.relative_to(parent).as_posix())
        members = [m for m in ws.get("members", []) if isinstance(m, str)]
        excluded = [m for m in ws.get("exclude", []) if isinstance(m, str)]
        if any(rel.match(m) and len(rel.parts) == len(PurePosixPath(m).parts) for m in members) \
                and not any(rel.match(e) for e in excluded) and (parent / "uv.lock").is_file():
            return parent
        return None  # the nearest workspace does not hold the app: uv would not use its lock
    return None


@dataclass(frozen=True)
class Requirements:
    """A requirements file, read: ``pins`` (normalized name -> version) of its ``name==version``
    lines, ``hashes`` (name -> allowed sha256 hex digests, from ``--hash=sha256:…``),
    ``unpinned`` (the other requirement lines, as written)."""

    pins: dict[str, str]
    hashes: dict[str, frozenset[str]]
    unpinned: tuple[str, ...]

    @property
    def locked(self) -> bool:
        """Every requirement is pinned (``name==version``)."""
        return bool(self.pins) and not self.unpinned


_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*===?\s*([A-Za-z0-9.+!_-]+)\s*(;.*)?")
_HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})")


def parse_requirements(text: str) -> Requirements:
    """Read a requirements file's text (comments, blank lines, ``\\`` continuations,
    ``--hash`` options; other ``-`` options are ignored, ``-r``/``-c`` includes refused).

    Raises:
        LockError: an ``-r``/``-c`` include (shipit reads one file) or an editable line.
    """
    pins: dict[str, str] = {}
    hashes: dict[str, set[str]] = {}
    unpinned: list[str] = []
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        if re.match(r"(-r|-c|--requirement|--constraint)\b", line):
            raise LockError(f"{line!r}: includes are not followed; list every requirement in "
                            "one file (e.g. `uv pip compile` or `pip freeze` output)")
        if re.match(r"(-e|--editable)\b", line):
            raise LockError(f"{line!r}: editable requirements cannot ship to hosts")
        if line.startswith("-"):
            continue
        found = _HASH.findall(line)
        spec = _HASH.sub("", line).strip()
        match = _PIN.fullmatch(spec)
        if match and not re.search(r"[<>~!,*]", match.group(3)):
            name = normalize(match.group(1))
            pins[name] = match.group(3)
            if found:
                hashes.setdefault(name, set()).update(h.lower() for h in found)
        else:
            unpinned.append(spec)
    return Requirements(pins, {k: frozenset(v) for k, v in hashes.items()}, tuple(unpinned))


@dataclass(frozen=True)
class LockedFile:
    """One distribution file of a lock: its ``filename``, ``url`` (or local ``path``) and
    ``sha256`` (hex)."""

    filename: str
    url: str
    sha256: str


@dataclass(frozen=True)
class LockedPackage:
    """One package of a PEP 751 ``pylock.toml``: name (normalized), version, its wheels and
    its sdist (None when the index has none)."""

    name: str
    version: str
    wheels: tuple[LockedFile, ...]
    sdist: LockedFile | None


def _file(entry: Any, where: str) -> LockedFile:
    if not isinstance(entry, dict):
        raise LockError(f"pylock.toml: {where}: expected a table")
    url = str(entry.get("url") or entry.get("path") or "")
    sha = str((entry.get("hashes") or {}).get("sha256") or "").lower()
    if not url or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise LockError(f"pylock.toml: {where}: needs a url/path and a sha256 hash")
    name = str(entry.get("name") or unquote(urlsplit(url).path.rsplit("/", 1)[-1]))
    return LockedFile(name, url, sha)


def parse_pylock(text: str) -> list[LockedPackage]:
    """Read a PEP 751 ``pylock.toml`` (as ``uv pip compile -o pylock.toml`` writes it).

    Raises:
        LockError: not TOML, or a package without name/version, or a file without a sha256.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"pylock.toml: {exc}") from None
    out = []
    for i, pkg in enumerate(data.get("packages") or []):
        name, version = pkg.get("name"), pkg.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise LockError(f"pylock.toml: package #{i + 1} has no name or version")
        wheels = tuple(_file(w, f"{name} wheel") for w in pkg.get("wheels") or [])
        sdist = _file(pkg["sdist"], f"{name} sdist") if pkg.get("sdist") else None
        out.append(LockedPackage(normalize(name), version, wheels, sdist))
    return sorted(out, key=lambda p: p.name)
