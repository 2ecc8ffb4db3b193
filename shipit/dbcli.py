"""``shipit db``: the app's PostgreSQL database on the db host (registered lazily by
:class:`shipit.cli.ShipitGroup`): ``backups`` (list), ``backup`` (take one now), ``restore``
(put one back, the app stopped meanwhile) and ``psql`` (a session as the app's role).

Command bodies only: the shell comes from the pure builders of :mod:`shipit.backups`, the
running from the :class:`shipit.deploy.Deployer` (plays, lock) and the transport.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from shipit import backups, cli
from shipit import console as consolecmd
from shipit.app import load_app_spec
from shipit.errors import Problem, ValidationError
from shipit.inventory import load_inventory
from shipit.pool import ssh_pool

#: How long ``shipit db psql`` may run without a terminal unless ``--timeout`` says otherwise.
PSQL_PIPE_TIMEOUT = 3600.0


def _options(f: Any) -> Any:
    f = click.option("-i", "--inventory", "inventory", metavar="PATH",
                     help="Inventory file (default: inventories/ENV.yml).")(f)
    f = click.option("--accept-new-host-keys", is_flag=True,
                     help="Trust unknown host keys on first use (a changed key is always refused).")(f)
    return cli.app_option(f)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _deployer(env: str, inventory: str | None, app_dir: str, accept: bool, as_json: bool = False) -> Any:
    return cli._deployer(env, inventory, app_dir, 5, accept, Console(stderr=True, highlight=False),
                         need_secrets=False, quiet=as_json)


def confirm_or_refuse(question: str, yes: bool) -> bool:
    """``yes`` (``--yes``), else ask ``question`` on the terminal (default no). Without a
    terminal and without ``--yes``: refused as bad input (exit 2, nothing touched)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ValidationError([Problem("--yes", 0, "--yes", "this asks for confirmation and there is no "
                                       "terminal to ask on: give --yes")])
    return click.confirm(question, default=False)


@click.group("db")
def db() -> None:
    """The app's PostgreSQL database on the db host: backups, restore, psql."""


@db.command("backups")
@click.argument("env", shell_complete=cli.complete_env)
@click.option("--json", "as_json", is_flag=True, help="{backups: [{name, size, time}]} on stdout.")
@_options
def backups_cmd(env: str, as_json: bool, inventory: str | None, accept_new_host_keys: bool, app_dir: str) -> None:
    """List the backups of ENV's database on the db host, newest first: name, size, time (UTC).

    A backup named after a release was taken just before that release's migrations.
    """

    def body() -> int:
        deployer = _deployer(env, inventory, app_dir, accept_new_host_keys, as_json)
        try:
            found = deployer.list_backups()
        finally:
            deployer.pool.close()
        if as_json:
            cli.print_json({"host": deployer.db_host, "backups": [b.as_dict() for b in found]})
            return 0
        if not found:
            click.echo(f"no backups on {deployer.db_host} yet")
            return 0
        table = Table(title=f"backups on {deployer.db_host}", title_justify="left")
        for col in ("name", "size", "time (UTC)"):
            table.add_column(col)
        for b in found:
            table.add_row(b.name, _size(b.size), b.time.strftime("%Y-%m-%d %H:%M:%S"))
        Console(highlight=False).print(table)
        return 0

    cli.run_guarded(body, as_json=as_json)


@db.command("backup")
@click.argument("env", shell_complete=cli.complete_env)
@click.option("--timeout", type=click.FloatRange(1, 7 * 86400), metavar="SECONDS",
              help="Stop pg_dump after this long (default: the app's migrate_timeout).")
@click.option("--json", "as_json", is_flag=True, help="{name, size, time} on stdout.")
@_options
def backup_cmd(env: str, timeout: float | None, as_json: bool, inventory: str | None,
               accept_new_host_keys: bool, app_dir: str) -> None:
    """Take a backup of ENV's database now (pg_dump -Fc on the db host, named <UTC time>-manual);
    the newest database.backup.keep (default 7) are kept."""

    def body() -> int:
        deployer = _deployer(env, inventory, app_dir, accept_new_host_keys, as_json)
        try:
            name = deployer.backup_now(timeout)
            found = {b.name: b for b in deployer.list_backups()}
        finally:
            deployer.pool.close()
        taken = found.get(name)
        if as_json:
            cli.print_json(taken.as_dict() if taken else {"name": name})
        else:
            click.echo(f"backup {name}" + (f" ({_size(taken.size)})" if taken else "") + f" on {deployer.db_host}")
        return 0

    cli.run_guarded(body, as_json=as_json)


