"""Day two on real hosts (issue 13): `logs -f` streams a line the app writes on web2 while
following every host; `console` runs in the current release with the env file's values exact
(a quote, a `$`, a newline, coming from the app's `secrets_command`); a failing pre-deploy
hook stops a deploy with nothing touched and the lock free; `check` finds bad input with no
network at all (inside `unshare -n`).

The tests in this file run in order on one deploy of a copy of the example app.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipit.lab import LabState
from shipit.layout import Layout
from tests.e2e.test_deploy import Env, copy_app, https_get

pytestmark = pytest.mark.e2e

ENV_NAME = "shipit-test"
# what the app's env file carries to the process: a quote, a $, a newline, a backslash
X_VALUE = 'it\'s "quoted" $HOME and\nsecond line \\ end'
SHOUT = '''

@app.get("/shout")
def _shout(m: str) -> dict[str, str]:
    """Write one line to stdout (the journal), for `shipit logs`."""
    print(f"shout {m}", flush=True)
    return {"shouted": m}
'''
LAYOUT = Layout("example")


class DayTwo(Env):
    """The shared Env, with the X secret and options placed before a command's `--`."""

    def run(self, *args: str | Path, app: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        words = [str(a) for a in args]
        where = ["-i", str(self.lab.inventory), "--app", str(app)]
        cut = words.index("--") if "--" in words else len(words)
        return subprocess.run([sys.executable, "-m", "shipit.cli", *words[:cut], *where, *words[cut:]],
                              capture_output=True, text=True, timeout=timeout, env=self.environ(),
                              cwd=self.work, stdin=subprocess.DEVNULL)

    def environ(self) -> dict[str, str]:
        environ = {**os.environ, "HOME": str(self.home), "DB_PASSWORD": "e2e-Secret-pw-1", "COLUMNS": "200"}
        environ.pop("X", None)  # X comes from the app's secrets_command
        return environ


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DayTwo]:
    work = tmp_path_factory.mktemp("daytwo")
    (work / "home").mkdir()
    yield DayTwo(lab, work / "home", work)


@pytest.fixture(scope="module")
def app(env: DayTwo) -> Path:
    dest = copy_app(env.work / "app", main_suffix=SHOUT)
    spec = dest / "shipit.yml"
    text = spec.read_text().replace("env:\n", "env:\n  X: '{{ secrets.X }}'\n", 1)
    text = text.replace("secrets: [DB_PASSWORD]", "secrets: [DB_PASSWORD, X]\n"
                        "secrets_command: cat ../secrets.$SHIPIT_ENV.env")  # outside the app: not shipped
    spec.write_text(text)
    # what a password manager's CLI prints: dotenv, double-quoted with escapes
    escaped = X_VALUE.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    (dest.parent / f"secrets.{ENV_NAME}.env").write_text(f'X="{escaped}"\n')
    return dest


@pytest.fixture(scope="module")
def deployed(env: DayTwo, app: Path) -> dict[str, Any]:
    result = env.run("deploy", ENV_NAME, "--json", app=app)
    assert result.returncode == 0, result.stderr[-3000:]
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _reader(stream: Any, lines: queue.Queue[tuple[float, str]]) -> None:
    for line in stream:
        lines.put((time.monotonic(), line))


def test_logs_follow_shows_a_line_written_on_web2_within_2_s(env: DayTwo, app: Path, deployed: dict[str, Any]) -> None:
    words = ["logs", ENV_NAME, "web", "-f", "-n", "5", "-i", str(env.lab.inventory), "--app", str(app)]
    proc = subprocess.Popen([sys.executable, "-m", "shipit.cli", *words], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env.environ(), cwd=env.work)
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        # following is live on web2 once a first line of web2's comes (history, or a marker)
        ready = time.monotonic() + 120
        warm = f"warm-{uuid.uuid4().hex[:8]}"
        seen_web2 = False
        while not seen_web2 and time.monotonic() < ready:
            https_get(env.address("web2"), env.cafile("web2"), f"/shout?m={warm}")
            try:
                while True:
                    _, line = lines.get(timeout=1.0)
                    if " web2 " in line:
                        seen_web2 = True
            except queue.Empty:
                pass
        assert seen_web2, f"no line of web2 while following; rc={proc.poll()}"
        marker = f"marker-{uuid.uuid4().hex}"
        status, _ = https_get(env.address("web2"), env.cafile("web2"), f"/shout?m={marker}")
        written = time.monotonic()
        assert status == 200
        found = None
        while found is None and time.monotonic() < written + 2.0:
            try:
                _, line = lines.get(timeout=max(0.01, written + 2.0 - time.monotonic()))
            except queue.Empty:
                break
            if marker in line:
                found = line
        assert found is not None, "the line written on web2 did not show within 2 s"
        assert " web2 web@" in found and f"shout {marker}" in found
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    # Ctrl-C stopped the remote journalctl on every host (no follower left behind)
    deadline = time.monotonic() + 15
    left = "?"
    while time.monotonic() < deadline:
        left = "".join(env.run_on(h, "pgrep -f 'journalctl.*--follow' || true\n") for h in ("web1", "web2", "web3"))
        if not left.strip():
            break
        time.sleep(0.5)
    assert not left.strip(), f"journalctl still following: {left}"


