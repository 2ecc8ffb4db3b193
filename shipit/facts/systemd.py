"""The ``unit`` fact kind: a systemd unit's state, from ``systemctl show -p …``.

Arg: a unit name with its suffix (``app.service``). Parsed shape (all keys present)::

    {"load_state": "loaded" | "not-found" | "masked" | "" ,  # "" = systemctl gave nothing
     "active_state": "active" | "inactive" | "failed" | "activating" | …,
     "sub_state": "running" | "dead" | "auto-restart" | …,
     "unit_file_state": "enabled" | "disabled" | "static" | "masked" | "" | …,
     "n_restarts": 0, "main_pid": 0,                    # ints; 0 when not running
     "fragment_path": "/etc/systemd/system/app.service" | ""}

``load_state`` is ``""`` when systemd is not running (e.g. a container without systemd as PID
1): modules report that as a failure rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shipit.facts import FactKind, FactQuery
from shipit.quoting import q

PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState", "NRestarts", "MainPID",
              "FragmentPath")
_KEYS = {"LoadState": "load_state", "ActiveState": "active_state", "SubState": "sub_state",
         "UnitFileState": "unit_file_state", "FragmentPath": "fragment_path"}


def unit_command(name: str) -> str:
    """``systemctl show`` of the properties in :data:`PROPERTIES` for unit ``name``."""
    return f"systemctl show -p {','.join(PROPERTIES)} -- {q(name)}"


def unit_batch_command(names: Sequence[str]) -> str:
    """One ``systemctl show`` for many units: one block per unit, in order, blank-line separated.

    ``systemctl show`` gives up on the whole list for one name it cannot show (a template such
    as ``app-web@.service``); then each unit is shown alone after a ``@@unit=<name>`` line.
    """
    props = ",".join(PROPERTIES)
    args = " ".join(q(n) for n in names)
    return (f"if __units=$(systemctl show -p {props} -- {args}); then printf '%s\\n' \"$__units\"\n"
            f"else for __unit in {args}; do echo \"@@unit=$__unit\"; "
            f"systemctl show -p {props} -- \"$__unit\"; done; fi")


def split_unit_batch(stdout: str, names: Sequence[str]) -> list[str]:
    """Per unit, its block (or its ``@@unit=`` section). When the blocks don't pair up with the
    names (systemd not running prints none), every unit reads as ``""``, which
    :func:`parse_unit` takes as no systemd."""
    if "@@unit=" in stdout:
        sections: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in stdout.splitlines():
            if line.startswith("@@unit="):
                current = sections.setdefault(line[len("@@unit="):], [])
            elif current is not None:
                current.append(line + "\n")
        return ["".join(sections.get(n, [])) for n in names]
    blocks = [b for b in stdout.strip("\n").split("\n\n") if b.strip()]
    if len(blocks) != len(names):
        return ["" for _ in names]
    return [b + "\n" for b in blocks]


def parse_unit(stdout: str) -> dict[str, Any]:
    """Parse ``Key=Value`` lines (any order) into the documented shape."""
    raw: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key] = value.strip()
    result: dict[str, Any] = {v: raw.get(k, "") for k, v in _KEYS.items()}
    for key, name in (("NRestarts", "n_restarts"), ("MainPID", "main_pid")):
        result[name] = int(raw[key]) if raw.get(key, "").isdigit() else 0
    return result


def is_running(fact: Mapping[str, Any]) -> bool:
    """Active, reloading, or starting up (but not waiting to restart after a crash)."""
    state = fact["active_state"]
    return state in ("active", "reloading") or (
        state == "activating" and fact["sub_state"] != "auto-restart")


UNIT = FactKind("unit", unit_command, parse_unit, "state of a systemd unit",
                batch=unit_batch_command, split=split_unit_batch)
KINDS = [UNIT]


def unit(name: str) -> FactQuery:
    """The ``unit`` fact of systemd unit ``name`` (with its suffix: ``app.service``)."""
    return UNIT.query(name)
