"""The transport test doubles honour timeout and cancel like SSHTransport (no network)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from shipit.testing import FakeTransport, Hang, LocalShellTransport, killed
from shipit.transport import (
    CommandInterrupted,
    CommandResult,
    HostUnreachable,
    NoExitStatus,
    RemoteCommandError,
    RemoteTimeout,
    SSHTransport,
    Transport,
)

OK = CommandResult(0, "ok\n", "")
WAIT = 30.0  # seconds: generous bound on joins, never asserted as a duration


def test_all_three_transports_satisfy_the_protocol() -> None:
    # checked by mypy --strict (host is a read-only property in the Protocol); at runtime
    # assert the members the executor and pool use exist
    transports: list[Transport] = [FakeTransport("a", lambda s: OK), LocalShellTransport("b")]
    for t in [*transports, SSHTransport]:
        for member in ("host", "stats", "run", "put", "close", "cancel", "resume"):
            assert hasattr(t, member) or member in getattr(t, "__dataclass_fields__", {}), member


def test_remote_errors_are_not_host_unreachable() -> None:
    for cls in (RemoteTimeout, CommandInterrupted, NoExitStatus):
        assert issubclass(cls, RemoteCommandError)
        assert not issubclass(cls, HostUnreachable)
    err = RemoteTimeout("web1", 2.5, CommandResult(-1, "half", ""))
    assert "web1" in err.message and "2.5 s" in err.message and err.result.stdout == "half"
    assert CommandInterrupted("web1", "x").exit_code == 130


def test_fake_answers_and_records() -> None:
    t = FakeTransport("web1", lambda s: CommandResult(0, s.upper(), ""))
    assert t.run("echo\n").stdout == "ECHO\n"
    assert t.scripts == ["echo\n"] and t.stats.execs == 1


def test_fake_hang_times_out_with_remote_timeout() -> None:
    t = FakeTransport("web1", lambda s: Hang(partial=CommandResult(-1, "so far", "")))
    with pytest.raises(RemoteTimeout) as info:
        t.run("sleep 300\n", timeout=0.05)
    assert info.value.host == "web1" and info.value.timeout == 0.05
    assert info.value.result.stdout == "so far"


def test_fake_hang_shorter_than_the_timeout_returns_its_result() -> None:
    t = FakeTransport("web1", lambda s: Hang(0.01, then=OK))
    assert t.run("x", timeout=WAIT) == OK


def test_fake_cancel_wakes_a_hang_in_another_thread_and_sticks_until_resume() -> None:
    t = FakeTransport("web1", lambda s: Hang())
    outcome: list[BaseException] = []
    started = threading.Event()
    real_respond = t.respond

    def respond(script: str) -> Hang | CommandResult | BaseException:
        started.set()
        return real_respond(script)

    t.respond = respond

    def work() -> None:
        try:
            t.run("sleep forever\n")
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(WAIT)
    t.cancel()
    worker.join(WAIT)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], CommandInterrupted)
    with pytest.raises(CommandInterrupted):
        t.run("true\n")
    t.resume()
    t.respond = lambda s: OK
    assert t.run("true\n") == OK


def test_fake_simulates_truncated_output_and_exceptions() -> None:
    t = FakeTransport("web1", lambda s: killed("half a li"))
    with pytest.raises(NoExitStatus) as info:
        t.run("x")
    assert info.value.host == "web1" and info.value.result.stdout == "half a li"
    assert "web1" in info.value.message
    t.respond = lambda s: HostUnreachable("web1: gone")
    with pytest.raises(HostUnreachable):
        t.run("x")

    def boom(script: str) -> CommandResult:
        raise RuntimeError("bug")

    t.respond = boom
    with pytest.raises(RuntimeError):
        t.run("x")


def test_local_shell_runs_the_script_on_stdin_and_keeps_both_streams() -> None:
    t = LocalShellTransport("local")
    r = t.run("echo out; echo err >&2; exit 3\n", timeout=WAIT)
    assert (r.rc, r.stdout, r.stderr) == (3, "out\n", "err\n")
    big = t.run("head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o\n",
                timeout=WAIT)
    assert len(big.stdout) == len(big.stderr) == 3000000


def test_local_shell_runs_as_this_user_and_puts_like_sftp(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """become is ignored, so a SUDO_USER of the test runner must not reach the scripts; a
    relative put lands in $HOME, where SFTP puts it."""
    monkeypatch.setenv("SUDO_USER", "someone-else")
    monkeypatch.setenv("HOME", str(tmp_path))
    t = LocalShellTransport("local")
    assert t.run("echo \"${SUDO_USER-unset}\"", timeout=WAIT).stdout == "unset\n"
    src = tmp_path / "src"
    src.write_text("x")
    t.put(str(src), "up.bin")
    t.put(str(src), str(tmp_path / "abs.bin"))
    assert (tmp_path / "up.bin").read_text() == (tmp_path / "abs.bin").read_text() == "x"
    assert t.stats.sftp == 2


def test_local_shell_timeout_kills_the_process_group(tmp_path: Path) -> None:
    t = LocalShellTransport("local")
    flag = tmp_path / "flag"
    with pytest.raises(RemoteTimeout) as info:
        t.run(f"echo started\nsleep 30 & wait\ntouch {flag}\n", timeout=0.5)
    assert info.value.result.stdout == "started\n"
    # the background sleep was in the group: nothing is left to create the flag later
    assert not flag.exists()


def test_local_shell_cancel_from_another_thread(tmp_path: Path) -> None:
    t = LocalShellTransport("local")
    pidfile = tmp_path / "pid"
    outcome: list[BaseException | CommandResult] = []

    def work() -> None:
        try:
            outcome.append(t.run(f"echo $$ > {pidfile}\nsleep 30\n"))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    for _ in range(3000):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        threading.Event().wait(0.01)
    t.cancel()
    worker.join(WAIT)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], CommandInterrupted)
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(CommandInterrupted):
        t.run("true\n")
    t.resume()
    assert t.run("echo back\n").stdout == "back\n"


def test_an_upload_cut_short_by_a_full_disk_says_the_disk_may_be_full() -> None:
    """Regression (fault matrix, full disk): the message was only paramiko's "size mismatch in
    put!  0 != 16997", which does not say why."""
    from shipit.transport import upload_failure

    for exc in (OSError("size mismatch in put!  0 != 16997"), OSError("Failure"),
                OSError(28, "No space left on device")):
        msg = upload_failure("web2", "/a/p.gz", ".shipit-upload-x", exc)
        assert msg.startswith("web2: upload of /a/p.gz to .shipit-upload-x failed: ") and "disk full" in msg, msg
    assert "disk full" not in upload_failure("web2", "a", "b", OSError("Connection reset by peer"))