def test_logs_without_follow_merges_every_host(env: DayTwo, app: Path, deployed: dict[str, Any]) -> None:
    result = env.run("logs", ENV_NAME, "--since", "1h", "--json", app=app, timeout=300)
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert {d["host"] for d in docs} == {"web1", "web2", "web3"}
    assert [d["time"] for d in docs] == sorted(d["time"] for d in docs)
    assert any(d["process"].startswith("heartbeat@") for d in docs)


def test_console_prints_an_env_value_with_a_quote_a_dollar_and_a_newline_exactly(
        env: DayTwo, app: Path, deployed: dict[str, Any]) -> None:
    result = env.run("console", ENV_NAME, "--", "python", "-c", 'import os; print(os.environ["X"])', app=app,
                     timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == X_VALUE + "\n"


def test_console_is_the_app_user_in_the_current_release_and_passes_the_exit_status(
        env: DayTwo, app: Path, deployed: dict[str, Any]) -> None:
    # and in the app units' sandbox: the release is read-only, shared/ is writable
    probe = f"{LAYOUT.shared}/console-probe"
    script = (f'id -un; pwd; command -v python; (: > probe) 2>/dev/null && echo release-rw || echo release-ro; '
              f'(: > {probe}) && echo shared-rw && rm -f {probe}; exit 7')
    result = env.run("console", ENV_NAME, "-l", "web2", "--", "sh", "-c", script, app=app, timeout=300)
    assert result.returncode == 7, result.stderr
    user, cwd, python, release_rw, shared_rw = result.stdout.splitlines()
    release = deployed["release"]
    assert (user, cwd, python) == ("example", LAYOUT.release(release), f"{LAYOUT.venv(release)}/bin/python")
    assert (release_rw, shared_rw) == ("release-ro", "shared-rw")
    # the secret travelled in the env file: it is in no process's argv on the host
    assert "second line" not in env.run_on("web2", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '\n")


def test_console_at_a_terminal_gets_a_pseudo_terminal_on_the_host(
        env: DayTwo, app: Path, deployed: dict[str, Any]) -> None:
    """Run under a pty here (as a person would): the remote command has a TTY too."""
    import pty

    words = ["console", ENV_NAME, "-i", str(env.lab.inventory), "--app", str(app), "--",
             "sh", "-c", "tty; echo \"user=$(id -un)\"; exit 3"]
    pid, master = pty.fork()  # the child's controlling terminal is the pty, as at a real terminal
    if pid == 0:
        try:
            os.chdir(env.work)
            os.execve(sys.executable, [sys.executable, "-m", "shipit.cli", *words], env.environ())
        finally:
            os._exit(127)
    chunks: list[bytes] = []
    status: int | None = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
            continue
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    if status is None:
        status = os.waitpid(pid, 0)[1]
    rc = os.waitstatus_to_exitcode(status)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert rc == 3, text
    assert "/dev/pts/" in text and "user=example" in text, text


def test_a_failing_pre_deploy_hook_stops_the_deploy_with_nothing_touched(
        env: DayTwo, app: Path, deployed: dict[str, Any]) -> None:
    changed = copy_app(env.work / "app-hook", main_suffix=SHOUT + "\n# changed\n")
    shutil.copy(app / "shipit.yml", changed / "shipit.yml")
    hooks = changed / ".shipit" / "hooks"
    hooks.mkdir(parents=True)
    (hooks / "pre-deploy").write_text("#!/bin/sh\necho \"CI is red for $SHIPIT_RELEASE on $SHIPIT_HOSTS\" >&2\nexit 1\n")
    (hooks / "pre-deploy").chmod(0o755)
    before = {h: env.run_on(h, f"ls {LAYOUT.releases}\n") for h in ("web1", "web2", "web3")}
    result = env.run("deploy", ENV_NAME, app=changed, timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pre-deploy" in result.stderr and "CI is red for" in result.stderr
    assert {h: env.run_on(h, f"ls {LAYOUT.releases}\n") for h in before} == before
    assert env.run_on("web1", f"test -e {LAYOUT.lock_dir} && echo held || echo free\n").strip() == "free"


def test_check_finds_bad_input_with_no_network_at_all(env: DayTwo, app: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to prove that check connects to nothing")
    base = [sys.executable, "-m", "shipit.cli", "check", ENV_NAME, "-i", str(env.lab.inventory)]

    def check(app_dir: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unshare", "-n", *base, "--app", str(app_dir)], capture_output=True,
                              text=True, timeout=300, env=env.environ(), cwd=env.work)

    good = check(app)
    assert good.returncode == 0, good.stderr  # no network, yet everything checked
    bad = copy_app(env.work / "app-bad")
    spec = bad / "shipit.yml"
    spec.write_text(spec.read_text().replace("keep_releases: 4", "keep_releases: many"))
    result = check(bad)
    assert result.returncode == 2, result.stdout + result.stderr
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if text.startswith("keep_releases"))
    assert f"{spec}:{line}: keep_releases:" in result.stderr and "Traceback" not in result.stderr


def test_check_hosts_connects_and_reports_each_host(env: DayTwo, app: Path) -> None:
    result = env.run("check", ENV_NAME, "--hosts", "--json", app=app, timeout=300)
    assert result.returncode == 0, result.stderr
    hosts = json.loads(result.stdout)["hosts"]
    assert {h for h, r in hosts.items() if r["ok"]} == {"web1", "web2", "web3", "*"}
    assert "sudo ok" in hosts["web2"]["message"] and "CPython 3.11" in hosts["*"]["message"]
