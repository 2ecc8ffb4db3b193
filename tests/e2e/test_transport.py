"""SSHTransport against a real, throwaway sshd on 127.0.0.1 (no lab needed, root needed).

The ``sshd`` fixture starts ``/usr/sbin/sshd -D -e`` with its own host key, config and
authorized_keys on a free loopback port, and makes two throwaway users (login shell /bin/sh):
one with passwordless sudo, one whose sudo asks for a password. The transport connects with
host-key checking on (a known_hosts holding only that host key). Without root or sshd the
tests skip, or fail with ``SHIPIT_E2E_REQUIRED=1`` (as the lab tests do).

CI needs the Debian packages ``openssh-server`` and ``sudo``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipit.transport import (
    CommandInterrupted,
    HostKeyPolicy,
    HostUnreachable,
    RemoteCommandError,
    RemoteTimeout,
    SSHTarget,
    SSHTransport,
)

pytestmark = pytest.mark.e2e

SSHD = "/usr/sbin/sshd"
WAIT = 30.0  # seconds: a generous bound on anything that should be quick (never asserted on)


def unavailable(reason: str) -> None:
    """Fail (CI: SHIPIT_E2E_REQUIRED=1) or skip with ``reason``: the rule of conftest's lab."""
    if os.environ.get("SHIPIT_E2E_REQUIRED") == "1":
        pytest.fail(f"the local sshd is required (SHIPIT_E2E_REQUIRED=1) but cannot start: {reason}",
                    pytrace=False)
    pytest.skip(f"local sshd not available: {reason}")


@dataclass
class User:
    name: str
    password: str


