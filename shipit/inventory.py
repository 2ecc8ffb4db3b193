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

Validation (all before any connection; every problem is reported with file:line and key):
ports are whole numbers 1-65535 (``true`` is not a port); ``ssh.connect_timeout`` is a finite
number of seconds from 1 to 3600 (the transport counts whole seconds); addresses, users and
gateways are made of the characters of host names, IP addresses and user names only and do
not start with ``-`` (nothing an ssh option parser, a shell or a config template could
mistake for something else). In an Ansible INI inventory ``[all:children]``
is accepted (it lists top-level groups, as Ansible reads it).

Variable precedence, lowest first (four levels):
  1. play ``vars`` in the playbook (defaults),
  2. group vars: ``vars`` at the top, then groups from ancestors to children (same depth by name),
  3. host ``vars``,
  4. extra vars from the command line (``-e key=value``).
"""

from __future__ import annotations

import fnmatch
import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipit.errors import Problem, ValidationError, did_you_mean
from shipit.yamlfile import LineDict, line_of, load_yaml_file, type_name


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
        problems.add(container, key, name, f"expected {expected}, got {type_name(value)} {value!r}")
    return ok


_WORD = re.compile(r"^[^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]*$")
_GATEWAY = re.compile(r"^(?:(?P<user>[^\s@:\x00-\x1f\x7f-][^\s@:\x00-\x1f\x7f]*)@)?"
                      r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s@:\[\]\x00-\x1f\x7f-][^\s@:\[\]\x00-\x1f\x7f]*)"
                      r"(?::(?P<port>\d+))?$")
_ADDRESS = re.compile(r"^(?!-)[A-Za-z0-9._:%\[\]-]+$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_BAD_NAME = re.compile(r"[\s,\x00-\x1f\x7f]|^[-!&]")


def port_problem(value: Any, digits_ok: bool = False) -> str | None:
    """Why ``value`` is not a TCP port (a whole number from 1 to 65535), or None if it is.

    With ``digits_ok`` (Ansible inventories, whose values are often strings) a digit string
    such as ``"2222"`` is accepted too.
    """
    if digits_ok and isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected a port number (1-65535), got {type_name(value)} {value!r}"
    if not 1 <= value <= 65535:
        return f"expected a port number from 1 to 65535, got {value}"
    return None


def seconds_problem(value: Any, low: float, high: float) -> str | None:
    """Why ``value`` is not a finite number of seconds in ``[low, high]``, or None if it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number of seconds, got {type_name(value)} {value!r}"
    if not math.isfinite(value) or not low <= value <= high:
        return f"expected a number of seconds from {low:g} to {high:g}, got {value!r}"
    return None


def _word_problem(value: Any, what: str) -> str | None:
    if not isinstance(value, str):
        return f"expected {what} (a string), got {type_name(value)} {value!r}"
    if not _WORD.fullmatch(value):
        return f"expected {what}: one word, no spaces or control characters, not starting with '-'; got {value!r}"
    return None


def _gateway_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a gateway as [user@]host[:port], got {type_name(value)} {value!r}"
    match = _GATEWAY.fullmatch(value)
    if not match or (match.group("user") and not _USER.fullmatch(match.group("user"))) \
            or not _ADDRESS.fullmatch(match.group("host")):
        return f"expected a gateway as [user@]host[:port] (one word, not starting with '-'), got {value!r}"
    if match.group("port") is not None:
        return port_problem(int(match.group("port")))
    return None


