"""Facts: what a host is, as a shell command and a pure parser of its output.

Each fact kind (:class:`FactKind`) has a POSIX-sh ``command(arg)`` that prints something and
always exits 0, and a pure ``parse(stdout)`` turning that output into data; parsers are
unit-tested against recorded output (``tests/unit/recorded/``). The executor asks every task of
a play for its :class:`FactQuery` list, builds ONE script with :func:`build_gather_script`,
runs it in one remote invocation per host, and splits the answer with
:func:`split_gather_output` (pyinfra's facts are likewise a command plus a ``process``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class FactQuery:
    """One fact to read on a host: its ``kind`` (a key of the registry) and an ``arg``.

    ``arg`` is a plain string (a path, a package name, a unit name, a shell command); kinds
    needing structured arguments encode them canonically (e.g. JSON with sorted keys).
    """

    kind: str
    arg: str = ""


@dataclass(frozen=True)
class FactKind:
    """A kind of fact: ``command(arg)`` prints it (exit 0 always), ``parse(stdout)`` reads it."""

    name: str
    command: Callable[[str], str]
    parse: Callable[[str], Any]
    doc: str = ""


HostFacts = Mapping[str, Any]
"""Facts every host has, as parsed by the ``host`` kind (see :mod:`shipit.facts.host`)."""


def build_gather_script(queries: Sequence[FactQuery], kinds: Mapping[str, FactKind],
                        nonce: str) -> str:
    """One sh script printing every query's output between marker lines.

    Output shape: for query number i, a line ``@@shipit:<nonce>:fact:<i>`` followed by the
    kind's output. ``nonce`` (random per run) keeps file contents from forging markers.

    Raises:
        KeyError: a query names an unknown kind (a bug: playbooks are validated before).
    """
    parts = []
    for i, query in enumerate(queries):
        snippet = kinds[query.kind].command(query.arg)
        parts.append(f"echo '@@shipit:{nonce}:fact:{i}'\n{{\n{snippet}\n}} 2>/dev/null || true")
    return "\n".join(parts) + "\n"


def split_gather_output(stdout: str, queries: Sequence[FactQuery],
                        kinds: Mapping[str, FactKind], nonce: str) -> dict[FactQuery, Any]:
    """Parse the output of :func:`build_gather_script` back into ``{query: value}``.

    Raises:
        ValueError: a query's section is missing (the script was cut short).
    """
    sections: dict[int, list[str]] = {}
    current: list[str] | None = None
    prefix = f"@@shipit:{nonce}:fact:"
    for line in stdout.splitlines():
        if line.startswith(prefix):
            current = sections.setdefault(int(line[len(prefix):]), [])
        elif current is not None:
            current.append(line)
    result: dict[FactQuery, Any] = {}
    for i, query in enumerate(queries):
        if i not in sections:
            raise ValueError(f"fact output for {query.kind}({query.arg}) is missing")
        text = "\n".join(sections[i])
        result[query] = kinds[query.kind].parse(text + ("\n" if text else ""))
    return result


def unique(queries: Iterable[FactQuery]) -> list[FactQuery]:
    """Queries without repeats, in first-seen order."""
    return list(dict.fromkeys(queries))
