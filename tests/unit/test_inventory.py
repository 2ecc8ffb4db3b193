"""Inventory loading: native YAML, Ansible YAML/INI, patterns, precedence, errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.errors import ValidationError
from shipit.inventory import leader_of, load_inventory

NATIVE = """\
ssh:
  user: deploy
  key: lab.key
  known_hosts: lab.known_hosts
vars: {app_port: 8000, tier: base}
hosts:
  web1: {address: 10.0.0.11, leader: true, vars: {tier: host}}
  web2: {address: 10.0.0.12, port: 2222}
  db1: {address: 10.0.0.20}
groups:
  web: {hosts: [web1, web2], vars: {tier: group, workers: 2}}
  db: {hosts: [db1]}
  prod: {children: [web, db], vars: {tier: parent}}
"""


def write(tmp_path: Path, text: str, name: str = "inv.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_native_inventory_hosts_groups_and_paths(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, NATIVE))
    assert list(inv.hosts) == ["web1", "web2", "db1"]
    web2 = inv.hosts["web2"]
    assert (web2.address, web2.port, web2.user) == ("10.0.0.12", 2222, "deploy")
    # no port in the inventory: left to ~/.ssh/config (then 22), as user and address are
    assert inv.hosts["web1"].port is None
    assert web2.key == str(tmp_path / "lab.key")
    assert inv.known_hosts == (str(tmp_path / "lab.known_hosts"),)
    assert set(inv.hosts["web1"].groups) == {"all", "web", "prod"}
    assert inv.group_hosts("prod") == ["web1", "web2", "db1"]


def test_variable_precedence_play_group_host_extra(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, NATIVE))
    # child group (web) beats parent (prod) beats top-level vars beats play vars
    assert inv.host_vars("web2", {"tier": "play", "only_play": 1})["tier"] == "group"
    assert inv.host_vars("web2", {"only_play": 1})["only_play"] == 1
    assert inv.host_vars("db1", {"tier": "play"})["tier"] == "parent"
    assert inv.host_vars("web1", {})["tier"] == "host"
    assert inv.host_vars("web1", {}, {"tier": "extra"})["tier"] == "extra"


def test_patterns(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, NATIVE))
    assert inv.select("all") == ["web1", "web2", "db1"]
    assert inv.select("web:!web2") == ["web1"]
    assert inv.select("prod:&db") == ["db1"]
    assert inv.select("web*") == ["web1", "web2"]
    assert inv.select("db1,web1") == ["web1", "db1"]
    with pytest.raises(ValueError, match="neither a host nor a group"):
        inv.select("nope")


def test_leader(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, NATIVE))
    assert leader_of(inv, ["web2", "web1"]) == "web1"
    assert leader_of(inv, ["web2", "db1"]) == "web2"


def test_errors_name_file_line_key_and_expected_form(tmp_path: Path) -> None:
    bad = """\
hosts:
  web1: {address: 10.0.0.11, port: "22"}
  web2: {adress: 10.0.0.12}
groups:
  web: {hosts: [web1, web3]}
"""
    path = write(tmp_path, bad)
    with pytest.raises(ValidationError) as info:
        load_inventory(path)
    text = str(info.value)
    assert f"{path}:2: hosts.web1.port: expected a port number" in text
    assert f"{path}:3: hosts.web2.adress: unknown key" in text
    assert f"{path}:5: groups.web.hosts: 'web3' is not a host" in text
    assert info.value.exit_code == 2


def test_bad_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  web1: {address: [\n")
    with pytest.raises(ValidationError) as info:
        load_inventory(path)
    assert "invalid YAML" in str(info.value)
    assert str(path) in str(info.value)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  web1: {}\n  web1: {}\n")
    with pytest.raises(ValidationError, match="duplicate key 'web1'"):
        load_inventory(path)


def test_group_cycle_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts: {h: {}}\ngroups:\n  a: {children: [b], hosts: [h]}\n  b: {children: [a]}\n")
    with pytest.raises(ValidationError, match="cycle"):
        load_inventory(path)


def test_ansible_yaml_inventory(tmp_path: Path) -> None:
    text = """\
all:
  vars: {app_port: 8000}
  hosts:
    lone: {ansible_host: 10.0.0.5}
  children:
    web:
      hosts:
        web1: {ansible_host: 10.0.0.11, ansible_user: admin, ansible_port: 2200, color: red}
      vars: {workers: 3}
"""
    inv = load_inventory(write(tmp_path, text))
    web1 = inv.hosts["web1"]
    assert (web1.address, web1.user, web1.port) == ("10.0.0.11", "admin", 2200)
    assert inv.host_vars("web1", {}) == {"app_port": 8000, "workers": 3, "color": "red"}
    assert inv.select("web") == ["web1"]
    assert inv.hosts["lone"].address == "10.0.0.5"


def test_ansible_ini_inventory(tmp_path: Path) -> None:
    text = """\
# comment
[web]
web1 ansible_host=10.0.0.11 ansible_user=admin weight=2
web2 ansible_host=10.0.0.12

[db]
db1 ansible_host=10.0.0.20

[prod:children]
web
db

[web:vars]
workers=4
debug=true
"""
    inv = load_inventory(write(tmp_path, text, "hosts.ini"))
    assert inv.select("prod") == ["web1", "web2", "db1"]
    assert inv.hosts["web1"].user == "admin"
    assert inv.host_vars("web1", {}) == {"workers": 4, "debug": True, "weight": 2}
