"""Scheduled jobs on real hosts (issue 13 item 4): a copy of the example app with a job every
10 s that appends a start and an end line to a file in shared/ (sleeping 12 s between them)
and a job on every host that outlives its 2 s timeout. Shown: the job runs on the leader only,
as the app user, in the current release's directory and environment; two runs never overlap;
no run overlaps a deploy's migrate-and-switch window; `shipit status` shows last and next runs
and results; a second deploy changes nothing; a job dropped from the spec loses its units.

The tests in this file run in order on one lab.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shipit.lab import LabState
from shipit.layout import SYSTEMD_UNIT_DIR, Layout
from tests.e2e.test_deploy import Env, copy_app

pytestmark = pytest.mark.e2e

ENV_NAME = "shipit-test"
LAYOUT = Layout("example")
TICKS = LAYOUT.shared_dir("ticks.log")
WEB = ("web1", "web2", "web3")
# one run: "<epoch> start <pid> <user> <SHIPIT_RELEASE> <cwd>", 12 s asleep, "<epoch> end <pid>"
TICK = (f'echo "$(date +%s) start $$ $(id -un) $SHIPIT_RELEASE $(pwd -P)" >> {TICKS}; sleep 12; '
        f'echo "$(date +%s) end $$" >> {TICKS}')
SCHEDULE = f"""schedule:
  - {{name: tick, command: '{TICK}', on_calendar: "*-*-* *:*:0/10"}}
  - {{name: slow, command: "sleep 30", on_calendar: "*-*-* *:*:0/10", on: all, timeout: 2s}}
"""


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("schedule")
    (work / "home").mkdir()
    yield Env(lab, work / "home", work)


def make_app(env: Env, name: str, schedule: str, suffix: str = "") -> Path:
    dest = copy_app(env.work / name, main_suffix=suffix)
    spec = dest / "shipit.yml"
    spec.write_text(spec.read_text() + schedule)
    return dest


def deploy(env: Env, app: Path) -> dict[str, Any]:
    result = env.shipit("deploy", ENV_NAME, "--json", app=app)
    assert result.returncode == 0, result.stderr[-3000:]
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def runs(env: Env, host: str = "web1") -> list[dict[str, Any]]:
    """The tick job's runs on ``host``: [{pid, start, end (None: under way), user, release, cwd}]."""
    text = env.run_on(host, f"sudo cat {TICKS} 2>/dev/null || true\n")
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 6 and words[1] == "start":
            out[words[2]] = {"pid": words[2], "start": int(words[0]), "end": None, "user": words[3],
                             "release": words[4], "cwd": words[5]}
        elif len(words) == 3 and words[1] == "end" and words[2] in out:
            out[words[2]]["end"] = int(words[0])
    return sorted(out.values(), key=lambda r: r["start"])


