"""Trust on real hosts (issue 11, one regression test per numbered item): a rollback only
goes to a release that served, migrations follow the database, ``--limit`` means what it says,
nothing hangs (big stderr, a timeout, Ctrl-C in a migration), secrets of any bytes reach the
app and nothing else, a config-only change (domains) is deployed, SIGTERM frees the lock.

The tests run in order on one app (``keep_releases: 2``, so pruning is exercised); the module's
first deploy brings every host to the same good release.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_deploy import WEB, copy_app, serving
from trustlib import ROOT, TrustEnv, assert_settled, edit_spec, host_release, https_get_as, lock_free

from shipit.lab import LabState

pytestmark = pytest.mark.e2e

SECRET = "a'b\"c$d\ne f"
# what a leak would look like: raw, shell-quoted, JSON/systemd-escaped, base64
LEAKS = ("a'b\"c$d", "a'\\''b", "a\\'b", "b\\\"c", "c\\$d", base64.b64encode(SECRET.encode()).decode())


def trust_app(dest: Path, main_suffix: str = "", spec_edits: dict[str, str] | None = None,
              extra_env: dict[str, str] | None = None) -> Path:
    """A copy of the example app keeping 2 releases, with a code change and spec lines replaced."""
    app = copy_app(dest, main_suffix=main_suffix, extra_env=extra_env)
    return edit_spec(app, {"keep_releases: 4": "keep_releases: 2", **(spec_edits or {})})


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustEnv]:
    work = tmp_path_factory.mktemp("trust")
    (work / "home").mkdir()
    yield TrustEnv(lab, work / "home", work)


@pytest.fixture(scope="module")
def good(env: TrustEnv) -> dict[str, Any]:
    """R1: the app, deployed everywhere."""
    app = trust_app(env.work / "app-r1", main_suffix="\n# trust r1\n")
    doc = env.deploy_ok(app=app)
    assert doc["serving"] == {h: doc["release"] for h in WEB}
    return {"app": app, "release": doc["release"]}


def releases_on(env: TrustEnv, host: str) -> list[str]:
    return env.run_on(host, f"ls {ROOT}/releases | grep -v '[.]tar[.]gz$' || true\n").split()


def test_rollback_goes_to_the_last_release_that_served_not_a_failed_one(env: TrustEnv, good: dict[str, Any]) -> None:
    """#11 item 1: R1 good, R2 fails at migrate (left built everywhere), R3 good: rollback -> R1."""
    r1 = good["release"]
    failing = trust_app(env.work / "app-r2", main_suffix="\n# trust r2\n",
                        spec_edits={"migrate: alembic upgrade head":
                                    "migrate: \"alembic upgrade head && echo 'e2e: migration fails' >&2 && exit 3\""})
    r = env.run_shipit("deploy", "shipit-test", app=failing)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "migrations failed on the leader; no host was switched" in out and "e2e: migration fails" in out
    assert serving(env) == {h: r1 for h in WEB}
    for host in WEB:  # built everywhere (every host is prepared first), recorded failed
        last = env.run_on(host, f"tail -n 1 {ROOT}/releases.log\n").rstrip().split("\t")
        assert last[-1] == "failed" and last[-2] != r1, (host, last)
        assert last[-2] in releases_on(env, host)

    r3 = env.deploy_ok(app=trust_app(env.work / "app-r3", main_suffix="\n# trust r3\n"))["release"]
    assert serving(env) == {h: r3 for h in WEB}
    for host in WEB:  # keep_releases 2: the failed R2 is pruned first, R1 (rollback target) kept
        assert set(releases_on(env, host)) == {r1, r3}, (host, releases_on(env, host))

    back = env.deploy_ok(app=good["app"], command="rollback")
    assert back["release"] == r1 and back["serving"] == {h: r1 for h in WEB}
    assert {h: host_release(env, h) for h in WEB} == {h: r1 for h in WEB}
    rows = json.loads(env.run_shipit("releases", "shipit-test", "--json", app=good["app"]).stdout)["releases"]
    assert {(row["host"], row["release"]) for row in rows if row["current"] == "yes"} == {(h, r1) for h in WEB}
    assert all(row["state"] == "live" for row in rows if row["current"] == "yes"), rows
    good["r3"] = r3


def test_an_empty_database_gets_its_migrations_on_an_unchanged_deploy(env: TrustEnv, good: dict[str, Any]) -> None:
    """#11 item 2: the database restored empty; the same app deployed again migrates it."""
    env.run_on("db1", "runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 "
                      "-c 'DROP DATABASE example WITH (FORCE)' -c 'CREATE DATABASE example OWNER example'\n")
    tables = env.run_on("db1", "runuser -u postgres -- psql -d example -tAc "
                               "\"select count(*) from pg_tables where schemaname = 'public'\"\n")
    assert tables.strip() == "0"
    doc = env.deploy_ok(app=good["app"])
    assert doc["release"] == good["release"] and doc["migrations"] == "ran", doc
    for host in WEB:  # "/" writes the visits table: it exists again
        status, body = https_get_as(env.address(host), env.cafile(host), "example.shipit.test", "/")
        assert status == 200 and body["release"] == good["release"], (host, status, body)


