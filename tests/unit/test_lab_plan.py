"""Pure: what `lab up` does to the hosts a lab already has (suite changes, data hosts, --prune)."""

from __future__ import annotations

import pytest

from shipit.lab.image import SUITES, image_path, recipe_for
from shipit.lab.naming import HostSpec, lab_net, plan_hosts
from shipit.lab.plan import DataHostError, plan_up

NET = lab_net("t")


def lab_of(hosts: int, db: bool, suite: str = "bookworm") -> dict[str, tuple[HostSpec, str]]:
    return {s.name: (s, suite) for s in plan_hosts(NET, hosts, db)}


def test_same_lab_again_changes_nothing() -> None:
    plan = plan_up(lab_of(3, True), plan_hosts(NET, 3, True), "bookworm", prune=False)
    assert [h.name for h in plan.hosts] == ["web1", "web2", "web3", "db1"]
    assert plan.remove == plan.replace == plan.kept == () and plan.messages() == []


def test_up_without_db_keeps_the_db_host_and_says_so() -> None:
    plan = plan_up(lab_of(3, True), plan_hosts(NET, 3, False), "bookworm", prune=False)
    assert [h.name for h in plan.hosts] == ["web1", "web2", "web3", "db1"]
    assert plan.hosts[-1] == HostSpec("db1", f"{NET.prefix}.200", "db")
    assert plan.remove == ()
    assert plan.messages() == ["keeping db1: it holds data (a database); `--prune` removes it"]


def test_prune_removes_the_db_host_and_says_its_data_goes() -> None:
    plan = plan_up(lab_of(3, True), plan_hosts(NET, 3, False), "bookworm", prune=True)
    assert [h.name for h in plan.hosts] == ["web1", "web2", "web3"]
    assert plan.messages() == ["removing db1: not asked for (`--prune`); its data goes with it"]


def test_fewer_web_hosts_removes_the_surplus_plainly() -> None:
    plan = plan_up(lab_of(3, False), plan_hosts(NET, 1, False), "bookworm", prune=False)
    assert [h.name for h in plan.hosts] == ["web1"]
    assert plan.messages() == ["removing web2: not among the requested web hosts",
                               "removing web3: not among the requested web hosts"]


def test_another_suite_recreates_web_hosts() -> None:
    plan = plan_up(lab_of(2, False), plan_hosts(NET, 2, False), "trixie", prune=False)
    assert plan.replace == (("web1", "bookworm -> trixie"), ("web2", "bookworm -> trixie"))
    assert plan.remove == ()


def test_another_suite_with_a_db_host_is_refused_before_anything_changes() -> None:
    with pytest.raises(DataHostError) as info:
        plan_up(lab_of(2, True), plan_hosts(NET, 2, True), "trixie", prune=False, lab="mylab")
    assert info.value.exit_code == 2
    msg = info.value.message
    assert "db1" in msg and "bookworm" in msg and "--prune" in msg and "Nothing was changed" in msg
    assert "web" not in msg
    # the same refusal when db1 is not even asked for: it would be left on the old suite
    with pytest.raises(DataHostError):
        plan_up(lab_of(2, True), plan_hosts(NET, 2, False), "trixie", prune=False)


def test_another_suite_with_prune_recreates_the_db_host_empty() -> None:
    plan = plan_up(lab_of(1, True), plan_hosts(NET, 1, True), "trixie", prune=True)
    assert ("db1", "bookworm -> trixie; its data goes with it (`--prune`)") in plan.replace


def test_unknown_group_named_db_counts_as_data() -> None:
    existing = {"db1": (HostSpec("db1", "", ""), "bookworm")}
    assert plan_up(existing, [], "bookworm", prune=False).kept[0][0] == "db1"


def test_each_suite_has_its_own_cached_image() -> None:
    from pathlib import Path

    paths = {image_path(Path("/c"), recipe_for(s)) for s in SUITES}
    assert len(paths) == len(SUITES) == 2
    assert all(p.name.startswith(s + "-") for p, s in zip(sorted(paths), sorted(SUITES), strict=True))
    with pytest.raises(ValueError, match="unknown suite 'sid'"):
        recipe_for("sid")
