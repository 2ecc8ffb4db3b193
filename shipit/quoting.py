"""Quoting for the shell scripts shipit runs on hosts: one helper for every value.

Every value that reaches a remote script (a path, a name, a release id, a command line given
as data) goes through :func:`q`; nothing is pasted into shell text unquoted.
"""

from __future__ import annotations

import shlex


def q(value: str | int) -> str:
    """Shell-quote one word for POSIX sh (``shlex.quote``); ints are quoted as their digits."""
    return shlex.quote(str(value))

