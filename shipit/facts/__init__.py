"""Facts: what a host is, as a shell command and a pure parser of its output.

Each fact kind (:class:`FactKind`) has a POSIX-sh ``command(arg)`` that prints something and
always exits 0, and a pure ``parse(stdout)`` turning that output into data; parsers are
unit-tested against recorded output (``tests/unit/recorded/``). The executor asks every task of
a play for its :class:`FactQuery` list, builds ONE script with :func:`build_gather_script`,
runs it in one remote invocation per host, and splits the answer with
:func:`split_gather_output` (pyinfra's facts are likewise a command plus a ``process``).

Kinds that can read several args in one process (``stat`` of many paths, ``dpkg-query`` of many
packages) also have a ``batch`` command and a ``split`` that cuts its output back into what
``command`` prints for each arg, so one parser reads both: a no-op play then costs the host a
handful of processes, not a few per task.
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
    Built-in facts are asked for through their typed constructors (``files.file(path)``,
    ``packages.deb(name)``, ``systemd.unit(name)``…, each in the module defining the kind),
    which call :meth:`FactKind.query`; nothing else spells a kind's name.
    """

    kind: str
    arg: str = ""


@dataclass(frozen=True)
class FactKind:
    """A kind of fact: ``command(arg)`` prints it (exit 0 always), ``parse(stdout)`` reads it.

    Optional batching: ``batch(args)`` prints the facts of several args at once (exit 0
    always), and ``split(stdout, args)`` returns one text per arg, each as ``command(arg)``
    would have printed it. Both or neither are set.
    """

    name: str
    command: Callable[[str], str]
    parse: Callable[[str], Any]
    doc: str = ""
    batch: Callable[[Sequence[str]], str] | None = None
    split: Callable[[str, Sequence[str]], list[str]] | None = None

    def query(self, arg: str = "") -> FactQuery:
        """The :class:`FactQuery` asking this kind for ``arg`` (what typed constructors return;
        a plugin's kind is asked for the same way)."""
        return FactQuery(self.name, arg)


def _batchable(arg: str) -> bool:
    """Args a batch command may take: batch outputs are line-based, so no newline/backslash."""
    return "\n" not in arg and "\\" not in arg


def _sections(queries: Sequence[FactQuery],
              kinds: Mapping[str, FactKind]) -> list[tuple[str, FactKind, list[int]]]:
    """The script's sections: ``(marker id, kind, indexes of the queries it answers)``.

    Queries of a batchable kind with batchable args share one ``batch:<first index>`` section
    (when there are at least two); every other query gets its own ``fact:<index>`` section.
    Raises KeyError for an unknown kind.
    """
    groups: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        kind = kinds[query.kind]
        if kind.batch is not None and _batchable(query.arg):
            groups.setdefault(query.kind, []).append(i)
    batched = {i for idx in groups.values() if len(idx) > 1 for i in idx}
    sections: list[tuple[str, FactKind, list[int]]] = []
    for i, query in enumerate(queries):
        if i not in batched:
            sections.append((f"fact:{i}", kinds[query.kind], [i]))
        elif groups[query.kind][0] == i:
            sections.append((f"batch:{i}", kinds[query.kind], groups[query.kind]))
    return sections


HostFacts = Mapping[str, Any]
"""Facts every host has, as parsed by the ``host`` kind (see :mod:`shipit.facts.host`)."""


def build_gather_script(queries: Sequence[FactQuery], kinds: Mapping[str, FactKind],
                        nonce: str) -> str:
    """One sh script printing every query's output between marker lines.

    Output shape: for query number i (of ``unique(queries)``), a line
    ``@@shipit:<nonce>:fact:<i>`` followed by the kind's output; for queries answered by one
    batch command, a line ``@@shipit:<nonce>:batch:<i>`` (i: the first of them) followed by the
    batch's output. ``nonce`` (random per run) keeps file contents from forging markers.

    Raises:
        KeyError: a query names an unknown kind (a bug: playbooks are validated before).
    """
    queries = unique(queries)
    parts = []
    for marker, kind, indexes in _sections(queries, kinds):
        if len(indexes) == 1 and marker.startswith("fact:"):
            snippet = kind.command(queries[indexes[0]].arg)
        else:
            snippet = kind.batch([queries[i].arg for i in indexes])  # type: ignore[misc]
        parts.append(f"echo '@@shipit:{nonce}:{marker}'\n{{\n{snippet}\n}} 2>/dev/null || true")
    return "\n".join(parts) + "\n"


def split_gather_output(stdout: str, queries: Sequence[FactQuery],
                        kinds: Mapping[str, FactKind], nonce: str) -> dict[FactQuery, Any]:
    """Parse the output of :func:`build_gather_script` back into ``{query: value}``.

    Raises:
        ValueError: a query's section is missing (the script was cut short).
    """
    queries = unique(queries)
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    prefix = f"@@shipit:{nonce}:"
    for line in stdout.splitlines():
        if line.startswith(prefix):
            current = found.setdefault(line[len(prefix):], [])
        elif current is not None:
            current.append(line)
    result: dict[FactQuery, Any] = {}
    for marker, kind, indexes in _sections(queries, kinds):
        if marker not in found:
            first = queries[indexes[0]]
            raise ValueError(f"fact output for {first.kind}({first.arg}) is missing")
        text = "\n".join(found[marker]) + ("\n" if found[marker] else "")
        if marker.startswith("fact:"):
            texts = [text]
        else:
            texts = kind.split(text, [queries[i].arg for i in indexes])  # type: ignore[misc]
        for i, one in zip(indexes, texts, strict=True):
            result[queries[i]] = kind.parse(one)
    return result


def unique(queries: Iterable[FactQuery]) -> list[FactQuery]:
    """Queries without repeats, in first-seen order."""
    return list(dict.fromkeys(queries))
