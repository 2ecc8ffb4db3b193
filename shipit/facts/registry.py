"""The fact-kind registry: every built-in kind, plus kinds other packages add as plugins.

A package adds fact kinds by an entry point in the group ``shipit.facts`` naming a list of
:class:`~shipit.facts.FactKind` (like the built-in modules' ``KINDS``)::

    [project.entry-points."shipit.facts"]
    mine = "my_package.facts:KINDS"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from shipit.errors import ShipitError
from shipit.facts import FactKind, accounts, app, files, host, packages, python, status, systemd

ENTRY_POINT_GROUP = "shipit.facts"


def fact_kinds(plugins: bool = True) -> dict[str, FactKind]:
    """Map of kind name -> :class:`FactKind`: built-in kinds, then the plugins' (``plugins``).

    Raises:
        ShipitError: a plugin fails to load, is not a list of FactKind, or reuses a name.
    """
    kinds: dict[str, FactKind] = {}
    for group in (host.KINDS, app.KINDS, accounts.KINDS, files.KINDS, packages.KINDS, python.KINDS,
                  systemd.KINDS, status.KINDS):
        for kind in group:
            kinds[kind.name] = kind
    if not plugins:
        return kinds
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import error of a plugin is reported
            raise ShipitError(f"fact plugin {ep.name} ({ep.value}) failed to load: {exc}", exit_code=3) from None
        if not isinstance(loaded, (list, tuple)) or not all(isinstance(k, FactKind) for k in loaded):
            raise ShipitError(f"fact plugin {ep.name} ({ep.value}) is not a list of FactKind", exit_code=3)
        for kind in loaded:
            if kind.name in kinds:
                raise ShipitError(f"fact plugin {ep.name} uses the kind name {kind.name!r}, already taken",
                                  exit_code=3)
            kinds[kind.name] = kind
    return kinds
