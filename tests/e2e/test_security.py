"""Security on real hosts (issue 15): what the app user, the app spec and a local process can
not do, measured in the lab. See docs/security.md for the threat model these tests check.

- an app-user process racing every root write of a deploy (symlink swaps in every directory
  the app user can write, planted ``/tmp`` entries) changes no owner, mode or content outside
  the app's tree;
- Caddy's admin API refuses the app user (no TCP listener; the unix socket is root/caddy only);
- ``systemd-analyze security`` of the web and process units at or below
  :data:`shipit.hardening.EXPOSURE_LIMIT` (the numbers are printed);
- PostgreSQL listens on the db host's own address and localhost only; a rotated password
  reaches the role, and never appears in a process list on the db host;
- the issue's reproductions 3 and 4 (shell and Caddyfile injection through the spec) exit 2
  before any connection, and nothing ran on the hosts.

Tests run in order and build on each other (one deployed app).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from test_deploy import WEB, Env, copy_app, deploy_json, https_get, serving

from shipit.hardening import EXPOSURE_LIMIT
from shipit.lab import LabState
from shipit.layout import CADDY_ADMIN_SOCKET, Layout

pytestmark = pytest.mark.e2e

APP = "example"
LAY = Layout(APP)
CANARY = "/root/shipit-canary"
# every directory the app user may write, found on the host (plus the shared dir, named)
RACER = r"""
T=/root/shipit-canary
dirs="$(find / -xdev \( -path /proc -o -path /sys \) -prune -o -type d -writable -print 2>/dev/null) /dev/shm"
echo "$dirs" > /dev/shm/racer-dirs
for d in $dirs; do
  for n in .shipit-releases .shipit-new .shipit-XXXXXXXX releases.log .deploy-lock env app.env Caddyfile; do
    ln -sfn "$T" "$d/$n" 2>/dev/null || true
  done
done
end=$(( $(date +%s) + 1200 ))
while [ "$(date +%s)" -lt "$end" ]; do
  for d in $dirs; do
    for f in "$d"/* "$d"/.[!.]*; do
      { [ -e "$f" ] || [ -L "$f" ]; } || continue
      [ -L "$f" ] && continue
      [ -O "$f" ] && continue
      # something another user (root) just created where the app user can write: swap it
      mv -f "$f" "$f.swapped" 2>/dev/null && ln -sfn "$T" "$f" 2>/dev/null && echo "swapped $f" >> /dev/shm/racer-log
    done
  done
done
"""
# owner, group, mode, type and content of the usual targets (outside the app's tree); what a
# deploy legitimately changes is left out: the app's Caddy site and its slots' boot links (each
# slot's .service and, in sockets.target.wants, its .socket: a switch enables the new slot's)
SNAPSHOT = rf"""
find /etc /root /usr/local /usr/bin /usr/sbin /var/lib/caddy/.local/share/caddy/pki -xdev \
  -not -path '/etc/caddy/sites/*' -not -name '{APP}-web@*.service' \
  -not -path '/etc/systemd/system/sockets.target.wants/{APP}-web@*.socket' -printf '%p %u %g %m %y\n' 2>/dev/null | sort
find /etc /root /usr/local -xdev -type f -not -path '/etc/caddy/sites/*' -exec sha256sum {{}} + 2>/dev/null | sort
"""


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("security")
    (work / "home").mkdir()
    yield Env(lab, work / "home", work)


@pytest.fixture(scope="module")
def first(env: Env) -> dict[str, Any]:
    return deploy_json(env, "deploy")


def test_an_app_user_racing_root_writes_changes_nothing_outside_the_app_tree(env: Env, first: dict[str, Any]) -> None:
    host = WEB[0]
    env.run_on(host, f"sudo sh -c 'umask 077; echo canary > {CANARY}'\n")
    before = env.run_on(host, f"sudo sh -s <<'EOF'\n{SNAPSHOT}\nEOF\n")
    env.run_on(host, f"sudo systemd-run --quiet --unit=shipit-racer -p User={APP} -p Group={APP} "
                     f"/bin/sh -c {shlex.quote(RACER)}\n")
    try:
        assert "active" in env.run_on(host, "systemctl is-active shipit-racer || true\n")
        # the racer is live and effective: a file root creates in the shared dir is swapped
        probe = f"{LAY.shared}/root-probe"
        assert env.run_on(host, f"touch {probe}; for i in $(seq 50); do [ -L {probe} ] && break; sleep 0.2; done; "
                                f"readlink {probe} || true\n") == f"{CANARY}\n"
        app = copy_app(env.work / "raced", main_suffix="\n# raced release\n")
        doc = deploy_json(env, "deploy", app)
        assert doc["serving"][host] == doc["release"] != first["release"], doc
        log = env.run_on(host, "cat /dev/shm/racer-log 2>/dev/null || true\n")
        dirs = env.run_on(host, "cat /dev/shm/racer-dirs\n").split()
    finally:
        env.run_on(host, "sudo systemctl stop shipit-racer || true\n")
    after = env.run_on(host, f"sudo sh -s <<'EOF'\n{SNAPSHOT}\nEOF\n")
    assert LAY.shared in dirs and "/tmp" in dirs and "/var/tmp" in dirs   # the racer saw them
    changed = sorted(set(before.splitlines()) ^ set(after.splitlines()))
    assert changed == [], changed
    assert env.run_on(host, f"sudo cat {CANARY}\n") == "canary\n"
    assert env.run_on(host, f"sudo stat -c '%U %a' {CANARY}\n") == "root 600\n"
    # nothing outside the app's tree and the shared temp dirs belongs to the app user
    owned = env.run_on(host, f"sudo find / -xdev \\( -path /proc -o -path /sys -o -path /tmp -o -path /var/tmp "
                             f"-o -path {LAY.shared} \\) -prune -o -user {APP} -print\n")
    assert owned.split() == [], owned
    # and inside the app's tree only the shared dir is the app user's: code, env and logs are root's
    owned = env.run_on(host, f"sudo find {LAY.root} -path {LAY.shared} -prune -o -user {APP} -print\n")
    assert owned.split() == [], owned
    assert all(LAY.root not in line or LAY.shared in line for line in log.splitlines()), log
    assert set(serving(env).values()) == {doc["release"]}


def test_caddy_admin_api_refuses_the_app_user(env: Env, first: dict[str, Any]) -> None:
    for host in WEB:
        out = env.run_on(host, f"""
sudo runuser -u {APP} -- curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 http://127.0.0.1:2019/config/ 2>&1; echo " tcp=$?"
sudo runuser -u {APP} -- curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 --unix-socket {CADDY_ADMIN_SOCKET} http://localhost/config/ 2>&1; echo " unix=$?"
sudo runuser -u {APP} -- sh -c 'echo x > /etc/caddy/sites/evil.caddy' 2>&1; echo " site=$?"
sudo stat -c '%U:%G %a' {CADDY_ADMIN_SOCKET.rsplit('/', 1)[0]}
sudo systemctl reload caddy; echo " reload=$?"
""")
        assert re.search(r"tcp=[1-9]", out) and re.search(r"unix=[1-9]", out), out
        assert "Permission denied" in out and re.search(r"site=[1-9]", out), out
        assert "caddy:caddy 750" in out and "reload=0" in out, out   # root still reconfigures Caddy
        status, _ = https_get(env.address(host), env.cafile(host), "/health")
        assert status == 200


def test_systemd_analyze_security_of_the_units_is_at_most_the_documented_level(env: Env, first: dict[str, Any]) -> None:
    scores = {}
    for host in WEB:
        # services only: a slot's .socket unit runs no code (systemd-analyze security rates none)
        units = env.run_on(host, f"systemctl list-units '{APP}-*.service' --no-legend --plain --state=active | cut -d' ' -f1\n").split()
        assert any(u.startswith(LAY.web_unit_prefix) for u in units) and any("heartbeat" in u for u in units), units
        for unit in units:
            out = env.run_on(host, f"sudo systemd-analyze security {unit} --no-pager | tail -1\n")
            match = re.search(r"exposure level for \S+: ([0-9.]+)", out)
            assert match, out
            scores[f"{host} {unit}"] = float(match.group(1))
    print("systemd-analyze security:", scores)
    assert all(score <= EXPOSURE_LIMIT for score in scores.values()), scores


def test_postgresql_listens_on_its_own_address_and_localhost_only(env: Env, first: dict[str, Any]) -> None:
    db = env.address("db1")
    listening = env.run_on("db1", "ss -ltnH 'sport = :5432' | awk '{print $4}'\n").split()
    assert listening and set(listening) <= {f"{db}:5432", "127.0.0.1:5432", "[::1]:5432"}, listening
    assert f"{db}:5432" in listening
    hba = env.run_on("db1", "sudo sh -c 'cat /etc/postgresql/*/main/pg_hba.conf'\n")
    assert f"# BEGIN shipit {APP}" in hba and "local   all             postgres" in hba  # the distro's lines kept


