"""shipit's public testing API: transports that need no network, and a module runner.

For the tests of shipit itself and of packages that add modules or fact kinds (as
``fabric.testing`` is for fabric's users); real runs use :class:`shipit.transport.SSHTransport`.

- :class:`FakeTransport` answers each script with a function of it (a recorded output, a
  :class:`Hang` for a slow command, :func:`killed` for a cut-off one, ``HostUnreachable``);
- :class:`LocalShellTransport` runs each script with ``sh -s`` on this machine, so the
  executor's real scripts (gathering, applying, refreshing) run without SSH;
- :func:`run_local` plans a module against this machine and applies it, as the executor
  would over SSH: one gather script, then each change as ``set -e`` (a second run of a
  converged module must plan nothing).

Both transports honour ``timeout`` and ``cancel`` like the real one: :class:`RemoteTimeout`
when a command runs too long, :class:`CommandInterrupted` once cancelled (until ``resume``).
Nothing here needs root: scripts run as the current user (``become`` is ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shipit.facts import FactQuery, build_gather_script, split_gather_output, unique
from shipit.facts.registry import fact_kinds
from shipit.modules.base import Module, Plan, PlanContext
from shipit.transport import (
    CommandInterrupted,
    CommandResult,
    NoExitStatus,
    OutputSink,
    RemoteTimeout,
    TransportStats,
)


def _interrupted(host: str, result: CommandResult | None = None) -> CommandInterrupted:
    return CommandInterrupted(host, f"{host}: the remote command was interrupted (cancelled) "
                                    "and stopped", result)


@dataclass
class LocalShellTransport:
    """Runs each script with ``sh -s`` on this machine (script on stdin), ignoring ``become``.

    Lets unit tests exercise the executor's real scripts (gathering, applying, refreshing)
    without a network. ``scripts`` records every script run. Each command runs in its own
    process group, killed (SIGKILL) on timeout or :meth:`cancel`, as this user: ``SUDO_USER``
    is dropped from its environment (the scripts must not think they run under sudo), and
    :meth:`put` puts a relative path in ``$HOME``, as SFTP does (:func:`upload_path`).
    """

    host: str
    stats: TransportStats = field(default_factory=TransportStats)
    scripts: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _procs: set[subprocess.Popen[bytes]] = field(default_factory=set)
    _cancelled: bool = False

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        """Run ``script`` with ``sh -s`` here; ``timeout`` in wall-clock seconds (None: no limit).

        Raises: :class:`RemoteTimeout`, :class:`CommandInterrupted` (see :meth:`cancel`).
        """
        self.stats.execs += 1
        self.scripts.append(script)
        with self._lock:
            if self._cancelled:
                raise _interrupted(self.host)
            proc = subprocess.Popen(["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, env=_local_env())
            self._procs.add(proc)
        try:
            try:
                out, err = proc.communicate(script.encode(), timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                out, err = proc.communicate()
                raise RemoteTimeout(self.host, timeout or 0.0, _decode(-1, out, err)) from None
            except BaseException:
                _kill_group(proc)
                proc.wait()
                raise
        finally:
            with self._lock:
                self._procs.discard(proc)
        if self._cancelled and proc.returncode < 0:
            raise _interrupted(self.host, _decode(-1, out, err))
        return _decode(proc.returncode, out, err)

    def stream(self, script: str, on_output: OutputSink, *, become: bool = True,
               timeout: float | None = None) -> int:
        """Run ``script`` as :meth:`run` does, then hand its output to ``on_output`` (in one
        chunk per stream: good enough for tests of what reaches the sink)."""
        result = self.run(script, become=become, timeout=timeout)
        _emit(result, on_output)
        return result.rc

    def interactive(self, argv: list[str], *, become: bool = True) -> int:
        """Run ``argv`` here with this process's stdio; its exit status."""
        self.stats.execs += 1
        self.scripts.append(" ".join(argv))
        return subprocess.call(argv)

    def put(self, local: str, remote: str) -> None:
        """Copy ``local`` to ``remote`` on this machine (relative: in ``$HOME``, as SFTP does)."""
        if self._cancelled:
            raise _interrupted(self.host)
        self.stats.sftp += 1
        shutil.copyfile(local, upload_path(remote))

    def close(self) -> None:
        """Nothing to close."""

    def cancel(self) -> None:
        """Kill the running commands' process groups; refuse new commands until :meth:`resume`."""
        with self._lock:
            self._cancelled = True
            procs = list(self._procs)
        for proc in procs:
            _kill_group(proc)

    def resume(self) -> None:
        """Accept commands again after :meth:`cancel`."""
        with self._lock:
            self._cancelled = False