def test_limit_is_honoured_by_deploy_rollback_releases_and_unlock(env: TrustEnv, good: dict[str, Any]) -> None:
    """#11 item 3."""
    r1, r3 = good["release"], good["r3"]
    before = {h: releases_on(env, h) for h in ("web2", "web3")}
    r4 = env.deploy_ok("-l", "web1", app=trust_app(env.work / "app-r4", main_suffix="\n# trust r4\n"))
    assert r4["serving"] == {"web1": r4["release"]}, r4
    assert serving(env) == {"web1": r4["release"], "web2": r1, "web3": r1}
    assert {h: releases_on(env, h) for h in ("web2", "web3")} == before  # nothing uploaded there

    back = env.deploy_ok("-l", "web2", app=good["app"], command="rollback")
    assert set(back["serving"]) == {"web2"}, back
    assert serving(env) == {"web1": r4["release"], "web2": r3, "web3": r1}

    rows = json.loads(env.run_shipit("releases", "shipit-test", "--json", "-l", "web2",
                                     app=good["app"]).stdout)["releases"]
    assert {row["host"] for row in rows} == {"web2"}, rows

    # the lock lives on the leader: a limit without it touches nothing and says so
    env.run_on("web1", f"mkdir -m 0700 {ROOT}/.deploy-lock && echo 'e2e planted lock' > {ROOT}/.deploy-lock/info\n")
    r = env.run_shipit("unlock", "shipit-test", "-l", "web3", app=good["app"])
    assert r.returncode == 2 and "web1" in r.stderr and "--limit" in r.stderr, r.stderr
    assert not lock_free(env)
    r = env.run_shipit("unlock", "shipit-test", "-l", "web1", app=good["app"])
    assert r.returncode == 0 and "e2e planted lock" in r.stderr, r.stderr
    assert lock_free(env)


def test_a_task_writing_3_mib_to_stderr_finishes_and_a_timeout_fails_the_task(env: TrustEnv) -> None:
    """#11 item 4: no hang on a verbose command; `timeout:` stops a remote command."""
    book = env.work / "noisy.yml"
    book.write_text("- name: noisy\n  hosts: web1\n  tasks:\n"
                    "    - name: verbose\n"
                    "      shell: {cmd: \"head -c 3145728 /dev/zero | tr '\\\\0' e >&2; echo done\"}\n"
                    "    - name: stuck\n"
                    "      shell: {cmd: sleep 600}\n"
                    "      timeout: 5\n")
    r = env.run_shipit("run", "shipit-test", book, "--json", app=None, timeout=300)
    doc = json.loads(r.stdout)
    assert r.returncode == 1, (r.stdout, r.stderr)
    tasks = {t["task"]: t for t in doc["tasks"]}
    assert tasks["verbose"]["status"] == "changed", tasks["verbose"]
    assert tasks["stuck"]["status"] == "failed", tasks["stuck"]
    assert "stopped after 5 s (its timeout)" in tasks["stuck"]["message"], tasks["stuck"]
    assert "Traceback" not in r.stderr
    assert env.run_on("web1", "pgrep -x sleep -a | grep -c 'sleep 600' || true\n").strip() == "0"


def test_secret_of_any_bytes_reaches_the_app_exactly_and_nothing_else(env: TrustEnv, good: dict[str, Any]) -> None:
    """#11 item 6: quotes, $, a newline and a space, byte for byte; never in output, logs,
    the journal or a process list on the hosts."""
    app = trust_app(env.work / "app-secret", extra_env={"E2E_SECRET": "{{ secrets.E2E_SECRET }}"},
                    spec_edits={"secrets: [DB_PASSWORD]": "secrets: [DB_PASSWORD, E2E_SECRET]"})
    sampler = ("systemd-run --quiet --unit=e2e-ps-sampler sh -c "
               "'while :; do ps -eww -o args= >> /var/tmp/e2e-ps; cat /proc/[0-9]*/cmdline "
               ">> /var/tmp/e2e-ps 2>/dev/null; sleep 0.2; done'\n")
    for host in (*WEB, "db1"):
        env.run_on(host, "rm -f /var/tmp/e2e-ps; systemctl stop e2e-ps-sampler 2>/dev/null; " + sampler)
    try:
        r = env.run_shipit("deploy", "shipit-test", "--json", app=app, environ={"E2E_SECRET": SECRET})
        doc = json.loads(r.stdout)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        for host in (*WEB, "db1"):
            env.run_on(host, "systemctl stop e2e-ps-sampler\n")
    output = r.stdout + r.stderr
    for leak in LEAKS:
        assert leak not in output, f"the secret shows in shipit's output as {leak!r}"
    for host in WEB:
        for unit in ("example-web@$(cat /srv/example/.live-port)", "example-heartbeat@1"):
            pid = env.run_on(host, f"systemctl show -P MainPID {unit}.service\n").strip()
            environ = base64.b64decode(env.run_on(host, f"base64 -w0 /proc/{pid}/environ\n")).split(b"\0")
            assert ("E2E_SECRET=" + SECRET).encode() in environ, (host, unit)
    for host in (*WEB, "db1"):
        for leak in LEAKS:
            found = env.run_on(host, f"""
                grep -rlF -e {shq(leak)} /var/tmp/e2e-ps /var/log {ROOT} --exclude-dir=env --exclude-dir=venv \\
                    --exclude-dir=wheels 2>/dev/null || true
                journalctl --no-pager -o cat -b | grep -cF -e {shq(leak)} || true
            """).split()
            assert found == ["0"], f"{host}: the secret shows as {leak!r} in {found}"
    good["secret_release"] = doc["release"]


