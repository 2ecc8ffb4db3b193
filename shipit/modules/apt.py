"""The ``apt`` module: Debian packages present, absent or at their latest candidate.

As Ansible's ``apt``, with two deliberate defaults: the apt lists are refreshed only when they
are older than ``cache_valid_time`` seconds AND something has to be installed or upgraded (so a
converged host never touches the network), and ``--no-install-recommends`` keeps hosts small.
A successful ``apt-get update`` touches ``/var/lib/apt/periodic/shipit-update-success-stamp``,
which the ``host`` fact reads as ``apt_lists_age``. Installs are non-interactive and keep
locally changed config files (``--force-confdef --force-confold``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, packages
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q

STAMP = "/var/lib/apt/periodic/shipit-update-success-stamp"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?")
APT_GET = ("DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 "
           "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")


def names(params: Mapping[str, Any]) -> list[str]:
    """The ``name`` param as a list of package names (a string is one name)."""
    value = params["name"]
    return [value] if isinstance(value, str) else [str(v) for v in value]


def update_script() -> str:
    """``apt-get update`` failing on any source error, then touch the success stamp."""
    return (f"apt-get -q -o APT::Update::Error-Mode=any update </dev/null\n"
            f"mkdir -p {q(STAMP.rsplit('/', 1)[0])}\ntouch {q(STAMP)}")


class AptModule(Module):
    """Install, upgrade or remove Debian packages with apt-get."""

    name = "apt"
    doc = "Debian packages present, absent or latest (apt-get)."
    params = {
        "name": Param((str, list), required=True, help="package name or list of names"),
        "state": Param(str, default="present", choices=("present", "absent", "latest")),
        "update_cache": Param(bool, default=True,
                              help="refresh apt lists first when stale and something is to install"),
        "cache_valid_time": Param(int, default=3600,
                                  help="seconds after which the apt lists count as stale"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        bad = [n for n in names(params) if not NAME_RE.fullmatch(n)]
        if bad or not names(params):
            return [("name", "expected Debian package names like python3.11-venv"
                             + (f", got {', '.join(map(repr, bad))}" if bad else ""))]
        return []

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        queries = [packages.deb(n) for n in names(params)]
        if params.get("state") == "latest":
            queries += [packages.apt_policy(n) for n in names(params)]
        return queries

    def more_facts(self, params: Mapping[str, Any],
                   facts: Mapping[FactQuery, Any]) -> list[FactQuery]:
        """``present``: the candidates of the packages that are not installed (none on a
        converged host, so a no-op never runs ``apt-cache``)."""
        if params.get("state", "present") != "present":
            return []
        return [packages.apt_policy(n) for n in names(params)
                if not facts[packages.deb(n)]["installed"]]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        """Fails when a package has no candidate although the apt lists are fresh."""
        pkgs = names(params)
        state = params.get("state", "present")
        installed = {n: facts[packages.deb(n)] for n in pkgs}
        if state == "absent":
            gone = [n for n in pkgs if installed[n]["installed"]]
            if not gone:
                return Plan()
            reason = "remove " + ", ".join(f"{n} {installed[n]['version']}" for n in gone)
            return Plan((Change(reason, f"{APT_GET} remove -- {' '.join(map(q, gone))} "
                                        "</dev/null"),))
        policy = {n: facts.get(packages.apt_policy(n), {"installed": None, "candidate": None})
                  for n in pkgs}
        reasons, todo = [], []
        for n in pkgs:
            cand = policy[n]["candidate"]
            if not installed[n]["installed"]:
                todo.append(n)
                reasons.append(f"install {n}" + (f" {cand}" if cand else ""))
            elif state == "latest" and cand and cand != installed[n]["version"]:
                todo.append(n)
                reasons.append(f"upgrade {n} {installed[n]['version']} -> {cand}")
        if not todo:
            return Plan()
        age = ctx.host_facts.get("apt_lists_age", -1)
        limit = params.get("cache_valid_time", 3600)
        stale = age < 0 or age > limit
        changes = []
        if params.get("update_cache", True) and stale:
            when = "never updated" if age < 0 else f"updated {age // 60} min ago"
            changes.append(Change(f"update apt lists ({when})", update_script()))
        else:
            unknown = [n for n in todo if policy[n]["candidate"] is None]
            if unknown:
                return Plan(failed=f"no installation candidate for {', '.join(unknown)} in the "
                                   "apt lists (misspelt, a virtual package, or a missing "
                                   "apt source?)")
        changes.append(Change(", ".join(reasons),
                              f"{APT_GET} install --no-install-recommends -- "
                              f"{' '.join(map(q, todo))} </dev/null"))
        return Plan(tuple(changes))