def _check_connection_field(key: str, value: Any, digits_ok: bool = False) -> tuple[Any, str | None]:
    """(normalised value, problem) for an SSH field of a host or ``ssh:`` (native names);
    ``digits_ok`` accepts a port given as a digit string (see :func:`port_problem`)."""
    if key == "port":
        problem = port_problem(value, digits_ok)
        return (None, problem) if problem else (int(value), None)
    if key == "gateway":
        return value, _gateway_problem(value)
    if key == "address":
        problem = _word_problem(value, "an address or DNS name")
        if problem is None and not _ADDRESS.fullmatch(value):
            problem = f"expected an IP address or DNS name (letters, digits, . - _ : % [ ]), got {value!r}"
        return value, problem
    if key == "user":
        problem = _word_problem(value, "a user name")
        if problem is None and not _USER.fullmatch(value):
            problem = f"expected a user name (letters, digits, . _ -), got {value!r}"
        return value, problem
    if key == "key":
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            return value, f"expected the path of a private key file, got {value!r}"
        return value, None
    return value, None


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
            problems.add(data, key, str(key), f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}"
                         + did_you_mean(key, _TOP_KEYS))
    ssh = data.get("ssh") or LineDict()
    defaults: dict[str, Any] = {}
    known_hosts: list[str] = []
    timeout = 10.0
    if _expect(problems, data, "ssh", ssh, dict, "ssh", "a mapping of SSH settings"):
        for key, value in ssh.items():
            name = f"ssh.{key}"
            if key not in _SSH_KEYS:
                problems.add(ssh, key, name, f"unknown key; expected one of {', '.join(sorted(_SSH_KEYS))}"
                             + did_you_mean(key, _SSH_KEYS))
            elif key == "connect_timeout":
                problem = seconds_problem(value, 1, 3600)
                if problem:
                    problems.add(ssh, key, name, problem)
                else:
                    timeout = float(value)
            elif key == "known_hosts":
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if _expect(problems, ssh, key, v, str, name, "a path or a list of paths"):
                        known_hosts.append(_resolve_path(base, v))
            else:
                value, problem = _check_connection_field(key, value)
                if problem:
                    problems.add(ssh, key, name, problem)
                else:
                    defaults[key] = _resolve_path(base, value) if key == "key" else value
    top_vars = data.get("vars") or {}
    _expect(problems, data, "vars", top_vars, dict, "vars", "a mapping of variables")

    raw_hosts = data.get("hosts") or LineDict()
    hosts_spec: dict[str, dict[str, Any]] = {}
    if _expect(problems, data, "hosts", raw_hosts, dict, "hosts", "a mapping of host name to settings"):
        for name, spec in raw_hosts.items():
            spec = spec if spec is not None else LineDict()
            key_name = f"hosts.{name}"
            if not isinstance(name, str) or _BAD_NAME.search(name):
                problems.add(raw_hosts, name, key_name, "expected a host name: no spaces, commas or "
                             f"control characters, not starting with -, ! or &; got {name!r}")
                continue
            if not _expect(problems, raw_hosts, name, spec, dict, key_name, "a mapping (address:, port:, …)"):
                continue
            h: dict[str, Any] = {"address": str(name), **defaults}
            for key, value in spec.items():
                k = f"{key_name}.{key}"
                if key not in _HOST_KEYS:
                    problems.add(spec, key, k, f"unknown key; expected one of {', '.join(sorted(_HOST_KEYS))}"
                                 + did_you_mean(key, _HOST_KEYS))
                elif key == "leader":
                    if _expect(problems, spec, key, value, bool, k, "true or false"):
                        h["leader"] = value
                elif key == "vars":
                    if _expect(problems, spec, key, value, dict, k, "a mapping of variables"):
                        h["vars"] = dict(value)
                else:
                    value, problem = _check_connection_field(key, value)
                    if problem:
                        problems.add(spec, key, k, problem)
                    else:
                        h[key] = _resolve_path(base, value) if key == "key" else value
            hosts_spec[str(name)] = h

    raw_groups = data.get("groups") or LineDict()
    groups_spec: dict[str, dict[str, Any]] = {}
    if _expect(problems, data, "groups", raw_groups, dict, "groups", "a mapping of group name to settings"):
        for name, spec in raw_groups.items():
            spec = spec if spec is not None else LineDict()
            key_name = f"groups.{name}"
            if not isinstance(name, str) or _BAD_NAME.search(name):
                problems.add(raw_groups, name, key_name, "expected a group name: no spaces, commas or "
                             f"control characters, not starting with -, ! or &; got {name!r}")
                continue
            if name == "all" or name in hosts_spec:
                problems.add(raw_groups, name, key_name, "a group cannot be named 'all' or like a host")
            if not _expect(problems, raw_groups, name, spec, dict, key_name, "a mapping (hosts:, children:, vars:)"):
                continue
            g: dict[str, Any] = {"hosts": [], "children": [], "vars": {}}
            for key, value in spec.items():
                k = f"{key_name}.{key}"
                if key not in _GROUP_KEYS:
                    problems.add(spec, key, k, f"unknown key; expected one of {', '.join(sorted(_GROUP_KEYS))}"
                                 + did_you_mean(key, _GROUP_KEYS))
                elif key == "vars":
                    if _expect(problems, spec, key, value, dict, k, "a mapping of variables"):
                        g["vars"] = dict(value)
                elif _expect(problems, spec, key, value, list, k, "a list of names"):
                    for i, item in enumerate(value):
                        known = hosts_spec if key == "hosts" else raw_groups
                        if not isinstance(item, str):
                            problems.add(value, i, k, f"expected a name, got {type_name(item)} {item!r}")
                        elif item not in known:
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


