"""The template module: rendering through ctx, plans, and a real run."""

from __future__ import annotations

from pathlib import Path

import jinja2

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext, sha256_hex
from shipit.modules.template import TemplateModule
from shipit.testing import run_local

M = TemplateModule()


def ctx(files: dict[str, bytes], variables: dict[str, object], **kw: object) -> PlanContext:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return PlanContext(host="web1", host_facts={}, read_local=lambda p: files[p],
                       local_path=lambda p: "templates/" + p,
                       render=lambda text: env.from_string(text).render(variables), **kw)


def test_fresh_and_converged() -> None:
    c = ctx({"templates/app.conf.j2": b"port={{ port }}\n"}, {"port": 8000})
    p = {"src": "app.conf.j2", "dest": "/etc/app.conf", "mode": "0644"}
    q = FactQuery("file", "/etc/app.conf")
    absent = {"exists": False, "type": None, "mode": None, "owner": None, "group": None,
              "size": 0, "sha256": None}
    assert M.plan(p, {q: absent}, c).changes[0].reason == "create /etc/app.conf"
    same = {"exists": True, "type": "file", "mode": "0644", "owner": "root", "group": "root",
            "size": 10, "sha256": sha256_hex(b"port=8000\n")}
    assert not M.plan(p, {q: same}, c).changed


def test_render_error_fails_without_leaking_secret() -> None:
    c = ctx({"templates/t.j2": b"{{ nope }}"}, {}, secrets=("nope",))
    plan = M.plan({"src": "t.j2", "dest": "/etc/t"}, {}, c)
    assert plan.failed and "UndefinedError" in plan.failed and "nope" not in plan.failed
    c = ctx({}, {})
    plan = M.plan({"src": "missing.j2", "dest": "/etc/t"}, {}, c)
    assert plan.failed and "missing.j2" in plan.failed


def test_real_run(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("name={{ name }}\n")
    env = jinja2.Environment(keep_trailing_newline=True)
    c = PlanContext(host="local", host_facts={}, diff=True,
                    local_path=lambda p: str(tmp_path / p),
                    render=lambda text: env.from_string(text).render(name="web1"))
    p = {"src": "t.j2", "dest": str(tmp_path / "out.conf"), "mode": "0640"}
    first = run_local(M, p, c)
    assert first.ok and (tmp_path / "out.conf").read_text() == "name=web1\n"
    assert first.plan.changes[0].diff.startswith("--- /dev/null\n")
    assert not run_local(M, p, c).plan.changed
