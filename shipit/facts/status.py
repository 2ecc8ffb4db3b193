"""The ``app_status`` fact kind: how an app's systemd services are doing on a host right now.

``arg`` is the app's name; paths and unit names come from :class:`shipit.layout.Layout`: the
app's units are the loaded ones matching ``<name>-*@*.service`` (web slots ``<name>-web@PORT``
and processes ``<name>-<proc>@N``; the name may itself contain ``-``).
The command samples each unit's cgroup CPU time twice, ~0.5 s apart, in the same remote
invocation, so CPU % costs no extra round trip. Parsed shape (all keys always present)::

    {"app": "example",                          # the app's name
     "current": "<release id>" | None,          # what `current` points to
     "live_port": 8001 | None,                  # the web slot Caddy proxies to (the one the
                                                # app's web.sock points at, else .live-port)
     "units": {"example-web@8001.service": {
         "kind": "web" | "process",
         "name": "web@8001",                    # the unit without the app's prefix
         "instance": "8001",                    # the part after '@'
         "active_state": "active", "sub_state": "running",
         "restarts": 0,                         # NRestarts (automatic restarts by systemd)
         "main_pid": 1234,                      # 0 when not running
         "memory": 123456789 | None,            # bytes: the cgroup's memory, else the sum of its processes' RSS
         "cpu_percent": 1.5 | None,             # % of one CPU over the sample (None: unknown)
         "workers": 2 | None},                  # web units only: the server's worker processes
       ...}}

``workers`` counts the main process's children that are worker processes (multiprocessing's
resource tracker excluded); a running web unit with no such children serves from its main
process alone and counts as 1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.layout import Layout
from shipit.quoting import q

SAMPLE_SECONDS = 0.5

# Helpers of the remote script. __procs UNIT: the pids in the unit's cgroup (cgroup v2, or the
# v1 name=systemd hierarchy). __cpu UNIT: "<now ns> <usage>", usage being the cgroup's cpu.stat
# "u<usec>" (cgroup v2), else systemd's CPUUsageNSec "n<nsec>", else the sum of utime+stime of
# the unit's processes from /proc "t<clock ticks>" (e.g. inside containers with cgroup v1).
# __rss UNIT: the sum of VmRSS (kB) of the unit's processes.
_HELPERS = r"""
__cg() { systemctl show -p ControlGroup --value "$1" 2>/dev/null; }
__procs() {
  cg=$(__cg "$1"); [ -n "$cg" ] || return 0
  for b in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
    if [ -r "$b$cg/cgroup.procs" ]; then cat "$b$cg/cgroup.procs"; return 0; fi
  done
}
__cpu() {
  cg=$(__cg "$1"); u=""
  [ -n "$cg" ] && [ -r "/sys/fs/cgroup$cg/cpu.stat" ] && u=$(sed -n 's/^usage_usec //p' "/sys/fs/cgroup$cg/cpu.stat")
  if [ -n "$u" ]; then echo "$(date +%s%N) u$u"; return; fi
  u=$(systemctl show -p CPUUsageNSec --value "$1" 2>/dev/null)
  case "$u" in ''|*[!0-9]*) ;; *) echo "$(date +%s%N) n$u"; return;; esac
  t=0
  for p in $(__procs "$1"); do
    set -- $(sed 's/.*) //' /proc/$p/stat 2>/dev/null) && [ $# -ge 13 ] && t=$((t + ${12} + ${13}))
  done
  echo "$(date +%s%N) t$t"
}
__rss() {
  k=0
  for p in $(__procs "$1"); do
    v=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\) kB/\1/p' /proc/$p/status 2>/dev/null); k=$((k + ${v:-0}))
  done
  echo "$k"
}
"""


def command(app: str) -> str:
    """Shell printing the status lines of app ``app`` (exits 0 always)."""
    lay = Layout(app)
    return f"""
name={q(app)}
echo "app=$name"
echo "current=$(readlink {q(lay.current)} 2>/dev/null | sed 's|.*/||')"
echo "live_port=$(cat {q(lay.live_port_file)} 2>/dev/null)"
echo "live_link=$(readlink {q(lay.live_socket)} 2>/dev/null)"
echo "clk_tck=$(getconf CLK_TCK 2>/dev/null)"
{_HELPERS}
units=$(systemctl list-units --all --plain --no-legend "$name-*" 2>/dev/null | while read -r u _; do
  case "$u" in "$name"-*@*.service) echo "$u";; esac; done)
