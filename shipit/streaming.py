"""Run one script on several hosts at once and hand their output over as it arrives.

For ``shipit logs`` (``-f`` follows every host until Ctrl-C) and ``shipit exec`` (output live,
per host, instead of at the end). Each host is that host's own: one unreachable or failing
host ends as a :class:`HostEnd` with its reason, the others go on (fabric's ``GroupResult``
idea, streamed). Ctrl-C (``KeyboardInterrupt`` in the calling thread) cancels every host's
command (the transports send SIGTERM to the remote process groups) and is re-raised once
the workers have stopped. No shell text here: scripts come from pure builders.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from shipit.errors import ShipitError
from shipit.pool import TransportPool
from shipit.transport import CommandInterrupted, HostUnreachable

#: Seconds the calling thread sleeps between ``on_tick`` calls while hosts run.
TICK = 0.05
#: Seconds to wait for the workers after a Ctrl-C (their commands are cancelled by then).
STOP_WAIT = 10.0


@dataclass(frozen=True)
class HostEnd:
    """How a host's command ended: ``rc`` (None when it did not run to an exit status) and
    ``error`` (why not: unreachable, timed out, interrupted; None when it ran)."""

    host: str
    rc: int | None
    error: str | None = None
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0


class LineSplitter:
    """Cuts a stream of byte chunks into whole lines (the last one kept until its newline)."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[str]:
        """The whole lines completed by ``data`` (decoded UTF-8, errors replaced)."""
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        return [line.decode("utf-8", "replace") for line in lines]

    def flush(self) -> list[str]:
        """What is left (a last line without a newline), if anything."""
        rest, self._rest = self._rest, b""
        return [rest.decode("utf-8", "replace")] if rest else []


OutputCallback = Callable[[str, str, bytes], None]   # (host, "stdout"|"stderr", data)
EndCallback = Callable[[HostEnd], None]


def run_streaming(pool: TransportPool, hosts: Sequence[str], script_of: Callable[[str], str],
                  on_output: OutputCallback, *, become: bool = True, timeout: float | None = None,
                  forks: int = 20, on_end: EndCallback | None = None,
                  on_tick: Callable[[], None] | None = None) -> dict[str, HostEnd]:
    """Run ``script_of(host)`` on every host of ``hosts`` (``forks`` at a time), streaming.

    Args:
        on_output: called with each chunk of each host's output as it arrives; calls are
            serialized (one at a time, under one lock), from worker threads.
        timeout: wall-clock seconds per host's command; None: until it ends or Ctrl-C.
        on_end: called (under the same lock) when a host's command ends, however.
        on_tick: called from the calling thread (under the lock) about every ``TICK``
            seconds while commands run, and once at the end (for a live merge's flush).

    Returns:
        host -> :class:`HostEnd`, in ``hosts`` order.

    Raises:
        KeyboardInterrupt: Ctrl-C (or a ``Terminated`` signal) while running: every command
            was cancelled first.
    """
    lock = threading.Lock()

    def one(host: str) -> HostEnd:
        def sink(stream: str, data: bytes) -> None:
            with lock:
                on_output(host, stream, data)

        try:
            rc = pool.get(host).stream(script_of(host), sink, become=become, timeout=timeout)
            end = HostEnd(host, rc)
        except CommandInterrupted:
            end = HostEnd(host, None, f"{host}: interrupted")
        except HostUnreachable as exc:
            end = HostEnd(host, None, exc.message, unreachable=True)
        except ShipitError as exc:
            end = HostEnd(host, None, exc.message)
        if on_end is not None:
            with lock:
                on_end(end)
        return end

    workers = ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts))))
    futures: dict[Future[HostEnd], str] = {workers.submit(one, h): h for h in hosts}
    try:
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=TICK, return_when=FIRST_COMPLETED)
            if on_tick is not None:
                with lock:
                    on_tick()
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        for transport in pool.opened().values():
            transport.cancel()
        wait(list(futures), timeout=STOP_WAIT)
        raise
    finally:
        workers.shutdown(wait=False, cancel_futures=True)
    ends = {futures[f]: f.result() for f in futures}
    return {h: ends[h] for h in hosts}
