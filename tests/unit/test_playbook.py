"""Playbook validation: every bad input gives file:line, the key and the expected form."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.errors import ValidationError
from shipit.inventory import load_inventory
from shipit.modules.base import Module, Param
from shipit.playbook import batches, load_playbook


class Svc(Module):
    name = "svc"
    params = {"name": Param(str, required=True), "state": Param(str, default="started",
                                                                 choices=("started", "stopped")),
              "count": Param(int, default=1)}


class Cmd(Module):
    name = "shell"
    params = {"cmd": Param(str, required=True)}


MODULES = {"svc": Svc(), "shell": Cmd()}
INVENTORY = "hosts: {web1: {}, web2: {vars: {color: blue}}}\ngroups: {web: {hosts: [web1, web2]}}\nvars: {port: 80}\n"


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "book.yml").write_text(text)
    return load_playbook(tmp_path / "book.yml", MODULES, load_inventory(tmp_path / "inv.yml"))


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ValidationError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 2
    return str(info.value)


def test_valid_playbook_loads_with_defaults_and_free_form(tmp_path: Path) -> None:
    book = load(tmp_path, """\
- name: web
  hosts: web
  serial: "50%"
  tasks:
    - svc: {name: caddy}
      notify: restart
    - shell: echo {{ port }}
  handlers:
    - name: restart
      svc: {name: caddy, state: started}
""")
    play = book.plays[0]
    assert play.serial == ("50%",)
    assert play.tasks[0].params == {"name": "caddy", "state": "started", "count": 1}
    assert play.tasks[1].params == {"cmd": "echo {{ port }}"}
    assert play.tasks[0].line == 5


def test_unknown_module(tmp_path: Path) -> None:
    text = problems(tmp_path, "- hosts: web\n  tasks:\n    - name: x\n      svcc: {name: a}\n")
    assert "book.yml:4: svcc: unknown module or task key" in text and "modules: shell, svc" in text


def test_unknown_and_mistyped_params(tmp_path: Path) -> None:
    text = problems(tmp_path, "- hosts: web\n  tasks:\n    - svc:\n        name: a\n        stat: started\n"
                              "        count: many\n    - svc: {name: b, state: running}\n")
    assert "book.yml:5: svc.stat: unknown param of module svc; expected one of count, name, state" in text
    assert "book.yml:6: svc.count: expected an integer, got 'many'" in text
    assert "book.yml:7: svc.state: expected one of 'started', 'stopped', got 'running'" in text


def test_missing_required_param(tmp_path: Path) -> None:
    text = problems(tmp_path, "- hosts: web\n  tasks:\n    - svc: {state: started}\n")
    assert "svc.name: required param missing (a string)" in text


def test_undefined_group_and_variable(tmp_path: Path) -> None:
    text = problems(tmp_path, "- hosts: webz\n  tasks:\n    - shell: echo {{ colour }}\n")
    assert "book.yml:1: hosts: 'webz' is neither a host nor a group" in text
    text = problems(tmp_path, "- hosts: web\n  tasks:\n    - shell: echo {{ color }}\n")
    assert "book.yml:3: shell: undefined variable 'color' (for hosts: web1)" in text


def test_defined_guard_and_magic_variables_are_accepted(tmp_path: Path) -> None:
    load(tmp_path, "- hosts: web\n  tasks:\n    - shell: echo {{ inventory_hostname }}\n"
                   "      when: color is defined\n    - shell: echo {{ color | default('x') }}\n")


def test_bad_yaml_and_shape(tmp_path: Path) -> None:
    text = problems(tmp_path, "- hosts: web\n  tasks:\n    - svc: {name: [\n")
    assert "book.yml:4: invalid YAML" in text
    assert "expected a playbook: a list of plays" in problems(tmp_path, "hosts: web\n")


def test_bad_notify_serial_and_play_key(tmp_path: Path) -> None:
    text = problems(tmp_path, "- hosts: web\n  serial: 0\n  forks: 3\n  tasks:\n    - svc: {name: a}\n"
                              "      notify: nobody\n")
    assert "book.yml:2: serial: expected a batch size" in text
    assert "book.yml:3: forks: unknown play key" in text
    assert "book.yml:6: notify: no handler named 'nobody'" in text


def test_template_syntax_error(tmp_path: Path) -> None:
    text = problems(tmp_path, "- hosts: web\n  tasks:\n    - shell: echo {{ port \n")
    assert "template syntax error" in text


def test_batches_as_ansible_serial() -> None:
    hosts = [f"h{i}" for i in range(1, 11)]
    assert batches(hosts, ()) == [hosts]
    assert [len(b) for b in batches(hosts, (1, "50%"))] == [1, 5, 4]
    assert [len(b) for b in batches(hosts, ("25%",))] == [2, 2, 2, 2, 2]
    assert [len(b) for b in batches(hosts, (3,))] == [3, 3, 3, 1]


class Tpl(Module):
    name = "template"
    params = {"src": Param(str, required=True), "dest": Param(str, required=True)}


def test_template_files_are_checked_before_any_connection(tmp_path: Path) -> None:
    modules = {"template": Tpl()}
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "ok.j2").write_text("port={{ port }}\n")
    (tmp_path / "bad.j2").write_text("port={{ prot }}\n")
    book = tmp_path / "book.yml"
    book.write_text("- hosts: web\n  tasks:\n    - template: {src: ok.j2, dest: /x}\n"
                    "    - template: {src: bad.j2, dest: /y}\n    - template: {src: missing.j2, dest: /z}\n")
    with pytest.raises(ValidationError) as info:
        load_playbook(book, modules, load_inventory(tmp_path / "inv.yml"))
    text = str(info.value)
    assert "book.yml:4: template.src: undefined variable 'prot'" in text
    assert "book.yml:5: template.src: cannot read template" in text and "missing.j2" in text
    assert "ok.j2" not in text
