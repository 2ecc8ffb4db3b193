"""The ``release_state`` fact kind: where an app's releases stand on a host.

``arg`` is the app's name; every path comes from :class:`shipit.layout.Layout`. Parsed shape::

    {"current": "20261122T171500Z-ab12cd34ef56" | None,   # what `current` points to
     "live_port": 8001 | None,                           # the slot Caddy proxies to: the
                                                         # one web.sock points at, else .live-port
     "live_link": "/run/<app>/web-8001/web.sock" | None,  # what web.sock points to
     "live_release": "<release id>" | None,              # what the `live` link points to
     "slots": {8000: "<release id>", 8001: "<release id>"},
     "releases": ["<id>", ...],                          # sorted oldest first
     "ready": ["<id>", ...],                             # releases whose venv is built
     "unpacked": ["<id>", ...],                          # releases fully unpacked
     "uses": {"<id>": ["<sha256>", ...]},                # the parts each was unpacked from
     "parts": {"<sha256>": 16930},                       # the parts store: digest -> bytes
     "active_ports": [8001],                             # web slots whose unit is active
     "lock": "who=… when=… release=…" | None,            # the deploy lock's info, if held
     "log": [{"time", "user", "action", "release", "state"}],   # last 500 log lines
     "app_ports": {"other-app": [9000, 9001]}}          # every app's web slot ports here

The log's states are explained in :mod:`shipit.releases`.
"""

from __future__ import annotations

import re
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.layout import Layout
from shipit.quoting import q
from shipit.releases import parse_log_line

LOG_LINES = 500
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def command(app: str) -> str:
    """Shell printing the state lines of app ``app``."""
    lay = Layout(app)
    return f"""
r={q(lay.root)}
echo app={q(app)}
echo "current=$(readlink {q(lay.current)} 2>/dev/null | sed 's|.*/||')"
echo "live_port=$(cat {q(lay.live_port_file)} 2>/dev/null)"
echo "live_link=$(readlink {q(lay.live_socket)} 2>/dev/null)"
echo "live_release=$(readlink {q(lay.live_release)} 2>/dev/null | sed 's|.*/||')"
for s in {q(lay.slots)}/*; do [ -L "$s" ] && echo "slot=${{s##*/}} $(readlink "$s" | sed 's|.*/||')"; done
for d in {q(lay.releases)}/*/; do [ -d "$d" ] || continue; d=${{d%/}}; id=${{d##*/}}
  echo "release=$id"; [ -e "$d/.shipit/ready" ] && echo "ready=$id"
  [ -e "$d/.shipit/unpacked" ] && echo "unpacked=$id"
  [ -f "$d/.shipit/parts" ] && echo "uses=$id $(tr '\\n' ' ' < "$d/.shipit/parts")"; done
for f in {q(lay.parts)}/*.gz; do [ -f "$f" ] || continue; n=${{f##*/}}
  echo "part=${{n%.gz}} $(stat -c %s -- "$f")"; done
for s in {q(lay.slots)}/*; do [ -L "$s" ] || continue; p=${{s##*/}}
  systemctl is-active --quiet {q(lay.web_unit_prefix)}"$p.service" && echo "active_port=$p"; done
[ -f {q(lay.lock_info)} ] && echo "lock=$(cat {q(lay.lock_info)})"
tail -n {LOG_LINES} {q(lay.release_log)} 2>/dev/null | sed 's/^/log=/'
for f in {lay.all_ports_files}; do [ -f "$f" ] || continue; d=${{f%/.ports}}
  echo "app_ports=${{d##*/}} $(cat "$f")"; done
"""


def parse(stdout: str) -> dict[str, Any]:
    """Parse :func:`command`'s output into the documented shape. The live slot is the one the
    app's ``web.sock`` link points at (what Caddy dials); without a link (a host last switched
    by an older shipit), the ``.live-port`` file says."""
    app = ""
    state: dict[str, Any] = {"current": None, "live_port": None, "live_link": None, "live_release": None, "slots": {}, "releases": [],
                             "ready": [], "active_ports": [], "lock": None, "log": [], "app_ports": {},
                             "unpacked": [], "uses": {}, "parts": {}}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "log":
            entry = parse_log_line(value)
            if entry is not None:
                state["log"].append(entry)
            continue
        value = value.strip()
        if key == "app":
            app = value
        elif key == "current":
            state["current"] = value or None
        elif key == "live_port":
            state["live_port"] = int(value) if value.isdigit() else None
        elif key == "live_link":
            state["live_link"] = value or None
        elif key == "live_release":
            state["live_release"] = value or None
        elif key == "slot":
            port, _, release = value.partition(" ")
            if port.isdigit():
                state["slots"][int(port)] = release
        elif key == "release":
            state["releases"].append(value)
        elif key == "ready":
            state["ready"].append(value)
        elif key == "unpacked":
            state["unpacked"].append(value)
        elif key == "uses":
            release, _, shas = value.partition(" ")
            state["uses"][release] = [s for s in shas.split() if SHA256_RE.fullmatch(s)]
        elif key == "part":
            sha, _, size = value.partition(" ")
            if SHA256_RE.fullmatch(sha) and size.isdigit():   # never a temp name: see release_artifact
                state["parts"][sha] = int(size)
        elif key == "active_port" and value.isdigit():
            state["active_ports"].append(int(value))
        elif key == "lock":
            state["lock"] = value or None
        elif key == "app_ports":
            name, _, ports = value.partition(" ")
            state["app_ports"][name] = [int(p) for p in ports.split() if p.isdigit()]
    state["releases"].sort()
    linked = Layout(app).slot_of_socket(state["live_link"]) if app and state["live_link"] else None
    if linked is not None:
        state["live_port"] = linked
    return state


RELEASE_STATE = FactKind("release_state", command, parse, "an app's releases, slots, lock and log")
KINDS = [RELEASE_STATE]


def release_state(app: str) -> FactQuery:
    """The ``release_state`` fact of app ``app`` on a host (shape in the module doc)."""
    return RELEASE_STATE.query(app)
