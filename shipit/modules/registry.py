"""Every built-in module, by name. Add a module by listing its class here."""

from __future__ import annotations

from shipit.modules.base import Module
from shipit.modules.directory import DirectoryModule
from shipit.modules.file import FileModule
from shipit.modules.template import TemplateModule


def builtin_modules() -> dict[str, Module]:
    """Map of module name -> module instance for every built-in module."""
    classes: list[type[Module]] = [FileModule, DirectoryModule, TemplateModule]
    return {cls.name: cls() for cls in classes}
