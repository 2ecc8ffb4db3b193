"""Every built-in fact kind, by name. Add a kind by listing its module's ``KINDS`` here."""

from __future__ import annotations

from shipit.facts import FactKind
from shipit.facts import accounts, app, files, host, packages, python, status, systemd


def fact_kinds() -> dict[str, FactKind]:
    """Map of kind name -> :class:`FactKind` for every built-in kind."""
    kinds: dict[str, FactKind] = {}
    for group in (host.KINDS, app.KINDS, accounts.KINDS, files.KINDS, packages.KINDS, python.KINDS, systemd.KINDS, status.KINDS):
        for kind in group:
            kinds[kind.name] = kind
    return kinds
