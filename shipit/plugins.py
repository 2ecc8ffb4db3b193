"""Plugins: what other packages add to shipit through entry points (modules, fact kinds).

Loading is the same for every kind of plugin: each entry point of a group is imported, and a
failure to import is an error that names the entry point (:class:`PluginError`), never a
silent skip. What a plugin must be is checked by its registry
(:mod:`shipit.modules.registry`, :mod:`shipit.facts.registry`).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from shipit.errors import ShipitError


class PluginError(ShipitError):
    """A plugin could not be loaded or is not what its group expects (exit 3: something on
    the runner is wrong)."""

    exit_code = 3


def loaded(group: str, what: str) -> Iterator[tuple[EntryPoint, Any]]:
    """``(entry point, the object it names)`` for every entry point of ``group``.

    ``what`` names the kind for messages ("module", "fact").

    Raises:
        PluginError: an entry point fails to import.
    """
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import error of a plugin is reported
            raise PluginError(f"{what} plugin {ep.name} ({ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from None
        yield ep, obj
