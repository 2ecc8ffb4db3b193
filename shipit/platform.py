"""The platform a release runs on (CPython X.Y, machine, glibc), and which wheels fit it.

Pure: no I/O except :meth:`TargetPlatform.runner`, which reads the running interpreter.
Artifacts are built on a runner for the *hosts'* platform, which may differ from the runner's
(an x86_64 laptop deploying to aarch64 servers). :func:`check_wheel_tags` is what refuses an
artifact whose wheels cannot run on a host, before the deploy lock is taken::

    target = target_for_hosts({h: s["facts"] for h, s in live.items()}, spec.python)
    problems = check_wheel_tags(artifact.wheels, target)

Only glibc Linux (manylinux) targets on x86_64 and aarch64 are supported: the machines uv can
resolve for with ``--python-platform <machine>-manylinux_2_<N>``.
"""

from __future__ import annotations

import functools
import os
import platform as _platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from shipit.distro import default_python
from shipit.errors import ShipitError

MACHINES = ("x86_64", "aarch64")
"""Machines (``uname -m``) shipit can build wheels for."""

UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
"""The ``manylinux_2_<N>`` values uv's ``--python-platform`` accepts (uv 0.13)."""

_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class PlatformError(ShipitError):
    """Hosts whose platform shipit cannot build for, or that disagree with each other."""


@dataclass(frozen=True, order=True)
class TargetPlatform:
    """Where a release runs: CPython ``python`` ("3.11") on ``machine`` ("x86_64" or
    "aarch64") with glibc ``glibc`` ("2.36")."""

    python: str
    machine: str
    glibc: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.\d+", self.python):
            raise PlatformError(f"Python {self.python!r}: expected 3.X, e.g. 3.11")
        if self.machine not in MACHINES:
            raise PlatformError(f"machine {self.machine!r}: shipit builds wheels for "
                                f"{', '.join(MACHINES)} only")
        if not re.fullmatch(r"2\.\d+", self.glibc):
            raise PlatformError(f"glibc {self.glibc!r}: expected 2.N, e.g. 2.36")

    @property
    def glibc_minor(self) -> int:
        """N of glibc 2.N."""
        return int(self.glibc.split(".")[1])

    @property
    def python_tuple(self) -> tuple[int, int]:
        """(3, 11) for "3.11"."""
        major, minor = self.python.split(".")
        return int(major), int(minor)

    @property
    def abi(self) -> str:
        """The CPython ABI tag, e.g. ``cp311``."""
        return "cp{}{}".format(*self.python_tuple)

    def uv_platform(self) -> str:
        """The ``uv pip compile --python-platform`` value: the newest manylinux uv knows that is
        not newer than the host's glibc, e.g. ``aarch64-manylinux_2_36`` (glibc 2.41 ->
        ``_2_40``: wheels for 2.40 run on 2.41).

        Raises:
            PlatformError: glibc older than 2.17 (uv cannot target it).
        """
        usable = [n for n in UV_MANYLINUX if n <= self.glibc_minor]
        if not usable:
            raise PlatformError(f"glibc {self.glibc} is older than 2.17: no manylinux target")
        return f"{self.machine}-manylinux_2_{usable[-1]}"

    def platform_tags(self) -> list[str]:
        """Platform tags this target runs, best first: ``manylinux_2_<glibc>_<m>`` down to
        ``manylinux_2_5`` with the legacy aliases (manylinux2014 …), then ``linux_<m>`` (a wheel
        built locally on a runner of the same platform)."""
        tags: list[str] = []
        for minor in range(self.glibc_minor, 4, -1):
            tags.append(f"manylinux_2_{minor}_{self.machine}")
            legacy = _LEGACY.get(minor)
            if legacy and (self.machine == "x86_64" or legacy == "manylinux2014"):
                tags.append(f"{legacy}_{self.machine}")
        tags.append(f"linux_{self.machine}")
        return tags

    def tags(self) -> list[Tag]:
        """Every wheel tag this target accepts, in an installer's order of preference."""
        return list(_tags(self))

    def key(self) -> str:
        """A file-name-safe key, e.g. ``cp311-x86_64-glibc2.36``."""
        return f"{self.abi}-{self.machine}-glibc{self.glibc}"

    def describe(self) -> str:
        """e.g. ``CPython 3.11 on aarch64 (glibc 2.36)``."""
        return f"CPython {self.python} on {self.machine} (glibc {self.glibc})"

    def as_dict(self) -> dict[str, str]:
        """JSON form (``artifact.json``)."""
        return {"python": self.python, "machine": self.machine, "glibc": self.glibc}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetPlatform:
        """Inverse of :meth:`as_dict`. Raises PlatformError, KeyError."""
        return cls(str(data["python"]), str(data["machine"]), str(data["glibc"]))

    @classmethod
    def runner(cls, python: str | None = None) -> TargetPlatform:
        """The machine shipit runs on, with its interpreter's X.Y (or ``python``).

        Raises:
            PlatformError: not a glibc Linux on a supported machine.
        """
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        try:
            libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (ValueError, OSError):
            libc = ""
        glibc = libc.split()[-1] if libc.startswith("glibc") else ""
        return cls(python or here, _platform.machine(), glibc)

    def is_runner(self) -> bool:
        """Whether a wheel built on this runner runs on the target: same machine and Python,
        and the runner's glibc not newer than the target's."""
        try:
            here = TargetPlatform.runner(self.python)
        except PlatformError:
            return False
        return (here.machine == self.machine and
                self.python == f"{sys.version_info.major}.{sys.version_info.minor}" and
                here.glibc_minor <= self.glibc_minor)


