"""``shipit status`` on real hosts (issue 6): after a deploy of the example app every web host
is reachable and serves the current release with its 2 workers; a crashed uvicorn master is
restarted by systemd (and counted), a crashed worker is replaced by uvicorn, each within 10 s.

Reuses the session lab; the deploy is a fast no-op when test_deploy.py already deployed.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_deploy import WEB, Env, https_get

from shipit.lab import LabState

pytestmark = pytest.mark.e2e

WEB_UNIT = "example-web@{port}.service"
RECOVERY_SECONDS = 10.0


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("status")
    (work / "home").mkdir()
    e = Env(lab, work / "home", work)
    result = e.shipit("deploy", "shipit-test")
    assert result.returncode == 0, f"deploy failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    yield e


def status_json(env: Env) -> dict[str, Any]:
    result = env.shipit("status", "shipit-test", "--json")
    assert result.returncode == 0, f"status failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def healthy(env: Env, host: str) -> bool:
    """One GET /health through the host's Caddy over HTTPS; True on HTTP 200."""
    try:
        status, _ = https_get(env.address(host), env.cafile(host), "/health", timeout=2.0)
    except (OSError, ssl.SSLError, http.client.HTTPException):
        return False
    return status == 200


def wait_serving(env: Env, host: str, within: float = RECOVERY_SECONDS) -> float:
    """Poll until ``host`` serves again; returns the seconds it took. Fails after ``within``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if healthy(env, host):
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{host} did not serve again within {within:.0f} s")


def main_pid(env: Env, host: str, port: int) -> int:
    return int(env.run_on(host, f"systemctl show -p MainPID --value {WEB_UNIT.format(port=port)}\n").strip())


def worker_pids(env: Env, host: str, master: int) -> list[int]:
    out = env.run_on(host, f"for c in $(cat /proc/{master}/task/*/children); do "
                           f"grep -qa spawn_main /proc/$c/cmdline && echo $c; done; true\n")
    return [int(p) for p in out.split()]


def test_status_json_after_deploy(env: Env) -> None:
    doc = status_json(env)
    assert set(doc) == set(WEB)
    releases = {h: s["current"] for h, s in doc.items()}
    assert len(set(releases.values())) == 1 and None not in releases.values(), releases
    for host, s in doc.items():
        assert s["reachable"] is True
        assert s["web_unit"] == WEB_UNIT.format(port=s["live_port"]), s
        assert s["web_active"] is True and s["units"][s["web_unit"]]["sub_state"] == "running"
        assert s["workers"] == 2, f"{host}: {s['units']}"
        assert s["memory"] > 0 and s["units"][s["web_unit"]]["memory"] > 0
        assert any(u.startswith("example-heartbeat@") for u in s["units"]), s["units"]
        assert 0 < s["host"]["mem_available"] <= s["host"]["mem_total"]
        assert len(s["host"]["load"]) == 3
        # the health endpoint through the host's own Caddy, and its certificate (Caddy's
        # internal CA issues for days, not a year)
        probe = s["probe"]
        assert probe["code"] == 200 and 0 < probe["ms"] < 5000, probe
        assert probe["tls_days"] is not None and 0 <= probe["tls_days"] <= 90, probe


def test_table_output(env: Env) -> None:
    result = env.shipit("status", "shipit-test")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    for host in WEB:
        row = [line for line in lines if line.split()[:1] == [host]]
        assert len(row) == 1 and " up " in f" {row[0]} " and "200" in row[0], result.stdout
    assert all(len(line) <= 80 for line in lines), result.stdout
    detail = env.shipit("status", "shipit-test", "--detail", "-l", "web2")
    assert detail.returncode == 0, detail.stderr
    assert "web@" in detail.stdout and "(live)" in detail.stdout and "web1" not in detail.stdout


def test_killed_master_is_restarted_and_counted(env: Env) -> None:
    host = "web2"
    before = status_json(env)[host]
    port = before["live_port"]
    unit = WEB_UNIT.format(port=port)
    master = main_pid(env, host, port)
    env.run_on(host, f"kill -9 {master}\n")
    wait_serving(env, host)
    after = status_json(env)[host]
    assert after["units"][unit]["restarts"] >= before["units"][unit]["restarts"] + 1
    assert after["units"][unit]["restarts"] >= 1
    assert after["units"][unit]["main_pid"] != master
    assert after["web_active"] is True


def test_killed_worker_is_replaced(env: Env) -> None:
    host = "web3"
    port = status_json(env)[host]["live_port"]
    master = main_pid(env, host, port)
    workers = worker_pids(env, host, master)
    assert len(workers) == 2, workers
    env.run_on(host, f"kill -9 {workers[0]}\n")
    wait_serving(env, host)
    # uvicorn's supervisor replaces the worker (the master was not restarted by systemd)
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        now = worker_pids(env, host, master)
        if len(now) == 2 and workers[0] not in now:
            break
        assert time.monotonic() < deadline, f"worker not replaced: {workers} -> {now}"
        time.sleep(0.5)
    assert main_pid(env, host, port) == master
