"""Template expressions run in Jinja2's immutable sandbox: escapes to Python internals in a
``when``, a task param or an app ``env:`` value are refused (statically at load with
file:line where the name is a constant, by the sandbox at run time otherwise), and the marker
file the payload would create never appears on the runner. Any other exception raised while
rendering becomes a TemplateError, so a task fails instead of the run tracebacking."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest

from shipit.app import AppSpec, load_app_spec
from shipit.deploy import Target, render_env_file
from shipit.errors import ValidationError
from shipit.executor import Executor, RunOptions
from shipit.facts import FactQuery
from shipit.facts.registry import fact_kinds
from shipit.inventory import load_inventory
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q
from shipit.playbook import load_playbook
from shipit.pool import TransportPool
from shipit.templating import Templar, TemplateFailure, make_environment, template_problems
from shipit.testing import LocalShellTransport


def payloads(marker: Path) -> list[str]:
    """Classic SSTI escapes, each of which would create ``marker`` if it ran."""
    cmd = f"touch {marker}"
    return [
        f"cycler.__init__.__globals__.os.popen('{cmd}').read()",
        f"joiner.__init__.__globals__['os'].popen('{cmd}').read()",
        f"namespace.__init__.__globals__.os.popen('{cmd}').read()",
        f"lipsum.__globals__['os'].popen('{cmd}').read()",
        f"lipsum.__globals__.__builtins__.__import__('os').system('{cmd}')",
        f"self.__init__.__globals__.__builtins__.__import__('os').system('{cmd}')",
        f"''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__['os'].system('{cmd}')",
        f"(cycler|attr('__init__')|attr('__globals__'))['os'].popen('{cmd}').read()",
        f"range.__self__.__import__('os').system('{cmd}')",
    ]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def test_escapes_are_refused_by_the_sandbox_at_render_time(marker: Path) -> None:
    templar = Templar(make_environment(), {"x": 1})
    for payload in payloads(marker):
        for render in (lambda p=payload: templar.evaluate(p), lambda p=payload: templar.truth(p),
                       lambda p=payload: templar.render("{{ " + p + " }}"),
                       lambda p=payload: templar.render_text("a {{ " + p + " }} b")):
            with pytest.raises(jinja2.TemplateError):
                render()
    assert not marker.exists()


def test_escapes_are_found_statically(marker: Path) -> None:
    env = make_environment()
    for payload in payloads(marker):
        if payload.startswith("range."):
            continue  # __self__ is a constant name too, but shown here for the run-time refusal only
        assert template_problems(env, payload, expression=True), payload
        assert template_problems(env, "{{ " + payload + " }}"), payload
    assert template_problems(env, "x == 1", expression=True) == []


def test_dynamic_names_are_refused_at_run_time(marker: Path) -> None:
    env = make_environment()
    expr = f"(cycler|attr(a)|attr(b))['os'].popen('touch {marker}').read()"
    assert template_problems(env, expr, expression=True) == []  # nothing constant to see
    with pytest.raises(jinja2.exceptions.SecurityError, match="attribute '__init__' of 'type' object is unsafe"):
        Templar(env, {"a": "__init__", "b": "__globals__"}).evaluate(expr)
    assert not marker.exists()


def test_work_is_bounded_and_shared_variables_are_immutable() -> None:
    groups = {"web": ["web1"]}
    templar = Templar(make_environment(), {"groups": groups, "hostvars": {"web1": {}}})
    for expr in ("range(10**10) | list", "'a' * 10**9", "[0] * 10**8", "2 ** 100000", "'%0999999999d' % 1",
                 "groups.web.append('x')", "hostvars.update({'a': 1})", "groups.web.pop()"):
        with pytest.raises(jinja2.TemplateError):
            templar.evaluate(expr)
    assert groups == {"web": ["web1"]}
    assert templar.render("{{ groups.web | length }}") == 1  # native values still
    assert templar.render("{{ 2 ** 10 }}") == 1024 and templar.render("{{ 'ab' * 3 }}") == "ababab"


def test_any_exception_while_rendering_is_a_template_error() -> None:
    templar = Templar(make_environment(), {"n": 0, "s": "x"})
    for expr, kind in (("(1 / n) > 0", "ZeroDivisionError"), ("range(1, 2, 0) | list", "ValueError"),
                       ("s.nope()", "UndefinedError")):
        with pytest.raises(jinja2.TemplateError) as info:
            templar.truth(expr)
        assert kind in f"{type(info.value).__name__}: {info.value}"
    with pytest.raises(TemplateFailure, match="ZeroDivisionError: integer division") as failure:
        templar.render("x{{ 1 // n }}")
    assert failure.value.original == "ZeroDivisionError"


# -- in a playbook: statically at load, then at run time through the executor -------------

class Touch(Module):
    """Creates ``path`` when absent."""

    name = "touch"
    params = {"path": Param(str, required=True)}

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [FactQuery("exists", params["path"])]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        if facts[FactQuery("exists", params["path"])]:
            return Plan()
        return Plan(changes=(Change(f"create {params['path']}", f"touch {q(params['path'])}"),))


MODULES: dict[str, Module] = {"touch": Touch()}


def kinds() -> dict[str, Any]:
    from shipit.facts import FactKind

    return {**fact_kinds(), "exists": FactKind("exists", lambda p: f"test -e {q(p)} && echo yes || echo no",
                                               lambda out: out.strip() == "yes")}


def write_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inv.yml"
    path.write_text(f"hosts: {{h1: {{}}}}\nvars: {{dir: {tmp_path}, a: __init__, b: __globals__, n: 0}}\n")
    return path


@pytest.mark.parametrize("where", ["when", "param"])
def test_constant_escapes_in_a_playbook_are_problems_at_their_line(where: str, tmp_path: Path, marker: Path) -> None:
    inv = load_inventory(write_inventory(tmp_path))
    for payload in payloads(marker):
        if payload.startswith("range."):
            continue
        quoted = payload.replace('"', '\\"')
        task = (f'      touch: {{path: "{{{{ dir }}}}/ok"}}\n      when: "{quoted}"\n' if where == "when"
                else f'      touch: {{path: "{{{{ {quoted} }}}}"}}\n')
        book = tmp_path / "book.yml"
        book.write_text(f"- hosts: all\n  tasks:\n    - name: t\n{task}")
        with pytest.raises(ValidationError) as info:
            load_playbook(book, MODULES, inv)
        problem = info.value.problems[0]
        assert (problem.file, problem.line) == (str(book), 5 if where == "when" else 4), payload
        assert problem.key == ("when" if where == "when" else "touch.path")
        assert "not allowed" in problem.message
    assert not marker.exists()


def run_book(tmp_path: Path, text: str) -> Any:
    inv = load_inventory(write_inventory(tmp_path))
    book_path = tmp_path / "book.yml"
    book_path.write_text(text)
    book = load_playbook(book_path, MODULES, inv)
    pool = TransportPool(lambda host: LocalShellTransport(host))
    return Executor(inv, pool, MODULES, kinds(), options=RunOptions()).run_playbook(book)


@pytest.mark.parametrize("where", ["when", "param"])
def test_run_time_escape_fails_the_task_with_its_line(where: str, tmp_path: Path, marker: Path) -> None:
    escape = f"(cycler|attr(a)|attr(b))['os'].popen('touch {marker}').read()"
    task = (f'      touch: {{path: "{{{{ dir }}}}/second"}}\n      when: "{escape}"\n' if where == "when"
            else f'      touch: {{path: "{{{{ {escape} }}}}"}}\n')
    result = run_book(tmp_path, f"""\
