"""The ``release_command`` module's script run by a real ``sh`` against stand-ins for
``systemd-run`` and ``systemctl`` on PATH (they log their arguments): an interrupted or
timed-out migration stops its transient unit, and a unit left running by a deploy that died
is stopped before a new one starts (#11 item 4)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from shipit.executor import changes_script
from shipit.modules.base import PlanContext
from shipit.modules.release_command import ReleaseCommandModule

UNIT = "example-release-command.service"


def stand_ins(tmp_path: Path, loaded: bool = False, deaf: bool = False, startup: float = 0.0) -> dict[str, str]:
    """``systemd-run`` and ``systemctl`` logging their arguments; ``deaf``: systemd-run ignores
    SIGTERM, as the real ``systemd-run --wait`` does, and ends when the unit is stopped;
    ``startup``: seconds systemd-run takes before its unit exists (a stop before finds none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    pid = tmp_path / "run.pid"
    ignore = "trap '' HUP INT TERM\n" if deaf else ""
    (bin_dir / "systemd-run").write_text(
        f"#!/bin/sh\n{ignore}echo \"systemd-run $*\" >> {log}\nsleep {startup}\n"
        f"echo $$ > {pid}\necho started >> {log}\nexec sleep 593\n")
    state = "loaded" if loaded else "not-found"
    (bin_dir / "systemctl").write_text(
        f"#!/bin/sh\necho \"systemctl $*\" >> {log}\n[ \"$1\" = show ] && echo {state}\n"
        f"[ \"$1\" = stop ] && [ -f {pid} ] && kill -KILL \"$(cat {pid})\" 2>/dev/null\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def script(timeout: float) -> str:
    module = ReleaseCommandModule()
    params = {"app": "example", "release": "20261202T000000Z-abc", "cmd": "alembic upgrade head",
              "timeout": 600, "label": "migrate"}
    plan = module.plan(params, {}, PlanContext(host="web1", host_facts={}))
    body = "\n".join(c.script for c in plan.changes)
    return "export LC_ALL=C\n" + changes_script(body, timeout, "n0nce") + 'echo "rc=$__shipit_rc"\n'


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_a_timed_out_migration_stops_its_unit(tmp_path: Path) -> None:
    env = stand_ins(tmp_path)
    r = subprocess.run(["sh", "-s"], input=script(1), capture_output=True, text=True, env=env, timeout=60)
    assert "rc=143" in r.stdout, r
    log = calls(tmp_path)
    assert log[-1] == f"systemctl stop {UNIT}", log
    assert any(line.startswith("systemd-run ") for line in log)


@pytest.mark.parametrize("deaf", [False, True], ids=["systemd-run-ends-on-TERM", "systemd-run-ignores-TERM"])
def test_an_interrupted_migration_stops_its_unit(tmp_path: Path, deaf: bool) -> None:
    """Regression (lab): the real ``systemd-run --wait`` ignores SIGTERM, so a trap waiting
    for it to end never ran and the migration's unit went on after Ctrl-C."""
    env = stand_ins(tmp_path, deaf=deaf)
    proc = subprocess.Popen(["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(script(600))
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while not (tmp_path / "calls.log").exists() or "systemd-run" not in (tmp_path / "calls.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, 15)  # as the SSH signal request does on Ctrl-C
    proc.stdin = None  # closed above: communicate() must not flush it
    out, _ = proc.communicate(timeout=30)
    assert "rc=143" in out
    assert calls(tmp_path)[-1] == f"systemctl stop {UNIT}"


def test_a_unit_left_running_by_a_dead_deploy_is_stopped_first(tmp_path: Path) -> None:
    env = stand_ins(tmp_path, loaded=True)
    r = subprocess.run(["sh", "-s"], input=script(1), capture_output=True, text=True, env=env, timeout=60)
    log = calls(tmp_path)
    first_run = next(i for i, line in enumerate(log) if line.startswith("systemd-run "))
    assert f"systemctl stop {UNIT}" in log[:first_run], log
    assert f"stopping {UNIT}" in r.stderr


def test_a_signal_while_systemd_run_is_still_starting_leaves_no_unit_behind(tmp_path: Path) -> None:
    """Regression (CI, under load): Ctrl-C came while ``systemd-run`` was still starting; the
    trap's stop found no unit, the body exited, and the client then started the migration,
    which ran on for minutes after shipit had gone. The client is killed before the stop."""
    env = stand_ins(tmp_path, deaf=True, startup=1.0)
    proc = subprocess.Popen(["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(script(600))
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while not (tmp_path / "calls.log").exists() or "systemd-run" not in (tmp_path / "calls.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, 15)  # while the client is in its start-up
    proc.stdin = None
    out, _ = proc.communicate(timeout=30)
    assert "rc=143" in out
    time.sleep(1.5)  # past the stand-in's start-up: had it survived, its unit would exist now
    try:
        assert "started" not in calls(tmp_path), calls(tmp_path)
        assert calls(tmp_path)[-1] == f"systemctl stop {UNIT}"
    finally:  # a surviving stand-in must not outlive the test
        if (tmp_path / "run.pid").exists():
            subprocess.run(["kill", "-KILL", (tmp_path / "run.pid").read_text().strip()], check=False)
