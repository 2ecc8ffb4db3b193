"""The narrow transport: run a script, put a file, close. One SSH connection per host per run.

:class:`SSHTransport` wraps a fabric ``Connection`` (which honours ``~/.ssh/config`` and
gateways) and runs every script as ``sh -s`` (or ``sudo -n -- sh -s`` with become) with the
script on the remote shell's standard input: nothing a script carries (file contents, secrets)
ever appears in a process's argv on either side. Host keys are verified against known_hosts;
an unknown key is rejected unless trust-on-first-use was asked for, and a changed key is
always refused (fabric alone accepts any key: fabric issues #2071, #1804).

:class:`FakeTransport` (in :mod:`shipit.testing`) stands in for it in unit tests.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import paramiko
from fabric import Connection

from shipit.errors import ShipitError


@dataclass(frozen=True)
class CommandResult:
    """What a remote script did: exit status, standard output and error (decoded UTF-8)."""

    rc: int
    stdout: str
    stderr: str


@dataclass
class TransportStats:
    """Round trips one transport made: SSH exec requests, SFTP transfers, connections opened."""

    execs: int = 0
    sftp: int = 0
    connects: int = 0


class Transport(Protocol):
    """What the executor needs from a host connection."""

    host: str
    stats: TransportStats

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        """Run a POSIX sh ``script`` (fed on stdin); become = as root via sudo."""
        ...

    def put(self, local: str, remote: str) -> None:
        """Copy local file ``local`` to ``remote`` (as the SSH user) over SFTP."""
        ...

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        ...


class HostUnreachable(ShipitError):
    """The host could not be connected to or authenticated (refused, timed out, bad key)."""


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
    """Where and how to connect: address, port, user, key file, gateway, timeout (seconds).

    ``port``, ``user``, ``key``: None leaves them to ``~/.ssh/config`` (then port 22).
    """

    host: str
    address: str
    port: int | None = None
    user: str | None = None
    key: str | None = None
    gateway: str | None = None
    connect_timeout: float = 10.0
    become_password_env: str = "SHIPIT_BECOME_PASSWORD"


@dataclass
class SSHTransport:
    """A persistent SSH connection to one host (fabric ``Connection`` + paramiko channels).

    The connection opens on first use and is reused by every call until :meth:`close`.

    Raises (from run/put): :class:`HostKeyRefused`, :class:`HostUnreachable`.
    """

    target: SSHTarget
    policy: HostKeyPolicy
    stats: TransportStats = field(default_factory=TransportStats)
    _conn: Connection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
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
        self.stats.connects += 1
        self._conn = conn
        return conn

    def run(self, script: str, *, become: bool = True, timeout: float | None = None) -> CommandResult:
        """Run ``script`` with ``sh -s`` on the host, feeding it on stdin.

        ``become`` runs it as root through ``sudo -n`` (or ``sudo -S`` with the password in
        the env var named by ``target.become_password_env``). ``timeout`` in seconds bounds
        waiting for output; None waits forever.
        """
        with self._lock:
            conn = self._connection()
            transport = conn.client.get_transport()
            if transport is None:
                raise HostUnreachable(f"{self.host}: SSH connection lost")
            prefix = b""
            command = "sh -s"
            if become:
                password = os.environ.get(self.target.become_password_env)
                if password:
                    command = "sudo -S -p '' -- sh -s"
                    prefix = password.encode() + b"\n"
                else:
                    command = "sudo -n -- sh -s"
            try:
                chan = transport.open_session(timeout=self.target.connect_timeout)
                chan.settimeout(timeout)
                chan.exec_command(command)
                self.stats.execs += 1
                chan.sendall(prefix + script.encode())
                chan.shutdown_write()
                out_file = chan.makefile("rb")
                err_file = chan.makefile_stderr("rb")
                stdout = out_file.read()
                stderr = err_file.read()
                rc = chan.recv_exit_status()
                chan.close()
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise HostUnreachable(f"{self.host}: SSH session failed: {exc or type(exc).__name__}") from None
            return CommandResult(rc, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))

    def put(self, local: str, remote: str) -> None:
        """SFTP ``local`` to ``remote`` as the SSH user (then a script moves it as root)."""
        with self._lock:
            conn = self._connection()
            try:
                conn.sftp().put(local, remote)
            except (OSError, paramiko.SSHException) as exc:
                raise HostUnreachable(f"{self.host}: upload of {local} to {remote} failed: {exc}") from None
            self.stats.sftp += 1

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
