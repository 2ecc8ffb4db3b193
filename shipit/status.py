"""``shipit status``: per web host, is it reachable, which release it serves, how each app
service is doing (state, restarts, workers, CPU, memory), the host's memory and load, the
health endpoint's answer and latency through Caddy and the TLS certificate's expiry.

One round trip per host: the ``host`` facts, the ``app_status`` fact and the ``web_probe``
fact (:mod:`shipit.facts.status`) are gathered in one remote script by
:meth:`shipit.executor.Executor.gather_facts`.

Rendering is pure: :func:`status_lines` is one line per host that fits 80 columns,
:func:`status_detail` a block per host with everything, :func:`status_table` the old wide
table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from shipit.errors import Problem, ShipitError, ValidationError
from shipit.executor import Executor, RunOptions
from shipit.facts.registry import fact_kinds
from shipit.facts.schedule import job_units
from shipit.facts.status import app_status, web_probe
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
     "host": {"cpus": int, "mem_total": int, "mem_available": int, "load": [float, float, float]},
     "probe": {"code", "ms", "tls_expires", "tls_days", "error"} | None,   # shipit.facts.status.parse_probe
                                       # (None: not asked, e.g. no domain)
     "jobs": {name: {"timer", "running", "last", "next", "result", "exit_status", ...}}}
                                       # the scheduled jobs on this host (shipit.facts.schedule)

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


def health_target(domains: tuple[str, ...] | list[str], health_path: str,
                  health_host: str | None = None) -> tuple[str, str] | None:
    """(domain, path) the health probe asks through Caddy: ``health_host``, else the first
    domain (``health.<rest>`` for a ``*.`` wildcard), as the deploy's switch does; None with
    no domain."""
    first = health_host or (domains[0] if domains else "")
    if not first:
        return None
    return ("health." + first[2:] if first.startswith("*.") else first), health_path


def gather_status(inventory: Inventory, app: str, hosts: list[str], pool: TransportPool,
                  console: Console, forks: int = 20,
                  probe: tuple[str, str] | None = None) -> dict[str, HostStatus]:
    """Status of app ``app`` on ``hosts``, gathered in
    parallel, one round trip per host (each takes at least
    :data:`shipit.facts.status.SAMPLE_SECONDS`, the probe at most
    :data:`shipit.facts.status.PROBE_SECONDS` more). ``console`` only receives warnings.
    ``probe``: (domain, health path) to ask through Caddy on each host (:func:`health_target`).

    Never raises for a host: an unreachable host is reported as such in its entry.
    """
    query = app_status(app)
    jobs_query = job_units(app)
    probe_query = web_probe(*probe) if probe else None
    executor = Executor(inventory, pool, builtin_modules(), fact_kinds(),
                        ConsoleReporter(console), RunOptions(forks=forks))
    gathered = executor.gather_facts(hosts, [query, jobs_query, *([probe_query] if probe_query else [])])
    out: dict[str, HostStatus] = {}
    for host, facts in gathered.items():
        if isinstance(facts, ShipitError):
            out[host] = {"reachable": False, "error": facts.message}
        else:
            out[host] = summarize(facts[query], executor.host_facts.get(host, {}),
                                  facts.get(probe_query) if probe_query else None,
                                  facts.get(jobs_query))
    return out


def summarize(app: Mapping[str, Any], host_facts: Mapping[str, Any],
              probe: Mapping[str, Any] | None = None, jobs: Mapping[str, Any] | None = None) -> HostStatus:
    """Combine a parsed ``app_status`` fact, the host facts, the parsed ``web_probe``
    fact (None: not asked) and the parsed ``job_units`` fact (None: not asked) into a
    :data:`HostStatus`."""
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
        "probe": dict(probe) if probe is not None else None,
        "jobs": {name: dict(info) for name, info in sorted((jobs or {}).get("jobs", {}).items())},
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


# ---- the compact view: one line per host, 80 columns ---------------------------------------
STATE_STYLE = {"up": "green", "sick": "yellow", "down": "red", "failed": "bold red", "empty": "yellow",
               "unreachable": "bold red"}


def short_release(release: str | None) -> str:
    """A release id's short form: the fingerprint part of ``YYYYMMDDTHHMMSSZ-<hex>`` (first 8
    hex digits, like a short git hash), else its first 12 characters; ``-`` for none."""
    if not release:
        return "-"
    stamp, sep, fingerprint = release.partition("-")
    if sep and len(stamp) == 16 and stamp.endswith("Z") and fingerprint:
        return fingerprint[:8]
    return release[:12]


def host_state(s: HostStatus) -> str:
    """One word for a host: ``unreachable``; ``empty`` (no release); ``failed`` (the live web
    unit failed); ``down`` (no web slot running); ``sick`` (running, but the health endpoint
    through Caddy did not answer 200); else ``up``."""
    if not s["reachable"]:
        return "unreachable"
    if not s["current"]:
        return "empty"
    unit = s["units"].get(s["web_unit"] or "", {})
    if unit.get("active_state") == "failed":
        return "failed"
    if not s["web_active"]:
        return "down"
    probe = s.get("probe")
    if probe is not None and probe.get("code") != 200:
        return "sick"
    return "up"


def _size(n: int | None) -> str:
    """Bytes in at most 5 characters: ``190M``, ``1.2G``, ``512K``."""
    if n is None:
        return "-"
    if n >= 10 * 2**30:
        return f"{n / 2**30:.0f}G"
    if n >= 2**30:
        return f"{n / 2**30:.1f}G"
    if n >= 2**20:
        return f"{n / 2**20:.0f}M"
    return f"{n / 1024:.0f}K"


def tls_left(days: float | None) -> str:
    """A certificate's time left in at most 4 characters: ``89d``, ``11h`` (under 2 days),
    ``exp`` (expired), ``-`` (unknown)."""
    if days is None:
        return "-"
    if days < 0:
        return "exp"
    return f"{days:.0f}d" if days >= 2 else f"{days * 24:.0f}h"


def _health(probe: Mapping[str, Any] | None) -> str:
    if probe is None or probe.get("code") is None:
        return "-" if probe is None else "no answer"
    ms = probe.get("ms")
    return f"{probe['code']} {ms:.0f}ms" if ms is not None else str(probe["code"])


def _clock(epoch: int | None) -> str:
    """``12-03 10:42:10`` (UTC; month-day and time), ``-`` for none."""
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%m-%d %H:%M:%S")


def job_result(info: Mapping[str, Any]) -> str:
    """A scheduled job's last run in a few words: ``running``, ``never ran``, ``ok``,
    ``timed out``, ``failed (exit 3)``, ``failed (signal)``…"""
    if info.get("running"):
        return "running"
    result = info.get("result")
    if result is None:
        return "never ran"
    if result == "success":
        return "ok"
    if result == "timeout":
        return "timed out"
    if result == "exit-code" and info.get("exit_status") is not None:
        return f"failed (exit {info['exit_status']})"
    return f"failed ({result})"


def job_line(name: str, info: Mapping[str, Any]) -> str:
    """``cleanup: last 12-03 10:42:10 ok, next 12-03 10:42:20`` (UTC; ``paused`` when its timer
    is not running, e.g. during a deploy; ``after this run`` while one is under way: systemd
    computes the next time when it ends)."""
    last = info.get("started") if info.get("running") else (info.get("last") or info.get("started"))
    nxt = (("after this run" if info.get("running") else "-") if info.get("next") is None
           else _clock(info.get("next"))) if info.get("timer") == "active" else (
        "paused" if info.get("timer") in ("inactive", "") else info.get("timer", "-"))
    return f"{name}: last {_clock(last)} {job_result(info)}, next {nxt}"


def status_lines(statuses: Mapping[str, HostStatus]) -> RenderableType:
    """The compact view: one line per host (host, release short id, state, health code and
    latency through Caddy, workers, app CPU, app memory, 1-minute load, TLS time left), each
    fitting an 80-column terminal; then one line per scheduled job and host (last run, its
    result, next run: :func:`job_line`); then one line per unreachable host saying why.

    Pure: returns a rich renderable (the caller prints it)."""
    # columns 2 apart (a right padding of 1 and the box's blank separator): 16+8+11+9+2+4+4+5+4
    # characters at most, plus 8 gaps, is 79
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold",
                  padding=(0, 1, 0, 0))
    table.add_column("host", no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column("release", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("state", no_wrap=True)
    for col in ("health", "wk", "cpu", "mem", "load", "tls"):
        table.add_column(col, no_wrap=True, justify="left" if col == "health" else "right")
    why: list[Text] = []
    for host, s in statuses.items():
        state = host_state(s)
        styled = Text(state, style=STATE_STYLE[state])
        if not s["reachable"]:
            table.add_row(host, "-", styled, "-", "-", "-", "-", "-", "-")
            error = str(s["error"])
            why.append(Text.assemble((f"{host}: ", "bold"), (error.removeprefix(f"{host}: "), "red")))
            continue
        probe = s.get("probe")
        load = s["host"]["load"]
        table.add_row(host, short_release(s["current"]), styled, _health(probe),
                      "-" if s["workers"] is None else str(s["workers"]),
                      f"{s['cpu_percent']:.0f}%", _size(s["memory"]),
                      f"{load[0]:.2f}" if load else "-",
                      tls_left(probe.get("tls_days")) if probe else "-")
    jobs = [Text.assemble((f"{host} ", "bold"), job_line(name, info))
            for host, s in statuses.items() if s["reachable"] for name, info in s.get("jobs", {}).items()]
    return Group(table, *jobs, *why)


def _when(epoch: int | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def status_detail(statuses: Mapping[str, HostStatus]) -> RenderableType:
    """The detail view: a block per host with the full release id and live port, the health
    answer, the certificate's expiry date, every app unit (state, restarts, memory, CPU), the
    totals, and the host's memory and load. Lines wrap at the console's width (pure)."""
    blocks: list[RenderableType] = []
    for host, s in statuses.items():
        state = host_state(s)
        head = Text.assemble((host, "bold"), "  ", (state, STATE_STYLE[state]))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        if not s["reachable"]:
            grid.add_row("error", Text(str(s["error"]), style="red"))
            blocks += [head, grid, Text("")]
            continue
        port = f" (port {s['live_port']})" if s["live_port"] else ""
        grid.add_row("release", Text((s["current"] or "none") + port))
        probe = s.get("probe")
        if probe is not None:
            answer = (f"HTTP {probe['code']} in {probe['ms']:.1f} ms" if probe["code"] is not None
                      and probe["ms"] is not None else f"no answer: {probe['error'] or 'unknown'}")
            grid.add_row("health", Text(answer))
            days = probe.get("tls_days")
            grid.add_row("tls", Text("unknown (no certificate seen)" if probe.get("tls_expires") is None
                                     else f"expires {_when(probe['tls_expires'])} ({tls_left(days)} left)"
                                     if days is None or days >= 0 else
                                     f"EXPIRED {_when(probe['tls_expires'])}"))
        units = sorted(s["units"].items())
        for i, (unit, info) in enumerate(units):
            grid.add_row("services" if i == 0 else "", Text.from_markup(_unit_line(unit, info, unit == s["web_unit"])))
        if not units:
            grid.add_row("services", Text("none"))
        for i, (name, info) in enumerate(s.get("jobs", {}).items()):
            grid.add_row("jobs" if i == 0 else "", Text(job_line(name, info)))
        grid.add_row("app", Text(f"{'-' if s['workers'] is None else s['workers']} workers, "
                                 f"{s['cpu_percent']:.1f}% cpu, {_mib(s['memory'])}, "
                                 f"{s['restarts']} restarts"))
        h = s["host"]
        grid.add_row("host", Text(f"{h['cpus']} cpus, {_mib(h['mem_available'])} of {_mib(h['mem_total'])} "
                                  f"available, load {' '.join(f'{x:.2f}' for x in h['load'])}"))
        blocks += [head, grid, Text("")]
    return Group(*blocks[:-1]) if blocks else Group()
