"""The ``release_state`` fact kind: where an app's releases stand on a host.

``arg`` is the app root (``/srv/<name>``). Parsed shape::

    {"current": "20261122T171500Z-ab12cd34ef56" | None,   # what `current` points to
     "live_port": 8001 | None,                           # the slot Caddy proxies to
     "slots": {8000: "<release id>", 8001: "<release id>"},
     "releases": ["<id>", ...],                          # sorted oldest first
     "ready": ["<id>", ...],                             # releases whose venv is built
     "active_ports": [8001],                             # web slots whose unit is active
     "lock": "who=… when=… release=…" | None,            # the deploy lock's info, if held
     "log": [{"time", "user", "action", "release", "result"}]}   # last 50 log lines
"""

from __future__ import annotations

import re
from typing import Any

from shipit.facts import FactKind
from shipit.modules.base import q


def command(root: str) -> str:
    """Shell printing the state lines for app root ``root``."""
    r = q(root)
    return f"""
r={r}
echo "current=$(readlink $r/current 2>/dev/null | sed 's|.*/||')"
echo "live_port=$(cat $r/.live-port 2>/dev/null)"
for s in $r/slots/*; do [ -L "$s" ] && echo "slot=${{s##*/}} $(readlink "$s" | sed 's|.*/||')"; done
for d in $r/releases/*/; do [ -d "$d" ] || continue; d=${{d%/}}; id=${{d##*/}}
  echo "release=$id"; [ -e "$d/.shipit/ready" ] && echo "ready=$id"; done
name=${{r##*/}}
for s in $r/slots/*; do [ -L "$s" ] || continue; p=${{s##*/}}
  systemctl is-active --quiet "$name-web@$p.service" && echo "active_port=$p"; done
[ -f $r/.deploy-lock/info ] && echo "lock=$(cat $r/.deploy-lock/info)"
tail -n 50 $r/releases.log 2>/dev/null | sed 's/^/log=/'
"""


def parse(stdout: str) -> dict[str, Any]:
    """Parse :func:`command`'s output into the documented shape."""
    state: dict[str, Any] = {"current": None, "live_port": None, "slots": {}, "releases": [],
                             "ready": [], "active_ports": [], "lock": None, "log": []}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "current":
            state["current"] = value or None
        elif key == "live_port":
            state["live_port"] = int(value) if value.isdigit() else None
        elif key == "slot":
            port, _, release = value.partition(" ")
            if port.isdigit():
                state["slots"][int(port)] = release
        elif key == "release":
            state["releases"].append(value)
        elif key == "ready":
            state["ready"].append(value)
        elif key == "active_port" and value.isdigit():
            state["active_ports"].append(int(value))
        elif key == "lock":
            state["lock"] = value or None
        elif key == "log":
            parts = value.split("\t")
            if len(parts) == 5:
                state["log"].append(dict(zip(("time", "user", "action", "release", "result"), parts)))
    state["releases"].sort()
    return state


def release_sort_key(release_id: str) -> str:
    """Release ids sort by time: ``YYYYmmddTHHMMSSZ-<hash>``."""
    return release_id if re.match(r"^\d{8}T\d{6}Z-", release_id) else "0" + release_id


KINDS = [FactKind("release_state", command, parse, "an app's releases, slots, lock and log")]
