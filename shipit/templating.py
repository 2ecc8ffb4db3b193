"""Jinja2 rendering of task params, ``when`` conditions and app env values, sandboxed and strict
about undefined variables.

A string that is exactly one expression (``"{{ workers }}"``) renders to the expression's
native value (an int stays an int, as in Ansible); any other string renders to text.

Trust model. A playbook's ``shell``/``command`` tasks are code: whoever writes the playbook
runs commands on the hosts, as in Ansible, and that is the point of them. Template expressions
are *not* code: they are data that picks values (``{{ hostvars[h].address }}``), and they come
from places that are edited casually (inventories, an app's ``shipit.yml``, ``-e`` values).
They are therefore rendered in Jinja2's sandbox, on the runner, and may not reach Python
internals: ``{{ cycler.__init__.__globals__.os.popen('id').read() }}`` is refused with a
:class:`jinja2.exceptions.SecurityError` instead of running ``id`` on the laptop or CI runner.

:func:`make_environment` uses :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` rather
than the plain ``SandboxedEnvironment``: the variables a template sees are shared (``groups``
and ``hostvars`` are the same objects for every host, rendered from several threads), so a
template must not be able to change them either (``{{ groups.web.append('x') }}`` or
``hostvars.update(...)`` would leak into every later render). Templates only read.

The environment also bounds work a template can ask for: ``range()`` is limited by the
sandbox (100 000 items), and ``*``, ``**`` and ``%`` refuse results that would be huge
(:data:`MAX_SEQUENCE`, :data:`MAX_POWER_BITS`, :data:`MAX_FORMAT_WIDTH`).

Errors. Every failure while rendering or evaluating (undefined variable, syntax, a sandbox
refusal, but also ``1 / 0`` or ``int('x')``) surfaces as a :class:`jinja2.TemplateError`:
foreign exceptions are wrapped in :class:`TemplateFailure`, which keeps the original type in
its message, so the executor's ``except jinja2.TemplateError`` turns them into a failed task
with the task's file:line rather than a traceback in the middle of a run.

:func:`template_problems` finds what can be known without any host: syntax errors, access to
``_private`` attributes, and a constant expression (no variables) that fails; the loaders
report those as :class:`shipit.errors.Problem` s with file:line before any connection.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.sandbox
from jinja2.exceptions import SecurityError

from shipit.quoting import q

_SINGLE_EXPR = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}).)*)\}\}$", re.S)

#: Longest string, list or tuple ``*`` may build (items or characters).
MAX_SEQUENCE = 1_000_000
#: Largest integer ``**`` may build, in bits.
MAX_POWER_BITS = 4096
#: Largest field width or precision a ``%`` format may ask for.
MAX_FORMAT_WIDTH = 10_000

_FORMAT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d+))?")


class TemplateFailure(jinja2.TemplateError):
    """Rendering or evaluating raised something that is not a Jinja2 error (``1 / 0``,
    ``int('x')``, a bounded operation refused). ``original`` is the exception type's name;
    the message reads ``ZeroDivisionError: division by zero``."""

    def __init__(self, original: BaseException) -> None:
        self.original = type(original).__name__
        super().__init__(f"{self.original}: {original}")


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The sandbox, plus bounds on ``*``, ``**`` and ``%`` (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        """Refuse an unsafe attribute at once (Jinja2 returns an Undefined whose later error,
        "StrictUndefined has no attribute ...", no longer says what was refused)."""
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe "
                            "(templates may read variables, not Python internals)")

    def call_binop(self, context: jinja2.runtime.Context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for seq, times in ((left, right), (right, left)):
                if (isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                        and len(seq) * times > MAX_SEQUENCE):
                    raise SecurityError(
                        f"refused: repeating a sequence {times} times gives more than {MAX_SEQUENCE} items")
            return operator.mul(left, right)
        if operator_name == "**":
            if (isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
                    and right * math.log2(abs(left)) > MAX_POWER_BITS):
                raise SecurityError(
                    f"refused: {left} ** {right} is larger than {MAX_POWER_BITS} bits")
            return operator.pow(left, right)
        if operator_name == "%" and isinstance(left, str):
            for width, precision in _FORMAT_WIDTH.findall(left):
                if int(width or 0) > MAX_FORMAT_WIDTH or int(precision or 0) > MAX_FORMAT_WIDTH:
                    raise SecurityError(
                        f"refused: a % format wider than {MAX_FORMAT_WIDTH} characters")
            return operator.mod(left, right)
        return super().call_binop(context, operator_name, left, right)


def make_environment() -> jinja2.Environment:
    """The sandboxed Jinja2 environment shipit renders with (see the module docstring):
    immutable sandbox, StrictUndefined (an undefined variable is an error), no autoescape,
    trailing newlines kept; the filter ``q`` shell-quotes a value (:func:`shipit.quoting.q`)
    for the playbooks' ``shell`` tasks: ``psql -v role={{ app.database.user | q }}``, and
    ``urlquote`` percent-encodes every byte but letters, digits and ``-._~`` (a password in a
    database URL: ``{{ secrets.DB_PASSWORD | urlquote }}``; Jinja's ``urlencode`` keeps ``/``)."""
    env = _Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["q"] = q
    env.filters["urlquote"] = urlquote
    return env


def urlquote(value: Any) -> str:
    """``value`` as one URL component (RFC 3986 unreserved characters kept, all else
    percent-encoded as UTF-8): ``"p/w@1"`` -> ``"p%2Fw%401"``."""
    return urllib.parse.quote(str(value), safe="")


def _guarded(call: Callable[[], Any]) -> Any:
    """Run ``call``; let TemplateErrors through and wrap anything else in TemplateFailure."""
    try:
        return call()
    except jinja2.TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a template is the template's
        raise TemplateFailure(exc) from exc


class Templar:
    """Renders values against one host's variables.

    Raises (from every method): :class:`jinja2.TemplateError`: an undefined variable, a syntax
    error, a sandbox refusal (:class:`jinja2.exceptions.SecurityError`), or
    :class:`TemplateFailure` wrapping any other exception raised while rendering.
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
            return _guarded(lambda: self.env.from_string(value).render(self.variables))
        if isinstance(value, Mapping):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value

    def render_text(self, text: str) -> str:
        """Render a whole template text (e.g. a template file) to a string."""
        rendered: str = _guarded(lambda: self.env.from_string(text).render(self.variables))
        return rendered

    def evaluate(self, expression: str) -> Any:
        """Evaluate a bare Jinja2 expression (as in ``when:``) to its native value."""
        return _guarded(lambda: self.env.compile_expression(expression.strip(), undefined_to_none=False)(
            **self.variables))

    def truth(self, expression: str | bool) -> bool:
        """A ``when`` condition's truth; booleans pass through."""
        if isinstance(expression, bool):
            return expression
        value = self.evaluate(expression)
        truth: bool = _guarded(lambda: bool(value))  # StrictUndefined raises on bool()
        return truth


def _parse(env: jinja2.Environment, value: str, expression: bool) -> jinja2.nodes.Template:
    return env.parse("{{ " + value + " }}" if expression else value)


@dataclass(frozen=True)
class _Analysis:
    """What a template's text shows without variables: a syntax error (message, line), or
    the ``_private`` names it reaches for and its undeclared variables."""

    syntax_error: tuple[str, int] | None
    unsafe: tuple[str, ...] = ()
    undeclared: frozenset[str] = frozenset()


def _analyse(env: jinja2.Environment, value: str, expression: bool) -> _Analysis:
    """Parse ``value`` once and read what :func:`variables_in` and :func:`template_problems`
    need. Memoized for environments of :func:`make_environment` (all configured alike): the
    same templates are checked again at every load of a playbook (a deploy loads its built-in
    playbooks twice, and a unit test run hundreds of times), and parsing is most of the cost."""
    if type(env) is _Sandbox:
        return _analyse_cached(value, expression)
    return _analyse_with(env, value, expression)


def _analyse_with(env: jinja2.Environment, value: str, expression: bool) -> _Analysis:
    try:
        tree = _parse(env, value, expression)
    except jinja2.TemplateSyntaxError as exc:
        return _Analysis((exc.message or str(exc), exc.lineno))
    return _Analysis(None, tuple(_unsafe_names(tree)), frozenset(jinja2.meta.find_undeclared_variables(tree)))


@functools.lru_cache(maxsize=4096)
def _analyse_cached(value: str, expression: bool) -> _Analysis:
    return _analyse_with(make_environment(), value, expression)


def variables_in(env: jinja2.Environment, value: Any, expression: bool = False) -> set[str]:
    """Undeclared top-level variable names used by templates inside ``value``.

    ``expression=True`` treats strings as bare expressions (``when:``).

    Raises:
        jinja2.TemplateSyntaxError: a template does not parse.
    """
    names: set[str] = set()
    if isinstance(value, str):
        if expression or "{{" in value or "{%" in value:
            found = _analyse(env, value, expression)
            if found.syntax_error is not None:
                raise jinja2.TemplateSyntaxError(*found.syntax_error)
            names |= found.undeclared
    elif isinstance(value, Mapping):
        for v in value.values():
            names |= variables_in(env, v, expression)
    elif isinstance(value, list):
        for v in value:
            names |= variables_in(env, v, expression)
    return names


def _unsafe_names(tree: jinja2.nodes.Node) -> list[str]:
    """``_private`` attribute or item names a template reaches for with a constant name
    (``x.__class__``, ``x['__globals__']``, ``x|attr('__init__')``)."""
    found: list[str] = []
    for node in tree.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem, jinja2.nodes.Filter)):
        name: Any = None
        if isinstance(node, jinja2.nodes.Getattr):
            name = node.attr
        elif isinstance(node, jinja2.nodes.Getitem) and isinstance(node.arg, jinja2.nodes.Const):
            name = node.arg.value
        elif (isinstance(node, jinja2.nodes.Filter) and node.name == "attr" and node.args
              and isinstance(node.args[0], jinja2.nodes.Const)):
            name = node.args[0].value
        if isinstance(name, str) and name.startswith("_"):
            found.append(name)
    return found


