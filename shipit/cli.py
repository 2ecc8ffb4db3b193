"""The ``shipit`` command line (click). Every user error exits with a message, no traceback.

Exit codes: 0 success; 1 a host failed or was unreachable; 2 invalid input (nothing was
touched); 3 a missing prerequisite on the runner; 130 interrupted (Ctrl-C); 143 terminated
(SIGTERM); 129 hung up (SIGHUP).
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click
import yaml
from click.shell_completion import CompletionItem
from rich.console import Console

from shipit.errors import Problem, ShipitError, ValidationError
from shipit.executor import Executor, RunOptions
from shipit.facts.registry import fact_kinds
from shipit.inventory import Inventory, load_inventory
from shipit.modules.registry import builtin_modules
from shipit.playbook import Play, Playbook, Task, load_playbook
from shipit.pool import ssh_pool
from shipit.report import ConsoleReporter, result_json

BUILTIN_PLAYBOOKS = Path(str(resources.files("shipit") / "playbooks"))  # inside the package


def inventory_path(env: str, explicit: str | None = None) -> Path:
    """Where ENV's inventory is: ``-i PATH``, else ENV itself if it is a file, else
    ``inventories/ENV.yml`` (or ``.yaml``/``.ini``) under the current directory.

    Raises:
        ValidationError: no such inventory.
    """
    if explicit:
        return Path(explicit)
    if Path(env).is_file():
        return Path(env)
    for suffix in (".yml", ".yaml", ".ini"):
        candidate = Path("inventories") / f"{env}{suffix}"
        if candidate.is_file():
            return candidate
    raise ValidationError([Problem(f"inventories/{env}.yml", 0, "",
                                   f"no inventory for environment '{env}' (looked for "
                                   f"inventories/{env}.yml, .yaml, .ini under {Path.cwd()})")])


def environments(where: Path | None = None) -> list[str]:
    """The environments with an inventory under ``where`` (default: the current directory):
    the names of ``inventories/*.yml`` (``.yaml``, ``.ini``), sorted, without
    ``*.example.*`` templates. Never raises (no directory: none)."""
    base = (where or Path.cwd()) / "inventories"
    try:
        files = [p for p in base.iterdir() if p.is_file() and p.suffix in (".yml", ".yaml", ".ini")]
    except OSError:
        return []
    return sorted({p.stem for p in files if not p.stem.endswith(".example")})


def complete_env(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of an ENV argument (click's ``shell_complete``): the environments of
    :func:`environments` starting with what is typed so far."""
    return [CompletionItem(env) for env in environments() if env.startswith(incomplete)]


def playbook_path(name: str) -> Path:
    """A playbook file, or the name of a built-in one shipped in the package
    (``shipit/playbooks/``: ``deploy`` -> deploy.yml).

    Raises:
        ValidationError: neither a file nor a built-in name (the message lists the built-ins).
    """
    p = Path(name)
    if p.is_file():
        return p
    for candidate in (BUILTIN_PLAYBOOKS / name, BUILTIN_PLAYBOOKS / f"{name}.yml"):
        if candidate.is_file():
            return candidate
    raise ValidationError([Problem(name, 0, "", "no such playbook file, and no built-in playbook of "
                                   f"that name (built-in: {', '.join(sorted(x.stem for x in BUILTIN_PLAYBOOKS.glob('*.yml')))})")])


def parse_extra_vars(values: tuple[str, ...]) -> dict[str, Any]:
    """``-e key=value`` pairs (values parsed as YAML scalars: 3 -> int, true -> bool).

    Raises:
        ValidationError: an item is not key=value.
    """
    result: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValidationError([Problem("-e", 0, item, "expected key=value with key a variable name")])
        try:
            result[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            result[key.strip()] = value
    return result


def _consoles(as_json: bool) -> tuple[Console, Console]:
    """(progress console, stdout console). With --json progress goes to stderr."""
    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False)
    return (err if as_json else out), out


def print_json(doc: Any) -> None:
    """Write ``doc`` as indented JSON on stdout: plain text, no console markup or wrapping
    (and much cheaper than rendering it through rich)."""
    click.echo(doc if isinstance(doc, str) else json.dumps(doc, indent=2, default=str))


def run_guarded(fn: Callable[[], int], as_json: bool = False) -> None:
    """Run a command body, turning ShipitError and Ctrl-C into a message and an exit code.

    Messages are printed without rich markup (error text such as ``[project]`` or a
    template's ``{{ x[0] }}`` would otherwise be eaten), after a bold red ``error:``. With
    ``as_json`` a failing ShipitError also prints one JSON document on stdout:
    ``{"error": message, "problems": [{"file", "line", "key", "message"}, ...]}`` (problems
    empty unless it is a ValidationError). Exits with the command's code, the error's
    ``exit_code`` (2 for invalid input), or when interrupted 130 (Ctrl-C), 143 (SIGTERM) or
    129 (SIGHUP): the :class:`Terminated` code.
    """
    err = Console(stderr=True, highlight=False)

    json_printed = False  # a command that printed its own JSON document on failure says so

    def fail(message: str, problems: list[Problem], exit_code: int) -> None:
        err.print("[bold red]error:[/] ", end="")
        err.print(message, markup=False, highlight=False, soft_wrap=True)
        for problem in problems:
            # one problem per line, never wrapped at the terminal width (CI logs, grep)
            err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        if as_json and not json_printed:
            print_json({"error": message,
                        "problems": [{"file": p.file, "line": p.line, "key": p.key, "message": p.message}
                                     for p in problems]})
        sys.exit(exit_code)

    try:
        code = fn()
    except ValidationError as exc:
        fail("invalid input; nothing was touched", exc.problems, exc.exit_code)
    except ShipitError as exc:
        json_printed = bool(getattr(exc, "json_printed", False))
        fail(exc.message, [], exc.exit_code)
    except KeyboardInterrupt as exc:
        err.print("[bold red]interrupted[/]")
        sys.exit(getattr(exc, "exit_code", 130))
    sys.exit(code)


def common_run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by commands that connect to hosts."""
    f = click.option("-i", "--inventory", "inventory", metavar="PATH",
                     help="Inventory file (default: inventories/ENV.yml).")(f)
    f = click.option("--limit", "-l", metavar="PATTERN",
                     help="Only hosts matching this pattern (e.g. 'web1,web2' or 'web:!web3').")(f)
    f = click.option("--forks", "-f", type=click.IntRange(1, 500), default=20, show_default=True,
                     help="Hosts worked on at once.")(f)
    f = click.option("--json", "as_json", is_flag=True,
                     help="Print one JSON object on stdout at the end (progress goes to stderr).")(f)
    f = click.option("--accept-new-host-keys", is_flag=True,
                     help="Trust unknown host keys on first use and record them in "
                          "~/.config/shipit/known_hosts (a changed key is always refused).")(f)
    return f


def verbosity_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``-v`` (repeatable) and ``-q`` for commands that run tasks: the command gets
    ``verbose`` (0, 1, 2: the count) and ``quiet``; both at once is a usage error (exit 2)."""
    def check_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value and ctx.params.get("verbose"):
            raise click.BadParameter("-q and -v exclude each other", ctx=ctx, param=param)
        return value

    f = click.option("-q", "--quiet", is_flag=True, callback=check_quiet,
                     help="Print only failures, warnings and the recap.")(f)
    f = click.option("-v", "--verbose", count=True, is_eager=True,
                     help="-v: also print ok and skipped tasks; -vv: also stream the remote "
                          "commands' output live, each line prefixed with its host.")(f)
    return f


class ShipitGroup(click.Group):
    """The top-level group; command groups of their own packages load only when used.

    (click's documented lazy-loading pattern: ``shipit run`` does not pay for importing the
    lab's code, which matters for a tool whose no-op run takes about a second.)
    """

    lazy = {"lab": ("shipit.lab.cli", "lab"),
            "logs": ("shipit.daytwo", "logs_cmd"), "console": ("shipit.daytwo", "console_cmd"),
            "check": ("shipit.daytwo", "check_cmd"), "config": ("shipit.daytwo", "config_cmd"),
            "init": ("shipit.daytwo", "init_cmd"), "db": ("shipit.dbcli", "db")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["shipit.args"] = list(args)  # for invoke's --json usage errors
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """As click's, and a usage error (a bad option value, a missing argument: exit 2) of
        a command run with ``--json`` also prints the JSON error document on stdout."""
        raw = ctx.meta.get("shipit.args", [])
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if "--json" in raw:
                param = getattr(exc, "param", None)
                key = "/".join(param.opts) if param is not None and getattr(param, "opts", None) else ""
                message = exc.format_message()
                print_json({"error": "invalid input; nothing was touched",
                            "problems": [{"file": "", "line": 0, "key": key, "message": message}]})
            raise

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, name)


@click.group(cls=ShipitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shipit")
def main() -> None:
    """shipit: agentless deploys and provisioning for Python web apps, over SSH.

    Inventories live in inventories/ENV.yml; playbooks are YAML lists of plays (see
    `shipit modules` for the modules a task can use).
    """


@main.command("run")
@click.argument("env", shell_complete=complete_env)
@click.argument("playbook")
@click.option("--check", "-C", is_flag=True, help="Change nothing; report what would change.")
@click.option("--diff", "-D", is_flag=True, help="Show file diffs (secrets masked).")
@click.option("-e", "--extra-vars", "extra", multiple=True, metavar="KEY=VALUE",
              help="Extra variables, highest precedence (repeatable).")
@verbosity_options
@common_run_options
def run_cmd(env: str, playbook: str, check: bool, diff: bool, extra: tuple[str, ...], verbose: int,
            quiet: bool, inventory: str | None, limit: str | None, forks: int, as_json: bool,
            accept_new_host_keys: bool) -> None:
    """Run PLAYBOOK (a file, or a built-in name) against environment ENV's inventory."""

    def body() -> int:
        inv = load_inventory(inventory_path(env, inventory))
        extra_vars = parse_extra_vars(extra)
        modules = builtin_modules()
        book = load_playbook(playbook_path(playbook), modules, inv, extra_vars)
        _check_limit(inv, limit)
        progress, out = _consoles(as_json)
        reporter = ConsoleReporter(progress, verbose=verbose, show_diff=diff, quiet=quiet)
        pool = ssh_pool(inv, accept_new_host_keys)
        try:
            executor = Executor(inv, pool, modules, fact_kinds(), reporter,
                                RunOptions(check=check, diff=diff, forks=forks,
                                           extra_vars=extra_vars, limit=limit))
            result = executor.run_playbook(book)
        finally:
            pool.close()
        if as_json:
            print_json(result_json(result, {"check": check}))
        else:
            reporter.recap(result, check=check)
        return 1 if result.failed else 0

    run_guarded(body, as_json=as_json)


def _check_limit(inv: Inventory, limit: str | None) -> None:
    if limit:
        try:
            inv.select(limit)
        except ValueError as exc:
            raise ValidationError([Problem("--limit", 0, limit, str(exc))]) from None


def _adhoc_playbook(task: Task, hosts: str) -> Playbook:
    return Playbook("<command line>", (Play(name=task.name, hosts=hosts, tasks=(task,)),))


@main.command("facts")
@click.argument("env", shell_complete=complete_env)
@common_run_options
def facts_cmd(env: str, inventory: str | None, limit: str | None, forks: int, as_json: bool,
              accept_new_host_keys: bool) -> None:
    """Gather and print each host's facts (OS, CPUs, memory, load, Pythons)."""

    def body() -> int:
        inv = load_inventory(inventory_path(env, inventory))
        _check_limit(inv, limit)
        progress, out = _consoles(True)
        pool = ssh_pool(inv, accept_new_host_keys)
        reporter = ConsoleReporter(progress)
        try:
            executor = Executor(inv, pool, builtin_modules(), fact_kinds(), reporter,
                                RunOptions(forks=forks, limit=limit))
            result = executor.run_playbook(Playbook("<facts>", (Play("facts", "all", ()),)))
        finally:
            pool.close()
        doc = {"facts": executor.host_facts,
               "unreachable": {h: r.message for h, r in result.recap.items() if r.unreachable}}
        if as_json:
            print_json(doc)
        else:
            out.print(yaml.safe_dump(doc, sort_keys=True), markup=False, highlight=False)
        return 1 if result.failed else 0

    run_guarded(body, as_json=as_json)


@main.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("env", shell_complete=complete_env)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--become/--no-become", default=False, show_default=True, help="Run as root via sudo.")
@click.option("--timeout", type=click.FloatRange(1, 7 * 86400), default=3600.0, show_default=True,
              metavar="SECONDS", help="Stop the command on a host after this long.")
@common_run_options
def exec_cmd(env: str, command: tuple[str, ...], become: bool, timeout: float, inventory: str | None,
             limit: str | None, forks: int, as_json: bool, accept_new_host_keys: bool) -> None:
    """Run a shell command on every host of ENV (use -- before it): shipit exec prod -- uptime.

    Output is shown live, each line prefixed with its host (with --json: collected, one
    document at the end).
    """
    from shipit.remote_exec import run_exec

    def body() -> int:
        inv = load_inventory(inventory_path(env, inventory))
        _check_limit(inv, limit)
        hosts = inv.select(limit or "all")
        pool = ssh_pool(inv, accept_new_host_keys)
        try:
            results = run_exec(pool, hosts, " ".join(command), become=become, timeout=timeout,
                               forks=forks, live=not as_json)
        finally:
            pool.close()
        if as_json:
            print_json({"results": results})
        return 0 if all(r["rc"] == 0 for r in results) else 1

    run_guarded(body, as_json=as_json)


@main.command("modules")
def modules_cmd() -> None:
    """List the built-in modules and their params."""
    out = Console(highlight=False)
    for name, module in sorted(builtin_modules().items()):
        out.print(f"[bold]{name}[/] — {module.doc.strip().splitlines()[0] if module.doc else ''}")
        for key, spec in module.params.items():
            flags = " (required)" if spec.required else f" (default {spec.default!r})" if spec.default is not None else ""
            out.print(f"    {key}: {spec.expected()}{flags}  {spec.help}", markup=False)


def _deployer(env: str, inventory: str | None, app_dir: str, forks: int, accept_new_host_keys: bool,
              progress: Console, verbose: int = 0, lock_wait: float = 0.0,
              limit: str | None = None, need_secrets: bool = True, hooks: bool = False,
              quiet: bool = False, serial: tuple[int | str, ...] | None = None) -> Any:
    from shipit.deploy import Deployer, load_target
    from shipit.hooks import Hooks

    inv = load_inventory(inventory_path(env, inventory))
    target = load_target(env, inv, app_dir, limit=limit, need_secrets=need_secrets, serial=serial)
    found = Hooks.load(app_dir) if hooks else None  # a misnamed hook is bad input: exit 2
    return Deployer(target, ssh_pool(inv, accept_new_host_keys),
                    ConsoleReporter(progress, verbose=verbose, quiet=quiet), forks, lock_wait, hooks=found)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C (the step in progress ends, the lock is freed);
    ``exit_code`` 143 or 129 (128 + the signal's number), as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def handle_termination() -> None:
    """Turn SIGTERM and SIGHUP (a CI runner cancelling, a closed terminal) into
    :class:`Terminated` in the main thread, so they unwind like Ctrl-C."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)


def _finish(outcome: Any, as_json: bool, console: Console) -> int:
    from shipit.report import outcome_table

    if as_json:
        print_json(outcome.as_dict())
    else:
        console.print(outcome_table(outcome))
    return 0 if outcome.ok else 1


def _run_deploy_command(as_json: bool, console: Console, action: Callable[[], Any],
                        pool_close: Callable[[], None]) -> int:
    """Run a deploy/rollback; print its outcome, or on failure the outcome and the reason."""
    from shipit.deploy import DeployFailed
    from shipit.report import outcome_table

    handle_termination()
    try:
        outcome = action()
    except DeployFailed as exc:
        if exc.outcome is not None:
            if as_json:
                print_json({**exc.outcome.as_dict(), "ok": False, "error": exc.message})
                exc.json_printed = True
            else:
                console.print(outcome_table(exc.outcome))
        raise
    finally:
        pool_close()
    return _finish(outcome, as_json, console)


def app_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--app", "app_dir", default=".", show_default=True, metavar="DIR",
                        help="The app's directory (with shipit.yml).")(f)


def _serial_value(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int | str, ...] | None:
    """``--serial``'s text as batch sizes (see :func:`shipit.app.parse_serial`); a bad one exits 2."""
    from shipit.app import parse_serial

    if value is None:
        return None
    try:
        return parse_serial(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (e.g. 1, 25%, 100% or 1,50%)") from None


def serial_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--serial`` of deploy and rollback: this run's batch sizes instead of the app's ``serial``."""
    return click.option("--serial", "serial", callback=_serial_value, metavar="SIZES",
                        help="Batch sizes of the rolling switch for this run instead of the app's "
                             "`serial` (as Ansible's serial): 1, 25%, 100% (every host in one batch, "
                             "still health-checked), or a list like 1,50%.")(f)


@main.command("deploy")
@click.argument("env", shell_complete=complete_env)
@app_option
@click.option("--lock-wait", type=click.FloatRange(0, 86400), default=0.0, metavar="SECONDS",
              help="Wait this long for another deploy's lock.")
@serial_option
@verbosity_options
@common_run_options
def deploy_cmd(env: str, app_dir: str, lock_wait: float, serial: tuple[int | str, ...] | None, verbose: int,
               quiet: bool, inventory: str | None, limit: str | None, forks: int, as_json: bool,
               accept_new_host_keys: bool) -> None:
    """Build the app once, then provision, upload, migrate on the leader and switch the web
    hosts of ENV batch by batch behind health checks."""

    def body() -> int:
        console = Console(stderr=as_json, highlight=False)
        deployer = _deployer(env, inventory, app_dir, forks, accept_new_host_keys, console, verbose,
                             lock_wait, limit, hooks=True, quiet=quiet, serial=serial)
        outcome_code = _run_deploy_command(
            as_json, console, lambda: deployer.deploy(str(Path(".shipit/artifacts").resolve())),
            deployer.pool.close)
        return outcome_code

    run_guarded(body, as_json=as_json)


@main.command("rollback")
@click.argument("env", shell_complete=complete_env)
@app_option
@click.option("--to", "to", metavar="RELEASE", help="Release id to go back to (default: the one "
              "that served before the current one, on each host).")
@click.option("--force", is_flag=True, help="With --to: allow a release that never went live.")
@click.option("--restore-db", is_flag=True,
              help="Also restore the database backup taken before the release being rolled back "
                   "(the app stopped meanwhile): data written since that backup is LOST.")
@click.option("--yes", "-y", is_flag=True, help="With --restore-db: do not ask for confirmation.")
@click.option("--lock-wait", type=click.FloatRange(0, 86400), default=0.0, metavar="SECONDS")
@serial_option
@verbosity_options
@common_run_options
def rollback_cmd(env: str, app_dir: str, to: str | None, force: bool, restore_db: bool, yes: bool,
                 lock_wait: float, serial: tuple[int | str, ...] | None, verbose: int, quiet: bool,
                 inventory: str | None, limit: str | None, forks: int, as_json: bool,
                 accept_new_host_keys: bool) -> None:
    """Switch ENV's web hosts back to the release that served before, batch by batch; with
    --restore-db also put the database back as it was before that release's migrations."""
    from shipit.dbcli import confirm_or_refuse

    def body() -> int:
        console = Console(stderr=as_json, highlight=False)
        deployer = _deployer(env, inventory, app_dir, forks, accept_new_host_keys, console, verbose,
                             lock_wait, limit, hooks=True, quiet=quiet, serial=serial)
        backup_name: str | None = None
        if restore_db:
            try:
                backup = deployer.rollback_backup(to)
                console.print(f"[yellow]warning:[/] after the rollback the database is restored from backup "
                              f"{backup.name}, taken {backup.time:%Y-%m-%d %H:%M:%S} UTC before release "
                              f"{backup.name} migrated it; the app is stopped meanwhile. Everything written "
                              f"to the database since {backup.time:%Y-%m-%d %H:%M:%S} UTC is LOST.",
                              highlight=False)
                if not confirm_or_refuse(f"Roll {env} back and restore {backup.name}?", yes):
                    console.print("nothing was changed")
                    deployer.pool.close()
                    return 1
            except BaseException:
                deployer.pool.close()
                raise
            backup_name = backup.name
        else:
            console.print("[yellow]note:[/] database migrations are NOT reverted by a rollback; "
                          "the previous release runs against the current schema (--restore-db puts "
                          "the database back from the backup taken before them).")
        return _run_deploy_command(as_json, console, lambda: deployer.rollback(to, force, backup_name),
                                   deployer.pool.close)

    run_guarded(body, as_json=as_json)


@main.command("releases")
@click.argument("env", shell_complete=complete_env)
@app_option
@common_run_options
def releases_cmd(env: str, app_dir: str, inventory: str | None, limit: str | None, forks: int,
                 as_json: bool, accept_new_host_keys: bool) -> None:
    """List the releases on each web host: which is current, its state, when, by whom."""
    from rich.table import Table

    from shipit.deploy import releases_rows

    def body() -> int:
        console = Console(highlight=False)
        deployer = _deployer(env, inventory, app_dir, forks, accept_new_host_keys,
                             Console(stderr=True, highlight=False), limit=limit, need_secrets=False)
        try:
            states = deployer.states()
        finally:
            deployer.pool.close()
        rows = releases_rows(states)
        if as_json:
            print_json({"releases": rows})
        else:
            table = Table(title="releases", title_justify="left")
            for col in ("host", "release", "current", "state", "deployed (UTC)", "live since", "by"):
                table.add_column(col)
            for r in rows:
                table.add_row(r["host"], r["release"], r["current"], r["state"], r["deployed"],
                              r["live_at"], r["by"])
            console.print(table)
        return 0 if all(not isinstance(s, str) for s in states.values()) else 1

    run_guarded(body, as_json=as_json)


@main.command("status")
@click.argument("env", shell_complete=complete_env)
@app_option
@click.option("--detail", "-d", is_flag=True,
              help="A block per host with everything: full release id, every service, health "
                   "answer, certificate expiry date, host memory (narrow to hosts with -l).")
@common_run_options
def status_cmd(env: str, app_dir: str, detail: bool, inventory: str | None, limit: str | None,
               forks: int, as_json: bool, accept_new_host_keys: bool) -> None:
    """Show each web host on one line (fits 80 columns): release, state, the health endpoint's
    answer and latency through Caddy, workers, the app's CPU and memory, load, and the days
    left on the TLS certificate. --detail: everything per host. Exit 1 if any is unreachable."""
    from shipit.app import load_app_spec
    from shipit.status import gather_status, health_target, status_detail, status_hosts, status_lines

    def body() -> int:
        console = Console(highlight=False)
        inv = load_inventory(inventory_path(env, inventory))
        spec = load_app_spec(app_dir, inv.app, inv.path)  # no secrets needed to look
        hosts = status_hosts(inv, limit)
        probe = health_target(spec.domains, spec.health_path, getattr(spec, "health_host", None))
        pool = ssh_pool(inv, accept_new_host_keys)
        try:
            statuses = gather_status(inv, spec.name, hosts, pool, Console(stderr=True, highlight=False),
                                     forks, probe=probe)
        finally:
            pool.close()
        if as_json:
            print_json(statuses)
        else:
            console.print(status_detail(statuses) if detail else status_lines(statuses))
        return 0 if all(s["reachable"] for s in statuses.values()) else 1

    run_guarded(body, as_json=as_json)


@main.command("unlock")
@click.argument("env", shell_complete=complete_env)
@app_option
@common_run_options
def unlock_cmd(env: str, app_dir: str, inventory: str | None, limit: str | None, forks: int,
               as_json: bool, accept_new_host_keys: bool) -> None:
    """Remove ENV's deploy lock on the leader, whoever holds it (only if that deploy is dead)."""

    def body() -> int:
        console = Console(stderr=True, highlight=False)
        deployer = _deployer(env, inventory, app_dir, forks, accept_new_host_keys, console,
                             limit=limit, need_secrets=False)
        try:
            held = deployer.force_unlock()
        finally:
            deployer.pool.close()
        if as_json:
            print_json({"unlocked": bool(held), "held_by": held})
        elif held:
            console.print(f"[yellow]warning:[/] removed the deploy lock ({held}); if that deploy is "
                          "still running, two deploys may now overlap", markup=True, highlight=False)
        else:
            console.print("the deploy lock was not held")
        return 0

    run_guarded(body, as_json=as_json)


if __name__ == "__main__":
    main()