@db.command("restore")
@click.argument("env", shell_complete=cli.complete_env)
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--timeout", type=click.FloatRange(1, 7 * 86400), metavar="SECONDS",
              help="Stop pg_restore after this long (default: the app's migrate_timeout).")
@_options
def restore_cmd(env: str, name: str, yes: bool, timeout: float | None, inventory: str | None,
                accept_new_host_keys: bool, app_dir: str) -> None:
    """Restore backup NAME (`shipit db backups` lists them) into ENV's database: under the deploy
    lock, the app's web slots and processes stopped on every web host meanwhile, then
    pg_restore --clean --if-exists in one transaction, then the app started again.

    Everything written to the database since the backup was taken is lost. Asks first (--yes
    does not). Exit 0 restored; 1 it failed (the message says what state things are in); 2 bad
    input.
    """

    def body() -> int:
        problem = backups.backup_name_problem(name)
        if problem:
            raise ValidationError([Problem("NAME", 0, "NAME", problem)])
        deployer = _deployer(env, inventory, app_dir, accept_new_host_keys)
        err = Console(stderr=True, highlight=False)
        try:
            backup = deployer.find_backup(name)
            err.print(f"[yellow]warning:[/] restoring {backup.name} (taken {backup.time:%Y-%m-%d %H:%M:%S} UTC) "
                      f"replaces the database {deployer.target.spec.database['name']}: everything written to "
                      "it since then is LOST; the app is stopped meanwhile.", highlight=False)
            if not confirm_or_refuse(f"Restore {backup.name} into {env}'s database?", yes):
                err.print("nothing was changed")
                return 1
            deployer.restore_db(backup.name, timeout)
        finally:
            deployer.pool.close()
        click.echo(f"restored {backup.name} into {deployer.target.spec.database['name']} on {deployer.db_host}; "
                   "the app was started again")
        return 0

    cli.run_guarded(body)


@db.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("env", shell_complete=cli.complete_env)
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--tty/--no-tty", default=None, help="Force a terminal on or off (default: when stdin and stdout are one).")
@click.option("--timeout", type=click.FloatRange(1, 7 * 86400), metavar="SECONDS",
              help="Stop psql after this long (default: no limit with a terminal, 3600 s without).")
@_options
def psql_cmd(env: str, psql_args: tuple[str, ...], tty: bool | None, timeout: float | None,
             inventory: str | None, accept_new_host_keys: bool, app_dir: str) -> None:
    """psql on ENV's database on the db host, as the app's role (as postgres over the local
    socket with the role set at connection: no password). Words after -- go to psql:
    shipit db psql prod -- -c 'select count(*) from visits'.

    Exits with psql's exit status; 1 if the db host is unreachable.
    """

    def body() -> int:
        inv = load_inventory(cli.inventory_path(env, inventory))
        spec = load_app_spec(app_dir, inv.app, inv.path)
        if not spec.database or not inv.groups.get("db"):
            file, line = spec.where("database")
            raise ValidationError([Problem(file, line, "database", "the app has no database (database: "
                                           "{name, user, password_secret} and a group db)")])
        host = inv.select("db")[0]
        argv = backups.psql_argv(spec.database["name"], spec.database["user"], list(psql_args))
        interactive = tty if tty is not None else (sys.stdin.isatty() and sys.stdout.isatty())
        pool = ssh_pool(inv, accept_new_host_keys)
        try:
            transport = pool.get(host)
            if interactive:
                limit = ["timeout", "--foreground", str(int(timeout))] if timeout else []
                return transport.interactive([*argv[:4], *limit, *argv[4:]], become=True)
            out, errs = sys.stdout.buffer, sys.stderr.buffer

            def relay(stream: str, data: bytes) -> None:
                sink = out if stream == "stdout" else errs
                sink.write(data)
                sink.flush()

            limit_s = timeout if timeout is not None else PSQL_PIPE_TIMEOUT
            return transport.stream(consolecmd.pipe_script(["timeout", str(int(limit_s)), *argv]), relay,
                                    become=True, timeout=limit_s + 30)
        finally:
            pool.close()

    cli.run_guarded(body)
