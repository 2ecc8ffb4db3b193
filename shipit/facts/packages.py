"""Fact kinds about Debian packages: ``deb`` (installed version) and ``apt_policy`` (candidate).

``deb`` (arg: package name, ``name:arch`` allowed) from ``dpkg-query -W``; a package is
installed when dpkg's current state (second letter of the status: ``ii``, ``hi`` for a hold)
is ``i`` (config-files-only ``rc`` packages count as absent)::

    {"installed": True, "version": "9.1-1"}  |  {"installed": False, "version": None}

``apt_policy`` (arg: package name) from ``apt-cache policy`` (reflects the apt lists as they
are now; stale until ``apt-get update``)::

    {"installed": "7.88.1-10+deb12u14" | None, "candidate": "7.88.1-10+deb12u15" | None}

Both batch: one ``dpkg-query`` for every ``deb`` query of a play, one ``apt-cache policy`` for
the ``apt_policy`` queries (an architecture-qualified name gets its own call, as apt prints
``libc6:`` for ``libc6:amd64``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.quoting import q


def deb_command(name: str) -> str:
    """``dpkg-query`` status abbreviation and version of package ``name``."""
    return f"dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}\\n' -- {q(name)}"


def parse_deb(stdout: str) -> dict[str, Any]:
    """Installed when some line's status has ``i`` as current state (one line per arch)."""
    for line in stdout.splitlines():
        status, sep, version = line.partition("|")
        if sep and status[1:2] == "i":
            return {"installed": True, "version": version.strip()}
    return {"installed": False, "version": None}


def deb_batch_command(names: Sequence[str]) -> str:
    """One ``dpkg-query`` for many packages: ``name|arch|status|version`` lines."""
    return (f"dpkg-query -W -f='${{Package}}|${{Architecture}}|${{db:Status-Abbrev}}|${{Version}}\\n' "
            f"-- {' '.join(q(n) for n in names)}")


def split_deb_batch(stdout: str, names: Sequence[str]) -> list[str]:
    """Per name, the ``status|version`` lines :func:`deb_command` would print (``name`` or
    ``name:arch`` matches, as dpkg-query matches them)."""
    texts = []
    for wanted in names:
        lines = []
        for line in stdout.splitlines():
            package, arch, rest = (line.split("|", 2) + ["", ""])[:3]
            if wanted in (package, f"{package}:{arch}"):
                lines.append(rest + "\n")
        texts.append("".join(lines))
    return texts


def apt_policy_command(name: str) -> str:
    """``apt-cache policy`` of package ``name`` (English output)."""
    return f"LC_ALL=C apt-cache policy -- {q(name)}"


def parse_apt_policy(stdout: str) -> dict[str, Any]:
    """The ``Installed:`` and ``Candidate:`` lines; ``(none)`` or missing -> None."""
    found: dict[str, Any] = {"installed": None, "candidate": None}
    for line in stdout.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key in ("Installed", "Candidate") and found[key.lower()] is None:
            value = value.strip()
            found[key.lower()] = None if value in ("", "(none)") else value
    return found


def apt_policy_batch_command(names: Sequence[str]) -> str:
    """``apt-cache policy`` of plain names in one call; each ``name:arch`` after a marker."""
    plain = [n for n in names if ":" not in n]
    lines = [f"LC_ALL=C apt-cache policy -- {' '.join(q(n) for n in plain)}"] if plain else []
    lines += [f"echo {q('@@arg=' + n)}; LC_ALL=C apt-cache policy -- {q(n)}"
              for n in names if ":" in n]
    return "\n".join(lines)


def split_apt_policy_batch(stdout: str, names: Sequence[str]) -> list[str]:
    """Per name, its block of :func:`apt_policy_batch_command` output (empty when apt knows no
    such package). A plain name's block starts ``name:`` (or ``name:arch:`` when only a
    foreign architecture has it)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    forced: str | None = None
    for line in stdout.splitlines():
        if line.startswith("@@arg="):
            forced = line[len("@@arg="):]
            current = blocks.setdefault(forced, [])
        elif line and not line[0].isspace() and line.endswith(":"):
            header = line[:-1]
            key = forced or next((n for n in names if ":" not in n and
                                  (header == n or header.startswith(n + ":"))), header)
            current = blocks.setdefault(key, [])
        elif current is not None:
            current.append(line + "\n")
    return ["".join(blocks.get(n, [])) for n in names]


DEB = FactKind("deb", deb_command, parse_deb, "installed version of a Debian package",
               batch=deb_batch_command, split=split_deb_batch)
APT_POLICY = FactKind("apt_policy", apt_policy_command, parse_apt_policy,
                      "installed and candidate versions from apt-cache policy",
                      batch=apt_policy_batch_command, split=split_apt_policy_batch)
KINDS = [DEB, APT_POLICY]


def deb(name: str) -> FactQuery:
    """The ``deb`` fact of package ``name`` (``name:arch`` allowed): installed or not, version."""
    return DEB.query(name)


def apt_policy(name: str) -> FactQuery:
    """The ``apt_policy`` fact of package ``name``: installed and candidate versions."""
    return APT_POLICY.query(name)