def _split_ansible_vars(base: Path, raw: Mapping[str, Any],
                        report: Callable[[str, str], None]) -> dict[str, Any]:
    """Host vars of an Ansible inventory split into shipit's SSH fields and plain vars.

    ``report(ansible_key, message)`` is called for each field that is not valid (a port that
    is not a number from 1 to 65535, an address that is not one word, …); it is left out.
    """
    spec: dict[str, Any] = {"vars": {}}
    for key, value in raw.items():
        if key in _ANSIBLE_MAP:
            field_name = _ANSIBLE_MAP[key]
            if field_name in ("address", "user") and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            value, problem = _check_connection_field(field_name, value, digits_ok=True)
            if problem:
                report(str(key), problem)
            elif field_name == "key":
                spec[field_name] = _resolve_path(base, value)
            else:
                spec[field_name] = value
        else:
            spec["vars"][key] = value
    return spec


def _load_ansible_yaml(p: Path, data: LineDict) -> Inventory:
    problems = _Problems(str(p))
    hosts_spec: dict[str, dict[str, Any]] = {}
    groups_spec: dict[str, dict[str, Any]] = {}
    top_vars: dict[str, Any] = {}

    def walk(name: str, node: Any, container: Any, path: str) -> None:
        if node is None:
            node = LineDict()
        if not isinstance(node, dict):
            problems.add(container, name, path, "expected a mapping with hosts:, children:, vars:, "
                         f"got {type_name(node)}")
            return
        for key in node:
            if key not in ("hosts", "children", "vars"):
                problems.add(node, key, f"{path}.{key}", "unknown key; expected hosts, children or vars"
                             + did_you_mean(key, ("hosts", "children", "vars")))
        g = groups_spec.setdefault(name, {"hosts": [], "children": [], "vars": {}})
        hosts = node.get("hosts")
        if hosts is not None and not isinstance(hosts, dict):
            problems.add(node, "hosts", f"{path}.hosts", "expected a mapping of host name to host vars "
                         f"(hosts: {{web1: {{ansible_host: 10.0.0.11}}}}), got {type_name(hosts)}")
        elif hosts:
            for host, hvars in hosts.items():
                where = f"{path}.hosts.{host}"
                if not isinstance(host, str) or _BAD_NAME.search(host):
                    problems.add(hosts, host, where, "expected a host name: no spaces, commas or control "
                                 f"characters, not starting with -, ! or &; got {host!r}")
                    continue
                if hvars is None:
                    hvars = LineDict()
                if not isinstance(hvars, dict):
                    problems.add(hosts, host, where, "expected a mapping of host vars (ansible_host: …, "
                                 f"or empty), got {type_name(hvars)} {hvars!r}")
                    continue

                def report(key: str, message: str, hvars: Any = hvars, where: str = where) -> None:
                    problems.add(hvars, key, f"{where}.{key}", message)

                spec = _split_ansible_vars(p.parent, hvars, report)
                existing = hosts_spec.setdefault(host, {"address": host, "vars": {}})
                existing.update({k: v for k, v in spec.items() if k != "vars"})
                existing["vars"].update(spec["vars"])
                g["hosts"].append(host)
        group_vars = node.get("vars")
        if group_vars is not None and not isinstance(group_vars, dict):
            problems.add(node, "vars", f"{path}.vars", f"expected a mapping of variables, got {type_name(group_vars)}")
        elif group_vars:
            g["vars"].update(group_vars)
        children = node.get("children")
        if children is not None and not isinstance(children, dict):
            problems.add(node, "children", f"{path}.children", "expected a mapping of group name to group "
                         f"(children: {{web: {{hosts: …}}}}), got {type_name(children)}")
        elif children:
            for child, child_node in children.items():
                where = f"{path}.children.{child}"
                if not isinstance(child, str) or _BAD_NAME.search(child) or child == "all":
                    problems.add(children, child, where, f"expected a group name (not 'all'), got {child!r}")
                    continue
                if child in hosts_spec:
                    problems.add(children, child, where, f"'{child}' is a host; a group cannot be named like a host")
                    continue
                g["children"].append(child)
                walk(child, child_node, children, where)

    walk("all", data["all"], data, "all")
    for key in data:
        if key != "all":
            problems.add(data, key, str(key), "unknown key next to all: (an Ansible YAML inventory has one "
                         "top-level key, all:)")
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
    child_lines: dict[tuple[str, str], int] = {}
    top_vars: dict[str, Any] = {}
    section = ("group", "ungrouped")

    def problem(lineno: int, key: str, message: str) -> None:
        problems.items.append(Problem(str(p), lineno, key, message))

    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem(str(p), 0, "", f"cannot read: {exc}")]) from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip() if not raw.lstrip().startswith(("#", ";")) else ""
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            name, _, kind = line[1:-1].partition(":")
            if kind not in ("", "vars", "children") or not name or _BAD_NAME.search(name):
                problem(lineno, line, "expected [group], [group:vars] or [group:children] with a group name")
                section = ("skip", "")
                continue
            if name in hosts_spec:
                problem(lineno, line, f"'{name}' is a host; a group cannot be named like a host")
                section = ("skip", "")
                continue
            section = (kind or "group", name)
            if name != "all":
                groups_spec.setdefault(name, {"hosts": [], "children": [], "vars": {}})
            continue
        kind, group = section
        if kind == "skip":
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            problem(lineno, line, f"cannot parse: {exc}")
            continue
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                problem(lineno, line, "expected key=value")
                continue
            target = top_vars if group == "all" else groups_spec[group]["vars"]
            target[key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            child = words[0]
            if len(words) > 1 or _BAD_NAME.search(child) or child == "all":
                problem(lineno, line, "expected one group name per line under [group:children]")
                continue
            groups_spec.setdefault(child, {"hosts": [], "children": [], "vars": {}})
            child_lines.setdefault((group, child), lineno)
            if group != "all":  # [all:children] lists top-level groups: nothing to record
                groups_spec[group]["children"].append(child)
        else:
            host = words[0]
            if _BAD_NAME.search(host):
                problem(lineno, host, "expected a host name: no spaces, commas or control characters, "
                        f"not starting with -, ! or &; got {host!r}")
                continue
            if host in groups_spec:
                problem(lineno, host, f"'{host}' is a group; a host cannot be named like a group")
                continue
            hvars: dict[str, Any] = {}
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep or not key:
                    problem(lineno, word, "expected key=value after the host name")
                    continue
                hvars[key] = _ini_value(value)

            def report(key: str, message: str, lineno: int = lineno, host: str = host) -> None:
                problem(lineno, f"{host} {key}", message)

            spec = _split_ansible_vars(p.parent, hvars, report)
            existing = hosts_spec.setdefault(host, {"address": host, "vars": {}})
            existing.update({k: v for k, v in spec.items() if k != "vars"})
            existing["vars"].update(spec["vars"])
            if group != "all":
                groups_spec.setdefault(group, {"hosts": [], "children": [], "vars": {}})["hosts"].append(host)
    for (name, child), lineno in child_lines.items():
        if child not in _declared_sections(text):
            problem(lineno, f"{name}:children", f"'{child}' is not a group of this inventory")
    problems.raise_if_any()
    groups_spec.pop("ungrouped", None) if not groups_spec.get("ungrouped", {}).get("hosts") else None
    return _build(str(p), hosts_spec, groups_spec, top_vars, (), None, 10.0, problems, None)


def _declared_sections(text: str) -> set[str]:
    """Group names that have a ``[name]``, ``[name:vars]`` or ``[name:children]`` header."""
    return {m.group(1) for m in re.finditer(r"^\s*\[([^\]:]+)(?::[a-z]+)?\]", text, re.M)}


def _ini_value(text: str) -> Any:
    """An INI value as YAML reads it (``yes``/``true`` -> True, ``8000`` -> 8000), else the text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) else text
