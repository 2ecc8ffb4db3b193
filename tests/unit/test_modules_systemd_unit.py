"""systemd_unit and service plans on unit facts."""

from __future__ import annotations

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext, sha256_hex
from shipit.modules.service import ServiceModule
from shipit.modules.systemd_unit import SystemdUnitModule

CTX = PlanContext(host="web1", host_facts={})
U = SystemdUnitModule()
S = ServiceModule()
UNIT = "[Unit]\nDescription=app\n[Service]\nExecStart=/srv/app/current/bin/app\n" \
       "[Install]\nWantedBy=multi-user.target\n"
PATH = "/etc/systemd/system/app.service"
ABSENT = {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
          "size": 0, "sha256": None}
PRESENT = {"exists": True, "type": "file", "mode": "0644", "owner": "root", "group": "root",
           "size": len(UNIT), "sha256": sha256_hex(UNIT.encode())}


def unit(load: str = "loaded", active: str = "active", sub: str = "running",
         file_state: str = "enabled") -> dict[str, object]:
    return {"load_state": load, "active_state": active, "sub_state": sub,
            "unit_file_state": file_state, "n_restarts": 0, "main_pid": 0, "fragment_path": ""}


def facts(file: dict[str, object], u: dict[str, object]) -> dict[FactQuery, object]:
    return {FactQuery("file", PATH): file, FactQuery("unit", "app.service"): u}


P = {"name": "app.service", "content": UNIT, "enabled": True, "state": "started"}


def test_fresh_host() -> None:
    plan = U.plan(P, facts(ABSENT, unit("not-found", "inactive", "dead", "")), CTX)
    assert [c.reason for c in plan.changes] == [
        f"create {PATH}", "enable app.service", "start app.service"]
    assert plan.changes[0].script.endswith("systemctl daemon-reload")


def test_converged_is_ok() -> None:
    assert not U.plan(P, facts(PRESENT, unit()), CTX).changed


def test_changed_unit_file_restarts_running_unit() -> None:
    old = dict(PRESENT, sha256="0" * 64)
    plan = U.plan(P, facts(old, unit()), CTX)
    assert [c.reason for c in plan.changes] == [
        "content differs", "restart app.service (unit file changed)"]
    assert "daemon-reload" in plan.changes[0].script


def test_drift_stopped_and_disabled() -> None:
    plan = U.plan(P, facts(PRESENT, unit(active="failed", sub="failed", file_state="disabled")),
                  CTX)
    assert [c.reason for c in plan.changes] == ["enable app.service", "start app.service"]
    assert "systemctl status" in plan.changes[1].script   # shows why when start fails


def test_restarted_always_and_stopped_idempotent() -> None:
    plan = U.plan(dict(P, state="restarted"), facts(PRESENT, unit()), CTX)
    assert [c.reason for c in plan.changes] == ["restart app.service"]
    stopped = dict(P, state="stopped", enabled=False)
    assert not U.plan(stopped, facts(PRESENT, unit(active="inactive", sub="dead",
                                                   file_state="disabled")), CTX).changed


def test_check_params() -> None:
    assert U.check_params({"name": "app", "content": "x"})[0][0] == "name"
    assert U.check_params({"name": "app.service"})[0][0] == "content"


def test_service_existing_unit() -> None:
    q = FactQuery("unit", "caddy.service")
    p = {"name": "caddy", "state": "started", "enabled": True}
    assert S.facts(p) == [q]
    assert not S.plan(p, {q: unit()}, CTX).changed
    plan = S.plan(p, {q: unit(active="inactive", sub="dead")}, CTX)
    assert [c.reason for c in plan.changes] == ["start caddy.service"]
    plan = S.plan(dict(p, state="reloaded"), {q: unit()}, CTX)
    assert [c.reason for c in plan.changes] == ["reload caddy.service"]


def test_service_missing_unit() -> None:
    q = FactQuery("unit", "caddy.service")
    p = {"name": "caddy.service", "state": "started"}
    plan = S.plan(p, {q: unit("not-found", "inactive", "dead", "")}, CTX)
    assert plan.failed and "not found" in plan.failed
    check = PlanContext(host="web1", host_facts={}, check=True)
    plan = S.plan(p, {q: unit("not-found", "inactive", "dead", "")}, check)
    assert plan.changes[0].reason == "start caddy.service (unit not installed yet)"
    plan = S.plan(p, {q: unit("", "", "", "")}, CTX)
    assert plan.failed and "systemd running" in plan.failed
    plan = S.plan(p, {q: unit("masked", "inactive", "dead", "masked")}, CTX)
    assert plan.failed and "masked" in plan.failed