def test_a_rotated_db_password_reaches_the_role_and_no_process_list(env: Env, first: dict[str, Any]) -> None:
    new = "e2e-Rotated-pw-2"
    env.run_on("db1", "sudo systemd-run --quiet --unit=shipit-ps-sampler /bin/sh -c "
                      "'while :; do ps -eo args >> /run/shipit-ps.txt; sleep 0.1; done'\n")
    try:
        result = subprocess.run([sys.executable, "-m", "shipit.cli", "deploy", "shipit-test", "-i", str(env.lab.inventory),
                                 "--app", str(copy_app(env.work / "rotated"))], capture_output=True, text=True,
                                timeout=900, cwd=env.work,
                                env={**os.environ, "HOME": str(env.home), "DB_PASSWORD": new, "COLUMNS": "200"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert new not in result.stdout + result.stderr
    finally:
        env.run_on("db1", "sudo systemctl stop shipit-ps-sampler || true\n")
    samples = env.run_on("db1", f"sudo sh -c 'wc -l < /run/shipit-ps.txt; grep -c -e {new} -e e2e-Secret-pw-1 "
                                "/run/shipit-ps.txt; rm -f /run/shipit-ps.txt'\n").split()
    assert int(samples[0]) > 100 and samples[1] == "0", samples
    for host in WEB:   # "/" counts visits in the database: the app logs in with the new password
        status, doc = https_get(env.address(host), env.cafile(host), "/")
        assert status == 200 and "visits" in doc, doc


@pytest.mark.parametrize("domain", ["x$(id>/tmp/p).shipit.test", "example.shipit.test {\n\trespond pwned\n}\nx.test"])
def test_issue15_3_and_4_injection_through_a_domain_exits_2_before_any_connection(env: Env, first: dict[str, Any],
                                                                                 domain: str) -> None:
    app = copy_app(env.work / f"evil-{len(domain)}")
    spec = app / "shipit.yml"
    text = spec.read_text()
    spec.write_text(text.replace("domains: [example.shipit.test]", "domains: [" + json.dumps(domain) + "]"))
    result = env.shipit("deploy", "shipit-test", app=app)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "shipit.yml:" in result.stderr + result.stdout and "domains[0]" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    for host in WEB:
        assert env.run_on(host, "test -e /tmp/p && echo yes || echo no\n") == "no\n"
        status, doc = https_get(env.address(host), env.cafile(host), "/")
        assert status == 200 and doc.get("app") == APP, doc

