"""release_slot and release_switch plans as data: facts in, changes out (pure)."""

from __future__ import annotations

from typing import Any

from shipit.facts.app import release_state
from shipit.modules.base import PlanContext
from shipit.modules.release import ReleaseSlotModule, ReleaseSwitchModule

CTX = PlanContext(host="web1", host_facts={})
R1, R2 = "20261201T100001Z-aaaaaaaaaaa1", "20261201T100002Z-aaaaaaaaaaa2"
SLOT = {"app": "example", "release": R2, "ports": [8000, 8001], "health_path": "/health",
        "health_timeout": 30, "state": "started", "user": "ci", "action": "deploy"}
SWITCH = {"app": "example", "release": R2, "ports": [8000, 8001], "domains": ["example.test"],
          "health_host": None, "tls_internal": True, "acme_email": None, "health_path": "/health",
          "health_timeout": 30, "processes": [], "action": "deploy", "user": "ci"}


def state(**kw: Any) -> dict[Any, Any]:
    base = {"current": R1, "live_port": 8000, "slots": {8000: R1}, "releases": [R1, R2],
            "ready": [R1, R2], "active_ports": [8000], "lock": None, "log": [], "app_ports": {}}
    return {release_state("example"): {**base, **kw}}


def test_slot_starts_the_release_in_the_idle_port_and_records_failure_on_the_way_out() -> None:
    plan = ReleaseSlotModule().plan(SLOT, state(), CTX)
    (change,) = plan.changes
    assert change.reason == f"start {R2} in slot 8001"
    assert "systemctl restart example-web@8001.service" in change.script
    assert "http://127.0.0.1:8001/health" in change.script
    assert f"{R2} failed >> /srv/example/releases.log" in change.script  # the fail() path


def test_slot_is_a_no_op_when_prepared_or_already_serving() -> None:
    prepared = state(slots={8000: R1, 8001: R2}, active_ports=[8000, 8001])
    assert not ReleaseSlotModule().plan(SLOT, prepared, CTX).changes
    serving = state(current=R2, slots={8000: R2})
    assert not ReleaseSlotModule().plan(SLOT, serving, CTX).changes


def test_slot_refuses_a_release_that_is_not_ready() -> None:
    plan = ReleaseSlotModule().plan(SLOT, state(ready=[R1]), CTX)
    assert plan.failed == f"release {R2} is not ready on this host (ready: {R1})"
    plan = ReleaseSwitchModule().plan(SWITCH, state(ready=[R1]), CTX)
    assert plan.failed == f"release {R2} is not ready on this host (ready: {R1})"


def test_stopping_the_idle_slot_never_stops_the_live_one() -> None:
    stop = {**SLOT, "state": "stopped"}
    assert [c.reason for c in ReleaseSlotModule().plan(stop, state(active_ports=[8000, 8001]), CTX).changes] \
        == ["stop the idle slot 8001"]
    assert not ReleaseSlotModule().plan(stop, state(), CTX).changes


def test_switch_to_a_prepared_slot_does_not_restart_it() -> None:
    prepared = state(slots={8000: R1, 8001: R2}, active_ports=[8000, 8001])
    (change,) = ReleaseSwitchModule().plan(SWITCH, prepared, CTX).changes
    assert change.reason.endswith("(slot 8001, was 8000), prepared")
    assert "systemctl restart example-web@8001.service" not in change.script
    (cold,) = ReleaseSwitchModule().plan(SWITCH, state(), CTX).changes
    assert "systemctl restart example-web@8001.service" in cold.script


def test_both_modules_refuse_bad_ports() -> None:
    for module, params in ((ReleaseSlotModule(), SLOT), (ReleaseSwitchModule(), SWITCH)):
        assert module.check_params({**params, "ports": [8000, 8000]}) == [("ports", "expected two different port numbers")]
    assert ReleaseSwitchModule().check_params({**SWITCH, "domains": []}) == [("domains", "expected at least one domain")]
