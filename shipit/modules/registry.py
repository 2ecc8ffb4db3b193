"""Every built-in module, by name. Add a module by listing its class here."""

from __future__ import annotations

from shipit.modules.base import Module


def builtin_modules() -> dict[str, Module]:
    """Map of module name -> module instance for every built-in module."""
    classes: list[type[Module]] = []
    return {cls.name: cls() for cls in classes}
