"""The seven reproductions of issue 15, each a named regression test (pure: the built-in
playbooks rendered as the deploy renders them, the modules' scripts, the loaders). The lab
side of the same guarantees is tests/e2e/test_security.py; docs/security.md maps both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shipit import hardening
from shipit.app import AppSpec, load_app_spec
from shipit.deploy import app_vars, builtin_playbook
from shipit.errors import ValidationError
from shipit.facts.host import postgresql_fact
from shipit.layout import CADDY_ADMIN_SOCKET, Layout
from shipit.modules.caddy_site import validated_install
from shipit.modules.deploy_state import DeployLockModule, ReleaseEventModule, ReleasePruneModule
from shipit.modules.release_command import systemd_run_argv
from shipit.templating import Templar, make_environment

RELEASE = "20261122T181633Z-a51196c9b409"
SPEC = AppSpec(name="shop", source=".", app_ref="shop.main:app", domains=("shop.example.com",),
               processes=(), database={"name": "shop", "user": "shop", "password_secret": "DB"})
LAYOUT = Layout("shop")


def tasks(playbook: str) -> list[dict[str, Any]]:
    plays = yaml.safe_load(builtin_playbook(playbook).read_text())
    return [t for p in plays for t in (*p.get("tasks", []), *p.get("handlers", []))]


def task(playbook: str, name: str) -> dict[str, Any]:
    return next(t for t in tasks(playbook) if t["name"] == name)


def render(value: Any, **extra: Any) -> Any:
    variables = {"app": app_vars(SPEC, 2, {"DB": "pw"}, RELEASE), "address": "10.0.0.200",
                 "groups": {"web": ["web1"]}, "hostvars": {"web1": {"address": "10.0.0.11"}},
                 "facts": {"postgresql": postgresql_fact(["17 main 5432 online"])}, **extra}
    return Templar(make_environment(), variables).render(value)


# 1 -- app user -> root: root wrote the env file in a directory the app user owns -------------

def test_issue15_1_root_writes_nothing_into_a_directory_the_app_user_can_write() -> None:
    """Every path a built-in task writes as root is outside the app user's shared dir, and the
    env file goes into the root-only env dir (0700 root:root)."""
    written = []
    for playbook in ("provision", "deploy"):
        for t in tasks(playbook):
            for module in ("file", "directory", "file_block", "upload", "systemd_unit"):
                if module in t:
                    params = t[module]
                    key = next(k for k in ("path", "dest", "name") if k in params)
                    loop = t.get("loop")
                    items = [render(i) for i in loop] if isinstance(loop, list) else [
                        {"name": "worker", "variable": "SHIPIT_COMMAND_worker", "unit_template": "shop-worker@.service"}]
                    written += [(t["name"], str(render(params[key], item=i))) for i in items]
    shared = LAYOUT.shared
    assert len(written) > 15 and LAYOUT.releases in [p for _, p in written]
    assert all(not p.startswith(shared + "/") for _, p in written), written
    env_dir = task("provision", "Env files dir (root only, read by systemd before it drops privileges)")
    assert render(env_dir["directory"]) == {"path": LAYOUT.env_dir, "owner": "root", "group": "root", "mode": "0700"}
    env_file = task("deploy", "Env file of this release (secrets only here; root-owned 0600, read by systemd)")
    assert render(env_file["file"]["path"]) == LAYOUT.env_file(RELEASE)
    assert LAYOUT.env_file(RELEASE).startswith(LAYOUT.env_dir + "/")


# 2 -- fixed temp path as root; units without PrivateTmp -------------------------------------

def test_issue15_2_no_fixed_name_under_tmp_and_private_tmp_on_every_unit() -> None:
    state = {"releases": ["20261101T000000Z-aaaaaa", "20261102T000000Z-bbbbbb", "20261103T000000Z-cccccc",
                          RELEASE], "current": RELEASE, "log": [], "slots": {}, "lock": None, "ready": [RELEASE],
             "live_port": None, "active_ports": [], "parts": {}, "uses": {}, "unpacked": []}
    from shipit.facts.app import release_state
    from shipit.modules.base import PlanContext
    ctx = PlanContext(host="web1", host_facts={})
    facts = {release_state("shop"): state}
    scripts = [c.script for m, p in (
        (ReleasePruneModule(), {"app": "shop", "keep": 2}),
        (DeployLockModule(), {"app": "shop", "state": "locked", "token": "t", "force": False}),
        (ReleaseEventModule(), {"app": "shop", "release": RELEASE, "state": "failed", "action": "deploy",
                                "user": "u", "only_if_present": False}),
    ) for c in m.plan(p, facts, ctx).changes]
    scripts.append(validated_install("sites/shop.caddy", b"x"))
    assert scripts and all("/tmp/" not in s and "/var/tmp" not in s for s in scripts)
    assert "PrivateTmp=yes" in hardening.directives([])
    argv = systemd_run_argv(LAYOUT, RELEASE, "alembic upgrade head", "shop", 60)
    assert "PrivateTmp=yes" in argv and "ProtectSystem=strict" in argv
    for name in ("Web unit (one instance per slot port)", "Background process units"):
        content = render(task("provision", name)["systemd_unit"]["content"],
                         item={"name": "worker", "variable": "SHIPIT_COMMAND_worker", "unit_template": "x"})
        assert "PrivateTmp=yes" in content and "ProtectSystem=strict" in content
        assert f"ReadWritePaths=-{LAYOUT.shared}" in content and "CapabilityBoundingSet=\n" in content


# 3 -- shell injection from the app spec into root commands -----------------------------------

@pytest.mark.parametrize("where", ["domains", "database.user", "database.name"])
def test_issue15_3_command_substitution_in_the_spec_is_refused_before_any_connection(tmp_path: Path, where: str) -> None:
    doc: dict[str, Any] = {"name": "shop", "web": {"app": "shop.main:app"}, "domains": ["shop.test"],
                           "secrets": ["DB"], "database": {"name": "shop", "user": "shop", "password_secret": "DB"}}
    if where == "domains":
        doc["domains"] = ["x$(id>/tmp/p).test"]
    else:
        doc["database"][where.split(".")[1]] = "x$(id>/tmp/p)"
    (tmp_path / "shipit.yml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValidationError) as err:
        load_app_spec(tmp_path)
    assert err.value.exit_code == 2 and err.value.problems[0].line > 0
    assert err.value.problems[0].key.startswith(where.split(".")[0])


def test_issue15_3_provision_sql_takes_names_as_psql_variables_and_the_password_from_the_environment() -> None:
    t = task("provision", "Database role (its password from the secrets, rotated when they change) and database")
    cmd, env, unless = render(t["shell"]["cmd"]), render(t["shell"]["env"]), render(t["shell"]["unless"])
    assert "pw" not in cmd.replace("\\getenv pw", "").replace(":'pw'", "")   # never pasted
    assert env["SHIPIT_DB_PASSWORD"] == "pw" and "\\getenv pw SHIPIT_DB_PASSWORD" in cmd
    assert "-v db=shop -v role=shop" in cmd and "'shop'" not in cmd
    assert "$SHIPIT_DB_PASSWORD" in unless and "pw" not in unless.replace("$SHIPIT_DB_PASSWORD", "")


# 4 -- Caddyfile injection ----------------------------------------------------------------------

def test_issue15_4_a_domain_with_a_newline_and_braces_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shipit.yml").write_text(
        'name: shop\nweb: {app: "shop.main:app"}\ndomains: ["shop.test {\\n\\trespond pwned\\n}\\nx.test"]\n')
    with pytest.raises(ValidationError) as err:
        load_app_spec(tmp_path)
    assert [(p.line, p.key) for p in err.value.problems] == [(3, "domains[0]")]
    (tmp_path / "shipit.yml").write_text('name: shop\nweb: {app: "shop.main:app"}\ndomains: ["shop.test\\n"]\n')
    with pytest.raises(ValidationError):   # a trailing newline too (re.match with $ let it through)
        load_app_spec(tmp_path)


# 5 -- unauthenticated Caddy admin API ----------------------------------------------------------

def test_issue15_5_caddy_admin_api_is_a_unix_socket_in_a_caddy_only_directory() -> None:
    main = render(task("provision", "Caddy main config (the same for every app; per-app settings live in its own site)")["file"]["content"])
    assert f"admin unix/{CADDY_ADMIN_SOCKET}\n" in main and "admin localhost" not in main
    dropin = render(task("provision", "Caddy's runtime dir (its admin socket; only root and caddy can enter it)")["file"])
    assert "RuntimeDirectory=caddy\n" in dropin["content"] and "RuntimeDirectoryMode=0750\n" in dropin["content"]
    assert CADDY_ADMIN_SOCKET.startswith("/run/caddy/")


# 6 -- templates ran code on the runner ---------------------------------------------------------

def test_issue15_6_a_template_escape_in_the_app_spec_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "shipit.yml").write_text(
        "name: shop\nweb: {app: 'shop.main:app'}\ndomains: [shop.test]\nenv:\n"
        f"  X: \"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}\"\n")
    with pytest.raises(ValidationError) as err:
        load_app_spec(tmp_path)
    assert err.value.exit_code == 2 and [(p.line, p.key) for p in err.value.problems] == [(5, "env.X")]
    assert not marker.exists()


# 7 -- PostgreSQL listened on every interface ---------------------------------------------------

def test_issue15_7_postgresql_listens_on_its_own_address_and_localhost_only() -> None:
    t = task("provision", "Listen only on this host's own address (the one the web hosts use) and localhost")
    rendered = render(t["file"])
    assert rendered["path"] == "/etc/postgresql/17/main/conf.d/shipit.conf"   # from the fact, not 15
    assert "listen_addresses = 'localhost,10.0.0.200'" in rendered["content"] and "'*'" not in rendered["content"]
    hba = render(task("provision", "Let this app's web hosts in (scram-sha-256; its own block, other apps keep theirs)")["file_block"])
    assert hba["path"] == "/etc/postgresql/17/main/pg_hba.conf" and hba["block"] == "shop"
    assert "host    shop  shop  10.0.0.11/32  scram-sha-256" in hba["content"]
