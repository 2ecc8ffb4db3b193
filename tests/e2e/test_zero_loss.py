"""No request lost on real hosts (issue 11 items 10 and 12, issue 12 items 4 and 5).

24 concurrent keep-alive HTTPS clients (8 per web host, each one persistent connection to that
host's Caddy, reconnecting only after an error) run through a rolling deploy, a rollback and a
``kill -9`` of a web master: every request must answer 200. The switch re-points the app's
``web.sock`` link instead of reloading Caddy (a reload closes idle client connections: on main
it reset 2 of 70,165 requests), and Caddy holds requests while a crashed slot restarts.

Also: a release whose new slot fails to start on ONE host of three (the app crashes there, or
the slot's socket cannot listen) leaves all three on the previous release with nothing
switched; SIGKILL of shipit mid-switch, then ``unlock`` and a
deploy, leaves no orphan slot running and says so; ``shipit status`` names the slot Caddy
really proxies to. Request counts and durations are printed (``-s``), never asserted.

Reuses the session lab; the module's first deploy is a no-op when another module deployed.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from test_deploy import DOMAIN, EXAMPLE, WEB, Env, copy_app, deploy_json, serving

from shipit.lab import LabState

pytestmark = pytest.mark.e2e

ROOT = "/srv/example"
CLIENTS = 24  # keep-alive clients, spread over the web hosts
DEPLOY_TIMEOUT = 900.0  # seconds: a deploy that builds a new release venv on every host
RESTART_WITHIN = 60.0  # seconds for systemd to bring a killed web slot back


class KeepAliveLoad:
    """``clients`` threads, each with ONE persistent HTTPS connection to a web host's Caddy
    (verified against its root CA, SNI and Host ``DOMAIN``), sending ``GET /health`` back to
    back until stopped (bounded: 15 min). A request counts ok on HTTP 200, failed otherwise
    (another status, a reset, a TLS error, a timeout); after a failure the client reconnects.

    ``ok`` per host, ``failed`` messages, ``releases`` seen (from the app's answer),
    ``reconnects`` (connections opened after the first), ``slowest`` (seconds).
    """

    def __init__(self, env: Env, clients: int = CLIENTS, hosts: tuple[str, ...] = WEB) -> None:
        self.targets = [(h, env.address(h), env.cafile(h)) for h in hosts]
        self.clients = clients
        self.ok: Counter[str] = Counter()
        self.failed: list[str] = []
        self.releases: Counter[str] = Counter()
        self.reconnects = 0
        self.slowest = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(self.targets[i % len(self.targets)],),
                                          daemon=True) for i in range(clients)]

    def __enter__(self) -> KeepAliveLoad:
        for t in self._threads:
            t.start()
        time.sleep(1.0)  # every client connected and serving before the action starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1.0)
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    @property
    def total(self) -> int:
        return sum(self.ok.values()) + len(self.failed)

    def summary(self) -> str:
        return (f"{self.total} requests by {self.clients} keep-alive clients: {sum(self.ok.values())} ok "
                f"({dict(self.ok)}), {len(self.failed)} failed, {self.reconnects} reconnects, "
                f"slowest {self.slowest:.2f} s, releases {dict(self.releases)}")

    @staticmethod
    def _connect(address: str, cafile: str) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(DOMAIN, 443, timeout=60, context=context)
        sock = socket.create_connection((address, 443), timeout=60)
        conn.sock = context.wrap_socket(sock, server_hostname=DOMAIN)
        return conn

    def _loop(self, target: tuple[str, str, str]) -> None:
        host, address, cafile = target
        deadline = time.monotonic() + 900
        conn: http.client.HTTPSConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                if conn is None:
                    conn = self._connect(address, cafile)
                conn.request("GET", "/health", headers={"Host": DOMAIN})
                response = conn.getresponse()
                body = response.read()
                took = time.monotonic() - started
                with self._lock:
                    self.slowest = max(self.slowest, took)
                    if response.status == 200:
                        self.ok[host] += 1
                        self.releases[str(json.loads(body).get("release"))] += 1
                    else:
                        self.failed.append(f"{host}: HTTP {response.status} {body[:120]!r}")
                if response.will_close:  # the server said so: a clean close, not a lost request
                    conn.close()
                    conn = None
                    with self._lock:
                        self.reconnects += 1
            except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
                with self._lock:
                    self.failed.append(f"{host}: {type(exc).__name__}: {exc} after {time.monotonic() - started:.2f} s")
                    self.reconnects += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.005)
        if conn is not None:
            conn.close()


def slots_running(env: Env, host: str) -> list[str]:
    out = env.run_on(host, "systemctl list-units 'example-web@*.service' --state=active --plain --no-legend\n")
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def live_link(env: Env, host: str) -> str:
    return env.run_on(host, f"readlink {ROOT}/web.sock\n").strip()


def lock_free(env: Env) -> bool:
    return env.run_on("web1", f"test ! -e {ROOT}/.deploy-lock && echo free || echo held\n").strip() == "free"


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("zero-loss")
    (work / "home").mkdir()
    e = Env(lab, work / "home", work)
    result = e.shipit("deploy", "shipit-test", timeout=DEPLOY_TIMEOUT)
    assert result.returncode == 0, f"deploy failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    yield e


def test_rolling_deploy_and_rollback_lose_no_request_of_24_keepalive_clients(env: Env) -> None:
    first = serving(env)
    assert len(set(first.values())) == 1, first
    base = next(iter(first.values()))
    changed = copy_app(env.work / "app-v2", main_suffix="\n# v2: zero-loss roll\n")
    caddy_pids = {h: env.run_on(h, "systemctl show -p MainPID --value caddy\n").strip() for h in WEB}
    reloads = {h: env.run_on(h, "journalctl -u caddy -o cat --no-pager | grep -c 'load complete' || true\n").strip()
               for h in WEB}

    with KeepAliveLoad(env) as load:
        second = deploy_json(env, "deploy", changed)
    print(f"rolling deploy ({second['durations']}): {load.summary()}")
    assert second["release"] != base
    assert serving(env) == {h: second["release"] for h in WEB}
    assert load.failed == [], f"{len(load.failed)} of {load.total} failed during the deploy: {load.failed[:5]}"
    assert {base, second["release"]} <= set(load.releases)
    # the switch reloaded no Caddy (its config is the same; only the link moved)
    for host in WEB:
        assert env.run_on(host, "systemctl show -p MainPID --value caddy\n").strip() == caddy_pids[host]
        again = env.run_on(host, "journalctl -u caddy -o cat --no-pager | grep -c 'load complete' || true\n").strip()
        assert again == reloads[host], f"{host}: Caddy reloaded during the roll"
        port = int(env.run_on(host, f"cat {ROOT}/.live-port\n"))
        assert live_link(env, host) == f"/run/example/web-{port}/web.sock"
        assert slots_running(env, host) == [f"example-web@{port}.service"]

    # status names the slot the link points at, running, with its workers
    result = env.shipit("status", "shipit-test", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    for host in WEB:
        port = int(env.run_on(host, f"cat {ROOT}/.live-port\n"))
        assert status[host]["current"] == second["release"]
        assert status[host]["live_port"] == port and status[host]["web_unit"] == f"example-web@{port}.service"
        assert status[host]["web_active"] and status[host]["workers"] == 2, status[host]

    # the fast rollback: the previous release's slot is ready to start (venv built, the slot
    # link still on it); the rollback starts it on every host in parallel, then flips
    with KeepAliveLoad(env) as load:
        back = deploy_json(env, "rollback", changed)
    print(f"rollback ({back['durations']}): {load.summary()}")
    assert back["release"] == base and set(back["durations"]) >= {"prepare", "switch"}
    assert serving(env) == {h: base for h in WEB}
    assert load.failed == [], f"{len(load.failed)} of {load.total} failed during the rollback: {load.failed[:5]}"
    for host in WEB:
        assert len(slots_running(env, host)) == 1


def test_kill_9_of_the_web_master_under_load_fails_no_request(env: Env) -> None:
    host = "web2"
    port = int(env.run_on(host, f"cat {ROOT}/.live-port\n"))
    unit = f"example-web@{port}.service"
    before = int(env.run_on(host, f"systemctl show -p NRestarts --value {unit}\n"))
    master = env.run_on(host, f"systemctl show -p MainPID --value {unit}\n").strip()
    assert master.isdigit() and master != "0"
    with KeepAliveLoad(env) as load:
        time.sleep(2)
        env.run_on(host, f"kill -9 {master}\n")
        deadline = time.monotonic() + RESTART_WITHIN
        while True:
            state = env.run_on(host, f"systemctl show -p ActiveState,NRestarts,MainPID {unit}\n")
            fields = dict(line.split("=", 1) for line in state.split())
            if fields["ActiveState"] == "active" and int(fields["NRestarts"]) > before and fields["MainPID"] != master:
                break
            assert time.monotonic() < deadline, f"{unit} on {host} did not come back: {state}"
            time.sleep(0.5)
        # served again from the restarted slot, through Caddy
        served = load.ok[host]
        while load.ok[host] < served + 50:
            assert time.monotonic() < deadline, f"{host} serves nothing after the restart: {load.summary()}"
            time.sleep(0.2)
    print(f"kill -9 of {unit}'s master on {host}: {load.summary()}")
    assert load.failed == [], f"{len(load.failed)} of {load.total} failed: {load.failed[:5]}"


def test_a_release_that_cannot_start_on_one_host_of_three_switches_none(env: Env) -> None:
    previous = serving(env)
    # the release crashes at import on web2 only: web1 and web3 start it fine
    crashing = copy_app(env.work / "app-crash-web2", main_suffix=(
        "\nimport socket as _s\nif _s.gethostname() == 'web2':\n"
        "    raise RuntimeError('e2e: this release crashes at start on web2')\n"))
    result = env.shipit("deploy", "shipit-test", app=crashing, timeout=DEPLOY_TIMEOUT)
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert "the release did not start on web2; no host was switched" in text, text
    assert "Traceback" not in text
    for host in WEB:
        assert f"{host}: serving {previous[host]}" in text, text
    assert serving(env) == previous
    assert lock_free(env)
    for host in WEB:  # the prepared slots of web1 and web3 were stopped again: only the live one runs
        port = int(env.run_on(host, f"cat {ROOT}/.live-port\n"))
        assert slots_running(env, host) == [f"example-web@{port}.service"], host
        assert live_link(env, host) == f"/run/example/web-{port}/web.sock"
        assert env.run_on(host, f"readlink {ROOT}/current\n").strip().endswith(previous[host])


def test_a_slot_socket_that_cannot_listen_on_one_host_switches_none(env: Env) -> None:
    """The new slot's ``.socket`` unit fails on web3 (its path is taken by a directory, so
    systemd cannot bind it, and the ``.service`` that Requires it does not start): the deploy
    stops before any switch, the failure names the socket, every host serves what it did."""
    previous = serving(env)
    # the release of the first test (built on every host: no upload, no venv to build)
    app = env.work / "app-v2"
    if not app.exists():
        app = copy_app(app, main_suffix="\n# v2: zero-loss roll\n")
    live = int(env.run_on("web3", f"cat {ROOT}/.live-port\n"))
    idle = 8001 if live == 8000 else 8000
    blocked = f"/run/example/web-{idle}/web.sock"
    env.run_on("web3", f"systemctl stop example-web@{idle}.service example-web@{idle}.socket\n"
                       f"rm -rf /run/example/web-{idle} && mkdir -p {blocked}/taken\n")
    try:
        result = env.shipit("deploy", "shipit-test", app=app, timeout=DEPLOY_TIMEOUT)
    finally:
        env.run_on("web3", f"rm -rf /run/example/web-{idle}\n")
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert "the release did not start on web3; no host was switched" in text, text
    assert f"example-web@{idle}.socket could not listen on {blocked}" in text, text
    assert "Traceback" not in text
    for host in WEB:
        assert f"{host}: serving {previous[host]}" in text, text
    assert serving(env) == previous
    assert lock_free(env)
    for host in WEB:  # web1's and web2's prepared slots stopped again; the live links untouched
        port = int(env.run_on(host, f"cat {ROOT}/.live-port\n"))
        assert slots_running(env, host) == [f"example-web@{port}.service"], host
        assert live_link(env, host) == f"/run/example/web-{port}/web.sock"
    assert env.run_on("web3", f"systemctl is-active example-web@{live}.socket\n").strip() == "active"


def test_sigkill_mid_switch_then_unlock_and_deploy_leaves_no_orphan_slot(env: Env) -> None:
    base = deploy_json(env, "deploy", EXAMPLE)["release"]  # a no-op after the rollback above
    assert serving(env) == {h: base for h in WEB}
    changed = copy_app(env.work / "app-v4", main_suffix="\n# v4: shipit is killed mid-switch\n")
    cmd = [sys.executable, "-m", "shipit.cli", "deploy", "shipit-test", "-i", str(env.lab.inventory),
           "--app", str(changed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=env.work,
                            env={**os.environ, "HOME": str(env.home), "DB_PASSWORD": "e2e-Secret-pw-1",
                                 "COLUMNS": "200"}, start_new_session=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "switch canary" in line:
            os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: the lock stays, slots stay
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    time.sleep(5)  # the canary's switch script may still be finishing on web1
    # every host was prepared: the new release's slot runs beside the live one on the hosts
    # the roll did not reach
    orphaned = [h for h in WEB[1:] if len(slots_running(env, h)) == 2]
    assert orphaned, {h: slots_running(env, h) for h in WEB}

    held = env.shipit("deploy", "shipit-test")
    assert held.returncode == 1 and "lock is held" in held.stdout + held.stderr, held.stdout + held.stderr
    unlocked = env.shipit("unlock", "shipit-test")
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    result = env.shipit("deploy", "shipit-test", app=EXAMPLE, timeout=DEPLOY_TIMEOUT)
    text = result.stdout + result.stderr
    print("after SIGKILL mid-switch, the next deploy said:\n" + "\n".join(
        line for line in text.splitlines() if "interrupted" in line or "serving" in line))
    assert result.returncode == 0, text
    for host in orphaned:
        assert re.search(rf"{host}\s.*stop the idle slot left running by an interrupted deploy", text), text
    assert serving(env) == {h: base for h in WEB}
    for host in WEB:
        port = int(env.run_on(host, f"cat {ROOT}/.live-port\n"))
        assert slots_running(env, host) == [f"example-web@{port}.service"], host
        assert live_link(env, host) == f"/run/example/web-{port}/web.sock"
    assert lock_free(env)
