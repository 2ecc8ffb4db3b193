"""User-facing errors.

Every error a user can cause (bad YAML, unknown module, unreachable host, a refused host key)
is a :class:`ShipitError`: the CLI prints its message as one clear paragraph and exits with
its ``exit_code``; no traceback. Anything else escaping to the CLI is a bug in shipit.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class ShipitError(Exception):
    """An error the user can act on. ``exit_code`` is what the CLI exits with (default 1)."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Problem:
    """One validation problem: where (file, 1-based line), which key, what was expected.

    ``line`` is 0 when the location is unknown (e.g. a value from the command line).
    """

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``word`` (difflib, as git and
    click suggest), or "" when none is close. For unknown-key problems."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class ValidationError(ShipitError):
    """Input (inventory, playbook, app spec, CLI values) failed validation before any connection.

    Carries every problem found, not only the first; exits 2 like a usage error.
    """

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PrerequisiteError(ShipitError):
    """Something on the runner is missing (a command, root, Linux); the message says what to install."""

    exit_code = 3
