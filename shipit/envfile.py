"""Environment files as systemd reads them (``EnvironmentFile=``), for values of any bytes.

Each line is ``KEY="value"`` with ``\\``, ``"``, ``$`` and backquote escaped by a backslash and
newlines kept literally inside the quotes. systemd's parser (``load_env_file``) and POSIX sh
read that form alike, so a value with quotes, ``$``, backslashes, spaces or newlines reaches
the app exactly as written. What an environment variable cannot hold is refused: a NUL byte,
and text that is not valid UTF-8 (systemd drops such assignments).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPE = re.compile(r'([\\"$`])')


def check_value(value: str) -> str | None:
    """Why ``value`` cannot be an environment variable's value, or None when it can."""
    if "\0" in value:
        return "contains a NUL byte, which no environment variable can hold"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (systemd would drop it)"
    return None


def quote(value: str) -> str:
    """``value`` double-quoted for an env file (see the module docstring).

    Raises:
        ValueError: the value cannot be held (see :func:`check_value`).
    """
    problem = check_value(value)
    if problem:
        raise ValueError(problem)
    return '"' + _ESCAPE.sub(r"\\\1", value) + '"'


def render(values: Mapping[str, str], header: str = "managed by shipit") -> str:
    """An env file of ``values`` (insertion order), with a ``# header`` line.

    Raises:
        ValueError: a name is not ``[A-Za-z_][A-Za-z0-9_]*`` or a value cannot be held.
    """
    lines = [f"# {header}"]
    for key, value in values.items():
        if not NAME.fullmatch(key):
            raise ValueError(f"{key!r} is not a valid variable name")
        lines.append(f"{key}={quote(value)}")
    return "\n".join(lines) + "\n"