def _local_env() -> dict[str, str]:
    """This process's environment without ``SUDO_USER`` (scripts run as this user, no sudo)."""
    return {k: v for k, v in os.environ.items() if k != "SUDO_USER"}


def upload_path(remote: str) -> str:
    """Where SFTP puts ``remote`` for this user: a relative path is in the home directory."""
    return remote if os.path.isabs(remote) else os.path.join(os.path.expanduser("~"), remote)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _emit(result: CommandResult, on_output: OutputSink) -> None:
    if result.stdout:
        on_output("stdout", result.stdout.encode())
    if result.stderr:
        on_output("stderr", result.stderr.encode())


def _decode(rc: int, out: bytes | None, err: bytes | None) -> CommandResult:
    return CommandResult(rc, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace"))


@dataclass(frozen=True)
class Hang:
    """What a :class:`FakeTransport` responder returns to simulate a command that runs long.

    The fake's ``run`` then blocks (really waits) for ``seconds`` (None: until cancelled or
    timed out), returning ``then`` if it got that far. With a ``timeout`` shorter than
    ``seconds`` it raises :class:`RemoteTimeout` after ``timeout`` seconds, carrying
    ``partial``; :meth:`FakeTransport.cancel` makes it raise :class:`CommandInterrupted`.
    """

    seconds: float | None = None
    then: CommandResult = CommandResult(0, "", "")
    partial: CommandResult = CommandResult(-1, "", "")


def killed(stdout: str = "", stderr: str = "") -> NoExitStatus:
    """A responder's answer for a command killed mid-way (truncated output, no exit status).

    Return it from ``respond``: the fake raises it, like the SSH transport does when a
    channel closes without an exit status.
    """
    return NoExitStatus("", "the remote command ended without an exit status (killed by a signal?)",
                        CommandResult(-1, stdout, stderr))


Response = CommandResult | Hang | BaseException


@dataclass
class FakeTransport:
    """Answers every script with ``respond(script)``; records the scripts.

    ``respond`` returns a :class:`CommandResult`, a :class:`Hang` (a command that takes long,
    for timeouts and cancel), or an exception instance, which ``run`` raises (e.g.
    :func:`killed` for truncated output, ``HostUnreachable(...)`` for a lost host). It may
    also raise. Honours ``timeout`` and :meth:`cancel` like :class:`SSHTransport`.
    """

    host: str
    respond: Callable[[str], Response]
    stats: TransportStats = field(default_factory=TransportStats)
    scripts: list[str] = field(default_factory=list)
    _abort: threading.Event = field(default_factory=threading.Event)

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        """Answer ``script`` with ``respond``; ``timeout`` in wall-clock seconds.

        Raises: :class:`RemoteTimeout` (a :class:`Hang` longer than ``timeout``),
        :class:`CommandInterrupted` (cancelled), or what ``respond`` returns or raises.
        """
        self.stats.execs += 1
        self.scripts.append(script)
        if self._abort.is_set():
            raise _interrupted(self.host)
        answer = self.respond(script)
        if isinstance(answer, Hang):
            answer = self._hang(answer, timeout)
        if isinstance(answer, NoExitStatus) and not answer.host:
            answer = NoExitStatus(self.host, f"{self.host}: {answer.message}", answer.result)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def stream(self, script: str, on_output: OutputSink, *, become: bool = True,
               timeout: float | None = None) -> int:
        """Answer ``script`` as :meth:`run` does, handing the answer's output to ``on_output``;
        a :class:`Hang` hands over its ``partial`` output first, then blocks (``logs -f``)."""
        self.stats.execs += 1
        self.scripts.append(script)
        if self._abort.is_set():
            raise _interrupted(self.host)
        answer = self.respond(script)
        if isinstance(answer, Hang):
            _emit(answer.partial, on_output)
            answer = self._hang(replace(answer, partial=CommandResult(-1, "", "")), timeout)
        if isinstance(answer, BaseException):
            raise answer
        _emit(answer, on_output)
        return answer.rc

    def interactive(self, argv: list[str], *, become: bool = True) -> int:
        """Record ``argv`` (space-joined) as a script; answer with ``respond``'s rc."""
        answer = self.run(" ".join(argv), become=become)
        return answer.rc

    def _hang(self, hang: Hang, timeout: float | None) -> CommandResult:
        waits = [w for w in (hang.seconds, timeout) if w is not None]
        limit = min(waits) if waits else None
        if self._abort.wait(limit):
            raise _interrupted(self.host, hang.partial)
        if timeout is not None and (hang.seconds is None or timeout < hang.seconds):
            raise RemoteTimeout(self.host, timeout, hang.partial)
        return hang.then

    def put(self, local: str, remote: str) -> None:
        """Count the upload; copies nothing."""
        if self._abort.is_set():
            raise _interrupted(self.host)
        self.stats.sftp += 1

    def close(self) -> None:
        """Nothing to close."""

    def cancel(self) -> None:
        """Wake every :class:`Hang` in progress with :class:`CommandInterrupted`; refuse new
        commands until :meth:`resume`. Thread-safe."""
        self._abort.set()

    def resume(self) -> None:
        """Accept commands again after :meth:`cancel`."""
        self._abort.clear()


# ---- running a module on this machine ---------------------------------------------------------
@dataclass(frozen=True)
class LocalRun:
    """Outcome of :func:`run_local`: the plan, and each change script's ``(exit status, output)``
    (output: its stdout and stderr together), up to the first that failed."""

    plan: Plan
    results: tuple[tuple[int, str], ...]

    @property
    def ok(self) -> bool:
        """Every change script that ran exited 0 (True when none ran)."""
        return all(rc == 0 for rc, _ in self.results)


def gather_local(queries: list[FactQuery], transport: LocalShellTransport | None = None) -> dict[FactQuery, Any]:
    """Gather ``queries`` on this machine in one ``sh`` run (the executor's gather script) and
    parse them; every registered kind, plugins' included, can be asked for.

    Raises:
        ValueError: the script's output was cut short (a query's section is missing).
    """
    kinds = fact_kinds()
    queries = unique(queries)
    script = "export LC_ALL=C\n" + build_gather_script(queries, kinds, "local")
    out = (transport or LocalShellTransport("local")).run(script).stdout
    return split_gather_output(out, queries, kinds, "local")


def run_script(script: str, transport: LocalShellTransport | None = None) -> tuple[int, str]:
    """Run one change script as the executor does (``set -e`` in a subshell, stdin from
    /dev/null, stdout into stderr) on this machine; returns ``(exit status, output)``."""
    body = f"export LC_ALL=C\n( set -e\n{script}\n) </dev/null 1>&2\n"
    result = (transport or LocalShellTransport("local")).run(body)
    return result.rc, result.stderr


def run_local(module: Module, params: Mapping[str, Any], ctx: PlanContext,
              execute: bool = True) -> LocalRun:
    """Plan ``module`` with ``params`` against this machine and (``execute``) apply it.

    As the executor does: params get their :class:`~shipit.modules.base.Param` defaults,
    the facts (with ``diff_facts`` when ``ctx.diff``) are gathered in one run, ``more_facts``
    in a second only when needed, each change's upload is put (:meth:`LocalShellTransport.put`)
    and its script run (:func:`run_script`), stopping at the first failure. Unlike the
    executor: params are not validated or rendered, and nothing goes through sudo (the
    scripts run as the current user, so changes of ownership need a root test runner).
    """
    transport = LocalShellTransport("local")
    full = {k: spec.default for k, spec in module.params.items()} | dict(params)
    queries = module.facts(full) + (module.diff_facts(full) if ctx.diff else [])
    facts = gather_local(queries, transport)
    more = [q for q in module.more_facts(full, facts) if q not in facts]
    if more:  # as the executor: one more round trip, only when needed
        facts |= gather_local(more, transport)
    plan = module.plan(full, facts, ctx)
    results: list[tuple[int, str]] = []
    if execute:
        for change in plan.changes:
            if change.upload is not None:
                transport.put(change.upload.local, change.upload.remote)
            results.append(run_script(change.script, transport))
            if results[-1][0] != 0:
                break
    return LocalRun(plan, tuple(results))
