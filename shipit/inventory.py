"""Inventories: hosts, groups, variables and SSH settings, validated with file:line errors.

``shipit run prod …`` reads ``inventories/prod.yml``. The native format::

    ssh:                      # defaults for every host (all optional)
      user: deploy
      port: 22
      key: ~/.ssh/id_ed25519  # paths relative to this file
      known_hosts: prod.known_hosts
      gateway: jump@bastion.example.com:22   # like ProxyJump
    vars: {app_port: 8000}    # variables for every host
    hosts:
      web1: {address: 203.0.113.10, leader: true, vars: {weight: 2}}
      web2: {address: 203.0.113.11, port: 2222, user: admin, key: other.key}
    groups:
      web: {hosts: [web1, web2], vars: {workers: 4}}
      prod: {children: [web]}
    app: {...}                # the app spec overrides for `shipit deploy` (see shipit.app)

Ansible inventories are read too: YAML (``all: {hosts, children, vars}``) and INI
(``[group]``, ``[group:vars]``, ``[group:children]``), with ``ansible_host``, ``ansible_port``,
``ansible_user`` and ``ansible_ssh_private_key_file`` mapped to shipit's fields.
``~/.ssh/config`` is honoured by the transport (fabric) for anything not set here.

Variable precedence, lowest first (four levels):
  1. play ``vars`` in the playbook (defaults),
  2. group vars: ``vars`` at the top, then groups from ancestors to children (same depth by name),
  3. host ``vars``,
  4. extra vars from the command line (``-e key=value``).
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipit.errors import Problem, ValidationError
from shipit.yamlfile import LineDict, line_of, load_yaml_file


@dataclass(frozen=True)
class Host:
    """One inventory host.

    Attributes:
        name: inventory name (what the user types, what the recap shows).
        address: address or DNS name to connect to (defaults to ``name``).
        port, user, key, gateway: SSH settings (None = ssh config / defaults).
        leader: marked ``leader: true`` (the deploy's leader; see :func:`leader_of`).
        vars: host variables.
        groups: names of the groups that contain it, directly or through children, plus "all".
    """

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    key: str | None = None
    gateway: str | None = None
    leader: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ("all",)


@dataclass(frozen=True)
class Group:
    """A group: its direct hosts, child groups, vars and depth (0 for ``all``)."""

    name: str
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    depth: int = 1


@dataclass(frozen=True)
class Inventory:
    """A loaded inventory. ``hosts`` keeps file order; ``app`` is the raw ``app:`` mapping or None."""

    path: str
    hosts: Mapping[str, Host]
    groups: Mapping[str, Group]
    vars: Mapping[str, Any]
    known_hosts: tuple[str, ...] = ()
    app: Mapping[str, Any] | None = None
    connect_timeout: float = 10.0

    def group_hosts(self, group: str) -> list[str]:
        """Host names in ``group`` (recursively through children), in inventory order."""
        if group == "all":
            return list(self.hosts)
        members = {h for h, host in self.hosts.items() if group in host.groups}
        return [h for h in self.hosts if h in members]

    def select(self, pattern: str) -> list[str]:
        """Hosts matching an Ansible-style pattern, in inventory order.

        ``pattern`` is a ``,`` or ``:`` separated list of host or group names (``*`` globs
        allowed); ``!name`` excludes, ``&name`` intersects; ``all`` is every host.

        Raises:
            ValueError: a plain name (no glob) matches no host and no group.
        """
        selected: set[str] = set()
        include_any = False
        intersect: list[set[str]] = []
        exclude: set[str] = set()
        for raw in pattern.replace(":", ",").split(","):
            term = raw.strip()
            if not term:
                continue
            op = ""
            if term[0] in "!&":
                op, term = term[0], term[1:]
            names = self._expand(term)
            if op == "!":
                exclude |= names
            elif op == "&":
                intersect.append(names)
            else:
                include_any = True
                selected |= names
        if not include_any:
            selected = set(self.hosts)
        for names in intersect:
            selected &= names
        selected -= exclude
        return [h for h in self.hosts if h in selected]

    def _expand(self, term: str) -> set[str]:
        if any(ch in term for ch in "*?["):
            hosts = {h for h in self.hosts if fnmatch.fnmatchcase(h, term)}
            for g in self.groups:
                if fnmatch.fnmatchcase(g, term):
                    hosts |= set(self.group_hosts(g))
            return hosts
        if term == "all":
            return set(self.hosts)
        if term in self.groups:
            return set(self.group_hosts(term))
        if term in self.hosts:
            return {term}
        raise ValueError(f"'{term}' is neither a host nor a group of the inventory")

    def shared_variables(self) -> dict[str, Any]:
        """Variables the same for every host: ``groups`` (group -> host names, ``all`` too)
        and ``hostvars`` (host -> its host vars plus ``address`` and ``inventory_hostname``)."""
        return {
            "groups": {g: self.group_hosts(g) for g in [*self.groups, "all"]},
            "hostvars": {name: {**h.vars, "address": h.address, "inventory_hostname": name}
                         for name, h in self.hosts.items()},
        }

    def host_vars(self, host: str, play_vars: Mapping[str, Any] | None = None,
                  extra_vars: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Variables of ``host`` merged by precedence (see the module docstring)."""
        h = self.hosts[host]
        merged: dict[str, Any] = dict(play_vars or {})
        merged.update(self.vars)
        groups = sorted((self.groups[g] for g in h.groups if g in self.groups),
                        key=lambda g: (g.depth, g.name))
        for g in groups:
            merged.update(g.vars)
        merged.update(h.vars)
        merged.update(extra_vars or {})
        return merged


def leader_of(inventory: Inventory, hosts: list[str]) -> str:
    """The leader among ``hosts``: the one marked ``leader: true``, else the first.

    Raises:
        ValueError: ``hosts`` is empty, or more than one of them is marked leader.
    """
    if not hosts:
        raise ValueError("no hosts to choose a leader from")
    marked = [h for h in hosts if inventory.hosts[h].leader]
    if len(marked) > 1:
        raise ValueError(f"more than one leader marked: {', '.join(marked)}")
    return marked[0] if marked else hosts[0]


# ---- loading ------------------------------------------------------------------------------

_TOP_KEYS = {"ssh", "vars", "hosts", "groups", "app"}
_SSH_KEYS = {"user", "port", "key", "known_hosts", "gateway", "connect_timeout"}
_HOST_KEYS = {"address", "port", "user", "key", "gateway", "leader", "vars"}
_GROUP_KEYS = {"hosts", "children", "vars"}


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, container: Any, key: Any, name: str, message: str) -> None:
        self.items.append(Problem(self.file, line_of(container, key), name, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationError(self.items)


def _expect(problems: _Problems, container: Any, key: str, value: Any, kind: type | tuple[type, ...],
            name: str, expected: str) -> bool:
    if isinstance(value, bool) and kind in (int, (int,)):
        ok = False
    else:
        ok = isinstance(value, kind)
    if not ok:
        problems.add(container, key, name, f"expected {expected}, got {type(value).__name__} {value!r}")
    return ok


def _resolve_path(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p))


def load_inventory(path: str | Path) -> Inventory:
    """Load and validate an inventory file (shipit YAML, Ansible YAML or Ansible INI).

    Raises:
        ValidationError: every problem found, each with file:line, key and expected form.
    """
    p = Path(path)
    if p.suffix in (".ini", ".cfg", "") and p.exists() and not _looks_like_yaml(p):
        return _load_ansible_ini(p)
    data = load_yaml_file(p)
    if data is None:
        data = LineDict()
    problems = _Problems(str(p))
    if not isinstance(data, dict):
        problems.add(data, 0, "", "expected a mapping with hosts:, groups:, vars:, ssh:")
        problems.raise_if_any()
    if "all" in data and "hosts" not in data:
        return _load_ansible_yaml(p, data)
    return _load_native(p, data, problems)


def _looks_like_yaml(p: Path) -> bool:
    text = p.read_text(encoding="utf-8", errors="replace")
    return not any(line.strip().startswith("[") for line in text.splitlines())


def _load_native(p: Path, data: LineDict, problems: _Problems) -> Inventory:
    base = p.parent
    for key in data:
        if key not in _TOP_KEYS:
            problems.add(data, key, str(key), f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    ssh = data.get("ssh") or LineDict()
    defaults: dict[str, Any] = {}
    known_hosts: list[str] = []
    timeout = 10.0
    if _expect(problems, data, "ssh", ssh, dict, "ssh", "a mapping of SSH settings"):
        for key, value in ssh.items():
            name = f"ssh.{key}"
            if key not in _SSH_KEYS:
                problems.add(ssh, key, name, f"unknown key; expected one of {', '.join(sorted(_SSH_KEYS))}")
            elif key == "port":
                if _expect(problems, ssh, key, value, int, name, "a port number"):
                    defaults["port"] = value
            elif key == "connect_timeout":
                if _expect(problems, ssh, key, value, (int, float), name, "seconds"):
                    timeout = float(value)
            elif key == "known_hosts":
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if _expect(problems, ssh, key, v, str, name, "a path or a list of paths"):
                        known_hosts.append(_resolve_path(base, v))
            elif _expect(problems, ssh, key, value, str, name, "a string"):
                defaults[key] = _resolve_path(base, value) if key == "key" else value
    top_vars = data.get("vars") or {}
    _expect(problems, data, "vars", top_vars, dict, "vars", "a mapping of variables")

    raw_hosts = data.get("hosts") or LineDict()
    hosts_spec: dict[str, dict[str, Any]] = {}
    if _expect(problems, data, "hosts", raw_hosts, dict, "hosts", "a mapping of host name to settings"):
        for name, spec in raw_hosts.items():
            spec = spec if spec is not None else LineDict()
            key_name = f"hosts.{name}"
            if not _expect(problems, raw_hosts, name, spec, dict, key_name, "a mapping (address:, port:, …)"):
                continue
            h: dict[str, Any] = {"address": str(name), **defaults}
            for key, value in spec.items():
                k = f"{key_name}.{key}"
                if key not in _HOST_KEYS:
                    problems.add(spec, key, k, f"unknown key; expected one of {', '.join(sorted(_HOST_KEYS))}")
                elif key == "port":
                    if _expect(problems, spec, key, value, int, k, "a port number"):
                        h["port"] = value
                elif key == "leader":
                    if _expect(problems, spec, key, value, bool, k, "true or false"):
                        h["leader"] = value
                elif key == "vars":
                    if _expect(problems, spec, key, value, dict, k, "a mapping of variables"):
                        h["vars"] = dict(value)
                elif _expect(problems, spec, key, value, str, k, "a string"):
                    h[key] = _resolve_path(base, value) if key == "key" else value
            hosts_spec[str(name)] = h

    raw_groups = data.get("groups") or LineDict()
    groups_spec: dict[str, dict[str, Any]] = {}
    if _expect(problems, data, "groups", raw_groups, dict, "groups", "a mapping of group name to settings"):
        for name, spec in raw_groups.items():
            spec = spec if spec is not None else LineDict()
            key_name = f"groups.{name}"
            if name == "all" or name in hosts_spec:
                problems.add(raw_groups, name, key_name, "a group cannot be named 'all' or like a host")
            if not _expect(problems, raw_groups, name, spec, dict, key_name, "a mapping (hosts:, children:, vars:)"):
                continue
            g: dict[str, Any] = {"hosts": [], "children": [], "vars": {}}
            for key, value in spec.items():
                k = f"{key_name}.{key}"
                if key not in _GROUP_KEYS:
                    problems.add(spec, key, k, f"unknown key; expected one of {', '.join(sorted(_GROUP_KEYS))}")
                elif key == "vars":
                    if _expect(problems, spec, key, value, dict, k, "a mapping of variables"):
                        g["vars"] = dict(value)
                elif _expect(problems, spec, key, value, list, k, "a list of names"):
                    for i, item in enumerate(value):
                        known = hosts_spec if key == "hosts" else raw_groups
                        if item not in known:
                            what = "host" if key == "hosts" else "group"
                            problems.add(value, i, k, f"'{item}' is not a {what} of this inventory")
                        else:
                            g[key].append(str(item))
            groups_spec[str(name)] = g
    problems.raise_if_any()
    app = data.get("app")
    if app is not None and not isinstance(app, dict):
        problems.add(data, "app", "app", "expected a mapping (the app spec overrides)")
    problems.raise_if_any()
    return _build(str(p), hosts_spec, groups_spec, dict(top_vars), tuple(known_hosts), app, timeout,
                  problems, raw_groups)


def _build(path: str, hosts_spec: dict[str, dict[str, Any]], groups_spec: dict[str, dict[str, Any]],
           top_vars: dict[str, Any], known_hosts: tuple[str, ...], app: Any, timeout: float,
           problems: _Problems, raw_groups: Any) -> Inventory:
    # depth and membership through children; refuse cycles
    depth: dict[str, int] = {}

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in stack:
            problems.add(raw_groups, name, f"groups.{name}.children",
                         "groups form a cycle: " + " -> ".join(stack + (name,)))
            return
        for child in groups_spec[name]["children"]:
            if depth.get(child, 0) < depth[name] + 1:
                depth[child] = depth[name] + 1
                visit(child, stack + (name,))

    for name in groups_spec:
        depth.setdefault(name, 1)
    for name in list(groups_spec):
        visit(name, ())
    problems.raise_if_any()

    def members(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        result = set(groups_spec[name]["hosts"])
        for child in groups_spec[name]["children"]:
            if child not in seen:
                result |= members(child, seen | {name})
        return result

    host_groups: dict[str, list[str]] = {h: ["all"] for h in hosts_spec}
    for g in groups_spec:
        for h in members(g):
            host_groups[h].append(g)
    hosts = {
        name: Host(name=name, address=spec.get("address", name), port=spec.get("port"),
                   user=spec.get("user"), key=spec.get("key"), gateway=spec.get("gateway"),
                   leader=spec.get("leader", False), vars=spec.get("vars", {}),
                   groups=tuple(host_groups[name]))
        for name, spec in hosts_spec.items()
    }
    groups = {name: Group(name, tuple(g["hosts"]), tuple(g["children"]), g["vars"], depth[name])
              for name, g in groups_spec.items()}
    return Inventory(path, hosts, groups, top_vars, known_hosts, app, timeout)


_ANSIBLE_MAP = {"ansible_host": "address", "ansible_port": "port", "ansible_user": "user",
                "ansible_ssh_private_key_file": "key", "ansible_ssh_host": "address",
                "ansible_ssh_port": "port", "ansible_ssh_user": "user"}


def _split_ansible_vars(base: Path, raw: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"vars": {}}
    for key, value in raw.items():
        if key in _ANSIBLE_MAP:
            field_name = _ANSIBLE_MAP[key]
            if field_name == "port":
                spec[field_name] = int(value)
            elif field_name == "key":
                spec[field_name] = _resolve_path(base, str(value))
            else:
                spec[field_name] = str(value)
        else:
            spec["vars"][key] = value
    return spec


def _load_ansible_yaml(p: Path, data: LineDict) -> Inventory:
    problems = _Problems(str(p))
    hosts_spec: dict[str, dict[str, Any]] = {}
    groups_spec: dict[str, dict[str, Any]] = {}
    top_vars: dict[str, Any] = {}

    def walk(name: str, node: Any, container: Any) -> None:
        node = node or {}
        if not isinstance(node, dict):
            problems.add(container, name, name, "expected a mapping with hosts:, children:, vars:")
            return
        for key in node:
            if key not in ("hosts", "children", "vars"):
                problems.add(node, key, f"{name}.{key}", "unknown key; expected hosts, children or vars")
        g = groups_spec.setdefault(name, {"hosts": [], "children": [], "vars": {}})
        for host, hvars in (node.get("hosts") or {}).items():
            spec = _split_ansible_vars(p.parent, hvars or {})
            existing = hosts_spec.setdefault(str(host), {"address": str(host), "vars": {}})
            existing.update({k: v for k, v in spec.items() if k != "vars"})
            existing["vars"].update(spec["vars"])
            g["hosts"].append(str(host))
        g["vars"].update(node.get("vars") or {})
        for child, child_node in (node.get("children") or {}).items():
            g["children"].append(str(child))
            walk(str(child), child_node, node.get("children"))

    walk("all", data["all"], data)
    problems.raise_if_any()
    all_group = groups_spec.pop("all")
    top_vars.update(all_group["vars"])
    for g in groups_spec.values():
        g["children"] = [c for c in g["children"] if c != "all"]
    return _build(str(p), hosts_spec, groups_spec, top_vars, (), None, 10.0, problems, data)


def _load_ansible_ini(p: Path) -> Inventory:
    problems = _Problems(str(p))
    hosts_spec: dict[str, dict[str, Any]] = {}
    groups_spec: dict[str, dict[str, Any]] = {}
    top_vars: dict[str, Any] = {}
    section = ("group", "ungrouped")
    for lineno, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip() if not raw.lstrip().startswith(("#", ";")) else ""
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            name, _, kind = line[1:-1].partition(":")
            if kind not in ("", "vars", "children"):
                problems.items.append(Problem(str(p), lineno, line, "expected [group], [group:vars] or [group:children]"))
                continue
            section = (kind or "group", name)
            if name != "all":
                groups_spec.setdefault(name, {"hosts": [], "children": [], "vars": {}})
            continue
        kind, group = section
        try:
            words = shlex.split(line)
        except ValueError as exc:
            problems.items.append(Problem(str(p), lineno, line, f"cannot parse: {exc}"))
            continue
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                problems.items.append(Problem(str(p), lineno, line, "expected key=value"))
                continue
            target = top_vars if group == "all" else groups_spec[group]["vars"]
            target[key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            groups_spec.setdefault(words[0], {"hosts": [], "children": [], "vars": {}})
            groups_spec[group]["children"].append(words[0])
        else:
            hvars: dict[str, Any] = {}
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep:
                    problems.items.append(Problem(str(p), lineno, word, "expected key=value after the host name"))
                    continue
                hvars[key] = _ini_value(value)
            spec = _split_ansible_vars(p.parent, hvars)
            existing = hosts_spec.setdefault(words[0], {"address": words[0], "vars": {}})
            existing.update({k: v for k, v in spec.items() if k != "vars"})
            existing["vars"].update(spec["vars"])
            if group != "all":
                groups_spec.setdefault(group, {"hosts": [], "children": [], "vars": {}})["hosts"].append(words[0])
    for name, g in groups_spec.items():
        for child in g["children"]:
            if child not in groups_spec:
                problems.items.append(Problem(str(p), 0, f"{name}:children", f"'{child}' is not a group"))
    problems.raise_if_any()
    groups_spec.pop("ungrouped", None) if not groups_spec.get("ungrouped", {}).get("hosts") else None
    return _build(str(p), hosts_spec, groups_spec, top_vars, (), None, 10.0, problems, None)


def _ini_value(text: str) -> Any:
    """An INI value as YAML reads it (``yes``/``true`` -> True, ``8000`` -> 8000), else the text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) else text
