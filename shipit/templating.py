"""Jinja2 rendering of task params and ``when`` conditions, strict about undefined variables.

A string that is exactly one expression (``"{{ workers }}"``) renders to the expression's
native value (an int stays an int, as in Ansible); any other string renders to text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.meta

_SINGLE_EXPR = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}).)*)\}\}$", re.S)


def make_environment() -> jinja2.Environment:
    """A Jinja2 environment with StrictUndefined (an undefined variable is an error)."""
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


class Templar:
    """Renders values against one host's variables.

    Raises (from every method): :class:`jinja2.TemplateError` (undefined variable, syntax).
    """

    def __init__(self, env: jinja2.Environment, variables: Mapping[str, Any]) -> None:
        self.env = env
        self.variables = dict(variables)

    def render(self, value: Any) -> Any:
        """Render strings inside ``value`` (recursively through dicts and lists)."""
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value:
                return value
            match = _SINGLE_EXPR.match(value.strip())
            if match and "{{" not in match.group("expr"):
                return self.evaluate(match.group("expr"))
            return self.env.from_string(value).render(self.variables)
        if isinstance(value, Mapping):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value

    def render_text(self, text: str) -> str:
        """Render a whole template text (e.g. a template file) to a string."""
        return self.env.from_string(text).render(self.variables)

    def evaluate(self, expression: str) -> Any:
        """Evaluate a bare Jinja2 expression (as in ``when:``) to its native value."""
        return self.env.compile_expression(expression.strip(), undefined_to_none=False)(**self.variables)

    def truth(self, expression: str | bool) -> bool:
        """A ``when`` condition's truth; booleans pass through."""
        if isinstance(expression, bool):
            return expression
        return bool(self.evaluate(expression))


def variables_in(env: jinja2.Environment, value: Any, expression: bool = False) -> set[str]:
    """Undeclared top-level variable names used by templates inside ``value``.

    ``expression=True`` treats strings as bare expressions (``when:``).

    Raises:
        jinja2.TemplateSyntaxError: a template does not parse.
    """
    names: set[str] = set()
    if isinstance(value, str):
        if expression:
            names |= jinja2.meta.find_undeclared_variables(env.parse("{{ " + value + " }}"))
        elif "{{" in value or "{%" in value:
            names |= jinja2.meta.find_undeclared_variables(env.parse(value))
    elif isinstance(value, Mapping):
        for v in value.values():
            names |= variables_in(env, v, expression)
    elif isinstance(value, list):
        for v in value:
            names |= variables_in(env, v, expression)
    return names
