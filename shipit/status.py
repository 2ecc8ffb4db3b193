"""``shipit status``: per web host, is it reachable, which release it serves, how each app
service is doing (state, restarts, workers, CPU, memory) and the host's memory and load.

One round trip per host: the ``host`` facts and the ``app_status`` fact
(:mod:`shipit.facts.status`) are gathered in one remote script by
:meth:`shipit.executor.Executor.gather_facts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from shipit.errors import Problem, ShipitError, ValidationError
from shipit.executor import Executor, RunOptions
from shipit.facts.registry import fact_kinds
from shipit.facts.status import app_status
from shipit.inventory import Inventory
from shipit.modules.registry import builtin_modules
from shipit.pool import TransportPool
from shipit.report import ConsoleReporter

HostStatus = dict[str, Any]
"""One host's status. Reachable::

    {"reachable": True, "current": str | None, "live_port": int | None,
     "units": {unit: {...}},          # as parsed by shipit.facts.status
     "web_unit": "example-web@8001.service" | None,   # the live slot's unit
     "web_active": bool, "workers": int | None,       # of the live slot
     "restarts": int,                  # sum of NRestarts over the app's units
     "memory": int,                    # bytes, sum over the app's units' cgroups
     "cpu_percent": float,             # % of one CPU, sum over the app's units
     "host": {"cpus": int, "mem_total": int, "mem_available": int, "load": [float, float, float]}}

Unreachable: ``{"reachable": False, "error": "<why>"}``.
"""


def status_hosts(inventory: Inventory, limit: str | None = None) -> list[str]:
    """The hosts ``status`` looks at: group ``web`` (narrowed by the ``limit`` pattern).

    Raises:
        ValidationError: no group ``web``, or ``limit`` matches nothing.
    """
    try:
        web = inventory.select("web")
        chosen = set(inventory.select(limit)) if limit else set(web)
    except ValueError as exc:
        raise ValidationError([Problem(inventory.path, 0, "groups.web", str(exc))]) from None
    hosts = [h for h in web if h in chosen]
    if not hosts:
        raise ValidationError([Problem(inventory.path, 0, "groups.web", "no web host to look at")])
    return hosts


def gather_status(inventory: Inventory, app: str, hosts: list[str], pool: TransportPool,
                  console: Console, forks: int = 20) -> dict[str, HostStatus]:
    """Status of app ``app`` on ``hosts``, gathered in
    parallel, one round trip per host (each takes at least
    :data:`shipit.facts.status.SAMPLE_SECONDS`). ``console`` only receives warnings.

    Never raises for a host: an unreachable host is reported as such in its entry.
    """
    query = app_status(app)
    executor = Executor(inventory, pool, builtin_modules(), fact_kinds(),
                        ConsoleReporter(console), RunOptions(forks=forks))
    gathered = executor.gather_facts(hosts, [query])
    out: dict[str, HostStatus] = {}
    for host, facts in gathered.items():
        if isinstance(facts, ShipitError):
            out[host] = {"reachable": False, "error": facts.message}
        else:
            out[host] = summarize(facts[query], executor.host_facts.get(host, {}))
    return out


def summarize(app: Mapping[str, Any], host_facts: Mapping[str, Any]) -> HostStatus:
    """Combine a parsed ``app_status`` fact and the host facts into a :data:`HostStatus`."""
    units: Mapping[str, Mapping[str, Any]] = app["units"]
    web = sorted(u for u, i in units.items() if i["kind"] == "web")
    live = next((u for u in web if units[u]["instance"] == str(app["live_port"])), None)
    if live is None:  # no live-port marker: the one running web slot, if any
        live = next((u for u in web if units[u]["active_state"] == "active"), None)
    return {
        "reachable": True,
        "current": app["current"],
        "live_port": app["live_port"],
        "units": {u: dict(i) for u, i in units.items()},
        "web_unit": live,
        "web_active": bool(live and units[live]["active_state"] == "active"),
        "workers": units[live]["workers"] if live else None,
        "restarts": sum(i["restarts"] for i in units.values()),
        "memory": sum(i["memory"] or 0 for i in units.values()),
        "cpu_percent": round(sum(i["cpu_percent"] or 0.0 for i in units.values()), 1),
        "host": {"cpus": host_facts.get("cpus", 0), "mem_total": host_facts.get("mem_total", 0),
                 "mem_available": host_facts.get("mem_available", 0),
                 "load": list(host_facts.get("load", []))},
    }


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def _unit_line(unit: str, info: Mapping[str, Any], live: bool) -> str:
    short = info.get("name") or unit.removesuffix(".service")
    state = f"{info['active_state']}/{info['sub_state']}"
    color = "green" if info["active_state"] == "active" else ("red" if info["active_state"] == "failed" else "yellow")
    extra = f" restarts {info['restarts']}"
    if info["memory"] is not None:
        extra += f", {_mib(info['memory'])}"
    if info["cpu_percent"] is not None:
        extra += f", {info['cpu_percent']:.1f}% cpu"
    return f"{short}{' (live)' if live else ''}: [{color}]{state}[/]{extra}"


def status_table(statuses: Mapping[str, HostStatus]) -> Table:
    """One rich table, a row per host."""
    table = Table(title="status", title_justify="left")
    for col in ("host", "reachable", "release", "services", "workers", "app cpu", "app memory",
                "host memory (avail/total)", "load"):
        table.add_column(col)
    for host, s in statuses.items():
        if not s["reachable"]:
            table.add_row(host, f"[red]no[/]: {s['error']}", "-", "-", "-", "-", "-", "-", "-")
            continue
        services = "\n".join(_unit_line(u, i, u == s["web_unit"]) for u, i in sorted(s["units"].items())) or "none"
        h = s["host"]
        table.add_row(host, "yes", s["current"] or "nothing", services,
                      "-" if s["workers"] is None else str(s["workers"]),
                      f"{s['cpu_percent']:.1f}%", _mib(s["memory"]),
                      f"{_mib(h['mem_available'])} / {_mib(h['mem_total'])}",
                      " ".join(f"{x:.2f}" for x in h["load"]))
    return table
