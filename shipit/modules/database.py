"""The ``db_backup``, ``db_restore`` and ``app_pause`` modules: the database backups of
``shipit deploy`` (before migrations), ``shipit db restore`` and ``shipit rollback
--restore-db``. Their scripts come from the pure builders of :mod:`shipit.backups`.

- ``db_backup`` (the db host): ``pg_dump -Fc`` into ``<name>.dump`` unless that backup exists
  ("ok" then: a deploy retried keeps the dump taken before its first attempt, and a second
  deploy changes nothing), then the newest ``keep`` are kept.
- ``db_restore`` (the db host): ``pg_restore --clean --if-exists`` of a backup, in one
  transaction; fails at planning when the backup is not there.
- ``app_pause`` (web hosts): ``state: stopped`` stops the app's web slots (and their sockets)
  and process units, recording which ran; ``state: started`` starts those again ("ok" when
  none were recorded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipit import backups
from shipit.app import _NAME, _SQL_IDENT
from shipit.facts import FactQuery, files
from shipit.layout import Layout
from shipit.modules.base import Change, Module, Param, Plan, PlanContext

_MARGIN = 30.0  # seconds the executor waits beyond the command's own timeout


def _checks(params: Mapping[str, Any], *, database: bool = True, name: bool = True) -> list[tuple[str, str]]:
    errors = []
    if not isinstance(params.get("app"), str) or not _NAME.fullmatch(params["app"]):
        errors.append(("app", "expected an app name (lowercase letters, digits, -)"))
    if database and (not isinstance(params.get("database"), str) or not _SQL_IDENT.fullmatch(params["database"])):
        errors.append(("database", "expected the database's name (an SQL identifier)"))
    if name and (problem := backups.backup_name_problem(params.get("name"))) is not None:
        errors.append(("name", problem))
    timeout = params.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout < 10**6):
        errors.append(("timeout", "expected a number of seconds > 0"))
    return errors


class DbBackupModule(Module):
    """``pg_dump -Fc`` of an app's database into its backups dir, named ``name``."""

    name = "db_backup"
    doc = "Back an app's PostgreSQL database up (pg_dump -Fc as postgres), unless that backup exists."
    params = {
        "app": Param(str, required=True, help="app name (its backups dir: shipit.layout)"),
        "database": Param(str, required=True, help="the database to dump"),
        "name": Param(str, required=True, help="the backup's name (the release it is taken before)"),
        "keep": Param(int, default=backups.DEFAULT_KEEP, help="backups kept, newest first"),
        "timeout": Param((int, float), default=backups.DEFAULT_TIMEOUT, help="seconds pg_dump may take"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _checks(params)
        keep = params.get("keep")
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= 1000:
            errors.append(("keep", "expected a number of backups to keep, from 1 to 1000"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [files.path_exists(Layout(params["app"]).backup(params["name"]))]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        lay = Layout(params["app"])
        if facts[files.path_exists(lay.backup(params["name"]))]:
            return Plan()
        script = backups.backup_script(lay, params["database"], params["name"], int(params["keep"]),
                                       float(params["timeout"]))
        return Plan(changes=(Change(f"pg_dump {params['database']} -> {lay.backup(params['name'])}", script),))

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        return float(params["timeout"]) + _MARGIN


class DbRestoreModule(Module):
    """One of an app's backups restored into its database, exactly (:func:`shipit.backups.restore_script`)."""

    name = "db_restore"
    doc = "Restore one of an app's database backups exactly (DROP OWNED BY the role, then the dump; one transaction)."
    params = {
        "app": Param(str, required=True, help="app name (its backups dir: shipit.layout)"),
        "database": Param(str, required=True, help="the database to restore into"),
        "role": Param(str, required=True, help="the app's role, which owns its objects (database.user)"),
        "name": Param(str, required=True, help="the backup's name (shipit db backups lists them)"),
        "timeout": Param((int, float), default=backups.DEFAULT_TIMEOUT, help="seconds pg_restore may take"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _checks(params)
        if not isinstance(params.get("role"), str) or not _SQL_IDENT.fullmatch(params["role"]):
            errors.append(("role", "expected the app's database role (an SQL identifier)"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [files.path_exists(Layout(params["app"]).backup(params["name"]))]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        lay = Layout(params["app"])
        path = lay.backup(params["name"])
        if not facts[files.path_exists(path)]:
            return Plan(failed=f"no backup {params['name']} on {ctx.host} ({path}); `shipit db backups` lists them")
        script = backups.restore_script(lay, params["database"], params["role"], params["name"],
                                        float(params["timeout"]))
        return Plan(changes=(Change(f"pg_restore {path} -> {params['database']}", script),))

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        return float(params["timeout"]) + _MARGIN


_PROCESS = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class AppPauseModule(Module):
    """Stop an app's units on a web host (recording which ran), or start those again."""

    name = "app_pause"
    doc = "Stop an app's web slots and processes while its database is restored, then start them again."
    params = {
        "app": Param(str, required=True, help="app name (its units: shipit.layout)"),
        "state": Param(str, required=True, choices=("stopped", "started")),
        "processes": Param(list, default=[], help="the app's process names, e.g. ['worker']"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _checks(params, database=False, name=False)
        bad = [p for p in params.get("processes") or [] if not isinstance(p, str) or not _PROCESS.fullmatch(p)]
        if bad:
            errors.append(("processes", f"expected process names, got {bad!r}"))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [files.path_exists(Layout(params["app"]).paused_units)]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        lay = Layout(params["app"])
        if params["state"] == "stopped":
            return Plan(changes=(Change(f"stop {params['app']}'s units",
                                        backups.pause_script(lay, list(params["processes"]))),))
        if not facts[files.path_exists(lay.paused_units)]:
            return Plan()
        return Plan(changes=(Change(f"start {params['app']}'s units again", backups.resume_script(lay)),))

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        return backups.QUICK_TIMEOUT + _MARGIN
