"""The narrow transport: run a script, put a file, close. One SSH connection per host per run.

:class:`SSHTransport` wraps a fabric ``Connection`` (which honours ``~/.ssh/config`` and
gateways) and runs every script with ``sh -s`` (with become, under ``sudo -n -- sh -c`` and a
small wrapper that relays signals to the script's process group) with the script on the
remote shell's standard input: nothing a script carries (file contents, secrets)
ever appears in a process's argv on either side. Host keys are verified against known_hosts;
an unknown key is rejected unless trust-on-first-use was asked for, and a changed key is
always refused (fabric alone accepts any key: fabric issues #2071, #1804).

Nothing hangs: a command's stdout and stderr are read together while its script is being
sent (a remote writing megabytes to one stream never stalls on the other), every command
can carry a wall-clock ``timeout`` (:class:`RemoteTimeout`), and :meth:`SSHTransport.cancel`
aborts commands in flight from another thread (:class:`CommandInterrupted`): the remote
command's process group gets SIGTERM through an SSH ``signal`` request, then the channel is
closed. Closing the channel alone does not stop a remote command that does not write (sshd
leaves a session's processes running when the channel closes), hence the signal.

:class:`FakeTransport` and :class:`LocalShellTransport` (in :mod:`shipit.testing`) stand in
for it in unit tests and honour ``timeout`` and ``cancel`` the same way.
"""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import os
import select
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import paramiko
from fabric import Connection
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

from shipit.errors import ShipitError

OutputSink = Callable[[str, bytes], None]
"""``on_output(stream, data)`` of :meth:`Transport.stream`: ``"stdout"``/``"stderr"``, bytes."""


@dataclass(frozen=True)
class CommandResult:
    """What a remote script did: exit status, standard output and error (decoded UTF-8)."""

    rc: int
    stdout: str
    stderr: str


@dataclass
class TransportStats:
    """Round trips one transport made: SSH exec requests, SFTP transfers, connections opened;
    and ``sftp_bytes``, the bytes of the files sent by SFTP (counted by the executor)."""

    execs: int = 0
    sftp: int = 0
    connects: int = 0
    sftp_bytes: int = 0


class Transport(Protocol):
    """What the executor needs from a host connection."""

    stats: TransportStats

    @property
    def host(self) -> str:
        """The inventory name of the host (read-only)."""
        ...

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        """Run a POSIX sh ``script`` (fed on stdin); become = as root via sudo.

        ``timeout``: wall-clock seconds the command may take; None = no limit.

        Raises:
            RemoteTimeout: the command ran longer than ``timeout`` and was stopped.
            CommandInterrupted: :meth:`cancel` was called (before or during the command).
            NoExitStatus: the command ended without an exit status (killed by a signal).
            HostUnreachable: the connection could not be made or was lost.
        """
        ...

    def stream(self, script: str, on_output: OutputSink, *, become: bool = True,
               timeout: float | None = None) -> int:
        """Run ``script`` like :meth:`run`, handing output to ``on_output`` as it arrives.

        ``on_output(stream, data)``: ``stream`` is ``"stdout"`` or ``"stderr"``, ``data`` the
        bytes received (any split: not whole lines). Called from the calling thread. Returns
        the exit status. Raises what :meth:`run` raises (the partial ``result`` is empty:
        the output was handed over already).
        """
        ...

    def interactive(self, argv: list[str], *, become: bool = True) -> int:
        """Run ``argv`` (words, quoted here) on a remote pseudo-terminal wired to this
        process's terminal (raw mode, window size); returns its exit status.

        For consoles: nothing but ``argv`` is sent, and no secret may be in it.
        Raises: HostUnreachable.
        """
        ...

    def put(self, local: str, remote: str) -> None:
        """Copy local file ``local`` to ``remote`` (as the SSH user) over SFTP."""
        ...

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        ...

    def cancel(self) -> None:
        """Abort the commands in flight and refuse new ones until :meth:`resume`; thread-safe."""
        ...

    def resume(self) -> None:
        """Accept commands again after :meth:`cancel` (e.g. to release a deploy lock)."""
        ...