@functools.lru_cache(maxsize=16)
def _tags(target: TargetPlatform) -> tuple[Tag, ...]:
    platforms = target.platform_tags()
    return tuple(cpython_tags(target.python_tuple, [target.abi, "abi3", "none"], platforms)) + \
        tuple(compatible_tags(target.python_tuple, target.abi, platforms))


def from_host_facts(facts: Mapping[str, Any], python: str | None = None,
                    host: str = "host") -> TargetPlatform:
    """The target of one host from its ``host`` facts (``machine``, ``glibc``, ``codename``,
    ``pythons``). ``python`` (the X.Y chosen for the app, :func:`shipit.distro.python_for_hosts`)
    wins; else the distro's own python3 (:func:`shipit.distro.default_python`: apt's candidate,
    else the release table); else the newest ``/usr/bin/python3.X`` found.

    Raises:
        PlatformError: the host reported no glibc or machine, or no Python can be chosen.
    """
    machine, glibc = str(facts.get("machine") or ""), str(facts.get("glibc") or "")
    if not machine or not glibc:
        raise PlatformError(f"{host}: the host facts give no machine/glibc "
                            f"(machine={machine!r}, glibc={glibc!r}); only glibc Linux hosts "
                            "are supported")
    chosen = python or default_python(facts)
    if not chosen:
        pythons = list(facts.get("pythons") or [])
        if not pythons:
            raise PlatformError(f"{host}: cannot tell which Python the release runs on: give "
                                "`python:` in the app spec")
        chosen = str(pythons[-1])
    try:
        return TargetPlatform(chosen, machine, glibc)
    except PlatformError as exc:
        raise PlatformError(f"{host}: {exc.message}") from None


def target_for_hosts(host_facts: Mapping[str, Mapping[str, Any]],
                     python: str | None = None) -> TargetPlatform:
    """One target for a fleet: every host must share machine and Python; the glibc is the
    oldest among them (a manylinux_2_N wheel runs on any glibc >= 2.N).

    Raises:
        PlatformError: no hosts, or hosts that differ in machine or Python (named).
    """
    if not host_facts:
        raise PlatformError("no hosts to build the artifact for")
    targets = {h: from_host_facts(f, python, h) for h, f in sorted(host_facts.items())}
    kinds: dict[tuple[str, str], list[str]] = {}
    for h, t in targets.items():
        kinds.setdefault((t.python, t.machine), []).append(h)
    if len(kinds) > 1:
        detail = "; ".join(f"Python {p} on {m}: {', '.join(hs)}" for (p, m), hs in sorted(kinds.items()))
        raise PlatformError("the hosts differ in platform and one artifact cannot serve them "
                            f"all ({detail}); deploy each group separately")
    oldest = min(targets.values(), key=lambda t: t.glibc_minor)
    return oldest


def check_wheel_tags(wheel_filenames: Iterable[str], target: TargetPlatform) -> list[str]:
    """Problems, one sentence each naming the package, for wheels that do not run on
    ``target``; empty when all do. Names may be paths (only the base name is read).

    >>> check_wheel_tags(["six-1.16.0-py2.py3-none-any.whl"], TargetPlatform("3.11", "x86_64", "2.36"))
    []
    """
    accepted = set(target.tags())
    problems = []
    for raw in wheel_filenames:
        filename = os.path.basename(raw)
        try:
            name, version, _build, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            problems.append(f"{filename}: not a wheel file name ({exc})")
            continue
        if not wheel_tags & accepted:
            tags = ", ".join(sorted(str(t) for t in wheel_tags))
            problems.append(f"{name} {version} ({filename}) does not run on {target.describe()}: "
                            f"it is built for {tags}")
    return problems


@functools.lru_cache(maxsize=16)
def _rank(target: TargetPlatform) -> dict[Tag, int]:
    """Tag -> its rank for ``target`` (computed once per target: hundreds of tags)."""
    return {tag: i for i, tag in enumerate(target.tags())}


def best_wheel(wheel_filenames: Iterable[str], target: TargetPlatform) -> str | None:
    """The file an installer would pick for ``target`` among one release's wheels (the one
    whose best tag ranks highest in :meth:`TargetPlatform.tags`), or None if none runs."""
    rank = _rank(target)
    best: tuple[int, str] | None = None
    for filename in wheel_filenames:
        try:
            tags = parse_wheel_filename(os.path.basename(filename))[3]
        except InvalidWheelFilename:
            continue
        score = min((rank[t] for t in tags if t in rank), default=None)
        if score is not None and (best is None or (score, filename) < best):
            best = (score, filename)
    return best[1] if best else None
