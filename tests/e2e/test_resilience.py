"""Resilience on real hosts (issue 6): a memory budget that the workers do not fit refuses the
deploy before any host is touched; a release whose web process crashes at start is reported
at the canary and not left restarting; a web host rebooted from inside comes back serving its
release through Caddy with no shipit run.

Reuses the session lab; the first deploy is a fast no-op when test_deploy.py already deployed.
The tests run in this order (the reboot comes last, on the canary that had the failed slot).
"""

from __future__ import annotations

import dataclasses
import http.client
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_deploy import WEB, Env, copy_app, https_get, serving

from shipit.lab import Lab, LabState

pytestmark = pytest.mark.e2e

ROOT = "/srv/example"
CANARY = "web1"
DEPLOY_TIMEOUT = 600.0  # seconds: a deploy that builds a new release venv on every host
REBOOT_STOP_WITHIN = 60.0  # seconds for nspawn to exit after `systemctl reboot` inside
SERVE_AGAIN_WITHIN = 120.0  # seconds for the healed host to serve again through Caddy

FINGERPRINT = f"""ls -la --time-style=full-iso {ROOT} {ROOT}/releases {ROOT}/slots /etc/caddy/sites
echo "current: $(readlink {ROOT}/current)"; echo "live: $(cat {ROOT}/.live-port)"
systemctl list-units 'example-*' --all --plain --no-legend
systemctl list-unit-files 'example-*' --plain --no-legend
md5sum /etc/systemd/system/example-*.service /etc/caddy/Caddyfile /etc/caddy/sites/*
cat {ROOT}/releases.log
"""


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("resilience")
    (work / "home").mkdir()
    e = Env(lab, work / "home", work)
    result = e.shipit("deploy", "shipit-test", timeout=DEPLOY_TIMEOUT)
    assert result.returncode == 0, f"deploy failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    yield e


def fingerprints(env: Env) -> dict[str, str]:
    return {host: env.run_on(host, FINGERPRINT) for host in WEB}


def unit_state(env: Env, host: str, unit: str) -> str:
    return env.run_on(host, f"systemctl is-active {unit}; true\n").strip()


def test_memory_budget_too_small_refuses_before_touching_any_host(env: Env, tmp_path: Path) -> None:
    inv = env.lab.inventory
    text = inv.read_text()
    line = re.search(r"^  web2: \{address: ([0-9.]+)\}$", text, re.M)
    assert line, text
    # beside the lab's inventory: its key and known_hosts paths are relative to it
    budget_inv = inv.with_name(f"{inv.stem}-budget.yml")
    budget_inv.write_text(text.replace(line.group(0), f"  web2: {{address: {line.group(1)}, "
                                                      "vars: {memory_budget: 100M}}"))
    small = Env(dataclasses.replace(env.lab, inventory=budget_inv), env.home, env.work)
    try:
        before = fingerprints(env)
        result = small.shipit("deploy", "shipit-test", timeout=DEPLOY_TIMEOUT)
        after = fingerprints(env)
    finally:
        budget_inv.unlink(missing_ok=True)
    text = result.stdout + result.stderr
    assert result.returncode == 2, f"expected exit 2, got {result.returncode}:\n{text}"
    assert "Traceback" not in text
    # the example's spec: 2 workers x 120M per slot, both slots at once, against web2's own 100M
    assert re.search(r"web2: 2 slots x 2 workers x 120 MiB = 480 MiB exceeds the memory budget of 100 MiB",
                     text), text
    assert "web1:" not in text and "web3:" not in text, text
    for host in WEB:
        assert after[host] == before[host], f"{host} changed:\n--- before\n{before[host]}\n--- after\n{after[host]}"