def wait_for_runs(env: Env, count: int, timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        done = [r for r in runs(env) if r["end"] is not None]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(3)


def current(env: Env, host: str) -> str:
    return env.run_on(host, f"readlink {LAYOUT.current}\n").strip().rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def app(env: Env) -> Path:
    return make_app(env, "app", SCHEDULE)


@pytest.fixture(scope="module")
def first(env: Env, app: Path) -> dict[str, Any]:
    doc = deploy(env, app)
    # from here on: runs started after the switch (the lab may have served another release before)
    env.run_on("web1", f"sudo rm -f {TICKS}\n")
    return doc


def test_the_job_runs_on_the_leader_only_as_the_app_user_in_the_current_release(env: Env, first: dict[str, Any]) -> None:
    done = wait_for_runs(env, 2)
    assert len(done) >= 2, runs(env)
    release = current(env, "web1")
    for run in done:
        assert run["user"] == "example"
        assert run["release"] == release
        assert run["cwd"] == LAYOUT.release(release)
    for host in ("web2", "web3"):
        assert env.run_on(host, f"sudo test -e {TICKS} && echo yes || echo no\n").strip() == "no"
        units = env.run_on(host, f"ls {SYSTEMD_UNIT_DIR} | grep '^example-job-' || true\n").split()
        assert units == ["example-job-slow.service", "example-job-slow.timer"], (host, units)
    units = env.run_on("web1", f"ls {SYSTEMD_UNIT_DIR} | grep '^example-job-' || true\n").split()
    assert sorted(units) == ["example-job-slow.service", "example-job-slow.timer",
                             "example-job-tick.service", "example-job-tick.timer"]


def test_two_runs_never_overlap(env: Env, first: dict[str, Any]) -> None:
    done = wait_for_runs(env, 3, timeout=150)
    assert len(done) >= 3, runs(env)
    for a, b in zip(done, done[1:], strict=False):
        # the timer fires every 10 s and a run takes 12 s: a time that comes during a run
        # starts the next one only when it has ended
        assert b["start"] >= a["end"], (a, b)
        assert a["end"] - a["start"] >= 12


def test_status_shows_last_and_next_run_and_result(env: Env, app: Path, first: dict[str, Any]) -> None:
    wait_for_runs(env, 1)
    time.sleep(12)  # the slow job has been stopped at its timeout on every host by now
    # ... but it starts again every 10 s (and runs 2 s): systemd's Result of a unit being
    # started again is its new run's, so ask while it runs nowhere
    deadline = time.monotonic() + 60
    while True:
        result = env.shipit("status", ENV_NAME, "--json", app=app, timeout=120)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        if not any(doc[h]["jobs"]["slow"]["running"] for h in WEB) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    now = time.time()
    tick = doc["web1"]["jobs"]["tick"]
    assert tick["timer"] == "active"
    assert tick["last"] and now - 60 < tick["last"] <= now + 1, tick
    # a run takes 12 s and the timer fires every 10 s: runs follow each other, and systemd
    # computes the next time only when a run ends
    if tick["running"]:
        assert tick["next"] is None and tick["state"] == "activating", tick
    else:
        assert tick["next"] and now - 15 < tick["next"] <= now + 15, tick
    assert tick["result"] == "success" and tick["exit_status"] == 0, tick
    for host in WEB:
        slow = doc[host]["jobs"]["slow"]
        assert slow["result"] == "timeout", (host, slow)
    assert set(doc["web2"]["jobs"]) == {"slow"}
    deadline = time.monotonic() + 60  # as above: while the slow job runs nowhere
    while True:
        text = env.shipit("status", ENV_NAME, app=app, timeout=120)
        assert text.returncode == 0, text.stderr
        if "slow: last" in text.stdout and "running" not in "".join(
                line for line in text.stdout.splitlines() if "slow: last" in line) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    lines = [line for line in text.stdout.splitlines() if "tick: last" in line]
    assert len(lines) == 1 and lines[0].startswith("web1 tick: last "), text.stdout
    assert " ok, next 12-" in lines[0] or " running, next after this run" in lines[0], lines[0]
    assert "slow: last" in text.stdout and "timed out" in text.stdout


def test_a_second_deploy_changes_nothing(env: Env, app: Path, first: dict[str, Any]) -> None:
    again = deploy(env, app)
    assert again["changed"] == 0, again
    assert again["release"] == first["release"]


def _log_times(env: Env, host: str, release: str, state: str, since: float) -> list[int]:
    """Times (epoch seconds) ``host``'s release log recorded ``release`` in ``state`` since ``since``."""
    text = env.run_on(host, f"cat {LAYOUT.release_log}\n")
    out = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 5 and fields[3] == release and fields[4] == state:
            when = int(datetime.strptime(fields[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
            if when >= int(since):
                out.append(when)
    return out


def test_no_run_overlaps_a_deploys_migrations_and_switch(env: Env, first: dict[str, Any]) -> None:
    wait_for_runs(env, 1)
    changed = make_app(env, "app2", SCHEDULE, suffix=f"\n# a new release: {time.time()}\n")  # never seen before
    started = time.time()
    doc = deploy(env, changed)
    ended = time.time()
    release = doc["release"]
    assert release != first["release"]
    # from the end of the migrations on the leader to the last host's switch (seconds, the
    # hosts' clock, which is the runner's in the lab)
    window_start = min(_log_times(env, "web1", release, "migrated", started))
    window_end = max(t for h in WEB for t in _log_times(env, h, release, "live", started))
    assert started <= window_start <= window_end <= ended + 1
    after = wait_for_runs(env, len(runs(env)) + 1)
    for run in after:  # whole seconds on both sides: a run may end in the second the migrations end
        assert run["end"] <= window_start or run["start"] >= window_end, (run, window_start, window_end)
    # the runs resume in the new release after the roll
    last = after[-1]
    assert last["start"] > window_end and last["release"] == release, (last, window_end)


def test_a_job_dropped_from_the_spec_loses_its_units(env: Env) -> None:
    without = make_app(env, "app3", "schedule:\n  - {name: slow, command: \"sleep 30\", "
                       "on_calendar: \"*-*-* *:*:0/10\", on: all, timeout: 2s}\n")
    deploy(env, without)
    units = env.run_on("web1", f"ls {SYSTEMD_UNIT_DIR} | grep '^example-job-' || true\n").split()
    assert units == ["example-job-slow.service", "example-job-slow.timer"]
    state = env.run_on("web1", "systemctl show -P LoadState example-job-tick.timer example-job-tick.service\n")
    assert state.split() == ["not-found", "not-found"]
    before = len(runs(env))
    time.sleep(25)
    assert len(runs(env)) == before
    none = make_app(env, "app4", "")
    again = deploy(env, none)
    assert again["changed"] > 0
    for host in WEB:
        units = env.run_on(host, f"ls {SYSTEMD_UNIT_DIR} | grep '^example-job-' || true\n").split()
        assert units == [], (host, units)
