"""Playbooks: plays of tasks over modules, loaded and validated completely before any connection.

The YAML users write is the same as the built-in playbooks in ``playbooks/``::

    - name: Web servers                 # a play
      hosts: web                        # an inventory pattern (see Inventory.select)
      serial: 1                         # batch size: int, "25%", or a list like [1, "50%"]
      become: true                      # run tasks as root through sudo (default true)
      any_errors_fatal: false           # one failed host stops every host
      max_fail_percentage: 0            # of a batch; over it, the play stops (as Ansible's)
      vars: {app_port: 8000}            # lowest-precedence defaults
      tasks:
        - name: Install Caddy
          apt: {name: caddy}            # exactly one module with its params
          when: "'web' in group_names"  # optional: a Jinja2 expression, or a list (all true)
          notify: reload caddy          # optional: handler name(s), run once at the end
          loop: [a, b]                  # optional: run once per item, as {{ item }}
          become: true                  # optional: override the play's become
          run_once: false               # optional: only on the first host of the play
          ignore_errors: false          # optional: a failure does not stop the host
          timeout: 600                  # optional: seconds the task's remote command may run
      handlers:
        - name: reload caddy
          service: {name: caddy, state: reloaded}

A module whose params are a single command also takes a string: ``shell: echo hi``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from shipit.errors import Problem, ValidationError, did_you_mean
from shipit.inventory import Inventory
from shipit.modules.base import Module
from shipit.templating import make_environment, template_problems, variables_in
from shipit.yamlfile import LineDict, LineList, line_of, load_yaml_file

# Variables shipit defines for every host, on top of the inventory's and the play's.
MAGIC_VARIABLES = frozenset({
    "inventory_hostname", "group_names", "groups", "facts", "play_hosts", "item", "address",
    "leader", "is_leader", "hostvars",
})

PLAY_KEYS = {"name", "hosts", "serial", "become", "any_errors_fatal", "max_fail_percentage",
             "vars", "tasks", "handlers"}
TASK_KEYS = {"name", "when", "notify", "loop", "become", "run_once", "ignore_errors", "timeout"}


@dataclass(frozen=True)
class Task:
    """One task: a module with its (unrendered) params and the task's options.

    ``file``/``line`` say where it was written (for errors and the report).
    """

    name: str
    module: str
    params: Mapping[str, Any]
    when: tuple[str | bool, ...] = ()
    notify: tuple[str, ...] = ()
    loop: Any = None
    become: bool | None = None
    run_once: bool = False
    ignore_errors: bool = False
    timeout: float | None = None
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class Play:
    """A play: which hosts, in which batches, running which tasks, with which handlers.

    ``serial`` is a tuple of batch sizes (ints, or strings like "25%"); empty means all hosts
    in one batch. The last size repeats, as Ansible's ``serial`` list does.
    """

    name: str
    hosts: str
    tasks: tuple[Task, ...]
    handlers: tuple[Task, ...] = ()
    serial: tuple[int | str, ...] = ()
    become: bool = True
    any_errors_fatal: bool = False
    max_fail_percentage: float | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class Playbook:
    """A loaded playbook: its path (for resolving template ``src``) and its plays."""

    path: str
    plays: tuple[Play, ...]

    @property
    def directory(self) -> str:
        return str(Path(self.path).parent)


def batches(hosts: list[str], serial: tuple[int | str, ...]) -> list[list[str]]:
    """Split ``hosts`` into batches per ``serial`` (as Ansible's ``serial``).

    Each size in turn, the last repeating; percentages are of all hosts, rounded down, at
    least 1: ``[1, "50%"]`` over 5 hosts gives ``[[h1], [h2, h3], [h4, h5]]``; an empty
    ``serial`` gives one batch of every host (none for no hosts).
    """
    if not serial:
        return [list(hosts)] if hosts else []
    result: list[list[str]] = []
    i = 0
    step = 0
    while i < len(hosts):
        size_spec = serial[min(step, len(serial) - 1)]
        if isinstance(size_spec, str) and size_spec.endswith("%"):
            size = max(1, int(len(hosts) * float(size_spec[:-1]) / 100))
        else:
            size = max(1, int(size_spec))
        result.append(hosts[i:i + size])
        i += size
        step += 1
    return result


class _Checker:
    """Collects problems while walking a playbook."""

    def __init__(self, file: str, modules: Mapping[str, Module], inventory: Inventory | None,
                 extra_vars: Mapping[str, Any]) -> None:
        self.file = file
        self.modules = modules
        self.inventory = inventory
        self.extra_vars = extra_vars
        self.env = make_environment()
        self.problems: list[Problem] = []

    def add(self, container: Any, key: Any, name: str, message: str) -> None:
        self.problems.append(Problem(self.file, line_of(container, key), name, message))

    # -- plays ---------------------------------------------------------------------------
    def play(self, raw: Any, container: Any, index: int) -> Play | None:
        where = f"play {index + 1}"
        if not isinstance(raw, dict):
            self.add(container, index, where, "expected a play: a mapping with hosts: and tasks:")
            return None
        name = str(raw.get("name", where))
        for key in raw:
            if key not in PLAY_KEYS:
                self.add(raw, key, str(key), f"unknown play key; expected one of {', '.join(sorted(PLAY_KEYS))}"
                         + did_you_mean(key, PLAY_KEYS))
        hosts = raw.get("hosts")
        host_names: list[str] = []
        if not isinstance(hosts, str) or not hosts.strip():
            self.add(raw, "hosts", "hosts", "expected an inventory pattern such as 'web' or 'all'")
        elif "{{" in hosts or "{%" in hosts:
            for message in template_problems(self.env, hosts):
                self.add(raw, "hosts", "hosts", message)
        elif self.inventory is not None:
            try:
                host_names = self.inventory.select(hosts)
            except ValueError as exc:
                self.add(raw, "hosts", "hosts", f"{exc}; groups: {', '.join(sorted(self.inventory.groups)) or 'none'}")
        serial = self._serial(raw)
        play_vars = raw.get("vars") or {}
        if not isinstance(play_vars, dict):
            self.add(raw, "vars", "vars", "expected a mapping of variables")
            play_vars = {}
        become = self._bool(raw, "become", True)
        fatal = self._bool(raw, "any_errors_fatal", False)
        max_fail = raw.get("max_fail_percentage")
        if max_fail is not None and (isinstance(max_fail, bool) or not isinstance(max_fail, (int, float))
                                     or not 0 <= max_fail <= 100):
            self.add(raw, "max_fail_percentage", "max_fail_percentage", "expected a number from 0 to 100")
            max_fail = None
        known = self._known_variables(host_names, play_vars)
        handlers = self._task_list(raw, "handlers", known, set(), is_handler=True)
        handler_names = {h.name for h in handlers}
        tasks = self._task_list(raw, "tasks", known, handler_names, is_handler=False)
        if "tasks" not in raw:
            self.add(raw, "tasks", "tasks", "a play needs tasks: (a list of tasks)")
        return Play(name=name, hosts=str(hosts), tasks=tuple(tasks), handlers=tuple(handlers),
                    serial=serial, become=become, any_errors_fatal=fatal,
                    max_fail_percentage=float(max_fail) if max_fail is not None else None,
                    vars=dict(play_vars), file=self.file, line=getattr(raw, "line", 0))

    def _bool(self, raw: Any, key: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.add(raw, key, key, "expected true or false")
            return default
        return value

    def _serial(self, raw: Any) -> tuple[int | str, ...]:
        value = raw.get("serial")
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        result: list[int | str] = []
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool) and item >= 1:
                result.append(item)
            elif isinstance(item, str) and re.fullmatch(r"\d+(\.\d+)?%", item.strip()) and float(item.strip()[:-1]) > 0:
                result.append(item.strip())
            else:
                self.add(raw, "serial", "serial",
                         f"expected a batch size: a whole number >= 1, a percentage like '25%', or a list of them; got {item!r}")
        return tuple(result)

    def _known_variables(self, host_names: list[str], play_vars: Mapping[str, Any]) -> dict[str, set[str]]:
        """Per host: variable names it has (the inventory's, the play's, extra, magic)."""
        if self.inventory is None or not host_names:
            base = set(play_vars) | set(self.extra_vars) | MAGIC_VARIABLES
            return {"": base}
        return {h: set(self.inventory.host_vars(h, play_vars, self.extra_vars)) | MAGIC_VARIABLES
                for h in host_names}

    # -- tasks ---------------------------------------------------------------------------
    def _task_list(self, raw: Any, key: str, known: dict[str, set[str]], handler_names: set[str],
                   is_handler: bool) -> list[Task]:
        items = raw.get(key)
        if items is None:
            return []
        if not isinstance(items, list):
            self.add(raw, key, key, "expected a list of tasks")
            return []
        tasks = []
        for i, item in enumerate(items):
            task = self.task(item, items, i, known, handler_names, is_handler)
            if task is not None:
                tasks.append(task)
        return tasks

    def task(self, raw: Any, container: Any, index: int, known: dict[str, set[str]],
             handler_names: set[str], is_handler: bool) -> Task | None:
        kind = "handler" if is_handler else "task"
        if not isinstance(raw, dict):
            self.add(container, index, f"{kind} {index + 1}", f"expected a {kind}: a mapping with a module and its params")
            return None
        module_keys = [k for k in raw if k not in TASK_KEYS]
        unknown = [k for k in module_keys if k not in self.modules]
        name_for_errors = str(raw.get("name", f"{kind} {index + 1}"))
        for key in unknown:
            self.add(raw, key, str(key),
                     f"unknown module or task key in {kind} '{name_for_errors}'; modules: "
                     f"{', '.join(sorted(self.modules))}; task keys: {', '.join(sorted(TASK_KEYS))}"
                     + did_you_mean(key, [*self.modules, *TASK_KEYS]))
        modules = [k for k in module_keys if k in self.modules]
        if len(modules) != 1:
            if not unknown:
                what = "no module" if not modules else f"several modules ({', '.join(modules)})"
                self.add(raw, modules[1] if len(modules) > 1 else index, name_for_errors,
                         f"a {kind} names exactly one module; found {what}")
            return None
        module_name = modules[0]
        module = self.modules[module_name]
        params = self._params(raw, module_name, module)
        if params is None:
            return None
        name = str(raw.get("name") or f"{module_name}")
        when = raw.get("when", ())
        when_list: list[Any] = list(when) if isinstance(when, list) else ([when] if when != () else [])
        for cond in when_list:
            if not isinstance(cond, (str, bool)):
                self.add(raw, "when", "when", "expected a Jinja2 expression (without {{ }}) or a list of them")
        notify = raw.get("notify", [])
        notify_list = notify if isinstance(notify, list) else [notify]
        for n in notify_list:
            if not isinstance(n, str) or n not in handler_names:
                self.add(raw, "notify", "notify",
                         f"no handler named {n!r} in this play; handlers: {', '.join(sorted(handler_names)) or 'none'}")
        become = raw.get("become")
        if become is not None and not isinstance(become, bool):
            self.add(raw, "become", "become", "expected true or false")
            become = None
        for flag in ("run_once", "ignore_errors"):
            if not isinstance(raw.get(flag, False), bool):
                self.add(raw, flag, flag, "expected true or false")
        timeout = raw.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout <= 86400):
            self.add(raw, "timeout", "timeout", "expected seconds, a number > 0 and at most 86400")
            timeout = None
        loop = raw.get("loop")
        if loop is not None and not isinstance(loop, (list, str)):
            self.add(raw, "loop", "loop", "expected a list, or a template giving one")
        extra_known = {"item"} if loop is not None else set()
        self._check_variables(raw, module_name, params, when_list, loop, known, extra_known)
        return Task(name=name, module=module_name, params=params,
                    when=tuple(c for c in when_list if isinstance(c, (str, bool))),
                    notify=tuple(n for n in notify_list if isinstance(n, str)), loop=loop,
                    become=become, run_once=bool(raw.get("run_once", False)),
                    ignore_errors=bool(raw.get("ignore_errors", False)),
                    timeout=float(timeout) if timeout is not None else None,
                    file=self.file, line=getattr(raw, "line", 0))

    def _params(self, raw: Any, module_name: str, module: Module) -> dict[str, Any] | None:
        value = raw[module_name]
        if isinstance(value, str):
            free = [k for k in ("cmd",) if k in module.params]
            if not free:
                self.add(raw, module_name, module_name, "expected a mapping of params: "
                         + ", ".join(f"{k} ({p.expected()})" for k, p in module.params.items()))
                return None
            value = {free[0]: value}
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.add(raw, module_name, module_name, "expected a mapping of params")
            return None
        ok = True
        params: dict[str, Any] = {}
        for key, v in value.items():
            spec = module.params.get(key)
            where = f"{module_name}.{key}"
            if spec is None:
                self.add(value, key, where, f"unknown param of module {module_name}; expected one of "
                         + ", ".join(sorted(module.params)) + did_you_mean(key, module.params))
                ok = False
                continue
            if not _is_template(v) and not spec.accepts(v):
                self.add(value, key, where, f"expected {spec.expected()}, got {v!r}")
                ok = False
            params[key] = v
        for key, spec in module.params.items():
            if key not in params:
                if spec.required:
                    self.add(value, key, f"{module_name}.{key}", f"required param missing ({spec.expected()})")
                    ok = False
                else:
                    params[key] = spec.default
        if ok and not any(_is_template(v) for v in params.values()):
            for key, message in module.check_params(params):
                self.add(value, key, f"{module_name}.{key}", message)
                ok = False
        return params if ok else None

    def _check_variables(self, raw: Any, module_name: str, params: Mapping[str, Any],
                         when: list[Any], loop: Any, known: dict[str, set[str]], extra: set[str]) -> None:
        checks: list[tuple[str, Any, bool]] = [(module_name, params, False), ("when", when, True)]
        if loop is not None:
            checks.append(("loop", loop, False))
        src = params.get("src")
        if module_name in ("template", "systemd_unit") and isinstance(src, str) and not _is_template(src):
            # a template file is checked like inline params: before any connection
            path = Path(self.file).parent / src
            try:
                checks.append((f"{module_name}.src", path.read_text(encoding="utf-8"), False))
            except (OSError, UnicodeDecodeError) as exc:
                self.add(raw, module_name, f"{module_name}.src", f"cannot read template {path}: {exc}")
        unsafe = self._check_templates(raw, module_name, checks)
        for key, value, is_expr in checks:
            if key in unsafe:
                continue
            try:
                names = variables_in(self.env, value, expression=is_expr)
            except jinja2.TemplateSyntaxError as exc:
                self.add(raw, key, key, f"template syntax error: {exc.message}")
                continue
            text = repr(value)
            for name in sorted(names):
                if re.search(rf"\b{re.escape(name)}\s+is\s+(not\s+)?defined|\b{re.escape(name)}\s*\|\s*default", text):
                    continue
                missing = [h for h, names_known in known.items() if name not in names_known | extra]
                if missing:
                    hosts = f" (for hosts: {', '.join(missing)})" if missing != [""] else ""
                    self.add(raw, key, key, f"undefined variable '{name}'{hosts}; define it in the "
                             "inventory (vars, group or host vars), the play's vars, or with -e")


    def _check_templates(self, raw: Any, module_name: str, checks: list[tuple[str, Any, bool]]) -> set[str]:
        """Report what templates show without any host (syntax errors, ``_private`` attributes
        the sandbox would refuse, constant conditions that fail), each at the line of the param,
        condition or template file that holds it. Returns the keys of ``checks`` with a problem.
        """
        bad: set[str] = set()
        for key, value, is_expr in checks:
            if key == module_name and isinstance(raw.get(module_name), dict):
                params = raw[module_name]
                items = [(params, k, f"{module_name}.{k}", v) for k, v in params.items()]
            elif key == "when" and isinstance(raw.get("when"), list):
                items = [(raw["when"], i, f"when[{i}]", v) for i, v in enumerate(raw["when"])]
            elif key == f"{module_name}.src":
                params = raw.get(module_name)
                items = [(params, "src", f"{key} ({params.get('src')})", value)]
            else:
                items = [(raw, key, key, value)]
            for container, at, name, v in items:
                for message in template_problems(self.env, v, expression=is_expr):
                    self.add(container, at, name, message)
                    bad.add(key)
        return bad


def _is_template(value: Any) -> bool:
    """True when ``value`` (or a string inside a list/mapping) is a Jinja2 template."""
    if isinstance(value, list):
        return any(_is_template(v) for v in value)
    if isinstance(value, dict):
        return any(_is_template(v) for v in value.values())
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def load_playbook(path: str | Path, modules: Mapping[str, Module], inventory: Inventory | None = None,
                  extra_vars: Mapping[str, Any] | None = None) -> Playbook:
    """Load and validate a playbook against the module registry and (optionally) an inventory.

    With an inventory, host patterns must match and every variable used in a template must be
    defined for every host of its play.

    Raises:
        ValidationError: every problem found (file:line, key, expected form).
    """
    p = Path(path)
    data = load_yaml_file(p)
    checker = _Checker(str(p), modules, inventory, extra_vars or {})
    if not isinstance(data, list) or not data:
        checker.add(data, 0, "", "expected a playbook: a list of plays (each with hosts: and tasks:)")
        raise ValidationError(checker.problems)
    plays = [checker.play(raw, data, i) for i, raw in enumerate(data)]
    if checker.problems:
        raise ValidationError(checker.problems)
    return Playbook(str(p), tuple(p for p in plays if p is not None))


__all__ = ["Play", "Playbook", "Task", "batches", "load_playbook", "MAGIC_VARIABLES",
           "LineDict", "LineList"]