def template_problems(env: jinja2.Environment, value: Any, expression: bool = False) -> list[str]:
    """What is wrong with the templates inside ``value``, found without any variables:
    a syntax error, a constant ``_private`` attribute (the sandbox would refuse it at run
    time), or, for a bare expression that uses no variable at all, its evaluation failing
    (``when: "(1 / 0) > 0"``). Empty when nothing is wrong.

    ``expression=True`` treats strings as bare expressions (``when:``).
    """
    problems: list[str] = []
    if isinstance(value, Mapping):
        for v in value.values():
            problems += template_problems(env, v, expression)
        return problems
    if isinstance(value, list):
        for v in value:
            problems += template_problems(env, v, expression)
        return problems
    if not isinstance(value, str) or not (expression or "{{" in value or "{%" in value):
        return problems
    found = _analyse(env, value, expression)
    if found.syntax_error is not None:
        return [f"template syntax error: {found.syntax_error[0]}"]
    if found.unsafe:
        return [f"template refused: access to {', '.join(sorted(set(found.unsafe)))} is not allowed in "
                "templates (the sandbox only lets templates read variables, not Python internals)"]
    if expression and not found.undeclared:
        try:
            Templar(env, {}).truth(value)
        except jinja2.TemplateError as exc:
            problems.append(f"this condition always fails: {exc}")
    return problems
