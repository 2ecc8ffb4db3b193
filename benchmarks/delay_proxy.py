"""An emulated WAN link in user space: a TCP proxy that delays every chunk, in each direction.

For kernels without netem (``tc qdisc ... netem delay`` is what one would use otherwise).
``benchmarks/anchors.py --latency-ms MS`` starts one per lab and points every tool at it::

    python benchmarks/delay_proxy.py --delay-ms 25 web1=10.0.0.2:22 web2=10.0.0.3:22

For every ``NAME=ADDRESS:PORT`` it listens on ``127.0.0.1`` on a port the kernel picks and
forwards each connection it accepts to ``ADDRESS:PORT``. Once every port listens it prints one
JSON line on stdout, ``{"web1": 40123, "web2": 40125}`` (NAME to its port), and nothing more.

The link: a chunk read from one side at time t (monotonic clock) is written to the other side
at t + delay. Each direction of a connection has its own FIFO queue of ``(due time, chunk)``;
its writer waits until each chunk's due time, so order is kept and a chunk waits no longer than
the delay behind the ones before it (no head-of-line accumulation: a burst of chunks read within
a millisecond leaves within a millisecond, one delay later). EOF (a half-close) travels the same
way. The TCP handshake costs one round trip, as on a real link: the upstream connection is
opened one delay after the client's, and what the client sends is read from two delays after
it connected (its connect() would return one round trip after its SYN). So a new connection's
first bytes reach the server 3 x delay after connect(), and the server's first bytes reach the
client 2 x delay after it. ``--no-handshake`` forwards at once instead.

Bandwidth is not limited; at most ``MAX_QUEUED`` chunks (of up to ``CHUNK`` bytes) wait in each
direction, after which reading from that side pauses (TCP flow control does the rest).

SIGTERM or SIGINT (or, with ``--exit-on-stdin-eof``, the end of stdin: the parent is gone):
the listeners close, open connections are dropped, exit status 0. Nothing is logged; the
proxy never sees anything but the SSH protocol's encrypted bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import sys
from dataclasses import dataclass

#: Bytes per read (one chunk at most).
CHUNK = 65536
#: Chunks waiting per direction before reading from that side pauses.
MAX_QUEUED = 256


@dataclass(frozen=True)
class Target:
    """One proxied host: ``name`` (the key in the ports line), where to forward (``address``, ``port``)."""

    name: str
    address: str
    port: int

    @classmethod
    def parse(cls, spec: str) -> Target:
        """``NAME=ADDRESS:PORT`` (ADDRESS may be an IPv6 address in brackets)."""
        name, sep, rest = spec.partition("=")
        address, sep2, port = rest.rpartition(":")
        if not (name and sep and sep2 and address and port.isdigit()):
            raise argparse.ArgumentTypeError(f"expected NAME=ADDRESS:PORT, got {spec!r}")
        return cls(name, address.strip("[]"), int(port))


async def _sleep_until(due: float) -> None:
    """Sleep until ``due`` (seconds, on the event loop's monotonic clock)."""
    delay = due - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, start: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk written ``delay`` seconds after it was read.

    Reading starts at ``start`` (loop time, seconds). Ends after forwarding EOF (as a half-close);
    a reset on either side raises (OSError), the other half of this direction cancelled.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=MAX_QUEUED)

    async def read_side() -> None:
        await _sleep_until(start)
        while True:
            chunk = await reader.read(CHUNK)
            await queue.put((loop.time() + delay, chunk))
            if not chunk:
                return

    async def write_side() -> None:
        while True:
            due, chunk = await queue.get()
            await _sleep_until(due)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    tasks = [asyncio.create_task(read_side()), asyncio.create_task(write_side())]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


class DelayProxy:
    """The listeners and open connections of one proxy process; ``delay`` in seconds."""

    def __init__(self, targets: list[Target], delay: float, handshake: bool = True) -> None:
        self.targets = targets
        self.delay = delay
        self.handshake = handshake
        self.servers: list[asyncio.Server] = []
        self.connections: set[asyncio.Task[None]] = set()

    async def start(self) -> dict[str, int]:
        """Listen for every target; returns ``{name: port on 127.0.0.1}``."""
        ports: dict[str, int] = {}
        for target in self.targets:
            server = await asyncio.start_server(functools.partial(self._accept, target=target), "127.0.0.1", 0)
            self.servers.append(server)
            ports[target.name] = server.sockets[0].getsockname()[1]
        return ports

    def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, target: Target) -> None:
        """A new client connection: served by a task of our own (cancelled by :meth:`close`; asyncio's
        own task for a coroutine callback reports a cancellation as an error on Python 3.11)."""
        task = asyncio.create_task(self._connection(client_r, client_w, target))
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                          target: Target) -> None:
        """One client connection, forwarded to ``target`` through the delayed link both ways."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        upstream_w: asyncio.StreamWriter | None = None
        try:
            if self.handshake:
                await asyncio.sleep(self.delay)  # the SYN on its way to the host
            upstream_r, upstream_w = await asyncio.open_connection(target.address, target.port)
            client_start = t0 + 2 * self.delay if self.handshake else t0
            directions = [asyncio.create_task(_pump(client_r, upstream_w, self.delay, client_start)),
                          asyncio.create_task(_pump(upstream_r, client_w, self.delay, loop.time()))]
            try:
                pending = set(directions)
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    if any(t.exception() for t in done):
                        break  # a reset: drop the whole connection
            finally:
                for t in directions:
                    t.cancel()
                await asyncio.gather(*directions, return_exceptions=True)
        except OSError:
            pass  # upstream unreachable, or a reset: the client sees the connection close
        finally:
            for w in (client_w, upstream_w):
                if w is not None:
                    w.close()

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        for server in self.servers:
            server.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()


async def serve(targets: list[Target], delay_ms: float, handshake: bool, exit_on_stdin_eof: bool) -> None:
    """Run the proxy until SIGTERM/SIGINT (or the end of stdin); prints the ports line once listening."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if exit_on_stdin_eof:
        def stdin_readable() -> None:
            try:
                if os.read(0, 4096):
                    return
            except OSError:
                pass
            loop.remove_reader(0)
            stop.set()

        loop.add_reader(0, stdin_readable)
    proxy = DelayProxy(targets, delay_ms / 1000, handshake)
    try:
        ports = await proxy.start()
        print(json.dumps(ports), flush=True)
        await stop.wait()
    finally:
        await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay, milliseconds (each direction)")
    parser.add_argument("--no-handshake", action="store_true",
                        help="forward at once (no round trip for the TCP handshake)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (the parent died)")
    parser.add_argument("targets", nargs="+", type=Target.parse, metavar="NAME=ADDRESS:PORT")
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    if len({t.name for t in args.targets}) != len(args.targets):
        parser.error("target names must be unique")
    asyncio.run(serve(args.targets, args.delay_ms, not args.no_handshake, args.exit_on_stdin_eof))
    return 0


if __name__ == "__main__":
    sys.exit(main())