- hosts: all
  tasks:
    - name: first
      touch: {{path: "{{{{ dir }}}}/first"}}
- hosts: all
  tasks:
    - name: escape
{task}""")
    assert not marker.exists() and not (tmp_path / "second").exists()
    assert (tmp_path / "first").exists()  # the earlier play ran; the escape failed its task only
    failed = [t for t in result.tasks if t.status == "failed"]
    assert len(failed) == 1 and "book.yml:7:" in failed[0].message
    assert "attribute '__init__' of 'type' object is unsafe" in failed[0].message


def test_a_when_that_raises_fails_the_task_instead_of_the_run(tmp_path: Path) -> None:
    result = run_book(tmp_path, """\
- hosts: all
  tasks:
    - name: changes the host
      touch: {path: "{{ dir }}/changed"}
- hosts: all
  tasks:
    - name: divides by zero
      touch: {path: "{{ dir }}/never"}
      when: "(1 / n) > 0"
""")
    assert (tmp_path / "changed").exists() and not (tmp_path / "never").exists()
    failed = [t for t in result.tasks if t.status == "failed"]
    assert len(failed) == 1 and "book.yml:7:" in failed[0].message and "ZeroDivisionError" in failed[0].message


# -- in the app's env: values ----------------------------------------------------------------

def test_env_value_escape_is_refused_at_load(tmp_path: Path, marker: Path) -> None:
    for payload in payloads(marker):
        if payload.startswith("range."):
            continue
        (tmp_path / "shipit.yml").write_text("name: a\nweb: {app: a:app}\ndomains: [a.test]\nenv:\n"
                                             f"  X: \"{{{{ {payload} }}}}\"\n")
        with pytest.raises(ValidationError) as info:
            load_app_spec(tmp_path)
        assert [(p.line, p.key) for p in info.value.problems] == [(5, "env.X")], payload
    assert not marker.exists()


def test_env_value_escape_is_refused_when_rendering(tmp_path: Path, marker: Path) -> None:
    (tmp_path / "inv.yml").write_text("hosts: {web1: {address: 10.0.0.1}}\ngroups: {web: {hosts: [web1]}}\n")
    inv = load_inventory(tmp_path / "inv.yml")
    spec = AppSpec(name="a", source=str(tmp_path), app_ref="a:app", domains=("a.test",), secrets=("A", "B"),
                   env={"X": f"{{{{ (cycler|attr(secrets.A)|attr(secrets.B))['os'].popen('touch {marker}').read() }}}}"})
    target = Target("prod", inv, spec, {"A": "__init__", "B": "__globals__"}, ("web1",), "web1")
    with pytest.raises(ValidationError, match="env.X: cannot render"):
        render_env_file(target)
    assert not marker.exists()


def test_template_analysis_is_memoized_and_says_the_same_every_time() -> None:
    """Loading a playbook parses each template once per process (the deploy loads its
    playbooks twice); a cached answer is the uncached one, errors included."""
    from shipit.templating import _analyse_cached, variables_in

    env = make_environment()
    plain = jinja2.Environment()  # not shipit's sandbox: never cached
    text = "{{ app.paths.root }}/{{ item | default('x') }}{{ x.__class__ }}"
    hits = _analyse_cached.cache_info().hits
    for e in (env, env, make_environment(), plain):
        assert variables_in(e, text) == {"app", "item", "x"}
        assert template_problems(e, text) == [
            "template refused: access to __class__ is not allowed in templates (the sandbox only "
            "lets templates read variables, not Python internals)"]
        with pytest.raises(jinja2.TemplateSyntaxError):
            variables_in(e, "{{ broken")
        assert template_problems(e, "x > ", expression=True)[0].startswith("template syntax error:")
        assert template_problems(e, "(1 / 0) > 0", expression=True)[0].startswith("this condition always fails")
    assert _analyse_cached.cache_info().hits > hits


def test_q_filter_shell_quotes_for_playbook_shell_tasks() -> None:
    from shipit.templating import Templar, make_environment

    t = Templar(make_environment(), {"v": "x$(id)'`;"})
    assert t.render("psql -v role={{ v | q }}") == "psql -v role='x$(id)'\"'\"'`;'"
