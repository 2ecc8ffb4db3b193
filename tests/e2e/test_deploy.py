"""The main job on real hosts (issue 4): deploy the example FastAPI app to the lab over HTTPS,
migrations once on the leader, a no-op re-deploy, a rolling deploy and a rollback under load
with zero failed requests, and a release whose health check fails stopping at the canary.

Requests go through each host's Caddy over HTTPS, verified against that host's own Caddy root
CA, with the site's name as SNI: the path a real client takes. The tests in this file run in
order and build on each other (one app, one database).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipit.inventory import load_inventory
from shipit.lab import LabState
from shipit.pool import ssh_pool

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "app"
DOMAIN = "example.shipit.test"
WEB = ("web1", "web2", "web3")
CADDY_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


@dataclass
class Env:
    """What every test here shares: the lab, a HOME, the inventory, the app copies."""

    lab: LabState
    home: Path
    work: Path
    cafiles: dict[str, str] = field(default_factory=dict)

    def shipit(self, *args: str | Path, app: Path = EXAMPLE, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home), "DB_PASSWORD": "e2e-Secret-pw-1", "COLUMNS": "200"}
        return subprocess.run([sys.executable, "-m", "shipit.cli", *map(str, args),
                               "-i", str(self.lab.inventory), "--app", str(app)],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=self.work)

    def shipit_raw(self, *args: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """shipit with ``args`` as given (no -i/--app added), with this Env's HOME and secrets."""
        env = {**os.environ, "HOME": str(self.home), "DB_PASSWORD": "e2e-Secret-pw-1", "COLUMNS": "200"}
        return subprocess.run([sys.executable, "-m", "shipit.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=self.work)

    def run_on(self, host: str, script: str) -> str:
        pool = ssh_pool(load_inventory(self.lab.inventory))
        try:
            result = pool.get(host).run(script)
        finally:
            pool.close()
        assert result.rc == 0, f"{host}: {script!r} -> {result.rc}: {result.stderr}"
        return result.stdout

    def address(self, host: str) -> str:
        return next(h.address for h in self.lab.hosts if h.name == host)

    def cafile(self, host: str) -> str:
        if host not in self.cafiles:
            path = self.work / f"{host}-caddy-root.crt"
            path.write_text(self.run_on(host, f"cat {CADDY_CA}\n"))
            self.cafiles[host] = str(path)
        return self.cafiles[host]


def https_get(address: str, cafile: str, path: str = "/", timeout: float = 5.0,
              domain: str = DOMAIN) -> tuple[int, dict[str, Any]]:
    """GET https://{domain}{path} from ``address``, verified against ``cafile`` with SNI ``domain``."""
    context = ssl.create_default_context(cafile=cafile)
    sock = socket.create_connection((address, 443), timeout=timeout)
    conn = http.client.HTTPSConnection(domain, 443, timeout=timeout, context=context)
    conn.sock = context.wrap_socket(sock, server_hostname=domain)
    try:
        conn.request("GET", path, headers={"Host": domain, "Connection": "close"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"raw": body[:200].decode(errors="replace")}
    return response.status, doc


class Load:
    """Constant request load through every web host's Caddy until stopped (bounded: 15 min).

    Counts ok (HTTP 200) and failed requests (anything else, or a connection/TLS error), per host.
    """

    def __init__(self, env: Env, hosts: tuple[str, ...] = WEB, domain: str = DOMAIN) -> None:
        self.targets = [(h, env.address(h), env.cafile(h)) for h in hosts]
        self.domain = domain
        self.ok = 0
        self.failed: list[str] = []
        self.releases: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(t,), daemon=True) for t in self.targets]
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self, target: tuple[str, str, str]) -> None:
        host, address, cafile = target
        deadline = time.monotonic() + 900
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, doc = https_get(address, cafile, "/health", domain=self.domain)
                with self._lock:
                    if status == 200:
                        self.ok += 1
                        self.releases.add(str(doc.get("release")))
                    else:
                        self.failed.append(f"{host}: HTTP {status} {doc}")
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failed.append(f"{host}: {type(exc).__name__}: {exc}")
            time.sleep(0.02)


