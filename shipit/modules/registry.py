"""Every built-in module, by name. Add a module by listing its class here."""

from __future__ import annotations

from shipit.modules.apt import AptModule
from shipit.modules.base import Module
from shipit.modules.caddy_site import CaddySiteModule
from shipit.modules.command import CommandModule, ShellModule
from shipit.modules.directory import DirectoryModule
from shipit.modules.file import FileModule
from shipit.modules.python import PythonModule
from shipit.modules.release import ReleaseSwitchModule
from shipit.modules.service import ServiceModule
from shipit.modules.systemd_unit import SystemdUnitModule
from shipit.modules.template import TemplateModule
from shipit.modules.upload import UploadModule
from shipit.modules.user import GroupModule, UserModule


def builtin_modules() -> dict[str, Module]:
    """Map of module name -> module instance for every built-in module."""
    classes: list[type[Module]] = [AptModule, FileModule, DirectoryModule, TemplateModule,
                                   SystemdUnitModule, ServiceModule, UserModule, GroupModule,
                                   CommandModule, ShellModule, UploadModule, PythonModule,
                                   CaddySiteModule, ReleaseSwitchModule]
    return {cls.name: cls() for cls in classes}
