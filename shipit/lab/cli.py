"""``shipit lab``: click commands over :class:`shipit.lab.Lab`. Mounted by ``shipit/cli.py``;
also runnable on its own (``python -m shipit.lab.cli``). Every :class:`ShipitError` becomes
one clear message on stderr and its exit code; no traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from shipit.errors import ShipitError
from shipit.lab.image import DEFAULT_SUITE, SUITES
from shipit.lab.lab import Lab

__all__ = ["lab"]

F = TypeVar("F", bound=Callable[..., Any])


def _errors(fn: F) -> F:
    """Turn ShipitError (and bad names) into a one-line message and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ShipitError as e:
            click.echo(f"error: {e.message}", err=True)
            sys.exit(e.exit_code)
        except ValueError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _progress(msg: str) -> None:
    click.echo(msg, err=True)


name_option = click.option("--name", default="lab", show_default=True, help="Lab name.")
dir_option = click.option("--inventory-dir", type=click.Path(file_okay=False, path_type=Path),
                          default=Path("inventories"), show_default=True,
                          help="Where the inventory, key and known_hosts are written.")


@click.group(name="lab")
def lab() -> None:
    """A local lab of real Debian hosts (systemd-nspawn) to deploy to."""


@lab.command()
@click.option("--hosts", "hosts", type=click.IntRange(0, 189), default=3, show_default=True,
              help="Number of web hosts (web1..webN).")
@click.option("--db", is_flag=True, help="Also start one database host, db1.")
@click.option("--suite", type=click.Choice(SUITES), default=DEFAULT_SUITE, show_default=True,
              help="Debian release of the hosts (bookworm = 12, trixie = 13); each has its own "
                   "cached base image.")
@click.option("--prune", is_flag=True,
              help="Also remove (or re-create for another --suite) hosts holding data: a db1 "
                   "not asked for with --db is otherwise kept, with its database.")
@name_option
@dir_option
@_errors
def up(hosts: int, db: bool, suite: str, prune: bool, name: str, inventory_dir: Path) -> None:
    """Start the lab's hosts (idempotent) and write its inventory.

    Says every host it removes, re-creates or keeps. Never deletes a host holding data (db1)
    unless --prune."""
    started = time.monotonic()
    state = Lab(name, inventory_dir, log=_progress).up(hosts=hosts, db=db, suite=suite, prune=prune)
    click.echo(f"lab {name!r}: {len(state.hosts)} {suite} hosts ready in "
               f"{time.monotonic() - started:.1f}s; inventory {os.path.relpath(state.inventory)}")


@lab.command()
@name_option
@dir_option
@_errors
def down(name: str, inventory_dir: Path) -> None:
    """Stop the lab and remove everything it created (keeps the cached base image)."""
    Lab(name, inventory_dir, log=_progress).down()
    click.echo(f"lab {name!r} is down")


@lab.command()
@name_option
@_errors
def status(name: str) -> None:
    """Show each host: address, machine state, SSH readiness."""
    the_lab = Lab(name, log=_progress)
    rows = the_lab.status()
    console = Console()
    state = the_lab.state()
    if not rows or state is None:
        console.print(f"lab {name!r} is not up")
        return
    table = Table(title=f"lab {name} (Debian {state.suite})")
    for col in ("host", "address", "machine", "ssh ready", "detail"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, r.address, r.machine, "yes" if r.ssh_ready else "no", r.detail)
    console.print(table)


@lab.command(context_settings={"ignore_unknown_options": True})
@click.argument("host")
@name_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_errors
def ssh(host: str, name: str, command: tuple[str, ...]) -> None:
    """SSH into HOST as deploy (lab key, strict host-key checking); run COMMAND if given."""
    argv = Lab(name).ssh_argv(host, list(command))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    lab()
