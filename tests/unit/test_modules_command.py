"""command and shell: guards, quoting, secrets, and real runs."""

from __future__ import annotations

from pathlib import Path

from shipit.facts import FactQuery
from shipit.modules.base import PlanContext
from shipit.modules.command import CommandModule, ShellModule
from shipit.testing import run_local

CTX = PlanContext(host="web1", host_facts={}, secrets=("tok3n",))
C, S = CommandModule(), ShellModule()


def test_unguarded_always_changes_and_quotes() -> None:
    plan = C.plan({"cmd": "echo 'a b' $HOME"}, {}, CTX)
    assert plan.changes[0].reason == "run: echo 'a b' $HOME"
    assert plan.changes[0].script == "echo 'a b' '$HOME' </dev/null"
    plan = S.plan({"cmd": "echo $HOME | wc -c"}, {}, CTX)
    assert plan.changes[0].script == "sh -c 'echo $HOME | wc -c' </dev/null"


def test_creates_removes_unless() -> None:
    p = {"cmd": "make", "creates": "/srv/x", "removes": "/srv/y"}
    assert C.facts(p) == [FactQuery("path_exists", "/srv/x"), FactQuery("path_exists", "/srv/y")]
    f = {FactQuery("path_exists", "/srv/x"): True, FactQuery("path_exists", "/srv/y"): True}
    assert C.plan(p, f, CTX).skipped == "/srv/x exists"
    f[FactQuery("path_exists", "/srv/x")] = False
    assert C.plan(p, f, CTX).changed
    f[FactQuery("path_exists", "/srv/y")] = False
    assert C.plan(p, f, CTX).skipped == "/srv/y does not exist"
    p = {"cmd": "migrate", "unless": "test -f done", "chdir": "/srv/app", "become_user": "app"}
    (query,) = C.facts(p)
    assert query.kind == "check"
    assert query.arg == "cd -- /srv/app\nrunuser -u app -- sh -c 'test -f done'"
    assert C.plan(p, {query: 0}, CTX).skipped == "unless: test -f done succeeded"
    assert C.plan(p, {query: 1}, CTX).changes[0].reason == "run as app: migrate"


def test_secrets_masked_and_env_not_in_argv() -> None:
    p = {"cmd": "curl -H 'X: tok3n' http://x", "env": {"TOKEN": "tok3n"}}
    change = C.plan(p, {}, CTX).changes[0]
    assert "tok3n" not in change.reason
    assert change.script.startswith("export TOKEN=tok3n\n")
    assert C.check_params({"cmd": "echo 'unbalanced"})[0][0] == "cmd"
    assert C.check_params({"cmd": "x", "env": {"BAD-NAME": "1"}})[0][0] == "env"


def test_real_run_as_this_user(tmp_path: Path) -> None:
    """creates, chdir, env and unless on this machine, as whoever runs the tests (the
    become_user case needs root: tests/e2e/test_modules_as_root.py)."""
    marker = tmp_path / "done"
    p = {"cmd": f"sh -c 'echo \"$GREETING\" > {marker}; pwd >> {marker}'",
         "creates": str(marker), "chdir": str(tmp_path), "env": {"GREETING": "it's $fine"}}
    first = run_local(C, p, CTX)
    assert first.ok and first.plan.changed, first.results
    assert marker.read_text() == f"it's $fine\n{tmp_path}\n"
    assert run_local(C, p, CTX).plan.skipped
    s = {"cmd": f"echo x >> {tmp_path}/log", "unless": f"grep -q x {tmp_path}/log"}
    assert run_local(S, s, CTX).ok
    assert run_local(S, s, CTX).plan.skipped
