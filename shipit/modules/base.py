"""The module contract: (params, facts) -> a pure plan of changes.

A module never touches the network. The executor asks it which facts it needs
(:meth:`Module.facts`), gathers all of them for all tasks of a play in one remote
invocation per host, then asks it for a :class:`Plan` (:meth:`Module.plan`). A plan with no
changes is "ok"; otherwise the executor runs each change's shell ``script`` on the host
(unless in check mode) and reports the task "changed". Check mode is therefore structural:
plan, don't execute. (Compare pyinfra's operations yielding commands, and Kamal's pure
command builders.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shipit.facts import FactQuery, HostFacts
from shipit.quoting import q as q  # re-exported: modules quote with base.q

DEFAULT_TIMEOUT = 600.0
"""Seconds a task's remote command may run unless the module or the task says otherwise."""


@dataclass(frozen=True)
class Param:
    """Spec of one module parameter, used to validate playbooks before any connection.

    Attributes:
        type: accepted Python type(s) after YAML parsing, e.g. ``str`` or ``(str, list)``.
        required: the task must give it.
        default: value when absent; the same object is given to every task that omits the
            param, so modules never mutate params.
        choices: allowed values, when the set is closed (e.g. ``("present", "absent")``).
        help: one line for ``shipit modules`` and error messages ("expected …").
        secret: the value is never printed (masked in diffs, recap and errors).
    """

    type: type | tuple[type, ...] = str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    help: str = ""
    secret: bool = False

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (as YAML parsed it, or as a template rendered it) fits this param:
        its type (None passes; a bool is not an int; an int is a float) and its choices.

        The loader and the executor both apply this one rule.
        """
        kinds = self.type if isinstance(self.type, tuple) else (self.type,)
        if isinstance(value, bool):
            type_ok = bool in kinds
        elif value is None:
            type_ok = True
        elif isinstance(value, int) and float in kinds:
            type_ok = True
        else:
            type_ok = isinstance(value, kinds)
        return type_ok and (not self.choices or value in self.choices)

    def expected(self) -> str:
        """Human description of the expected form, for error messages."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
                 dict: "a mapping", float: "a number"}
        return " or ".join(names.get(t, t.__name__) for t in types)


@dataclass(frozen=True)
class Upload:
    """A local file sent over SFTP to ``remote`` (a temporary path) before the change's script.

    ``sha256`` is the hex digest of the local file; the script is expected to verify it.
    """

    local: str
    remote: str
    sha256: str


@dataclass(frozen=True)
class Change:
    """One change a task makes on a host.

    Attributes:
        reason: one line for the user (e.g. "install caddy", "content differs"); no secrets.
        script: POSIX sh fragment run on the host (as root when the task has ``become``).
            It runs under ``set -e`` in a subshell; it is never printed, and it reaches the
            host on the remote shell's standard input, never in a process's argv.
        diff: unified diff for ``--diff`` (secrets already masked), or "".
        upload: a local file to send by SFTP before ``script`` runs, or None.
    """

    reason: str
    script: str
    diff: str = ""
    upload: Upload | None = None


@dataclass(frozen=True)
class Plan:
    """What a task would do on one host.

    ``changes`` empty and ``failed`` None means "ok" (nothing to do). ``failed`` set means the
    task cannot proceed on this host (e.g. the requested Python is not available); the message
    says why and what to do. ``skipped`` set means the task does not apply (e.g. a ``creates``
    guard is already satisfied); it is reported as skipped with that reason.
    """

    changes: tuple[Change, ...] = ()
    failed: str | None = None
    skipped: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class PlanContext:
    """What a module may know besides its params and facts.

    Attributes:
        host: inventory name of the host.
        host_facts: facts every host has (OS, CPUs, memory, …): see :class:`HostFacts`.
        check: check mode (plan only); modules plan the same either way.
        diff: the user asked for diffs; modules needing old file contents request them.
        read_local: reads a local file (path relative to the playbook's directory resolved by
            the caller) and returns its bytes; injected so unit tests can fake it.
        render: renders a Jinja2 template string with the host's variables; injected.
        secrets: values that must never appear in output; modules mask them in diffs.
    """

    host: str
    host_facts: HostFacts
    check: bool = False
    diff: bool = False
    read_local: Callable[[str], bytes] = field(default=lambda path: open(path, "rb").read())
    local_path: Callable[[str], str] = field(default=lambda path: path)
    render: Callable[[str], str] = field(default=lambda text: text)
    secrets: tuple[str, ...] = ()


class Module:
    """Base class of every module. Subclasses set ``name``, ``doc`` and ``params``.

    Subclasses implement :meth:`facts` and :meth:`plan`; both must be pure functions of their
    arguments. They may override :meth:`check_params` for cross-parameter rules.
    """

    name: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Param]] = {}
    interruptible: ClassVar[bool] = True
    """False: on Ctrl-C the executor lets a running change of this module finish (bounded by
    its timeout) rather than cut it off, because stopping it halfway could leave the host in
    a mixed state (``release_switch``). A second Ctrl-C cuts it off all the same."""

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Cross-parameter validation after type checks. Returns ``[(key, message), …]``."""
        return []

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        """The facts this task needs on a host, given its (rendered, defaulted) params."""
        return []

    def diff_facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        """Extra facts needed only for ``--diff`` (e.g. a file's old content); default none.

        The executor gathers these besides :meth:`facts` when the user asked for diffs
        (``PlanContext.diff``); :meth:`plan` must work without them (no diff of old content).
        """
        return []

    def more_facts(self, params: Mapping[str, Any],
                   facts: Mapping[FactQuery, Any]) -> list[FactQuery]:
        """Facts needed only in view of the first ones (:meth:`facts`); default none.

        E.g. ``apt`` asks for a package's candidate version only when the package is not
        installed. The executor gathers the ones it does not have in one more round trip just
        before :meth:`plan`, so a converged host never pays for them.
        """
        return []

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        """Compare desired state (``params``) with ``facts`` and return the changes needed."""
        raise NotImplementedError

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        """Seconds this task's changes may run on a host (a task's ``timeout:`` overrides it).

        Default :data:`DEFAULT_TIMEOUT`; modules with their own limit (e.g. a health timeout)
        return it plus a margin.
        """
        return DEFAULT_TIMEOUT


# ---- helpers shared by modules -------------------------------------------------------------

def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def mask(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``********``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
    return text
