from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipit.lab.inventory import render_inventory, render_known_hosts, write_file_atomic
from shipit.lab.naming import lab_net, plan_hosts

EXPECTED = """\
# written by `shipit lab up`; regenerated on every up
ssh:
  user: deploy
  key: lab.key
  known_hosts: lab.known_hosts
hosts:
  web1: {address: 10.231.7.11}
  web2: {address: 10.231.7.12}
  web3: {address: 10.231.7.13}
  db1: {address: 10.231.7.200}
groups:
  web: {hosts: [web1, web2, web3]}
  db: {hosts: [db1]}
"""


def test_inventory_has_the_native_shape() -> None:
    net = lab_net("lab")
    specs = [s.__class__(s.name, s.address.replace(net.prefix, "10.231.7"), s.group)
             for s in plan_hosts(net, 3, db=True)]
    text = render_inventory(specs, "lab.key", "lab.known_hosts")
    assert text == EXPECTED
    data = yaml.safe_load(text)
    assert data["groups"]["web"]["hosts"] == ["web1", "web2", "web3"]


def test_inventory_without_db() -> None:
    data = yaml.safe_load(render_inventory(plan_hosts(lab_net("x"), 2, db=False), "x.key", "x.kh"))
    assert list(data["groups"]) == ["web"] and list(data["hosts"]) == ["web1", "web2"]


def test_known_hosts_uses_bare_address_and_drops_comment() -> None:
    text = render_known_hosts([("10.231.7.11", "ssh-ed25519 AAAAC3Nza root@web1\n"),
                               ("10.231.7.200", "ssh-ed25519 AAAAB root@db1")])
    assert text == "10.231.7.11 ssh-ed25519 AAAAC3Nza\n10.231.7.200 ssh-ed25519 AAAAB\n"


def test_known_hosts_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        render_known_hosts([("10.0.0.1", "not a key")])


def test_write_file_atomic_sets_mode(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "lab.key"
    write_file_atomic(p, "secret", 0o600)
    assert p.read_text() == "secret" and p.stat().st_mode & 0o777 == 0o600
    assert [x.name for x in p.parent.iterdir()] == ["lab.key"]
