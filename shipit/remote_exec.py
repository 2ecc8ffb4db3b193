"""``shipit exec``: one shell line on many hosts, its output shown live, line by line.

Each line is printed as it arrives, prefixed with its host (``web2 | …``; stderr lines go to
stderr), so a long command (``journalctl -f``, a slow migration check) is watched as it runs,
not read at the end; a one-line status per host follows (``web2 rc=0``, ``unreachable``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from shipit.pool import TransportPool
from shipit.streaming import HostEnd, LineSplitter, run_streaming


def prefixed(host: str, line: str, width: int) -> str:
    """``web2  | line``: the host padded to ``width``, then the line as it came."""
    return f"{host.ljust(width)} | {line}"


def run_exec(pool: TransportPool, hosts: Sequence[str], line: str, *, become: bool,
             timeout: float | None, forks: int, live: bool = True) -> list[dict[str, Any]]:
    """Run the shell ``line`` on ``hosts``; with ``live`` print each output line as it comes.

    Returns:
        ``[{"host", "rc", "stdout", "stderr"}]`` in ``hosts`` order (``rc`` None when the
        host was unreachable or the command did not finish; ``stderr`` then says why).
    """
    width = max((len(h) for h in hosts), default=0)
    split = {(h, s): LineSplitter() for h in hosts for s in ("stdout", "stderr")}
    kept: dict[tuple[str, str], list[bytes]] = {key: [] for key in split}

    def show(host: str, stream: str, lines: list[str]) -> None:
        if not live:
            return
        target = sys.stdout if stream == "stdout" else sys.stderr
        for text in lines:
            target.write(prefixed(host, text, width) + "\n")
        target.flush()

    def on_output(host: str, stream: str, data: bytes) -> None:
        kept[(host, stream)].append(data)
        show(host, stream, split[(host, stream)].feed(data))

    def on_end(end: HostEnd) -> None:
        for stream in ("stdout", "stderr"):
            show(end.host, stream, split[(end.host, stream)].flush())
        if live:
            status = (("unreachable: " if end.unreachable else "failed: ") + (end.error or "")
                      if end.rc is None else f"rc={end.rc}")
            sys.stdout.write(f"{end.host.ljust(width)} {status}\n")
            sys.stdout.flush()

    ends = run_streaming(pool, hosts, lambda h: line + "\n", on_output, become=become,
                         timeout=timeout, forks=forks, on_end=on_end)
    results = []
    for host, end in ends.items():
        stdout = b"".join(kept[(host, "stdout")]).decode("utf-8", "replace")
        stderr = b"".join(kept[(host, "stderr")]).decode("utf-8", "replace")
        if end.rc is None:
            stderr = (stderr + "\n" if stderr else "") + (end.error or "")
        results.append({"host": host, "rc": end.rc, "stdout": stdout, "stderr": stderr})
    return results