def shq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_ctrl_c_in_a_long_migration_stops_it_frees_the_lock_and_keeps_serving(env: TrustEnv, good: dict[str, Any]) -> None:
    """#11 item 4: SIGINT while `migrate` waits: the remote command is stopped, nothing switched."""
    previous = serving(env)
    slow = trust_app(env.work / "app-slow-migrate", main_suffix="\n# trust slow migrate\n",
                     spec_edits={"migrate: alembic upgrade head": "migrate: sleep 600"})
    code, output = env.signal_at(r"^migrate\b", signal.SIGINT, app=slow, delay=3.0, timeout=120)
    assert code == 130, output
    assert env.after_action is not None and env.after_action < 10, f"exited {env.after_action} s after SIGINT"
    assert "interrupted (Ctrl-C)" in output
    assert_settled(env, output, {h: {previous[h]} for h in WEB})
    # the remote stop (the body's trap: systemctl stop of the migration's unit) may still be
    # finishing on the host when shipit has exited: it must be done within seconds
    deadline = time.monotonic() + 15
    while env.run_on("web1", "pgrep -f -c '^sleep 600' || true\n").strip() != "0":
        assert time.monotonic() < deadline, "the migration's command still runs 15 s after shipit exited"
        time.sleep(0.5)
    assert env.run_on("web1", "systemctl is-active example-release-command.service || true\n").strip() != "active"


def test_sigterm_during_upload_exits_143_frees_the_lock_and_says_where_each_host_stands(
        env: TrustEnv, good: dict[str, Any]) -> None:
    """#11 item 10 (first half): a CI runner cancelling the job."""
    previous = serving(env)
    big = trust_app(env.work / "app-big", main_suffix="\n# trust big upload\n")
    (big / "src" / "example_app" / "blob.bin").write_bytes(__import__("os").urandom(48 * 2**20))
    code, output = env.signal_at(r"^upload\b", signal.SIGTERM, app=big, timeout=300)
    assert code == 143, output
    assert "interrupted (SIGTERM)" in output
    assert_settled(env, output, {h: {previous[h]} for h in WEB})


def test_a_domains_only_change_is_deployed_and_a_wildcard_first_domain_works(env: TrustEnv, good: dict[str, Any]) -> None:
    """#11 item 9: the inventory's `app: {domains}` is part of the release."""
    app = good["app"]
    base = env.deploy_ok(app=app)
    inv = env.lab.inventory
    other = inv.with_name(f"{inv.stem}-domains.yml")  # beside it: its key/known_hosts are relative
    try:
        other.write_text(inv.read_text() + "app:\n  domains: [trust.shipit.test]\n")
        moved = env.deploy_ok(app=app, inventory=other)
        assert moved["release"] != base["release"] and moved["changed"] > 0, moved
        for host in WEB:
            status, doc = https_get_as(env.address(host), env.cafile(host), "trust.shipit.test")
            assert status == 200 and doc["release"] == moved["release"], (host, status, doc)

        other.write_text(inv.read_text() + "app:\n  domains: ['*.wild.shipit.test', trust.shipit.test]\n")
        wild = env.deploy_ok(app=app, inventory=other)
        for host in WEB:
            for name in ("a.wild.shipit.test", "trust.shipit.test"):
                status, doc = https_get_as(env.address(host), env.cafile(host), name)
                assert status == 200 and doc["release"] == wild["release"], (host, name, status, doc)
    finally:
        other.unlink(missing_ok=True)
    back = env.deploy_ok(app=app)  # the next module finds the lab's own domain
    assert set(serving(env).values()) == {back["release"]}
