"""Day-two commands: ``shipit logs`` and ``shipit console`` (registered lazily by
:class:`shipit.cli.ShipitGroup`). Command bodies only: the shell they run comes from the pure
builders in :mod:`shipit.logs` and :mod:`shipit.console`, the running from
:mod:`shipit.streaming` and the transport.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from shipit import cli
from shipit import console as consolecmd
from shipit import logs as logmod
from shipit.app import load_app_spec
from shipit.errors import Problem, ShipitError, ValidationError
from shipit.inventory import Inventory, leader_of, load_inventory
from shipit.pool import ssh_pool
from shipit.status import status_hosts
from shipit.streaming import HostEnd, LineSplitter, run_streaming

#: Seconds a (non-following) journal read may take per host.
LOGS_TIMEOUT = 120.0
#: Seconds finding the current release may take.
LOOKUP_TIMEOUT = 30.0


def ssh_options(f: Any) -> Any:
    """The options of a command that connects to ENV's hosts: ``-i/--inventory``,
    ``--accept-new-host-keys`` and ``--app`` (:func:`shipit.cli.app_option`)."""
    f = click.option("-i", "--inventory", "inventory", metavar="PATH",
                     help="Inventory file (default: inventories/ENV.yml).")(f)
    f = click.option("--accept-new-host-keys", is_flag=True,
                     help="Trust unknown host keys on first use (a changed key is always refused).")(f)
    return cli.app_option(f)


@click.command("logs")
@click.argument("env", shell_complete=cli.complete_env)
@click.argument("process", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines from every host until Ctrl-C.")
@click.option("--since", metavar="WHEN", help="Only lines since: 10m, 2h, 1d, 2026-12-01 10:00, today.")
@click.option("-n", "--lines", type=click.IntRange(0, 1_000_000), metavar="N",
              help="The last N lines of each host (default 100 without --since, all with it).")
@click.option("--grep", "-g", metavar="REGEX", help="Only lines matching (journalctl --grep, PCRE2; "
              "case-insensitive when all lowercase).")
@click.option("--limit", "-l", metavar="PATTERN", help="Only hosts matching this pattern.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: time, host, process, unit, message.")
@ssh_options
def logs_cmd(env: str, process: str | None, follow: bool, since: str | None, lines: int | None,
             grep: str | None, limit: str | None, as_json: bool, inventory: str | None,
             accept_new_host_keys: bool, app_dir: str) -> None:
    """Show the app's logs (web slots, processes, release commands) from journald on every web
    host, each line prefixed with its host and process, merged in time order.

    PROCESS: web, release (migrations), one of the app's processes or scheduled jobs; default: all.
    Exit 0; 1 if a host could not be read; 2 bad arguments; 130 on Ctrl-C (how -f ends).
    """

    def body() -> int:
        inv = load_inventory(cli.inventory_path(env, inventory))
        spec = load_app_spec(app_dir, inv.app, inv.path)
        layout = spec.layout
        query = logmod.LogQuery(
            app=spec.name,
            patterns=logmod.unit_patterns(layout, [p.name for p in spec.processes], process,
                                          [j.name for j in spec.schedule]),
            follow=follow,
            lines=lines if lines is not None else (None if since else 100),
            since=logmod.since_arg(since) if since is not None else None,
            grep=logmod.grep_arg(grep) if grep is not None else None)
        hosts = status_hosts(inv, limit)
        script = logmod.journal_script(query)
        width = max(len(h) for h in hosts)
        err = Console(stderr=True, highlight=False)
        splitters = {h: LineSplitter() for h in hosts}
        merger = logmod.Merger()
        collected: list[logmod.LogEntry] = []

        def emit(entry: logmod.LogEntry) -> None:
            click.echo(logmod.entry_json(entry) if as_json else logmod.format_entry(entry, width))

        def take(host: str, text: str) -> None:
            entry = logmod.parse_entry(layout, host, text)
            if entry is None:
                return
            if follow:
                merger.add(entry, time.monotonic())
            else:
                collected.append(entry)

        empty: set[str] = set()  # hosts where none of the units has logged yet

        def on_output(host: str, stream: str, data: bytes) -> None:
            if stream == "stderr":
                text = data.decode("utf-8", "replace").strip()
                if logmod.no_units_yet(text):
                    empty.add(host)
                    err.print(f"{host}: no log lines of {process or spec.name} yet", markup=False,
                              highlight=False)
                elif text:
                    err.print(f"{host}: {text}", markup=False, highlight=False, soft_wrap=True)
                return
            for text in splitters[host].feed(data):
                take(host, text)

        def on_end(end: HostEnd) -> None:
            for text in splitters[end.host].flush():
                take(end.host, text)
            if end.error:
                err.print(f"[bold red]{end.host}:[/] ", end="")
                err.print(end.error, markup=False, highlight=False, soft_wrap=True)
            elif end.rc and end.host not in empty:
                err.print(f"[bold red]{end.host}:[/] journalctl exited {end.rc}")

        def on_tick() -> None:
            for entry in merger.ready(time.monotonic()):
                emit(entry)

        pool = ssh_pool(inv, accept_new_host_keys)
        try:
            ends = run_streaming(pool, hosts, lambda h: script, on_output, become=True,
                                 timeout=None if follow else LOGS_TIMEOUT, forks=len(hosts),
                                 on_end=on_end, on_tick=on_tick)
        except KeyboardInterrupt:
            for entry in merger.flush():
                emit(entry)
            sys.stdout.flush()
            raise
        finally:
            pool.close()
        for entry in [*logmod.merge(collected), *merger.flush()]:
            emit(entry)
        return 0 if all(e.ok or (e.rc == 1 and h in empty) for h, e in ends.items()) else 1

    cli.run_guarded(body, as_json=as_json)


def console_host(inv: Inventory, host: str | None) -> str:
    """The host a console runs on: ``host`` (a web host's name), else the leader of ``web``.

    Raises:
        ValidationError: no such web host, or no group ``web``.
    """
    web = status_hosts(inv)
    if host is None:
        try:
            return leader_of(inv, web)
        except ValueError as exc:
            raise ValidationError([Problem(inv.path, 0, "leader", str(exc))]) from None
    if host not in web:
        raise ValidationError([Problem("--host", 0, host, f"not a web host of {inv.path} "
                                       f"(web hosts: {', '.join(web)})")])
    return host


@click.command("console", context_settings={"ignore_unknown_options": True})
@click.argument("env", shell_complete=cli.complete_env)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--host", "-l", "host", metavar="HOST", help="The web host to run on (default: the leader).")
@click.option("--tty/--no-tty", "-t/-T", default=None,
              help="A pseudo-terminal (default: when stdin and stdout are terminals).")
@click.option("--timeout", type=click.FloatRange(1, 7 * 86400), default=None, metavar="SECONDS",
              help="Stop the command after this long (default: no limit with a terminal, 3600 s without).")
@ssh_options
def console_cmd(env: str, command: tuple[str, ...], host: str | None, tty: bool | None,
                timeout: float | None, inventory: str | None, accept_new_host_keys: bool,
                app_dir: str) -> None:
    """Run COMMAND (after --; default: a shell) in the current release on one host, as the
    app user, in the release dir, with its venv and env file loaded:
    shipit console prod -- python manage.py shell.

    Exits with the command's exit status; 1 if the host is unreachable or has no release.
    """

    def body() -> int:
        inv = load_inventory(cli.inventory_path(env, inventory))
        spec = load_app_spec(app_dir, inv.app, inv.path)
        target = console_host(inv, host)
        interactive = tty if tty is not None else (sys.stdin.isatty() and sys.stdout.isatty())
        limit = timeout if timeout is not None else (None if interactive else 3600.0)
        pool = ssh_pool(inv, accept_new_host_keys)
        try:
            transport = pool.get(target)
            found = transport.run(consolecmd.current_script(spec.layout), become=True, timeout=LOOKUP_TIMEOUT)
            if found.rc != 0:
                why = (found.stderr.strip().splitlines() or [f"exit status {found.rc}"])[-1]
                raise ShipitError(f"{target}: cannot read {spec.name}'s current release as root: {why}")
            release = consolecmd.parse_current(found.stdout)
            if release is None:
                raise ShipitError(f"{target}: {spec.name} has no current release (deploy it first)")
            argv = consolecmd.console_argv(spec.layout, release, spec.name, list(command),
                                           tty=interactive, timeout=limit)
            if interactive:
                return transport.interactive(argv, become=True)
            out = sys.stdout.buffer
            errs = sys.stderr.buffer

            def relay(stream: str, data: bytes) -> None:
                sink = out if stream == "stdout" else errs
                sink.write(data)
                sink.flush()

            return transport.stream(consolecmd.pipe_script(argv), relay, become=True,
                                    timeout=None if limit is None else limit + 30)
        finally:
            pool.close()

    cli.run_guarded(body)


@click.command("check")
@click.argument("env", shell_complete=cli.complete_env)
@click.option("--playbook", "playbooks", multiple=True, metavar="FILE",
              help="Also validate this playbook as `shipit run` would (repeatable).")
@click.option("--hosts", "with_hosts", is_flag=True,
              help="Also connect: reachability, host keys, sudo, each host's platform and Python.")
@click.option("--limit", "-l", metavar="PATTERN", help="Only hosts matching this pattern.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@ssh_options
def check_cmd(env: str, playbooks: tuple[str, ...], with_hosts: bool, limit: str | None, as_json: bool,
              inventory: str | None, accept_new_host_keys: bool, app_dir: str) -> None:
    """Validate everything `deploy` validates (inventory, app spec, secrets present, env file,
    playbooks, hooks) without connecting to any host; --hosts also checks the hosts.

    Exit 0 all good; 2 bad input (every problem listed, file:line); 1 a host check failed.
    """
    from shipit.check import check_hosts, check_offline, refusing_pool
    from shipit.deploy import Deployer
    from shipit.modules.registry import builtin_modules
    from shipit.playbook import load_playbook
    from shipit.report import ConsoleReporter

    def body() -> int:
        inv = load_inventory(cli.inventory_path(env, inventory))
        quiet = ConsoleReporter(Console(stderr=True, highlight=False))
        report, deployer = check_offline(
            env, inv, app_dir, playbooks, limit,
            lambda name: load_playbook(cli.playbook_path(name), builtin_modules(), inv, {}),
            lambda target: Deployer(target, refusing_pool(), quiet))
        if report.problems:
            raise ValidationError(report.problems)
        hosts: dict[str, dict[str, Any]] = {}
        if with_hosts and deployer is not None:
            pool = ssh_pool(inv, accept_new_host_keys)
            deployer.pool = pool
            try:
                hosts = check_hosts(deployer)
            finally:
                pool.close()
        ok = all(r["ok"] for r in hosts.values())
        if as_json:
            cli.print_json({"ok": ok, "checked": report.checked, "hosts": hosts})
        else:
            out = Console(highlight=False)
            for line in report.checked:
                out.print("[green]ok[/] ", end="")
                out.print(line, markup=False, soft_wrap=True)
            for host, row in hosts.items():
                out.print("[green]ok[/] " if row["ok"] else "[bold red]FAILED[/] ", end="")
                out.print(f"{'fleet' if host == '*' else host}: {row['message']}", markup=False, soft_wrap=True)
            if not with_hosts:
                out.print("no host was contacted (--hosts checks them)")
        return 0 if ok else 1

    cli.run_guarded(body, as_json=as_json)


@click.command("config")
@click.argument("env", shell_complete=cli.complete_env)
@click.option("-i", "--inventory", "inventory", metavar="PATH",
              help="Inventory file (default: inventories/ENV.yml).")
@click.option("--json", "as_json", is_flag=True, help="{key: {value, from}} on stdout.")
@cli.app_option
def config_cmd(env: str, inventory: str | None, as_json: bool, app_dir: str) -> None:
    """Print ENV's merged app spec, each value with where it came from (shipit.yml or the
    inventory, file:line, or default); secrets by name only (set or MISSING), never values."""
    from shipit.check import load_config

    def body() -> int:
        inv = load_inventory(cli.inventory_path(env, inventory))
        rows = load_config(env, inv, app_dir)
        if as_json:
            cli.print_json({key: {"value": value, "from": origin} for key, value, origin in rows})
            return 0
        width = max(len(k) for k, _, _ in rows)
        for key, value, origin in rows:
            shown = value.replace("\n", "\\n")
            click.echo(f"{key.ljust(width)}  {shown}  # {origin}")
        return 0

    cli.run_guarded(body, as_json=as_json)


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--ci", type=click.Choice(["github"]), help="Also write a CI workflow (.github/workflows/deploy.yml).")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init_cmd(directory: Path, ci: str | None, force: bool) -> None:
    """Look at the app in DIRECTORY (default: here) and write a commented shipit.yml and
    inventories/prod.example.yml (and with --ci github a deploy workflow).

    Detects FastAPI, Django, Flask, Starlette and plain ASGI/WSGI apps from the dependencies
    and the layout, statically (the app is never imported). Refuses to overwrite a file
    (exit 2, naming it) unless --force; exit 2 also when no web app is found.
    """
    from shipit import init as initmod

    def body() -> int:
        found = initmod.detect(directory)
        files = initmod.plan_files(directory, found, ci)
        there = initmod.existing(directory, files)
        if there and not force:
            raise ValidationError([Problem(str(directory / rel), 0, "", "exists (--force overwrites it)")
                                   for rel in there])
        for rel, text in files.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            click.echo(f"wrote {path}")
        click.echo(f"{found.framework} app {found.app_ref} ({found.interface}, {found.server})")
        for note in found.notes:
            click.echo(f"note: {note}", err=True)
        click.echo("next: cp inventories/prod.example.yml inventories/prod.yml, edit it, "
                   "then shipit check prod")
        return 0

    cli.run_guarded(body)
