"""Find this lab's long-running processes (nspawn, apt-cacher-ng) by their command lines.

No pid files to go stale: a process belongs to a lab when its argv contains a path inside the
lab's own directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["find_pids", "find_container_inits", "children", "alive", "terminate", "spawn_detached"]


def _cmdline(pid: int) -> list[str] | None:
    """argv of ``pid`` or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (OSError, IndexError):
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a] or None


def find_pids(program: str, needle: str) -> dict[int, list[str]]:
    """Live processes whose argv[0] ends with ``program`` and whose argv contains ``needle``.

    Returns ``{pid: argv}``.
    """
    found: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = _cmdline(int(entry))
        if argv and os.path.basename(argv[0]) == program and any(needle in a for a in argv):
            found[int(entry)] = argv
    return found


def find_container_inits(needle: str) -> list[int]:
    """PID-namespace inits (a container's PID 1) whose root mount's options contain ``needle``.

    Finds containers that outlived their nspawn (e.g. nspawn was SIGKILLed): pass
    ``upperdir=<overlay upper dir>`` (one host) or a lab directory path (a whole lab).
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
            if len(nspid) < 2 or nspid[-1] != "1":
                continue
            with open(f"/proc/{entry}/mountinfo") as f:
                root = next((line for line in f if line.split()[4] == "/"), "")
        except (OSError, StopIteration, IndexError):
            continue
        if needle in root:
            found.append(int(entry))
    return found


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty if it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    return _cmdline(pid) is not None


def terminate(pids: Iterable[int], grace: float = 10.0, kill_children_first: bool = True) -> None:
    """SIGTERM every pid, wait up to ``grace`` seconds, then SIGKILL survivors (children first).

    For an nspawn process, SIGTERM triggers an orderly shutdown of the container; SIGKILL of
    the container's PID 1 (its child) tears the whole PID namespace down.
    """
    pids = list(pids)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            if kill_children_first:
                for child in children(pid):
                    _signal(child, signal.SIGKILL)
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def spawn_detached(argv: Sequence[str], log: Path) -> None:
    """Start ``argv`` in its own session, reparented away from us, output appended to ``log``.

    Uses ``setsid --fork`` so the process outlives this one and is never our zombie.
    """
    with open(log, "ab") as out:
        subprocess.run(["setsid", "--fork", *argv], stdin=subprocess.DEVNULL, stdout=out,
                       stderr=subprocess.STDOUT, check=True, close_fds=True)
