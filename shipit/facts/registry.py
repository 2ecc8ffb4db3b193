"""The fact-kind registry: every built-in kind, plus kinds other packages add as plugins.

A package adds fact kinds by an entry point in the group ``shipit.facts`` naming a list of
:class:`~shipit.facts.FactKind` (like the built-in modules' ``KINDS``)::

    [project.entry-points."shipit.facts"]
    mine = "my_package.facts:KINDS"
"""

from __future__ import annotations

from shipit.facts import FactKind, accounts, app, files, host, packages, python, schedule, status, systemd
from shipit.plugins import PluginError, loaded

ENTRY_POINT_GROUP = "shipit.facts"


def fact_kinds(plugins: bool = True) -> dict[str, FactKind]:
    """Map of kind name -> :class:`FactKind`: built-in kinds, then the plugins' (``plugins``).

    Raises:
        PluginError: a plugin fails to load, is not a list of FactKind, or reuses a name.
    """
    kinds: dict[str, FactKind] = {}
    for group in (host.KINDS, app.KINDS, accounts.KINDS, files.KINDS, packages.KINDS, python.KINDS,
                  systemd.KINDS, status.KINDS, schedule.KINDS):
        for kind in group:
            kinds[kind.name] = kind
    if not plugins:
        return kinds
    for ep, found in loaded(ENTRY_POINT_GROUP, "fact"):
        if not isinstance(found, (list, tuple)) or not all(isinstance(k, FactKind) for k in found):
            raise PluginError(f"fact plugin {ep.name} ({ep.value}) is not a list of FactKind")
        for kind in found:
            if kind.name in kinds:
                raise PluginError(f"fact plugin {ep.name} uses the kind name {kind.name!r}, already taken")
            kinds[kind.name] = kind
    return kinds