def copy_app(dest: Path, main_suffix: str = "", extra_env: dict[str, str] | None = None) -> Path:
    """A copy of the example app, optionally with a changed response or extra env."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".venv"))
    if main_suffix:
        main = dest / "src" / "example_app" / "main.py"
        main.write_text(main.read_text() + main_suffix)
    if extra_env:
        spec = dest / "shipit.yml"
        text = spec.read_text().replace("env:\n", "env:\n" + "".join(f'  {k}: "{v}"\n' for k, v in extra_env.items()), 1)
        spec.write_text(text)
    return dest


def deploy_json(env: Env, command: str, app: Path = EXAMPLE, *args: str) -> dict[str, Any]:
    result = env.shipit(command, "shipit-test", "--json", *args, app=app)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def serving(env: Env) -> dict[str, str]:
    """host -> release id reported by the app itself through Caddy."""
    out = {}
    for host in WEB:
        status, doc = https_get(env.address(host), env.cafile(host), "/health")
        assert status == 200, f"{host}: {status} {doc}"
        out[host] = doc["release"]
    return out


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("deploy")
    (work / "home").mkdir()
    yield Env(lab, work / "home", work)


@pytest.fixture(scope="module")
def first(env: Env) -> dict[str, Any]:
    return deploy_json(env, "deploy")


def test_first_deploy_serves_the_app_over_https_on_every_host(env: Env, first: dict[str, Any]) -> None:
    release = first["release"]
    assert first["changed"] > 0
    assert first["serving"] == {h: release for h in WEB}
    for host in WEB:
        status, doc = https_get(env.address(host), env.cafile(host), "/")
        assert status == 200 and doc["app"] == "example" and doc["release"] == release
        assert doc["hostname"] == host
    # HTTP is redirected to HTTPS by Caddy
    conn = http.client.HTTPConnection(env.address("web2"), 80, timeout=5)
    conn.request("GET", "/", headers={"Host": DOMAIN})
    response = conn.getresponse()
    assert response.status in (301, 308) and response.getheader("Location", "").startswith(f"https://{DOMAIN}/")


def test_migrations_ran_exactly_once_on_the_leader(env: Env, first: dict[str, Any]) -> None:
    sql = ("select hostname || ' ' || count(*) from migration_log where command = 'upgrade' "
           f"and release = '{first['release']}' group by hostname")
    rows = env.run_on("db1", f"runuser -u postgres -- psql -d example -tAc \"{sql}\"\n").splitlines()
    # on the leader only; once per deploy of the release (migrate runs on every deploy, the
    # database deciding what is pending): once, unless another module on this lab deployed
    # the same example release before this one (xdist: the module order varies)
    assert len(rows) == 1 and rows[0].split()[0] == "web1" and int(rows[0].split()[1]) >= 1, rows


def test_services_are_unprivileged_and_env_file_is_private(env: Env, first: dict[str, Any]) -> None:
    # the users of every process in the app's units (ps's systemd unit column), whatever the
    # processes are called (a uv venv's interpreter is "python", not "python3")
    users = env.run_on("web1", "ps -eo user=,unit= | awk '$2 ~ /^example-/ {print $1}' | sort -u\n")
    assert users.split() == ["example"], users
    modes = env.run_on("web1", "stat -c '%a %U' /srv/example/env/*.env /srv/example/env | sort -u\n")
    # env files are root's (0600, in a 0700 root dir): systemd reads them, the app user can
    # neither read nor replace them (#15 item 1)
    assert modes.split("\n")[:2] == ["600 root", "700 root"], modes
    # the live web slot (blue/green: 8000 or 8001, whichever the earlier tests left serving)
    # starts on boot
    live = env.run_on("web1", "systemctl list-units --state=active --plain --no-legend "
                              "'example-web@*.service' | awk '{print $1}'\n").split()
    assert len(live) == 1, live
    assert env.run_on("web1", f"systemctl is-enabled {live[0]}\n").strip() == "enabled"


# what a no-op deploy must leave as it was: the web units and their .socket units (file, inode,
# mtime), the links Caddy reads (web.sock, live: inode, ctime: a rename makes a new link), the
# live slot's socket and service (the same invocation: neither restarted) and Caddy (same pid)
UNTOUCHED = """cd /srv/example
stat -c '%n %i %Y' /etc/systemd/system/example-web@.service /etc/systemd/system/example-web@.socket
stat -c '%n %i %Z %N' web.sock live /etc/caddy/sites/example.caddy
port=$(cat .live-port)
systemctl show -p Id,InvocationID,ActiveState example-web@$port.socket example-web@$port.service
systemctl show -p MainPID --value caddy
"""


def test_redeploy_of_the_unchanged_app_changes_nothing(env: Env, first: dict[str, Any]) -> None:
    before = env.run_on("web1", "ls /srv/example/releases\n")
    untouched = {h: env.run_on(h, UNTOUCHED) for h in WEB}
    assert "ActiveState=active" in untouched["web1"] and "-> '/run/example/web-" in untouched["web1"], untouched
    again = deploy_json(env, "deploy")
    assert again["release"] == first["release"]
    assert again["changed"] == 0
    assert env.run_on("web1", "ls /srv/example/releases\n") == before
    assert {h: env.run_on(h, UNTOUCHED) for h in WEB} == untouched  # nothing rewritten, nothing restarted


def test_rolling_deploy_and_rollback_under_load_fail_no_request(env: Env, first: dict[str, Any]) -> None:
    changed_app = copy_app(env.work / "app-v2", main_suffix="\n# v2: a change to the code\n")
    with Load(env) as load:
        second = deploy_json(env, "deploy", changed_app)
        time.sleep(1)
    assert second["release"] != first["release"]
    assert serving(env) == {h: second["release"] for h in WEB}
    assert load.failed == [], f"{len(load.failed)} failed requests during the deploy: {load.failed[:5]}"
    assert load.ok > 50 and {first["release"], second["release"]} <= load.releases
    # the roll went batch by batch (serial: 1): one switch per host, in inventory order
    log = env.run_on("web1", "tail -n 2 /srv/example/releases.log\n").splitlines()
    assert log[0].endswith(f"{second['release']}\tlive")  # the new release went live...
    assert log[1].endswith(f"{first['release']}\tretired")  # ...and the one before retired

    with Load(env) as load:
        back = deploy_json(env, "rollback", changed_app)
        time.sleep(1)
    assert back["release"] == first["release"]
    assert serving(env) == {h: first["release"] for h in WEB}
    assert load.failed == [], f"{len(load.failed)} failed requests during the rollback: {load.failed[:5]}"
    assert load.ok > 20


def test_release_failing_its_health_check_stops_at_the_canary(env: Env, first: dict[str, Any]) -> None:
    broken = copy_app(env.work / "app-broken", extra_env={"EXAMPLE_FAIL_HEALTH": "1"})
    result = env.shipit("deploy", "shipit-test", app=broken)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    # every host is prepared (the new slot started and health-checked) before the first
    # switch: the failing health check is found there, and no host was switched
    assert "did not start on web1, web2, web3; no host was switched" in text and "Traceback" not in text
    assert "HTTP 503" in text  # the health check's last answer is in the reason
    for host in WEB:
        assert f"{host}: serving {first['release']}" in text
    assert serving(env) == {h: first["release"] for h in WEB}
    assert env.run_on("web1", "test ! -e /srv/example/.deploy-lock && echo free\n").strip() == "free"
    for host in WEB:  # the release is recorded failed, and only the live slot still runs
        assert env.run_on(host, "tail -n 1 /srv/example/releases.log\n").rstrip().endswith("\tfailed")
        units = env.run_on(host, "systemctl list-units 'example-web@*.service' --state=active --plain --no-legend\n")
        assert len(units.strip().splitlines()) == 1, units


def test_ctrl_c_during_the_roll_releases_the_lock_and_says_where_each_host_stands(env: Env, first: dict[str, Any]) -> None:
    changed_app = copy_app(env.work / "app-v3", main_suffix="\n# v3: interrupted mid-roll\n")
    cmd = [sys.executable, "-m", "shipit.cli", "deploy", "shipit-test", "-i", str(env.lab.inventory),
           "--app", str(changed_app)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=env.work,
                            env={**os.environ, "HOME": str(env.home), "DB_PASSWORD": "e2e-Secret-pw-1",
                                 "COLUMNS": "200"})
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if "switch canary" in line:
            proc.send_signal(2)  # SIGINT, as Ctrl-C
            break
    output = "".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=300) == 130, output
    assert "interrupted (Ctrl-C)" in output and "Traceback" not in output
    stands = {h: line.split("serving ", 1)[1].strip() for line in output.splitlines()
              for h in WEB if line.strip().startswith(f"{h}: serving ")}
    assert set(stands) == set(WEB)
    assert serving(env) == stands  # what it said is what each host serves
    assert env.run_on("web1", "test ! -e /srv/example/.deploy-lock && echo free\n").strip() == "free"
