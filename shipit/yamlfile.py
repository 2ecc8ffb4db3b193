"""YAML loading that remembers where every key and list item came from.

Mappings load as :class:`LineDict` and sequences as :class:`LineList`; both behave as plain
``dict``/``list`` and also carry the 1-based line of themselves and of each key or item, so
validation errors can say ``file:line: key: expected …``. Scalars load as usual (PyYAML's
safe loader: no arbitrary objects).

Aliases are bounded: PyYAML shares an anchored node between its aliases, so a "billion laughs"
document loads quickly but expands to gigabytes as soon as something walks it (rendering a
task's params copies every branch). The loader counts the nodes each alias stands for (memoized
per node, so the count itself stays cheap) and refuses a document whose aliases expand to more
than :data:`MAX_ALIAS_NODES` nodes. Nesting deeper than Python's recursion limit is refused too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shipit.errors import Problem, ValidationError

#: Nodes (scalars, sequences, mappings) all aliases of one YAML document may stand for, in total.
#: A hand-written inventory or playbook that reuses a block with ``<<: *defaults`` uses a few
#: hundred; a "billion laughs" needs 10**9.
MAX_ALIAS_NODES = 100_000


class LineDict(dict):  # type: ignore[type-arg]
    """A ``dict`` with ``line`` (where the mapping starts) and ``key_lines`` (key -> line)."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """Line of ``key``, or of the mapping itself when the key is absent."""
        line: int = getattr(self, "key_lines", {}).get(key, self.line)
        return line


class LineList(list):  # type: ignore[type-arg]
    """A ``list`` with ``line`` (where the sequence starts) and ``item_lines`` (index -> line)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if 0 <= index < len(lines) else self.line


class _LineLoader(yaml.SafeLoader):
    """SafeLoader building LineDict/LineList, refusing duplicate keys and alias bombs."""

    _alias_nodes = 0
    _sizes: dict[int, int]

    def compose_document(self) -> yaml.Node | None:
        self._alias_nodes = 0
        self._sizes = {}
        node: yaml.Node | None = super().compose_document()
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                self._alias_nodes += self._expanded_size(anchored)
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise yaml.composer.ComposerError(
                        None, None,
                        f"too many alias expansions: the aliases of this document stand for more "
                        f"than {MAX_ALIAS_NODES} nodes (a YAML alias bomb?); at alias *{event.anchor}",
                        event.start_mark)
        node: yaml.Node | None = super().compose_node(parent, index)
        return node

    def _expanded_size(self, node: yaml.Node) -> int:
        """Nodes ``node`` stands for once every alias inside it is expanded (memoized)."""
        sizes = self._sizes
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a node still being composed (a recursive alias) counts once here
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._expanded_size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._expanded_size(k) + self._expanded_size(v) for k, v in node.value)
        else:
            size = 1
        sizes[id(node)] = size
        return size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        self.flatten_mapping(node)
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in result.key_lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {result.key_lines[key]})",
                    key_node.start_mark,
                )
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)
_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence
)


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML ``text`` (named ``file`` in errors) into LineDict/LineList/scalars.

    Raises:
        ValidationError: the text is not valid YAML, a mapping repeats a key, its aliases
            expand beyond :data:`MAX_ALIAS_NODES` nodes, or it nests too deeply; the problem
            names the file and the 1-based line PyYAML reported.
    """
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}, {what}"
        if exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
            what += f" (the construct opened at line {exc.context_mark.line + 1})"
        raise ValidationError([Problem(file, line, "", f"invalid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ValidationError([Problem(file, 0, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ValidationError([Problem(file, 0, "", "invalid YAML: nested too deeply")]) from None


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; see :func:`load_yaml_text`.

    Raises:
        ValidationError: the file is missing, unreadable or invalid YAML.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError([Problem(str(p), 0, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem(str(p), 0, "", f"cannot read: {exc}")]) from None
    return load_yaml_text(text, str(p))


def line_of(container: Any, key: Any) -> int:
    """Line of ``key`` in a LineDict/LineList, or 0 when not known."""
    if isinstance(container, (LineDict, LineList)):
        return container.line_of(key)
    return 0


def type_name(value: Any) -> str:
    """The YAML word for ``value``'s type, for error messages: mapping, list, string, …"""
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return {"str": "string", "int": "integer", "float": "number"}.get(type(value).__name__, type(value).__name__)
