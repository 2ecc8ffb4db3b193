from __future__ import annotations

import pytest

from shipit.lab.naming import lab_net, plan_hosts


def test_subnet_and_bridge_are_derived_from_the_name() -> None:
    net = lab_net("lab")
    assert net == lab_net("lab")
    assert net.subnet == f"10.231.{net.octet}.0/24" and 2 <= net.octet <= 253
    assert net.gateway == f"10.231.{net.octet}.1"
    assert net.bridge.startswith("sl-") and len(net.bridge) <= 15
    assert net.comment == "shipit-lab-lab"
    assert lab_net("shipit-test").tag != lab_net("shipit-test-down").tag


def test_machine_veth_name_fits_the_kernel_limit() -> None:
    net = lab_net("a-rather-long-lab-name-for-test")
    assert len("vb-" + net.machine("web189")) <= 15


def test_plan_hosts_addresses() -> None:
    net = lab_net("lab")
    specs = plan_hosts(net, 3, db=True)
    assert [(s.name, s.address.rsplit(".", 1)[1], s.group) for s in specs] == [
        ("web1", "11", "web"), ("web2", "12", "web"), ("web3", "13", "web"), ("db1", "200", "db")]
    assert [s.name for s in plan_hosts(net, 20, db=False)][-1] == "web20"


@pytest.mark.parametrize("bad", ["", "Lab", "a b", "-x", "x" * 40, "a/b"])
def test_bad_lab_names_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        lab_net(bad)


def test_too_many_hosts() -> None:
    with pytest.raises(ValueError):
        plan_hosts(lab_net("lab"), 500, db=False)