def test_release_crashing_at_start_is_reported_not_left_restarting(env: Env) -> None:
    previous = serving(env)
    assert len(set(previous.values())) == 1, previous
    live = int(env.run_on(CANARY, f"cat {ROOT}/.live-port\n"))
    ports = [int(p) for p in env.run_on(CANARY, f"ls {ROOT}/slots\n").split() if p.isdigit()]
    idle = next(p for p in (8000, 8001) if p != live)
    failed_unit = f"example-web@{idle}.service"
    # the release's code raises at import: every uvicorn worker dies before serving
    crashing = copy_app(env.work / "app-crash",
                        main_suffix='\nraise RuntimeError("e2e: this release crashes at start")\n')

    started = time.monotonic()
    result = env.shipit("deploy", "shipit-test", app=crashing, timeout=DEPLOY_TIMEOUT)
    took = time.monotonic() - started
    text = result.stdout + result.stderr
    print(f"crashing deploy failed after {took:.1f}s (slots before: {ports}); it said:")
    print("\n".join(line for line in text.splitlines() if CANARY in line or "shipit:" in line))

    assert result.returncode != 0, text
    # every host is prepared before the first switch: the crash is found there, on all hosts,
    # and no host was switched
    assert "did not start on web1, web2, web3; no host was switched" in text, text
    # the reason ends the failed task's message and names the unit (uvicorn's supervisor
    # respawns workers that die at import inside an active unit: the health timeout catches it)
    assert re.search(rf"shipit: .*{re.escape(failed_unit)}", text), \
        f"the reason does not name the unit {failed_unit}:\n{text}"
    for host in WEB:
        assert f"{host}: serving {previous[host]}" in text, text
    # every host still serves the previous release through Caddy; the lock is free
    assert serving(env) == previous
    assert env.run_on(CANARY, f"test ! -e {ROOT}/.deploy-lock && echo free\n").strip() == "free"
    assert "failed" in env.run_on(CANARY, f"tail -n 1 {ROOT}/releases.log\n")
    # the failed slot is stopped, not restarting: sample it over a few restart periods
    # (RestartSec=1), then check systemd gave up on it rather than still counting restarts
    states = []
    for _ in range(6):
        states.append(unit_state(env, CANARY, failed_unit))
        time.sleep(0.5)
    assert set(states) <= {"inactive", "failed"}, f"{failed_unit} on {CANARY}: {states}"
    assert env.run_on(CANARY, f"systemctl is-enabled {failed_unit}; true\n").strip() != "enabled"
    assert unit_state(env, CANARY, f"example-web@{live}.service") == "active"
    # every host was prepared and none switched: the release is recorded failed on each
    for host in WEB[1:]:
        assert env.run_on(host, f"tail -n 1 {ROOT}/releases.log\n").rstrip().endswith("\tfailed")


def test_rebooted_host_serves_again_by_itself(env: Env, lab_api: Lab) -> None:
    host = CANARY
    release = serving(env)[host]
    current = env.run_on(host, f"readlink {ROOT}/current\n").strip()
    live = int(env.run_on(host, f"cat {ROOT}/.live-port\n"))
    marker = secrets.token_hex(8)
    env.run_on(host, f"echo {marker} > /var/lib/shipit-e2e-reboot-marker && sync\n")
    boot_id = env.run_on(host, "cat /proc/sys/kernel/random/boot_id\n").strip()

    # reboot from inside, after this SSH session has returned
    env.run_on(host, "systemd-run --quiet --on-active=1 systemctl reboot\n")
    started = time.monotonic()
    while True:
        machine = {s.name: s.machine for s in lab_api.status()}[host]
        if machine == "stopped":
            break
        assert time.monotonic() - started < REBOOT_STOP_WITHIN, f"{host} still {machine} after reboot"
        time.sleep(0.5)
    stopped = time.monotonic() - started

    # the lab heals the stopped machine (the disk, i.e. its overlay's upper dir, is kept)
    healed_at = time.monotonic()
    state = lab_api.up(hosts=len(WEB), db=True)
    assert [h.name for h in state.hosts] == [h.name for h in env.lab.hosts]
    healed = time.monotonic() - healed_at
    assert env.run_on(host, "cat /proc/sys/kernel/random/boot_id\n").strip() != boot_id
    assert env.run_on(host, "cat /var/lib/shipit-e2e-reboot-marker\n").strip() == marker
    assert env.run_on(host, f"readlink {ROOT}/current\n").strip() == current

    # no shipit run: the enabled units bring the app back behind Caddy
    deadline = time.monotonic() + SERVE_AGAIN_WITHIN
    last = "not tried"
    while True:
        try:
            status, doc = https_get(env.address(host), env.cafile(host), "/health", timeout=3.0)
            if status == 200:
                break
            last = f"HTTP {status} {doc}"
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        assert time.monotonic() < deadline, f"{host} did not serve again within {SERVE_AGAIN_WITHIN:.0f}s: {last}"
        time.sleep(0.5)
    serving_again = time.monotonic() - healed_at
    assert doc["release"] == release
    assert serving(env) == {h: release for h in WEB}
    assert unit_state(env, host, f"example-web@{live}.service") == "active"
    idle = next(p for p in (8000, 8001) if p != live)
    assert unit_state(env, host, f"example-web@{idle}.service") in ("inactive", "failed")
    # the background process is back too (it may be between restarts while the db reconnects)
    deadline = time.monotonic() + 30
    while (heartbeat := unit_state(env, host, "example-heartbeat@1.service")) != "active":
        assert time.monotonic() < deadline, f"example-heartbeat@1 on {host}: {heartbeat}"
        time.sleep(0.5)
    print(f"reboot: machine stopped after {stopped:.1f}s, healed in {healed:.1f}s, "
          f"serving again {serving_again:.1f}s after the heal began")
