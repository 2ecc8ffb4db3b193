"""Pure: which Python a host can run the app on, from its facts, and what the app needs.

Facts first, table second. The ``host`` fact (:mod:`shipit.facts.host`) reports the Pythons a
host has (``/usr/bin/python3.X``: ``pythons``) and the ones its apt sources offer
(``python3.X`` packages: ``apt_pythons``; ``python3_candidate``: the version of the distro's
own ``python3`` package, whose X.Y is the distro's default). Only when a host has neither
(apt lists never read, no Python installed) does :data:`RELEASES`, what each release ships,
stand in for them, and the message then says so.

The app's need comes from its spec's ``python: "3.X"`` or, without it, from
``[project] requires-python`` in its ``pyproject.toml`` (:func:`python_need`).
:func:`python_for_hosts` then picks one X.Y for the fleet (the hosts' default when it fits,
else the newest every host has that fits) or raises a :class:`ValidationError` naming each
host that cannot run the app: its distro release, the Python it has, what the app needs and
where that is written (exit 2, before the deploy lock is taken).

Releases shipit knows (package names and versions from each release's archive):

=========  ============  ======  ==========  =====================================
codename   release       python  postgresql  caddy
=========  ============  ======  ==========  =====================================
bookworm   Debian 12     3.11    15          ``caddy`` (main)
trixie     Debian 13     3.13    17          ``caddy`` (main)
jammy      Ubuntu 22.04  3.10    14          none in the archive (Caddy's own apt repo)
noble      Ubuntu 24.04  3.12    16          ``caddy`` (universe)
=========  ============  ======  ==========  =====================================

Debian 12 and 13 are tested on the lab; the Ubuntu rows are untested here (their archives are
not reachable from the machines shipit is tested on).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from shipit.errors import Problem, ValidationError

__all__ = ["DistroRelease", "RELEASES", "describe", "default_python", "available_pythons",
           "PythonNeed", "python_need", "python_for_hosts", "xy", "caddy_problems"]


@dataclass(frozen=True)
class DistroRelease:
    """What one OS release ships: ``python`` (X.Y of its ``python3``), ``postgresql`` (major
    of its ``postgresql`` package), ``caddy`` (the apt package name, "" when the archive has
    none), and whether shipit is ``tested`` on it."""

    os_id: str
    version: str
    codename: str
    python: str
    postgresql: str
    caddy: str
    tested: bool

    @property
    def name(self) -> str:
        """e.g. ``Debian 13 (trixie)``."""
        return f"{self.os_id.capitalize()} {self.version} ({self.codename})"


RELEASES: dict[str, DistroRelease] = {r.codename: r for r in (
    DistroRelease("debian", "12", "bookworm", "3.11", "15", "caddy", True),
    DistroRelease("debian", "13", "trixie", "3.13", "17", "caddy", True),
    DistroRelease("ubuntu", "22.04", "jammy", "3.10", "14", "", False),
    DistroRelease("ubuntu", "24.04", "noble", "3.12", "16", "caddy", False),
)}
"""Known releases by codename (see the module docstring's table)."""


def xy(version: str) -> str | None:
    """``3.13`` of a Debian package version such as ``3.13.5-1`` or ``1:3.11.2-1+b1``; None if
    it does not start with X.Y."""
    m = re.match(r"(?:\d+:)?(\d+)\.(\d+)", version.strip())
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def describe(facts: Mapping[str, Any]) -> str:
    """The host's release in words from its facts (``os_id``, ``os_version``, ``codename``),
    e.g. ``Debian 13 (trixie)``; a known codename alone is enough."""
    os_id = str(facts.get("os_id") or "")
    version = str(facts.get("os_version") or "")
    codename = str(facts.get("codename") or "")
    if not os_id and codename in RELEASES:
        return RELEASES[codename].name
    text = (os_id.capitalize() or "an unknown OS") + (f" {version}" if version else "")
    return text + (f" ({codename})" if codename else "")


def default_python(facts: Mapping[str, Any]) -> str | None:
    """The X.Y of the distro's own ``python3``: from the ``python3_candidate`` fact (apt), else
    :data:`RELEASES` by codename, else None."""
    found = xy(str(facts.get("python3_candidate") or ""))
    if found:
        return found
    known = RELEASES.get(str(facts.get("codename") or ""))
    return known.python if known else None


def available_pythons(facts: Mapping[str, Any]) -> tuple[list[str], str]:
    """``(versions, source)``: the X.Y a host has or can install, oldest first, and where that
    comes from, for messages (``"installed or in its apt sources"``, or the table fallback).

    Installed ``/usr/bin/python3.X`` (``pythons``) plus ``python3.X`` packages its apt sources
    offer (``apt_pythons``); when both are empty, the Python :data:`RELEASES` says the
    codename ships; when that is unknown too, ``([], ...)``.
    """
    found = {str(v) for v in facts.get("pythons") or []} | {str(v) for v in facts.get("apt_pythons") or []}
    if found:
        return sorted(found, key=_key), "installed or in its apt sources"
    known = RELEASES.get(str(facts.get("codename") or ""))
    if known:
        return [known.python], f"what {known.name} ships (its apt lists were never read)"
    return [], "no Python installed, no apt lists, unknown release"


@dataclass(frozen=True)
class PythonNeed:
    """What the app needs: ``exact`` X.Y (the spec's ``python:``) or ``specifier`` (PEP 440,
    from ``requires-python``), and where that is written (``file``, 1-based ``line``, ``key``).
    Neither: any Python (the hosts' default)."""

    exact: str | None = None
    specifier: str | None = None
    file: str = ""
    line: int = 0
    key: str = ""

    def allows(self, version: str) -> bool:
        """Whether X.Y ``version`` fits (a specifier is matched against X.Y.0 ... and X.Y.999:
        the host's patch level is not known, so ``>=3.11.4`` accepts 3.11)."""
        if self.exact:
            return version == self.exact
        if self.specifier:
            spec = SpecifierSet(self.specifier)
            return any(spec.contains(Version(f"{version}.{patch}"), prereleases=True)
                       for patch in (0, 999))
        return True

    def describe(self) -> str:
        """e.g. ``Python >=3.12`` or ``Python 3.11``."""
        if self.exact:
            return f"Python {self.exact}"
        return f"Python {self.specifier}" if self.specifier else "any Python 3"


def python_need(spec_python: str | None, spec_file: str, spec_line: int,
                source_dir: Path) -> PythonNeed:
    """The app's need: its spec's ``python:`` (exact X.Y) wins; else ``requires-python`` of
    ``source_dir/pyproject.toml``; else none.

    Raises:
        ValidationError: (exit 2) a ``requires-python`` that is not a PEP 440 specifier, or
            one the spec's ``python:`` does not satisfy.
    """
    pyproject = source_dir / "pyproject.toml"
    specifier, line = None, 0
    try:
        text = pyproject.read_text()
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        data, text = {}, ""
    project = data.get("project")
    raw = project.get("requires-python") if isinstance(project, dict) else None
    if raw is not None:
        line = next((i for i, row in enumerate(text.splitlines(), 1)
                     if re.match(r"\s*requires-python\s*=", row)), 0)
        try:
            SpecifierSet(str(raw))
        except InvalidSpecifier:
            raise ValidationError([Problem(str(pyproject), line, "requires-python",
                                           f"{raw!r}: expected a PEP 440 specifier, e.g. \">=3.11\"")]) from None
        specifier = str(raw)
    if spec_python:
        need = PythonNeed(exact=spec_python, file=spec_file, line=spec_line, key="python")
        if specifier and not PythonNeed(specifier=specifier).allows(spec_python):
            raise ValidationError([Problem(spec_file, spec_line, "python",
                                           f"Python {spec_python} does not satisfy the app's "
                                           f"requires-python {specifier!r} ({pyproject}:{line})")])
        return need
    if specifier:
        return PythonNeed(specifier=specifier, file=str(pyproject), line=line, key="requires-python")
    return PythonNeed()


def python_for_hosts(host_facts: Mapping[str, Mapping[str, Any]], need: PythonNeed) -> str | None:
    """One X.Y for the fleet that every host has (or can install) and the app accepts: the
    hosts' common default when it fits, else the newest fitting one they all have. None when
    no host gives any hint (no facts).

    Raises:
        ValidationError: (exit 2) one problem per host that has no fitting Python (``host
            (Debian 12 (bookworm)) has Python 3.11 (...); the app needs Python >=3.12``),
            or, when each host fits but they share no version, one problem naming them all.
    """
    problems: list[Problem] = []
    fits: dict[str, list[str]] = {}
    for host, facts in sorted(host_facts.items()):
        have, source = available_pythons(facts)
        ok = [v for v in have if need.allows(v)]
        if not ok:
            problems.append(Problem(need.file or "app", need.line, need.key or "python",
                                    f"{host} runs {describe(facts)} with Python "
                                    f"{', '.join(have) or 'none'} ({source}); the app needs "
                                    f"{need.describe()}"))
        fits[host] = ok
    if problems:
        raise ValidationError(problems)
    if not fits:
        return None
    common = set.intersection(*(set(v) for v in fits.values()))
    if not common:
        detail = "; ".join(f"{h}: {', '.join(v)}" for h, v in fits.items())
        raise ValidationError([Problem(need.file or "app", need.line, need.key or "python",
                                       "the hosts share no Python the app accepts (" + detail
                                       + "); deploy each group separately or give `python:`")])
    defaults = {default_python(f) for f in host_facts.values()}
    if len(defaults) == 1 and (d := defaults.pop()) in common:
        return d
    return max(common, key=_key)


def caddy_problems(host_facts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One sentence per web host that can get Caddy neither from its apt sources nor has it
    (Ubuntu 22.04's archive has no ``caddy``): provisioning would fail there after the lock.
    A host whose apt lists were never read is given the benefit of the doubt (provisioning
    updates them first)."""
    out = []
    for host, facts in sorted(host_facts.items()):
        if facts.get("apt_lists") and not facts.get("caddy_candidate") and not facts.get("caddy_installed"):
            out.append(f"{host} ({describe(facts)}): its apt sources have no caddy package and "
                       "none is installed; add Caddy's apt repository on that host (see "
                       "caddyserver.com/docs/install) or install caddy, then deploy again")
    return out