for u in $units; do echo "cpu0 $u $(__cpu "$u")"; done
sleep {SAMPLE_SECONDS}
for u in $units; do
  echo "cpu1 $u $(__cpu "$u")"
  systemctl show -p ActiveState,SubState,NRestarts,MainPID,MemoryCurrent,ControlGroup "$u" 2>/dev/null | sed "s|^|show $u |"
  cg=$(systemctl show -p ControlGroup --value "$u" 2>/dev/null)
  if [ -n "$cg" ] && [ -r "/sys/fs/cgroup$cg/memory.current" ]; then echo "mem $u $(cat "/sys/fs/cgroup$cg/memory.current")"
  else echo "rss_kb $u $(__rss "$u")"; fi
  pid=$(systemctl show -p MainPID --value "$u" 2>/dev/null)
  if [ -n "$pid" ] && [ "$pid" != 0 ]; then
    for c in $(cat /proc/$pid/task/*/children 2>/dev/null); do
      echo "child $u $c $(tr '\\0' ' ' < /proc/$c/cmdline 2>/dev/null)"
    done
  fi
done
"""


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _usage_ns(value: str, clk_tck: int) -> int | None:
    """``u<usec>`` / ``n<nsec>`` / ``t<clock ticks>`` -> ns; anything else -> None."""
    unit_ns = {"u": 1000, "n": 1, "t": 10**9 // clk_tck}.get(value[:1])
    return int(value[1:]) * unit_ns if unit_ns and value[1:].isdigit() else None


def _new_unit(unit: str, app: str) -> dict[str, Any]:
    kind = Layout(app).unit_kind(unit) if app else None
    if kind is None:  # not one of the app's names (an old output without app=): best effort
        base, _, instance = unit.removesuffix(".service").partition("@")
        name = base.rsplit("-", 1)[-1]
    else:
        name, instance = kind
    return {"kind": "web" if name == "web" else "process", "name": f"{name}@{instance}",
            "instance": instance,
            "active_state": "", "sub_state": "", "restarts": 0, "main_pid": 0,
            "memory": None, "cpu_percent": None, "workers": None}


def parse(stdout: str) -> dict[str, Any]:
    """Parse :func:`command`'s output into the documented shape (pure; unknown lines ignored)."""
    state: dict[str, Any] = {"app": "", "current": None, "live_port": None, "units": {}}
    units: dict[str, dict[str, Any]] = state["units"]
    samples: dict[str, dict[str, tuple[int, int | None]]] = {"cpu0": {}, "cpu1": {}}
    children: dict[str, list[str]] = {}
    clk_tck = 100
    linked: int | None = None
    for line in stdout.splitlines():
        if line.startswith("clk_tck="):
            clk_tck = _int(line.partition("=")[2].strip()) or 100
            continue
        if line.startswith("app="):
            state["app"] = line.partition("=")[2].strip()
            continue
        if line.startswith("current="):
            state["current"] = line.partition("=")[2].strip() or None
            continue
        if line.startswith("live_port="):
            if linked is None:
                state["live_port"] = _int(line.partition("=")[2].strip())
            continue
        if line.startswith("live_link="):
            linked = Layout(state["app"]).slot_of_socket(line.partition("=")[2].strip()) if state["app"] else None
            if linked is not None:
                state["live_port"] = linked
            continue
        tag, _, rest = line.partition(" ")
        unit, _, value = rest.partition(" ")
        if tag not in ("cpu0", "cpu1", "show", "mem", "rss_kb", "child") or not unit.endswith(".service"):
            continue
        info = units.setdefault(unit, _new_unit(unit, state["app"]))
        if tag in samples:
            when, _, usage = value.partition(" ")
            if when.isdigit():
                samples[tag][unit] = (int(when), _usage_ns(usage.strip(), clk_tck))
        elif tag == "show":
            key, _, val = value.partition("=")
            val = val.strip()
            if key == "ActiveState":
                info["active_state"] = val
            elif key == "SubState":
                info["sub_state"] = val
            elif key == "NRestarts":
                info["restarts"] = _int(val) or 0
            elif key == "MainPID":
                info["main_pid"] = _int(val) or 0
            elif key == "MemoryCurrent" and info["memory"] is None:
                info["memory"] = _int(val)  # "[not set]" -> None
        elif tag == "mem":
            info["memory"] = _int(value.strip())  # the cgroup file wins over MemoryCurrent
        elif tag == "rss_kb" and info["memory"] is None and value.strip().isdigit():
            info["memory"] = int(value.strip()) * 1024
        elif tag == "child":
            children.setdefault(unit, []).append(value)
    for unit, info in units.items():
        before, after = samples["cpu0"].get(unit), samples["cpu1"].get(unit)
        if before and after and before[1] is not None and after[1] is not None and after[0] > before[0]:
            info["cpu_percent"] = round(100.0 * max(0, after[1] - before[1]) / (after[0] - before[0]), 1)
        if info["kind"] == "web" and info["main_pid"]:
            workers = [c for c in children.get(unit, []) if "resource_tracker" not in c]
            info["workers"] = len(workers) or 1
    return state


APP_STATUS = FactKind("app_status", command, parse, "an app's units: state, restarts, workers, CPU and memory")

#: Seconds the health probe may take in all (curl's --max-time); connecting: PROBE_CONNECT.
PROBE_SECONDS = 5
PROBE_CONNECT = 3


def probe_command(arg: str) -> str:
    """Shell asking the app's health endpoint through Caddy on this host (exits 0 always).

    ``arg`` is ``{"host": DOMAIN, "path": HEALTH_PATH}`` as JSON (see :func:`web_probe`).
    One ``curl -v`` over https to 127.0.0.1:443 with the domain as SNI and Host, at most
    :data:`PROBE_SECONDS` s, prints the status code and total time; its verbose output carries
    the served certificate's ``expire date``. Lines: ``now=EPOCH``, ``probe=CODE SECONDS``,
    ``expire=Mon DD HH:MM:SS YYYY GMT``, ``error=curl's message``.
    """
    want = json.loads(arg)
    host, path = str(want["host"]), str(want["path"])
    url = q(f"https://{host}{path}")
    return f"""
echo "now=$(date +%s)"
if command -v curl >/dev/null 2>&1; then
  curl -sS -k -v -o /dev/null --connect-timeout {PROBE_CONNECT} --max-time {PROBE_SECONDS} \\
    -w '\\nprobe=%{{http_code}} %{{time_total}}\\n' --resolve {q(host + ":443:127.0.0.1")} {url} 2>&1 |
    sed -n -e 's/^\\*[[:space:]]*expire date:[[:space:]]*/expire=/p' -e 's/^probe=/probe=/p' \\
      -e 's/^curl: ([0-9]*) /error=/p'
else
  echo "error=curl is not installed"
fi
"""


def parse_probe(stdout: str) -> dict[str, Any]:
    """Parse :func:`probe_command`'s output (pure; unknown lines ignored)::

        {"code": 200 | None,             # HTTP status through Caddy (None: no answer)
         "ms": 12.3 | None,              # the request's total time, milliseconds
         "tls_expires": EPOCH | None,    # the served certificate's notAfter (seconds, UTC)
         "tls_days": 0.5 | None,         # days from the host's clock to that
         "error": "why not" | None}      # curl's message when the request failed
    """
    out: dict[str, Any] = {"code": None, "ms": None, "tls_expires": None, "tls_days": None, "error": None}
    now: int | None = None
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        value = value.strip()
        if key == "now":
            now = _int(value)
        elif key == "probe":
            code, _, seconds = value.partition(" ")
            out["code"] = int(code) if code.isdigit() and int(code) > 0 else None
            try:
                out["ms"] = round(float(seconds) * 1000, 1) if out["code"] is not None else None
            except ValueError:
                out["ms"] = None
        elif key == "expire" and out["tls_expires"] is None:
            try:
                when = datetime.strptime(" ".join(value.split()).removesuffix(" GMT"), "%b %d %H:%M:%S %Y")
            except ValueError:
                continue
            out["tls_expires"] = int(when.replace(tzinfo=UTC).timestamp())
        elif key == "error" and value:
            out["error"] = value
    if out["tls_expires"] is not None and now is not None:
        out["tls_days"] = round((out["tls_expires"] - now) / 86400, 1)
    return out


WEB_PROBE = FactKind("web_probe", probe_command, parse_probe,
                     "the health endpoint through Caddy: HTTP code, latency, TLS certificate expiry")
KINDS = [APP_STATUS, WEB_PROBE]


def app_status(app: str) -> FactQuery:
    """The ``app_status`` fact of app ``app`` on a host (shape in the module doc)."""
    return APP_STATUS.query(app)


def web_probe(host: str, path: str) -> FactQuery:
    """The ``web_probe`` fact: ``https://HOST{path}`` through Caddy on the host itself
    (shape in :func:`parse_probe`)."""
    return WEB_PROBE.query(json.dumps({"host": host, "path": path}, sort_keys=True))
