"""No shell text from data (issue 15, reproductions 3 and 4): every app spec field that reaches a
script on a host, fuzzed with shell and Caddyfile metacharacters, is either refused by the
loader (exit 2, ``shipit.yml:LINE``, the key, before any connection) or reaches the generated
script as one literal word (asserted by parsing the generated text back).

Pure: the spec is loaded from a temp dir, scripts are built by the modules' plans.
"""

from __future__ import annotations

import copy
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipit import envfile
from shipit.app import health_path_problem, load_app_spec
from shipit.errors import ValidationError
from shipit.modules.base import PlanContext
from shipit.modules.release import ReleaseSwitchModule, site_content
from shipit.modules.release_command import ReleaseCommandModule
from shipit.quoting import q

PAYLOADS = [
    "x$(id>/tmp/p)", "x`id`", "x'y", 'x"y', "x\ny", "x}\n:80 {\n\trespond pwned\n}\n{", "x{y}",
    "x;id", "x&&id", "x|id", "x y", "x\\y", "$HOME", "x\r\ny", "x\x00y",
]
BASE: dict[str, Any] = {
    "name": "shop", "web": {"app": "shop.main:app", "port": 8000},
    "processes": [{"name": "worker", "command": "python -m shop.worker", "instances": 1}],
    "migrate": "alembic upgrade head", "health": {"path": "/health"},
    "domains": ["shop.example.com"], "tls": {"acme_email": "ops@example.com"},
    "env": {"MODE": "prod", "DATABASE_URL": "postgresql://shop:{{ secrets.DB_PASSWORD }}@db/shop"},
    "secrets": ["DB_PASSWORD"],
    "database": {"name": "shop", "user": "shop", "password_secret": "DB_PASSWORD"},
}
# where a payload goes: a path of keys/indices into BASE
REFUSED = {
    "name": ("name",), "web.app": ("web", "app"), "web.port": ("web", "port"),
    "processes[0].name": ("processes", 0, "name"),
    "domains[0]": ("domains", 0), "tls.acme_email": ("tls", "acme_email"),
    "database.name": ("database", "name"), "database.user": ("database", "user"),
    "database.password_secret": ("database", "password_secret"), "secrets[0]": ("secrets", 0),
}
CTX = PlanContext(host="web1", host_facts={})


def spec_with(tmp_path: Path, where: tuple[Any, ...], value: Any) -> Path:
    doc = copy.deepcopy(BASE)
    node: Any = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    (tmp_path / "shipit.yml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return tmp_path


def test_the_base_spec_is_valid(tmp_path: Path) -> None:
    spec = load_app_spec(spec_with(tmp_path, ("name",), "shop"))
    assert spec.domains == ("shop.example.com",)


@pytest.mark.parametrize("field", sorted(REFUSED))
@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_field_reaching_a_root_script_refuses_metacharacters(tmp_path: Path, field: str, payload: str) -> None:
    where = REFUSED[field]
    value = "shop" + payload
    with pytest.raises(ValidationError) as err:
        load_app_spec(spec_with(tmp_path, where, value))
    assert err.value.exit_code == 2
    mine = [p for p in err.value.problems if p.key.startswith(field.split("[")[0].split(".")[0])]
    assert mine, str(err.value)
    assert all(p.file.endswith("shipit.yml") and p.line > 0 for p in mine), str(err.value)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_health_path_is_refused_or_one_literal_word_of_the_root_script(tmp_path: Path, payload: str) -> None:
    # `&`, `(`, `)`, `*`, `!` are URL characters: allowed, and then quoted as data
    try:
        spec = load_app_spec(spec_with(tmp_path, ("health", "path"), "/health" + payload))
    except ValidationError as err:
        assert err.exit_code == 2 and [p.key for p in err.problems] == ["health.path"]
        assert err.problems[0].line > 0
        return
    from shipit.layout import Layout
    from shipit.modules.release import start_slot_script
    script = start_slot_script(Layout("shop"), "20261122T181633Z-a51196c9b409", 8000, spec.health_path, 30)
    # the slot is checked on its own unix socket (Layout.web_socket), the path one quoted word
    word = q("http://localhost" + spec.health_path)
    assert f"--max-time 5 --unix-socket /run/shop/web-8000/web.sock {word} 2>/dev/null" in script
    assert shlex.split(word) == ["http://localhost" + spec.health_path]


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if "\n" not in p and "\r" not in p and "\0" not in p],
                         ids=lambda p: repr(p))
def test_migrate_reaches_systemd_run_as_one_literal_word(tmp_path: Path, payload: str) -> None:
    cmd = "alembic upgrade head " + payload
    spec = load_app_spec(spec_with(tmp_path, ("migrate",), cmd))
    plan = ReleaseCommandModule().plan({"app": spec.name, "release": "20261122T181633Z-a51196c9b409",
                                        "cmd": spec.migrate, "timeout": 60, "label": "migrate"}, {}, CTX)
    # the script stops the unit around it (traps): the systemd-run line is the one to check
    line = next(ln for ln in plan.changes[0].script.splitlines() if ln.startswith("systemd-run "))
    assert shlex.split(line)[-5:] == ["/bin/sh", "-c", cmd, "</dev/null", "&"]


@pytest.mark.parametrize("payload", ["x\ny", "x\r\ny", "x\x00y"], ids=repr)
def test_a_multi_line_migrate_or_process_command_is_refused(tmp_path: Path, payload: str) -> None:
    for where in (("migrate",), ("processes", 0, "command")):
        with pytest.raises(ValidationError) as err:
            load_app_spec(spec_with(tmp_path, where, "python " + payload))
        assert err.value.exit_code == 2 and all(p.line > 0 for p in err.value.problems)


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if "\0" not in p and "\r" not in p], ids=repr)
def test_env_values_and_process_commands_reach_the_env_files_literally(tmp_path: Path, payload: str) -> None:
    # the env file and release.env are read by systemd and sh alike (shipit.envfile); check with sh
    text = envfile.render({"V": "a" + payload})
    env_path = tmp_path / "x.env"
    env_path.write_text(text)
    out = subprocess.run(["sh", "-c", 'set -a; . "$1"; printf %s "$V"', "sh", str(env_path)],
                         capture_output=True, text=True, check=True).stdout
    assert out == "a" + payload


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_the_caddy_site_is_never_built_from_an_unvalidated_domain(payload: str) -> None:
    with pytest.raises(ValueError):
        site_content(["shop.example.com" + payload], "unix//srv/shop/web.sock", True)
    with pytest.raises(ValueError):
        site_content(["shop.example.com"], "unix//srv/shop/web.sock" + payload, True)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_the_switch_module_refuses_what_the_loader_refuses(payload: str) -> None:
    m = ReleaseSwitchModule()
    base = {k: s.default for k, s in m.params.items()} | {
        "app": "shop", "release": "20261122T181633Z-a51196c9b409", "ports": [8000, 8001],
        "domains": ["shop.example.com"]}
    assert m.check_params(base) == []
    assert m.check_params(base | {"domains": ["shop.example.com" + payload]})
    assert bool(m.check_params(base | {"health_path": "/health" + payload})) == \
        (health_path_problem("/health" + payload) is not None)
    assert m.check_params(base | {"health_host": "shop.example.com" + payload})


def test_a_valid_site_is_what_caddy_expects() -> None:
    site = site_content(["shop.example.com", "*.shop.example.com"], "unix//srv/shop/web.sock", False, "ops@example.com")
    assert site.splitlines()[1] == "shop.example.com, *.shop.example.com {"
    assert site.count("{") == site.count("}") == 2
