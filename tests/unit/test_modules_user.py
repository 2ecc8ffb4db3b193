"""user and group plans (the real run with a throwaway user needs root:
tests/e2e/test_modules_as_root.py)."""

from __future__ import annotations

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext
from shipit.modules.user import GroupModule, UserModule

CTX = PlanContext(host="web1", host_facts={})
U, G = UserModule(), GroupModule()
NOUSER = {"exists": False, "uid": None, "gid": None, "home": None, "shell": None,
          "primary_group": None, "groups": []}
NOGROUP = {"exists": False, "gid": None, "members": []}


def app(**kw: object) -> dict[str, object]:
    return {"exists": True, "uid": 998, "gid": 998, "home": "/srv/app", "shell": "/bin/sh",
            "primary_group": "app", "groups": ["app", "www-data"]} | kw


P = {"name": "app", "system": True, "home": "/srv/app", "shell": "/bin/sh",
     "groups": ["www-data"], "state": "present", "create_home": False}


def f(user: dict[str, object], group: dict[str, object]) -> dict[FactQuery, object]:
    return {FactQuery("user", "app"): user, FactQuery("group", "app"): group}


def test_fresh() -> None:
    plan = U.plan(P, f(NOUSER, NOGROUP), CTX)
    assert plan.changes[0].reason == "create system user app"
    assert plan.changes[0].script == ("useradd --system --home-dir /srv/app --shell /bin/sh "
                                      "--no-create-home --user-group --groups www-data -- app")
    plan = U.plan(P, f(NOUSER, {"exists": True, "gid": 5, "members": []}), CTX)
    assert "--gid app" in plan.changes[0].script


def test_converged_and_drift() -> None:
    assert not U.plan(P, f(app(), NOGROUP), CTX).changed
    plan = U.plan(dict(P, groups=["www-data", "ssl-cert", "adm"]),
                  f(app(shell="/bin/bash"), NOGROUP), CTX)
    assert plan.changes[0].reason == "shell /bin/bash -> /bin/sh, add to groups ssl-cert, adm"
    assert "--append --groups ssl-cert,adm" in plan.changes[0].script


def test_absent_and_group() -> None:
    assert U.plan(dict(P, state="absent"), f(app(), NOGROUP), CTX).changes[0].reason == \
        "remove user app"
    assert not U.plan(dict(P, state="absent"), f(NOUSER, NOGROUP), CTX).changed
    q = FactQuery("group", "app")
    assert G.plan({"name": "app", "system": True}, {q: NOGROUP}, CTX).changes[0].script == \
        "groupadd --system -- app"
    assert not G.plan({"name": "app"}, {q: {"exists": True, "gid": 1, "members": []}},
                      CTX).changed
    assert U.check_params({"name": "Bad Name"})[0][0] == "name"

