"""Fact kinds about Debian packages: ``deb`` (installed version) and ``apt_policy`` (candidate).

``deb`` (arg: package name) from ``dpkg-query -W``; a package is installed when its status is
``ii`` (config-files-only ``rc`` packages count as absent)::

    {"installed": True, "version": "9.1-1"}  |  {"installed": False, "version": None}

``apt_policy`` (arg: package name) from ``apt-cache policy`` (reflects the apt lists as they
are now; stale until ``apt-get update``)::

    {"installed": "7.88.1-10+deb12u14" | None, "candidate": "7.88.1-10+deb12u15" | None}
"""

from __future__ import annotations

from shlex import quote as q
from typing import Any

from shipit.facts import FactKind


def deb_command(name: str) -> str:
    """``dpkg-query`` status abbreviation and version of package ``name``."""
    return f"dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}\\n' -- {q(name)}"


def parse_deb(stdout: str) -> dict[str, Any]:
    """Installed when some line's status starts with ``ii`` (one line per architecture)."""
    for line in stdout.splitlines():
        status, sep, version = line.partition("|")
        if sep and status.startswith("ii"):
            return {"installed": True, "version": version.strip()}
    return {"installed": False, "version": None}


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


KINDS = [
    FactKind("deb", deb_command, parse_deb, "installed version of a Debian package"),
    FactKind("apt_policy", apt_policy_command, parse_apt_policy,
             "installed and candidate versions from apt-cache policy"),
]
