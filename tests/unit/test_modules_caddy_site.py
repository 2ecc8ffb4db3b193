"""caddy_site plans: import line, validation before install, idempotence."""

from __future__ import annotations

import subprocess

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext, sha256_hex
from shipit.modules.caddy_site import HAS_IMPORT, MAIN, CaddySiteModule

M = CaddySiteModule()
CTX = PlanContext(host="web1", host_facts={})
SITE = "app.example.com {\n\treverse_proxy 127.0.0.1:8000\n}\n"
PATH = "/etc/caddy/sites/app.caddy"
P = {"name": "app", "content": SITE, "state": "present"}
ABSENT = {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
          "size": 0, "sha256": None}


def f(site: dict[str, object], has_import: int) -> dict[FactQuery, object]:
    main = {"exists": True, "type": "file", "mode": "0644", "owner": "root", "group": "root",
            "size": 10, "sha256": "x"}
    return {FactQuery("file", PATH): site, FactQuery("file", MAIN): main,
            FactQuery("check", HAS_IMPORT): has_import}


def present(content: str = SITE) -> dict[str, object]:
    return {"exists": True, "type": "file", "mode": "0644", "owner": "root", "group": "root",
            "size": len(content), "sha256": sha256_hex(content.encode())}


def test_fresh_host() -> None:
    plan = M.plan(P, f(ABSENT, 1), CTX)
    assert [c.reason for c in plan.changes] == [
        "add 'import sites/*.caddy' to /etc/caddy/Caddyfile", f"create {PATH}"]
    script = plan.changes[1].script
    # validation happens before the live file is replaced, and reload after
    assert script.index("caddy validate") < script.index('mv -f "$tmp" "$dest"') \
        < script.index("systemctl reload caddy")
    for change in plan.changes:
        check = subprocess.run(["sh", "-n"], input=change.script, text=True, check=False)
        assert check.returncode == 0


def test_converged_and_drift() -> None:
    assert not M.plan(P, f(present(), 0), CTX).changed
    plan = M.plan(P, f(present("old {\n}\n"), 0), CTX)
    assert [c.reason for c in plan.changes] == ["content differs"]
    assert "caddy validate" in plan.changes[0].script


def test_no_caddy_and_absent() -> None:
    facts = f(ABSENT, 1)
    facts[FactQuery("file", MAIN)] = ABSENT
    assert "install Caddy first" in (M.plan(P, facts, CTX).failed or "")
    gone = {"name": "app", "state": "absent"}
    assert M.plan(gone, f(present(), 0), CTX).changes[0].reason == f"remove {PATH}"
    assert not M.plan(gone, f(ABSENT, 0), CTX).changed
