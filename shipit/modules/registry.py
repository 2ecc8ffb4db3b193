"""The module registry: every built-in module, plus modules other packages add as plugins.

A package adds a module without editing shipit by declaring an entry point in the group
``shipit.modules`` that names a :class:`~shipit.modules.base.Module` subclass (its ``name``
is the key a task uses)::

    [project.entry-points."shipit.modules"]
    hello = "my_package.modules:HelloModule"

A plugin whose name is already taken, that fails to import, or that is not a Module subclass
is an error naming the entry point (:class:`PluginError`), not a silent skip.
"""

from __future__ import annotations

from shipit.modules.apt import AptModule
from shipit.modules.base import Module
from shipit.modules.caddy_site import CaddySiteModule
from shipit.modules.command import CommandModule, ShellModule
from shipit.modules.database import AppPauseModule, DbBackupModule, DbRestoreModule
from shipit.modules.deploy_state import DeployLockModule, ReleaseEventModule, ReleasePruneModule
from shipit.modules.directory import DirectoryModule
from shipit.modules.file import FileModule
from shipit.modules.file_block import FileBlockModule
from shipit.modules.python import PythonModule
from shipit.modules.release import ReleaseSlotModule, ReleaseSwitchModule
from shipit.modules.release_artifact import ReleaseArtifactModule
from shipit.modules.release_command import ReleaseCommandModule
from shipit.modules.schedule import AppScheduleModule
from shipit.modules.service import ServiceModule
from shipit.modules.systemd_unit import SystemdUnitModule
from shipit.modules.template import TemplateModule
from shipit.modules.upload import UploadModule
from shipit.modules.user import GroupModule, UserModule
from shipit.plugins import PluginError, loaded

BUILTIN: tuple[type[Module], ...] = (
    AptModule, FileModule, DirectoryModule, TemplateModule, SystemdUnitModule, ServiceModule,
    UserModule, GroupModule, CommandModule, ShellModule, UploadModule, PythonModule,
    CaddySiteModule, ReleaseSwitchModule, DeployLockModule, ReleaseEventModule,
    ReleasePruneModule, ReleaseCommandModule, ReleaseSlotModule, ReleaseArtifactModule,
    FileBlockModule, DbBackupModule, DbRestoreModule, AppPauseModule, AppScheduleModule,
)
ENTRY_POINT_GROUP = "shipit.modules"
__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "PluginError", "builtin_modules"]


def builtin_modules(plugins: bool = True) -> dict[str, Module]:
    """Map of module name -> module instance: the built-in ones, then (``plugins``) those of
    the ``shipit.modules`` entry points.

    Raises:
        PluginError: a plugin fails to load, is not a Module, or reuses a taken name.
    """
    modules: dict[str, Module] = {cls.name: cls() for cls in BUILTIN}
    if not plugins:
        return modules
    for ep, cls in loaded(ENTRY_POINT_GROUP, "module"):
        if not (isinstance(cls, type) and issubclass(cls, Module) and cls.name):
            raise PluginError(f"module plugin {ep.name} ({ep.value}) is not a Module subclass with a name")
        if cls.name in modules:
            raise PluginError(f"module plugin {ep.name} ({ep.value}) uses the name {cls.name!r}, "
                              "which is already taken")
        modules[cls.name] = cls()
    return modules