class HostUnreachable(ShipitError):
    """The host could not be connected to or authenticated (refused, timed out, bad key)."""


class RemoteCommandError(ShipitError):
    """A command on a reachable host did not run to an exit status (timed out, cancelled, killed).

    Not a :class:`HostUnreachable`: the host answered, the task failed. ``result`` holds what
    the command wrote before it was stopped (``rc`` is -1): nothing is lost.

    Attributes:
        host: inventory name of the host.
        result: the output received so far, ``rc`` -1.
    """

    def __init__(self, host: str, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.result = result if result is not None else CommandResult(-1, "", "")


class RemoteTimeout(RemoteCommandError):
    """The command ran longer than its ``timeout`` (wall clock) and was stopped.

    Attributes:
        timeout: the limit that was exceeded, in seconds.
    """

    def __init__(self, host: str, timeout: float, result: CommandResult | None = None) -> None:
        super().__init__(host, f"{host}: the remote command was stopped after {timeout:g} s "
                               "(its timeout); it had not finished", result)
        self.timeout = timeout


class CommandInterrupted(RemoteCommandError):
    """The command was aborted by :meth:`SSHTransport.cancel` (Ctrl-C); exits 130 like SIGINT."""

    exit_code = 130


class NoExitStatus(RemoteCommandError):
    """The command's channel closed without an exit status: the remote command was killed
    by a signal (OOM killer, ``kill -9``) or sshd lost it."""


class HostKeyRefused(HostUnreachable):
    """The host presented a key that is unknown (without TOFU) or differs from known_hosts."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:…`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class HostKeyPolicy:
    """How host keys are checked.

    Attributes:
        known_hosts: files whose entries are trusted (missing files are ignored).
        accept_new: trust-on-first-use: an unknown key is accepted and appended to
            ``record_to``; a changed key is refused all the same.
        record_to: the known_hosts file of shipit's that TOFU appends to.
    """

    known_hosts: tuple[str, ...] = ()
    accept_new: bool = False
    record_to: str | None = None


_record_lock = threading.Lock()


class _UnknownKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Reject an unknown key with its fingerprint, or record it when TOFU is on."""

    def __init__(self, host: str, policy: HostKeyPolicy) -> None:
        self.host = host
        self.policy = policy

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.policy.accept_new and self.policy.record_to:
            with _record_lock:
                path = Path(self.policy.record_to)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="ascii") as fh:
                    fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            client.get_host_keys().add(hostname, key.get_name(), key)
            return
        files = ", ".join(self.policy.known_hosts) or "(none configured)"
        raise HostKeyRefused(
            f"{self.host}: unknown host key {key.get_name()} {fingerprint(key)} for {hostname}; "
            f"it is not in known_hosts ({files}). Verify the fingerprint out of band and add the "
            "key to known_hosts, or re-run with --accept-new-host-keys to trust it on first use."
        )


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to connect: address, port, user, key file, gateway, timeouts (seconds).

    ``port``, ``user``, ``key``: None leaves them to ``~/.ssh/config`` (then port 22).
    ``connect_timeout``: seconds to connect and to open each channel.
    ``command_timeout``: wall-clock seconds a command may run when :meth:`SSHTransport.run`
    is given no ``timeout``; None = no limit.
    """

    host: str
    address: str
    port: int | None = None
    user: str | None = None
    key: str | None = None
    gateway: str | None = None
    connect_timeout: float = 10.0
    become_password_env: str = "SHIPIT_BECOME_PASSWORD"
    command_timeout: float | None = None


# Under sudo the script runs as root, out of reach of the SSH user's signals: this wrapper
# (root's ``sh -c``) runs ``sh -s`` in the background and, on TERM/HUP/INT (which sudo relays
# from the SSH ``signal`` request, or sends when its pty goes), kills its whole process group,
# so a cancelled ``sleep 300; touch x`` dies with it. The script's stdin is the channel's, as
# without sudo (saved on fd 3: an asynchronous list's stdin would be /dev/null).
_BECOME_WRAPPER = ("exec 3<&0; trap 'trap - HUP INT TERM; kill -TERM 0' HUP INT TERM; "
                   "sh -s <&3 3<&- & wait $!")
# With a password (``sudo -S``) the password line comes first. When sudo does not ask for it
# (NOPASSWD, cached credentials) sudo leaves it unread: skip lines up to this marker, so the
# password is never run as a command (which would echo it back in "not found" on stderr).
_SCRIPT_MARKER = "#shipit-script"
_SKIP_TO_MARKER = f"while IFS= read -r l; do [ \"$l\" = '{_SCRIPT_MARKER}' ] && break; done; "

_CHUNK = 32 * 1024        # bytes per channel send
_RECV = 256 * 1024        # bytes per channel recv
_STALL_POLL = 0.01        # seconds between send attempts while the remote's window is full
_DRAIN_AFTER_EXIT = 2.0   # seconds without output, after the exit status, before giving up on EOF
# The longest one select() waits on the channel. paramiko's channel fileno is one pipe shared by
# stdout and stderr (pipe.OrPipe), and its set/clear are not atomic across the two buffers: when
# the transport thread feeds stderr while we drain stdout, the wakeup can be lost and the pipe
# stays clear with data buffered. With both windows then full the remote stops sending and
# nothing would set it again (a 40 MB stdout+stderr command sat until its 300 s timeout in CI).
# Polling at least this often bounds a lost wakeup to this delay.
_WAKE_POLL = 0.1


def upload_failure(host: str, local: str, remote: str, exc: BaseException) -> str:
    """The message for an SFTP upload that failed with ``exc``. Pure.

    A full disk on the host does not say so over SFTP: the server answers a bare "Failure"
    (or nothing, and paramiko's check finds the file short: "size mismatch in put"), so the
    message names the likely cause.
    """
    text = str(exc) or type(exc).__name__
    if "size mismatch" in text or text.strip() == "Failure" or getattr(exc, "errno", None) == errno.ENOSPC:
        text += " (the file did not arrive whole: is the disk full on the host?)"
    return f"{host}: upload of {local} to {remote} failed: {text}"


def _send_signal(chan: paramiko.Channel, name: str) -> None:
    """Send an SSH ``signal`` channel request (RFC 4254 6.9); paramiko has no public call.

    OpenSSH (7.9+) delivers it with ``killpg`` to the session's process group, as the SSH
    user. Best effort: errors (channel gone, old server) are ignored.
    """
    try:
        m = Message()
        m.add_byte(cMSG_CHANNEL_REQUEST)
        m.add_int(chan.remote_chanid)
        m.add_string("signal")
        m.add_boolean(False)
        m.add_string(name)
        chan.transport._send_user_message(m)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - aborting must go on to close the channel
        pass


@dataclass(eq=False)
class _Command:
    """One command in flight: its channel and, once aborted, why."""

    chan: paramiko.Channel
    aborted: str | None = None


@dataclass
class SSHTransport:
    """A persistent SSH connection to one host (fabric ``Connection`` + paramiko channels).

    The connection opens on first use and is reused by every call until :meth:`close`.
    TCP_NODELAY is set on it: without it every exec waits on delayed ACKs (about 40 ms twice
    per command on Linux, even over loopback).

    Raises (from run/put): :class:`HostKeyRefused`, :class:`HostUnreachable`; from run also
    :class:`RemoteTimeout`, :class:`CommandInterrupted`, :class:`NoExitStatus` (all
    :class:`RemoteCommandError`, never :class:`HostUnreachable`).
    """

    target: SSHTarget
    policy: HostKeyPolicy
    stats: TransportStats = field(default_factory=TransportStats)
    _conn: Connection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _state_lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: set[_Command] = field(default_factory=set)
    _cancelled: bool = False
    _sftp: paramiko.SFTPClient | None = None

    @property
    def host(self) -> str:
        """The inventory name of the host."""
        return self.target.host

    def _connection(self) -> Connection:
        if self._conn is not None and self._conn.is_connected:
            return self._conn
        t = self.target
        connect_kwargs: dict[str, object] = {"allow_agent": t.key is None}
        if t.key:
            connect_kwargs["key_filename"] = [t.key]
            connect_kwargs["look_for_keys"] = False
        gateway = Connection(t.gateway) if t.gateway else None
        conn = Connection(t.address, user=t.user, port=t.port, connect_kwargs=connect_kwargs,
                          connect_timeout=int(t.connect_timeout), gateway=gateway)
        client = conn.client
        client.set_missing_host_key_policy(_UnknownKeyPolicy(t.host, self.policy))
        for known in self.policy.known_hosts:
            if os.path.exists(known):
                client.load_host_keys(known)
        if gateway is not None:
            gateway.client.set_missing_host_key_policy(_UnknownKeyPolicy(t.gateway or "", self.policy))
            for known in self.policy.known_hosts:
                if os.path.exists(known):
                    gateway.client.load_host_keys(known)
        try:
            conn.open()
        except HostKeyRefused:
            raise
        except paramiko.BadHostKeyException as exc:
            raise HostKeyRefused(
                f"{t.host}: REFUSED: the host key of {t.address} has CHANGED. It presented "
                f"{exc.key.get_name()} {fingerprint(exc.key)}, known_hosts expects "
                f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)}. This can be a "
                "man-in-the-middle attack, or the host was rebuilt; if you are sure it was "
                "rebuilt, remove its old line from known_hosts and verify the new fingerprint."
            ) from None
        except paramiko.AuthenticationException as exc:
            raise HostUnreachable(f"{t.host}: SSH authentication as {t.user or 'default user'} "
                                  f"failed: {exc}") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise HostUnreachable(f"{t.host}: cannot connect to {conn.host}:{conn.port}: "
                                  f"{exc or type(exc).__name__}") from None
        for c in (conn, gateway):
            sock = getattr(c.client.get_transport(), "sock", None) if c is not None else None
            if isinstance(sock, socket.socket):
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
        self.stats.connects += 1
        self._conn = conn
        self._sftp = None
        return conn

    def _command(self, script: str, become: bool) -> tuple[str, bytes]:
        """The remote command line (never carrying the script or a secret) and its stdin."""
        if not become:
            return "sh -s", script.encode()
        password = os.environ.get(self.target.become_password_env)
        if password:
            return ("sudo -S -p '' -- sh -c " + shlex.quote(_SKIP_TO_MARKER + _BECOME_WRAPPER),
                    f"{password}\n{_SCRIPT_MARKER}\n{script}".encode())
        return "sudo -n -- sh -c " + shlex.quote(_BECOME_WRAPPER), script.encode()

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        """Run ``script`` with ``sh -s`` on the host, feeding it on stdin, and wait for it.

        Args:
            script: POSIX sh source; sent on the remote shell's stdin, then stdin is closed.
            become: run it as root through ``sudo -n`` (or ``sudo -S`` with the password,
                sent first on stdin, from the env var named by ``target.become_password_env``).
            timeout: wall-clock seconds from the exec request to the exit status; None uses
                ``target.command_timeout`` (None there too: no limit).

        Returns:
            :class:`CommandResult`: exit status, stdout and stderr (UTF-8, undecodable bytes
            replaced). Both streams are read concurrently, whatever their size.

        Raises:
            RemoteTimeout: the command ran longer than the timeout; it was sent SIGTERM and
                its channel closed.
            CommandInterrupted: :meth:`cancel` was called before or while it ran.
            NoExitStatus: its channel closed without an exit status (killed by a signal).
            HostUnreachable, HostKeyRefused: the connection failed or was lost.

        A ``KeyboardInterrupt`` raised in the calling thread aborts the command the same way
        (SIGTERM, close) and propagates.
        """
        return self._execute(script, become, timeout, None)

    def stream(self, script: str, on_output: OutputSink, *, become: bool = True,
               timeout: float | None = None) -> int:
        """Run ``script`` as :meth:`run` does, handing each chunk of output to ``on_output``
        (``"stdout"``/``"stderr"``, bytes) as it arrives instead of keeping it.

        For ``shipit logs -f`` and live ``exec``: ``timeout`` None (and no
        ``target.command_timeout``) lets it run until :meth:`cancel`. Returns the exit status.

        Raises: as :meth:`run` (the exceptions' ``result`` then holds no output).
        """
        return self._execute(script, become, timeout, on_output).rc

    def interactive(self, argv: list[str], *, become: bool = True) -> int:
        """Run ``argv`` on a remote pseudo-terminal bound to this terminal; its exit status.

        Uses fabric's ``Connection.run(pty=True)`` (invoke puts the local terminal in
        character-buffered mode, forwards stdin and the window size). The command line is
        ``argv`` quoted word by word, under ``sudo -n --`` with ``become`` (with the become
        password set, fabric's ``sudo`` answers the prompt). No timeout: a person is at it.

        Raises:
            HostUnreachable: the connection could not be made or was lost.
        """
        from invoke.exceptions import ThreadException

        line = " ".join(shlex.quote(w) for w in argv)
        # invoke puts stdin in character-buffered mode only when it is this process group's
        # foreground terminal, and fails when it is a terminal that is not (tcgetpgrp: ENOTTY)
        options: dict[str, object] = {"pty": True, "warn": True}
        if not _foreground_tty(sys.stdin):
            options["in_stream"] = False
        with self._lock:
            self._refuse_if_cancelled()
            conn = self._connection()
            self.stats.execs += 1
            password = os.environ.get(self.target.become_password_env) if become else None
            try:
                if password:
                    result = conn.sudo(line, password=password, **options)
                else:
                    result = conn.run(("sudo -n -- " if become else "") + line, **options)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise HostUnreachable(f"{self.host}: SSH session failed: {exc or type(exc).__name__}") from None
            except ThreadException as exc:
                raise ShipitError(f"{self.host}: the terminal session failed: "
                                  f"{'; '.join(str(e.value) for e in exc.exceptions)}") from None
            return int(result.exited)

    def _execute(self, script: str, become: bool, timeout: float | None,
                 sink: OutputSink | None) -> CommandResult:
        limit = timeout if timeout is not None else self.target.command_timeout
        command, stdin = self._command(script, become)
        with self._lock:
            self._refuse_if_cancelled()
            conn = self._connection()
            transport = conn.client.get_transport()
            if transport is None or not transport.is_active():
                raise HostUnreachable(f"{self.host}: SSH connection lost")
            deadline = None if limit is None else time.monotonic() + limit
            try:
                chan = transport.open_session(timeout=self.target.connect_timeout)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise HostUnreachable(f"{self.host}: SSH session failed: {exc or type(exc).__name__}") from None
            cmd = _Command(chan)
            with self._state_lock:
                if self._cancelled:
                    chan.close()
                    raise self._interrupted(None)
                self._in_flight.add(cmd)
            try:
                try:
                    chan.exec_command(command)
                except (OSError, paramiko.SSHException, EOFError) as exc:
                    if cmd.aborted:
                        raise self._interrupted(None) from None
                    raise HostUnreachable(f"{self.host}: SSH session failed: {exc or type(exc).__name__}") from None
                self.stats.execs += 1
                return self._exchange(cmd, stdin, deadline, limit, transport, sink)
            except BaseException:
                _abort(cmd, cmd.aborted or "error")
                raise
            finally:
                with self._state_lock:
                    self._in_flight.discard(cmd)
                chan.close()

    def _exchange(self, cmd: _Command, stdin: bytes, deadline: float | None, limit: float | None,
                  transport: paramiko.Transport, sink: OutputSink | None = None) -> CommandResult:
        """Send ``stdin`` and read both streams until EOF and exit status, one select loop.

        With ``sink`` the output is handed to it as it arrives (and not kept)."""
        chan = cmd.chan
        chan.settimeout(0.0)
        out: list[bytes] = []
        err: list[bytes] = []
        keep_out: Callable[[bytes], None] = out.append
        keep_err: Callable[[bytes], None] = err.append
        if sink is not None:
            keep_out, keep_err = functools.partial(sink, "stdout"), functools.partial(sink, "stderr")
        sent = 0
        stdin_open = True
        out_eof = err_eof = False
        exited_at: float | None = None

        def partial() -> CommandResult:
            return _result(-1, out, err)

        while True:
            if cmd.aborted:
                raise self._interrupted(partial())
            stalled = False
            while stdin_open and sent < len(stdin):
                try:
                    n = chan.send(stdin[sent:sent + _CHUNK])
                except TimeoutError:
                    stalled = True
                    break
                if n <= 0:  # closed under us
                    break
                sent += n
            if stdin_open and (sent >= len(stdin) or chan.closed):
                try:
                    chan.shutdown_write()
                except (OSError, EOFError):
                    pass
                stdin_open = False
            progressed = False
            if not out_eof:
                out_eof, got = _drain(chan.recv, keep_out)
                progressed |= got
            if not err_eof:
                err_eof, got = _drain(chan.recv_stderr, keep_err)
                progressed |= got
            now = time.monotonic()
            if chan.exit_status_ready():
                if cmd.aborted:
                    raise self._interrupted(partial())
                if exited_at is None or progressed:
                    exited_at = now
                if (out_eof and err_eof) or chan.closed or now - exited_at >= _DRAIN_AFTER_EXIT:
                    break  # a background process may hold the streams open: don't wait on it
            if deadline is not None and now >= deadline:
                _abort(cmd, "timeout")
                raise RemoteTimeout(self.host, limit or 0.0, partial())
            remaining = None if deadline is None else deadline - now
            if out_eof and err_eof:
                # EOF on both: the select pipe stays set; wait on the exit status instead
                chan.status_event.wait(_min(remaining, _DRAIN_AFTER_EXIT))
                continue
            wait = _min(remaining, _STALL_POLL if stalled else _WAKE_POLL)
            if exited_at is not None:
                wait = _min(wait, _DRAIN_AFTER_EXIT)
            select.select([chan], [], [], wait)
        rc = chan.exit_status
        if rc == -1:  # the status event fired because the channel closed, not from exit-status
            if cmd.aborted:
                raise self._interrupted(partial())
            if not transport.is_active():
                raise HostUnreachable(f"{self.host}: SSH connection lost while a command was running")
            raise NoExitStatus(self.host, f"{self.host}: the remote command ended without an exit "
                                          "status (killed by a signal?)", partial())
        return _result(rc, out, err)

    def _interrupted(self, result: CommandResult | None) -> CommandInterrupted:
        return CommandInterrupted(self.host, f"{self.host}: the remote command was interrupted "
                                             "(cancelled) and stopped", result)

    def _refuse_if_cancelled(self) -> None:
        with self._state_lock:
            if self._cancelled:
                raise self._interrupted(None)

    def cancel(self) -> None:
        """Abort every command in flight and refuse new ones until :meth:`resume`.

        Thread-safe and quick (it does not wait for the remote): for each running command,
        sends SIGTERM to its remote process group (SSH ``signal`` request; under sudo a
        wrapper kills root's processes) and closes its channel, so the blocked :meth:`run`
        raises :class:`CommandInterrupted` at once. An upload in progress is cut off the same
        way. Meant for Ctrl-C: the main thread calls it while workers are inside ``run``.
        """
        with self._state_lock:
            self._cancelled = True
        self._abort_in_flight("cancelled")

    def _abort_in_flight(self, why: str) -> None:
        with self._state_lock:
            in_flight = list(self._in_flight)
        for cmd in in_flight:
            _abort(cmd, why)

    def resume(self) -> None:
        """Accept commands again after :meth:`cancel` (to release a lock, for instance)."""
        with self._state_lock:
            self._cancelled = False

    def put(self, local: str, remote: str) -> None:
        """SFTP ``local`` to ``remote`` as the SSH user (then a script moves it as root).

        Raises: :class:`CommandInterrupted` (cancelled); :class:`RemoteCommandError` when the
        host refused the file over a live connection (a full disk, a permission); otherwise
        :class:`HostUnreachable` (the connection is gone).
        """
        with self._lock:
            self._refuse_if_cancelled()
            conn = self._connection()
            try:
                sftp = self._sftp
                chan = sftp.get_channel() if sftp is not None else None
                if sftp is None or chan is None or chan.closed:
                    sftp = paramiko.SFTPClient.from_transport(conn.client.get_transport())
                    chan = sftp.get_channel() if sftp is not None else None
                    if sftp is None or chan is None:
                        raise paramiko.SSHException("cannot open an SFTP session")
                    self._sftp = sftp
                cmd = _Command(chan)
                with self._state_lock:
                    if self._cancelled:
                        raise self._interrupted(None)
                    self._in_flight.add(cmd)
                try:
                    sftp.put(local, remote)
                finally:
                    with self._state_lock:
                        self._in_flight.discard(cmd)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                self._sftp = None
                if self._cancelled:
                    raise self._interrupted(None) from None
                message = upload_failure(self.host, local, remote, exc)
                ssh = conn.client.get_transport()
                if ssh is not None and ssh.is_active():
                    # the host answered and refused the file (a full disk, permissions): this
                    # task failed there; the host is reachable and says where it stands
                    raise RemoteCommandError(self.host, message) from None
                raise HostUnreachable(message) from None
            self.stats.sftp += 1

    def close(self) -> None:
        """Close the connection; safe to call twice.

        Commands in flight (in other threads) are aborted first and raise
        :class:`CommandInterrupted`; the cancelled state (see :meth:`cancel`) is left as is.
        """
        self._abort_in_flight("closed")
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._sftp = None


def _foreground_tty(stream: object) -> bool:
    """Whether ``stream`` is a terminal whose foreground process group is ours."""
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
        return os.isatty(fd) and os.getpgrp() == os.tcgetpgrp(fd)
    except (AttributeError, OSError, ValueError):
        return False


def _abort(cmd: _Command, why: str) -> None:
    """SIGTERM the remote command's process group, then close its channel. Never raises."""
    first = cmd.aborted is None
    if first:
        cmd.aborted = why
    chan = cmd.chan
    if first and not chan.closed and not chan.exit_status_ready():
        _send_signal(chan, "TERM")
    try:
        chan.close()
    except Exception:  # noqa: BLE001
        pass


def _drain(recv: Callable[[int], bytes], sink: Callable[[bytes], None]) -> tuple[bool, bool]:
    """Read what is buffered without blocking; returns (reached EOF, read something)."""
    got = False
    while True:
        try:
            chunk = recv(_RECV)
        except TimeoutError:
            return False, got
        if not chunk:
            return True, got
        sink(chunk)
        got = True


def _min(a: float | None, b: float | None) -> float | None:
    """The smaller of two optional waits (None = forever), never negative."""
    if a is None or b is None:
        m = b if a is None else a
    else:
        m = min(a, b)
    return None if m is None else max(0.0, m)


def _result(rc: int, out: list[bytes], err: list[bytes]) -> CommandResult:
    return CommandResult(rc, b"".join(out).decode("utf-8", "replace"),
                         b"".join(err).decode("utf-8", "replace"))
