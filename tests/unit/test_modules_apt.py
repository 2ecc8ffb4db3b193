"""apt plans: fresh, converged, latest, stale/fresh cache, absent."""

from __future__ import annotations

from shipit.facts import FactQuery
from shipit.modules.apt import STAMP, AptModule
from shipit.modules.base import PlanContext

M = AptModule()


def ctx(age: int) -> PlanContext:
    return PlanContext(host="web1", host_facts={"apt_lists_age": age})


def facts(pkgs: dict[str, tuple[str | None, str | None]]) -> dict[FactQuery, object]:
    out: dict[FactQuery, object] = {}
    for name, (inst, cand) in pkgs.items():
        out[FactQuery("deb", name)] = {"installed": inst is not None, "version": inst}
        out[FactQuery("apt_policy", name)] = {"installed": inst, "candidate": cand}
    return out


P = {"name": ["caddy", "curl"], "state": "present", "update_cache": True,
     "cache_valid_time": 3600}


def test_fresh_host_updates_stale_lists_then_installs() -> None:
    plan = M.plan(P, facts({"caddy": (None, "2.6.2-5"), "curl": (None, None)}), ctx(-1))
    assert [c.reason for c in plan.changes] == [
        "update apt lists (never updated)", "install caddy 2.6.2-5, install curl"]
    assert STAMP in plan.changes[0].script
    assert "--no-install-recommends -- caddy curl </dev/null" in plan.changes[1].script


def test_converged_never_updates_even_when_stale() -> None:
    f = facts({"caddy": ("2.6.2-5", "2.6.2-5"), "curl": ("7.88.1", "7.88.2")})
    assert not M.plan(P, f, ctx(10**6)).changed
    # a converged host: only dpkg's view is gathered, never apt-cache's
    assert M.facts(P) == [FactQuery("deb", "caddy"), FactQuery("deb", "curl")]
    assert M.more_facts(P, f) == []


def test_candidates_are_asked_only_for_missing_packages() -> None:
    f = facts({"caddy": ("2.6.2-5", "2.6.2-5"), "curl": (None, "7.88.2")})
    assert M.more_facts(P, f) == [FactQuery("apt_policy", "curl")]
    assert M.facts(dict(P, state="latest")) == [
        FactQuery("deb", "caddy"), FactQuery("deb", "curl"),
        FactQuery("apt_policy", "caddy"), FactQuery("apt_policy", "curl")]
    assert M.more_facts(dict(P, state="latest"), f) == []
    assert M.more_facts(dict(P, state="absent"), f) == []
    # installed packages without a policy fact plan as before
    del f[FactQuery("apt_policy", "caddy")]
    plan = M.plan(P, f, ctx(60))
    assert [c.reason for c in plan.changes] == ["install curl 7.88.2"]


def test_latest_upgrades_with_fresh_cache() -> None:
    f = facts({"caddy": ("2.6.2-5", "2.6.2-5"), "curl": ("7.88.1", "7.88.2")})
    plan = M.plan(dict(P, state="latest"), f, ctx(60))
    assert [c.reason for c in plan.changes] == ["upgrade curl 7.88.1 -> 7.88.2"]


def test_unknown_package_with_fresh_lists_fails() -> None:
    plan = M.plan(dict(P, name="cady"), facts({"cady": (None, None)}), ctx(60))
    assert plan.failed and "cady" in plan.failed


def test_absent_and_params() -> None:
    p = dict(P, name="curl", state="absent")
    assert M.facts(p) == [FactQuery("deb", "curl")]
    plan = M.plan(p, facts({"curl": ("7.88.1", None)}), ctx(60))
    assert plan.changes[0].reason == "remove curl 7.88.1"
    assert not M.plan(p, facts({"curl": (None, None)}), ctx(60)).changed
    assert M.check_params({"name": ["ok-pkg", "rm -rf /"]})[0][0] == "name"