@dataclass
class LocalSSHD:
    dir: Path
    port: int
    nopasswd: User  # sudo without a password
    passwd: User    # sudo asks for the password

    def transport(self, user: User, **target: object) -> SSHTransport:
        return SSHTransport(SSHTarget("local", "127.0.0.1", port=self.port, user=user.name,
                                      key=str(self.dir / "client_key"), **target),  # type: ignore[arg-type]
                            HostKeyPolicy(known_hosts=(str(self.dir / "known_hosts"),)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_user(name: str, home: Path, sudo_rule: str) -> User:
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
    home.mkdir()
    shutil.chown(home, name, name)
    password = secrets.token_urlsafe(18)
    # a password also unlocks the account: with UsePAM no, sshd refuses locked ("!") accounts
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    rule = Path("/etc/sudoers.d") / name
    rule.write_text(f"{name} {sudo_rule}\n")
    rule.chmod(0o440)
    return User(name, password)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _drop_user(name: str) -> None:
    """Remove a test user; its leftover processes (started by our sshd) are killed by pid."""
    Path("/etc/sudoers.d", name).unlink(missing_ok=True)
    try:
        uid = int(subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout)
    except subprocess.CalledProcessError:
        return
    deadline = time.monotonic() + 10
    while _pids_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in _pids_of(uid):
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    time.sleep(0.2)
    subprocess.run(["userdel", "-f", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def sshd() -> Iterator[LocalSSHD]:
    """A throwaway sshd on a free 127.0.0.1 port with two throwaway sudo users."""
    if os.geteuid() != 0:
        unavailable("the local sshd fixture needs root")
    for tool in (SSHD, "ssh-keygen", "useradd", "sudo"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} not found (apt-get install -y openssh-server sudo)")
    d = Path(tempfile.mkdtemp(prefix="shipit-sshd-"))
    d.chmod(0o755)  # sshd reads authorized_keys as the user
    tag = secrets.token_hex(3)
    users: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        (d / "authorized_keys").chmod(0o644)
        port = _free_port()
        kind, b64 = (d / "host_key.pub").read_text().split()[:2]
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {kind} {b64}\n")
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "MaxSessions 50\nMaxStartups 50\nSubsystem sftp internal-sftp\n")
        os.makedirs("/run/sshd", exist_ok=True)
        users.append(f"shipit-t{tag}n")
        nopasswd = _make_user(users[-1], d / "home-n", "ALL=(ALL) NOPASSWD: ALL")
        users.append(f"shipit-t{tag}p")
        passwd = _make_user(users[-1], d / "home-p", "ALL=(ALL) ALL")
        with open(d / "sshd.log", "wb") as log:
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                                    stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    unavailable(f"sshd did not start: {(d / 'sshd.log').read_text()[-2000:]}")
                time.sleep(0.05)
        yield LocalSSHD(d, port, nopasswd, passwd)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(WAIT)
        for name in users:
            _drop_user(name)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def transport(sshd: LocalSSHD) -> Iterator[SSHTransport]:
    t = sshd.transport(sshd.nopasswd)
    yield t
    t.close()


def remote_procs(t: SSHTransport, pattern: str) -> list[str]:
    """Command lines of the host's processes matching ``pattern`` (through a fresh command)."""
    # the [x]yz trick keeps this pgrep's own shell out of its matches
    r = t.run(f"pgrep -a -f '[{pattern[0]}]{pattern[1:]}' || true\n", become=False, timeout=WAIT)
    return r.stdout.splitlines()


def wait_gone(t: SSHTransport, pattern: str) -> list[str]:
    """Poll (bounded) until no process matches; returns what is still left at the end."""
    deadline = time.monotonic() + WAIT
    left = remote_procs(t, pattern)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = remote_procs(t, pattern)
    return left


def test_stdout_and_stderr_of_4_mib_each_at_once_arrive_whole(transport: SSHTransport) -> None:
    # stderr first and big: the old transport read stdout to EOF and hung here
    script = ("head -c 4194304 /dev/zero | tr '\\0' e >&2 &\n"
              "head -c 4194304 /dev/zero | tr '\\0' o\n"
              "wait\n")
    r = transport.run(script, become=False, timeout=120)
    assert r.rc == 0
    assert len(r.stdout) == 4 * 1024 * 1024 and set(r.stdout) == {"o"}
    assert len(r.stderr) == 4 * 1024 * 1024 and set(r.stderr) == {"e"}


def test_tens_of_mib_on_both_streams_complete(transport: SSHTransport) -> None:
    script = ("head -c 20000000 /dev/urandom | base64 -w 0 >&2 &\n"
              "head -c 20000000 /dev/urandom | base64 -w 0\nwait\n")
    r = transport.run(script, become=False, timeout=300)
    assert r.rc == 0
    assert len(r.stdout) == len(r.stderr) == 26666668  # base64 of 20 MB


def test_invalid_utf8_is_replaced_not_fatal(transport: SSHTransport) -> None:
    r = transport.run("printf 'a\\377b'\n", become=False, timeout=WAIT)
    assert r.stdout == "a\ufffdb"


def test_exit_codes_propagate(transport: SSHTransport) -> None:
    assert transport.run("exit 0\n", become=False, timeout=WAIT).rc == 0
    assert transport.run("exit 3\n", become=False, timeout=WAIT).rc == 3
    assert transport.run("false\n", become=True, timeout=WAIT).rc == 1
    assert transport.run("exit 42\n", become=True, timeout=WAIT).rc == 42


def test_a_1_mib_script_is_delivered_on_stdin(transport: SSHTransport) -> None:
    script = ("# " + "x" * 1021 + "\n") * 1024 + "echo ok\n"
    assert len(script) > 1024 * 1024
    for become in (False, True):
        r = transport.run(script, become=become, timeout=120)
        assert (r.rc, r.stdout, r.stderr) == (0, "ok\n", "")


def test_a_script_bigger_than_the_window_that_writes_early_does_not_deadlock(transport: SSHTransport) -> None:
    # the first line writes 4 MiB before sh reads the rest of a 3 MiB script: sending stdin and
    # reading output must overlap
    script = ("head -c 4194304 /dev/zero >&2\n" + ("#" * 1023 + "\n") * 3072 + "echo done\n")
    r = transport.run(script, become=False, timeout=120)
    assert (r.rc, r.stdout, len(r.stderr)) == (0, "done\n", 4194304)


def test_become_runs_as_root_and_without_it_as_the_user(sshd: LocalSSHD, transport: SSHTransport) -> None:
    assert transport.run("id -u\n", become=True, timeout=WAIT).stdout == "0\n"
    assert transport.run("id -un\n", become=False, timeout=WAIT).stdout == f"{sshd.nopasswd.name}\n"


def test_become_with_a_password_on_stdin(sshd: LocalSSHD, monkeypatch: pytest.MonkeyPatch) -> None:
    t = sshd.transport(sshd.passwd, become_password_env="SHIPIT_TEST_BECOME_PW")
    try:
        r = t.run("id -u\n", become=True, timeout=WAIT)
        assert r.rc != 0  # no password: sudo -n refuses, and nothing hangs
        monkeypatch.setenv("SHIPIT_TEST_BECOME_PW", sshd.passwd.password)
        r = t.run("id -u\necho done\n", become=True, timeout=WAIT)
        assert (r.rc, r.stdout) == (0, "0\ndone\n")
        assert sshd.passwd.password not in r.stdout + r.stderr
    finally:
        t.close()


def test_a_password_sudo_does_not_ask_for_is_never_run_as_a_command(
        sshd: LocalSSHD, monkeypatch: pytest.MonkeyPatch) -> None:
    # NOPASSWD: sudo -S leaves the password line unread; it must not reach sh as a command
    # (whose "not found" would print it on stderr)
    t = sshd.transport(sshd.nopasswd, become_password_env="SHIPIT_TEST_BECOME_PW")
    monkeypatch.setenv("SHIPIT_TEST_BECOME_PW", "not-a-command-" + secrets.token_hex(4))
    try:
        r = t.run("id -u\n", become=True, timeout=WAIT)
        assert (r.rc, r.stdout, r.stderr) == (0, "0\n", "")
    finally:
        t.close()


def test_script_and_password_never_appear_in_argv(sshd: LocalSSHD, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = "shipit-marker-" + secrets.token_hex(6)
    monkeypatch.setenv("SHIPIT_TEST_BECOME_PW", sshd.passwd.password)
    t = sshd.transport(sshd.passwd, become_password_env="SHIPIT_TEST_BECOME_PW")
    try:
        for become in (False, True):
            r = t.run(f"SECRET={marker}\nps -eo args\n", become=become, timeout=WAIT)
            assert r.rc == 0 and "ps -eo args" in r.stdout  # the listing includes ps itself
            assert marker not in r.stdout
            assert sshd.passwd.password not in r.stdout
    finally:
        t.close()


@pytest.mark.parametrize("become", [False, True], ids=["user", "sudo"])
def test_timeout_stops_the_remote_command(transport: SSHTransport, become: bool) -> None:
    tag = secrets.token_hex(4)
    flag = f"/tmp/shipit-timeout-{tag}"
    sleeper = f"sleep 6{int(become)}.25"
    with pytest.raises(RemoteTimeout) as info:
        transport.run(f"echo started\n{sleeper}; touch {flag}\n", become=become, timeout=1.5)
    err = info.value
    assert not isinstance(err, HostUnreachable)
    assert isinstance(err, RemoteCommandError) and err.timeout == 1.5
    assert "local" in err.message and "1.5 s" in err.message
    assert err.result.stdout == "started\n"  # what it wrote before the timeout is kept
    assert wait_gone(transport, sleeper) == []
    assert not os.path.exists(flag)


@pytest.mark.parametrize("become", [False, True], ids=["user", "sudo"])
def test_cancel_from_another_thread_interrupts_and_kills_the_remote_command(
        transport: SSHTransport, become: bool) -> None:
    tag = secrets.token_hex(4)
    flag = f"/tmp/shipit-cancel-{tag}"
    sleeper = f"sleep 30{int(become)}.5"
    outcome: list[BaseException | object] = []

    def work() -> None:
        try:
            outcome.append(transport.run(f"echo started\n{sleeper}; touch {flag}\n", become=become, timeout=600))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    watcher = SSHTransport(transport.target, transport.policy)  # a second connection to look
    try:
        deadline = time.monotonic() + WAIT
        while not remote_procs(watcher, sleeper) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert remote_procs(watcher, sleeper), "the remote command never started"
        transport.cancel()
        worker.join(WAIT)
        assert not worker.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], CommandInterrupted)
        assert not isinstance(outcome[0], HostUnreachable)
        assert wait_gone(watcher, sleeper) == []
        assert not os.path.exists(flag)
        # cancelled stays cancelled (a worker starting its next task is refused) until resume()
        with pytest.raises(CommandInterrupted):
            transport.run("true\n", become=False, timeout=WAIT)
        transport.resume()
        assert transport.run("echo back\n", become=False, timeout=WAIT).stdout == "back\n"
    finally:
        transport.resume()
        watcher.close()


def test_a_command_killed_by_a_signal_is_an_error_not_a_hang(transport: SSHTransport) -> None:
    from shipit.transport import NoExitStatus
    with pytest.raises(NoExitStatus) as info:
        # $PPID is the login shell's ``sh -c 'sh -s'``, the session's own process: sshd then
        # reports exit-signal, not exit-status
        transport.run("echo before\nkill -KILL $PPID\n", become=False, timeout=WAIT)
    assert info.value.result.stdout == "before\n"


def test_a_background_process_holding_stdout_does_not_hang_the_command(transport: SSHTransport) -> None:
    tag = secrets.token_hex(3)
    r = transport.run(f"sleep 20.{int(tag, 16) % 9 + 1} &\necho fg\nexit 5\n", become=False, timeout=WAIT)
    assert (r.rc, r.stdout) == (5, "fg\n")


def test_the_connection_is_reused_and_put_works(transport: SSHTransport, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(os.urandom(100_000))
    dest = f"/tmp/shipit-put-{secrets.token_hex(4)}"
    try:
        transport.put(str(src), dest)
        r = transport.run(f"sha256sum < {dest}\n", become=False, timeout=WAIT)
        import hashlib
        assert r.stdout.split()[0] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert transport.stats.connects == 1 and transport.stats.sftp == 1
    finally:
        Path(dest).unlink(missing_ok=True)


def test_an_unknown_host_key_is_still_refused(sshd: LocalSSHD, tmp_path: Path) -> None:
    from shipit.transport import HostKeyRefused
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = SSHTransport(SSHTarget("local", "127.0.0.1", port=sshd.port, user=sshd.nopasswd.name,
                               key=str(sshd.dir / "client_key")), HostKeyPolicy(known_hosts=(str(empty),)))
    with pytest.raises(HostKeyRefused):
        t.run("true\n", timeout=WAIT)


@pytest.mark.parametrize("become", [False, True], ids=["user", "sudo"])
def test_stream_hands_output_over_while_the_command_runs(transport: SSHTransport, become: bool) -> None:
    """`shipit logs -f` and live `exec`: the first line arrives before the command ends."""
    tag = secrets.token_hex(4)
    flag = f"/tmp/shipit-stream-{tag}"
    got: list[tuple[str, bytes, bool]] = []

    def sink(stream: str, data: bytes) -> None:
        got.append((stream, data, os.path.exists(flag)))

    script = f"echo first; echo oops >&2; while [ ! -e {flag} ]; do sleep 0.05; done; echo second\n"
    done = threading.Event()

    def release() -> None:  # create the flag only once the first line was handed over
        deadline = time.monotonic() + WAIT
        while not any(b"first" in d for _, d, _ in got) and time.monotonic() < deadline:
            time.sleep(0.02)
        open(flag, "w").close()
        done.set()

    helper = threading.Thread(target=release)
    helper.start()
    try:
        rc = transport.stream(script, sink, become=become, timeout=WAIT)
    finally:
        helper.join()
        if os.path.exists(flag):
            os.unlink(flag)
    assert rc == 0 and done.is_set()
    first = next(i for i, (_, d, _) in enumerate(got) if b"first" in d)
    assert got[first][2] is False  # handed over while the command was still waiting
    assert b"".join(d for s, d, _ in got if s == "stdout") == b"first\nsecond\n"
    assert b"".join(d for s, d, _ in got if s == "stderr") == b"oops\n"


def test_stream_is_cancelled_like_run(transport: SSHTransport) -> None:
    sleeper = "sleep 302.25"
    outcome: list[BaseException | int] = []
    worker = threading.Thread(target=lambda: outcome.append(_stream_or_error(transport, f"echo up; {sleeper}\n")))
    worker.start()
    watcher = SSHTransport(transport.target, transport.policy)
    try:
        deadline = time.monotonic() + WAIT
        while not remote_procs(watcher, sleeper) and time.monotonic() < deadline:
            time.sleep(0.1)
        transport.cancel()
        worker.join(WAIT)
        assert len(outcome) == 1 and isinstance(outcome[0], CommandInterrupted)
        assert wait_gone(watcher, sleeper) == []
    finally:
        transport.resume()
        watcher.close()


def _stream_or_error(transport: SSHTransport, script: str) -> BaseException | int:
    try:
        return transport.stream(script, lambda s, d: None, become=False, timeout=WAIT)
    except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
        return exc
