"""Code-change deploys on real hosts (#12 items 1-3, 6): a content-addressed part store per
host, only the missing parts uploaded, the release venv cloned from the live one when the
lock is the same, parts pruned with releases, a stored part that does not match its digest
never trusted. The tests run in order and build on each other (one app, one database).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shipit.lab import LabState
from shipit.layout import Layout
from tests.e2e.test_deploy import WEB, Env, copy_app, deploy_json, serving

pytestmark = pytest.mark.e2e

LAY = Layout("example")
MiB = 2**20


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Env:
    work = tmp_path_factory.mktemp("fast")
    (work / "home").mkdir()
    return Env(lab, work / "home", work)


def app_version(env: Env, n: int, keep: int = 2) -> Path:
    """The example app with a one-line code change ``n`` and ``keep_releases: keep``."""
    dest = env.work / f"app-{n}"
    if dest.exists():                      # the same app again: the same release
        return dest
    copy_app(dest, main_suffix=f"\n# change {n}\n")
    spec = dest / "shipit.yml"
    spec.write_text(re.sub(r"keep_releases: \d+", f"keep_releases: {keep}", spec.read_text()))
    return dest


def store(env: Env, host: str) -> dict[str, int]:
    """The parts store of ``host``: digest -> bytes (names that are digests only)."""
    out = env.run_on(host, f"cd {LAY.parts} && for f in *.gz; do [ -f \"$f\" ] && "
                           "echo \"$f $(stat -c %s \"$f\")\"; done; true\n")
    return {line.split()[0].removesuffix(".gz"): int(line.split()[1]) for line in out.splitlines()
            if re.fullmatch(r"[0-9a-f]{64}\.gz \d+", line)}


def uses(env: Env, host: str) -> dict[str, set[str]]:
    """release -> the digests it was unpacked from."""
    out = env.run_on(host, f"for f in {LAY.releases}/*/.shipit/parts; do echo \"$f $(cat \"$f\" | tr '\\n' ' ')\"; "
                           "done\n")
    return {line.split()[0].split("/")[-3]: set(line.split()[1:]) for line in out.splitlines()
            if "/.shipit/parts" in line and len(line.split()) > 1}


@pytest.fixture(scope="module")
def first(env: Env) -> dict[str, Any]:
    # the session's lab may hold this app's parts already (an earlier test file deployed the
    # example app there): start from an empty store, as on a host shipit never deployed to
    # (releases already built do not need their parts)
    for host in WEB:
        env.run_on(host, f"rm -rf -- {LAY.parts}\n")
    return deploy_json(env, "deploy", app_version(env, 0))


def test_a_first_deploy_sends_every_part_and_records_them(env: Env, first: dict[str, Any]) -> None:
    assert first["ok"] and first["serving"] == {h: first["release"] for h in WEB}
    assert all(n > 5 * MiB for n in first["uploaded_bytes"].values()), first["uploaded_bytes"]
    for host in WEB:
        assert uses(env, host)[first["release"]] == set(store(env, host))
    assert {"build", "upload", "prepare", "switch"} <= set(first["durations"])


def test_a_code_change_uploads_only_the_app_part_and_clones_the_venv(env: Env, first: dict[str, Any]) -> None:
    second = deploy_json(env, "deploy", app_version(env, 1))
    assert second["ok"] and serving(env) == {h: second["release"] for h in WEB}
    sent = second["uploaded_bytes"]
    assert all(0 < n < 200 * 1024 for n in sent.values()), sent    # the app part alone: kilobytes
    for host in WEB:
        parts = uses(env, host)
        deps = parts[first["release"]] & parts[second["release"]]
        assert len(deps) == 1 and parts[second["release"]] - deps      # same deps part, new app part
    # the venv is a hard-link clone of the live one: a dependency's file has two links
    old, new = LAY.venv(first["release"]), LAY.venv(second["release"])
    links = env.run_on("web1", f"stat -c %h {old}/lib/python3.11/site-packages/fastapi/__init__.py "
                               f"{new}/lib/python3.11/site-packages/fastapi/__init__.py\n").split()
    assert links[0] == links[1] and int(links[0]) >= 2
    # ...and the previous release's own code was left as it was
    code = env.run_on("web1", f"tail -n 1 {old}/lib/python3.11/site-packages/example_app/main.py; "
                              f"tail -n 1 {new}/lib/python3.11/site-packages/example_app/main.py\n")
    assert code.split("\n")[:2] == ["# change 0", "# change 1"]


def test_an_idempotent_redeploy_sends_nothing(env: Env, first: dict[str, Any]) -> None:
    again = deploy_json(env, "deploy", app_version(env, 1))
    assert again["changed"] == 0 and set(again["uploaded_bytes"].values()) == {0}


def test_prune_keeps_the_parts_kept_releases_need_and_a_rollback_in_one_batch_still_works(
        env: Env, first: dict[str, Any]) -> None:
    for n in (2, 3):                       # keep_releases: 2 -> older releases and their parts go
        assert deploy_json(env, "deploy", app_version(env, n))["ok"]
    for host in WEB:
        parts = uses(env, host)
        assert len(parts) == 2, parts
        assert set(store(env, host)) == set().union(*parts.values())
    result = env.shipit("rollback", "shipit-test", "--json", "--serial", "100%", app=app_version(env, 3))
    assert result.returncode == 0, result.stdout + result.stderr
    back = json.loads(result.stdout)
    assert back["ok"] and serving(env) == {h: back["release"] for h in WEB}
    assert f"canary {', '.join(WEB)}" in result.stderr and "more batch" not in result.stderr  # one batch


def test_a_stored_part_that_does_not_match_its_digest_is_never_trusted(env: Env, first: dict[str, Any]) -> None:
    """A part whose bytes were damaged on web2 (same size, so the store lists it) fails the
    unpack there, is removed, and the next deploy sends it again; a temporary left by an
    interrupted upload is never listed and is pruned."""
    deps = next(sha for sha, n in store(env, "web2").items() if n > MiB)
    env.run_on("web2", f"printf 'XXXX' | dd of={LAY.part(deps)} bs=1 seek=100 conv=notrunc status=none\n"
                       f"rm -rf {LAY.part_dir(deps)}\n"
                       f"head -c 1000 /dev/urandom > {LAY.parts}/.shipit-interrupted\n")
    before = serving(env)
    failed = env.shipit("deploy", "shipit-test", "--json", app=app_version(env, 4))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    doc = json.loads(failed.stdout)
    assert "does not match its sha256" in failed.stdout + failed.stderr or "upload failed" in doc["error"]
    assert serving(env) == before                           # nothing was switched anywhere
    assert deps not in store(env, "web2")
    again = deploy_json(env, "deploy", app_version(env, 5))
    assert again["ok"] and again["uploaded_bytes"]["web2"] > MiB
    assert again["uploaded_bytes"]["web1"] < 200 * 1024
    assert "shipit-interrupted" not in env.run_on("web2", f"ls -a {LAY.parts}\n")
