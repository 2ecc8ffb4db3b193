"""Test doubles for the transport: a local shell (runs scripts here) and a scripted fake.

Used by unit tests only; real runs use :class:`shipit.transport.SSHTransport`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from invoke import Context

from shipit.transport import CommandResult, TransportStats


@dataclass
class LocalShellTransport:
    """Runs each script with ``sh -s`` on this machine (through invoke), ignoring ``become``.

    Lets unit tests exercise the executor's real scripts (gathering, applying, refreshing)
    without a network. ``scripts`` records every script run.
    """

    host: str
    stats: TransportStats = field(default_factory=TransportStats)
    scripts: list[str] = field(default_factory=list)

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        self.stats.execs += 1
        self.scripts.append(script)
        # A script file rather than stdin: invoke's stdin pump adds seconds per call.
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as fh:
            fh.write(script)
            fh.flush()
            result = Context().run(f"sh {fh.name} </dev/null", hide=True, warn=True,
                                   timeout=timeout, in_stream=False)
        return CommandResult(result.exited, result.stdout, result.stderr)

    def put(self, local: str, remote: str) -> None:
        self.stats.sftp += 1
        shutil.copyfile(local, remote)

    def close(self) -> None:
        pass


@dataclass
class FakeTransport:
    """Answers every script with ``respond(script) -> CommandResult``; records the scripts."""

    host: str
    respond: Callable[[str], CommandResult]
    stats: TransportStats = field(default_factory=TransportStats)
    scripts: list[str] = field(default_factory=list)

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        self.stats.execs += 1
        self.scripts.append(script)
        return self.respond(script)

    def put(self, local: str, remote: str) -> None:
        self.stats.sftp += 1

    def close(self) -> None:
        pass
