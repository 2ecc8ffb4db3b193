"""App spec loading, secrets, env file rendering and worker sizing (pure parts of the deploy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.app import load_app_spec, load_secrets, parse_serial, parse_size
from shipit.deploy import Target, render_env_file, size_workers
from shipit.errors import ValidationError
from shipit.inventory import load_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "app"
GiB = 2**30


def test_example_spec_loads() -> None:
    spec = load_app_spec(EXAMPLE)
    assert (spec.name, spec.app_ref, spec.workers, spec.port) == ("example", "example_app.main:app", 2, 8000)
    assert spec.memory_per_worker == 120 * 2**20
    assert [p.name for p in spec.processes] == ["heartbeat"]
    assert spec.root == "/srv/example" and spec.tls_internal and spec.secrets == ("DB_PASSWORD",)


def test_inventory_overrides_and_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "shipit.yml").write_text("name: shop\nweb: {app: shop.main:app, workers: 3}\ndomains: [shop.test]\n")
    spec = load_app_spec(tmp_path, {"domains": ["shop.example.com"], "tls": {"acme_email": "ops@example.com"}}, "inv.yml")
    assert spec.domains == ("shop.example.com",) and spec.acme_email == "ops@example.com" and not spec.tls_internal
    (tmp_path / "shipit.yml").write_text("name: Shop!\nweb:\n  app: nope\n  workers: lots\nkeep_releases: 1\nsurprise: 1\n")
    with pytest.raises(ValidationError) as info:
        load_app_spec(tmp_path)
    text = str(info.value)
    for expected in ("shipit.yml:1: name:", "shipit.yml:3: web.app:", "shipit.yml:4: web.workers:",
                     "shipit.yml:5: keep_releases:", "shipit.yml:6: surprise: unknown app key"):
        assert expected in text


def test_sizes() -> None:
    assert parse_size("512M") == 512 * 2**20 and parse_size("1.5GiB") == int(1.5 * GiB) and parse_size(42) == 42
    with pytest.raises(ValueError):
        parse_size("lots")


def test_secrets_from_environment_then_file(tmp_path: Path) -> None:
    (tmp_path / "shipit.yml").write_text(f"name: a\nweb: {{app: a:app}}\ndomains: [a.test]\nsecrets: [A, B]\n"
                                         "env: {A: '{{ secrets.A }}', B: '{{ secrets[\"B\"] }}'}\n"
                                         f"secrets_file: {tmp_path}/{{env}}.env\n")
    (tmp_path / "prod.env").write_text("# comment\nB='from-file'\n")
    spec = load_app_spec(tmp_path)
    assert load_secrets(spec, "prod", {"A": "from-env"}) == {"A": "from-env", "B": "from-file"}
    with pytest.raises(ValidationError, match="set the environment variable A or add A="):
        load_secrets(spec, "prod", {})


def test_env_file_renders_secrets_and_hosts_in_systemd_quoting(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("hosts: {web1: {address: 10.0.0.1}, db1: {address: 10.0.0.9}}\n"
                                      "groups: {web: {hosts: [web1]}, db: {hosts: [db1]}}\n")
    (tmp_path / "shipit.yml").write_text("name: a\nweb: {app: a:app}\ndomains: [a.test]\nsecrets: [PW]\nenv:\n"
                                         "  URL: \"pg://u:{{ secrets.PW }}@{{ hostvars[groups.db[0]].address }}/a\"\n")
    inv = load_inventory(tmp_path / "inv.yml")
    target = Target("prod", inv, load_app_spec(tmp_path), {"PW": "s3cret"}, ("web1",), "web1")
    assert 'URL="pg://u:s3cret@10.0.0.9/a"' in render_env_file(target)
    odd = Target("prod", inv, load_app_spec(tmp_path), {"PW": "it's \"$x\" `y` \\z\nnext"}, ("web1",), "web1")
    assert 'URL="pg://u:it\'s \\"\\$x\\" \\`y\\` \\\\z\nnext@10.0.0.9/a"' in render_env_file(odd)
    bad = Target("prod", inv, load_app_spec(tmp_path), {"PW": "nul\0byte"}, ("web1",), "web1")
    with pytest.raises(ValidationError, match="env.URL: the value contains a NUL byte"):
        render_env_file(bad)


def test_workers_sized_against_memory(tmp_path: Path) -> None:
    (tmp_path / "shipit.yml").write_text("name: a\ndomains: [a.test]\nweb: {app: a:app, workers: auto, memory_per_worker: 512M}\n"
                                         "memory_budget: 50%\n")
    spec = load_app_spec(tmp_path)
    facts = {"web1": {"mem_total": 8 * GiB, "cpus": 4}, "web2": {"mem_total": 2 * GiB, "cpus": 4}}
    # 50% of 2 GiB = 1 GiB for both slots (they run at once during a switch) -> one 512 MiB
    # worker per slot on the smallest host; all hosts get the same
    assert size_workers(spec, facts) == 1
    assert size_workers(spec, {"big": {"mem_total": 64 * GiB, "cpus": 2}}) == 5  # capped at 2 x CPUs + 1
    (tmp_path / "shipit.yml").write_text("name: a\ndomains: [a.test]\nweb: {app: a:app, workers: 8, memory_per_worker: 512M}\n"
                                         "memory_budget: 2G\n")
    with pytest.raises(ValidationError) as info:
        size_workers(load_app_spec(tmp_path), facts)
    assert "2 slots x 8 workers x 512 MiB = 8192 MiB exceeds the memory budget of 2048 MiB" in str(info.value)


def test_a_host_var_sets_that_hosts_budget(tmp_path: Path) -> None:
    (tmp_path / "shipit.yml").write_text("name: a\ndomains: [a.test]\nweb: {app: a:app, workers: 2, memory_per_worker: 100M}\n")
    facts = {"web1": {"mem_total": 8 * GiB, "cpus": 2}, "web2": {"mem_total": 8 * GiB, "cpus": 2}}
    spec = load_app_spec(tmp_path)
    assert size_workers(spec, facts) == 2
    with pytest.raises(ValidationError) as info:
        size_workers(spec, facts, {"web2": "350M"})
    assert ("web2: 2 slots x 2 workers x 100 MiB = 400 MiB exceeds the memory budget of 350 MiB "
            "(350M of 8192 MiB; both web slots run during a switch)") in str(info.value)
    assert "web1" not in str(info.value)


def test_per_worker_memory_measured_from_the_running_release(tmp_path: Path) -> None:
    from shipit.deploy import measured_worker_memory
    from shipit.facts.status import parse

    recorded = Path(__file__).parent / "recorded" / "status_web1_idle.txt"
    status = parse(recorded.read_text())
    # the live web unit holds 194621440 bytes with 2 workers (recorded on a lab host)
    assert measured_worker_memory(status) == 194621440 // 2
    assert measured_worker_memory({"live_port": None, "units": {}}) is None

    (tmp_path / "shipit.yml").write_text("name: a\ndomains: [a.test]\nweb: {app: a:app, workers: auto}\nmemory_budget: 600M\n")
    spec = load_app_spec(tmp_path)
    facts = {"web1": {"mem_total": 8 * GiB, "cpus": 8}}
    assert size_workers(spec, facts) == 3  # 600 MiB / (2 slots x the 100 MiB default)
    assert size_workers(spec, facts, measured=measured_worker_memory(status)) == 3  # 600 // (2 x 92.8)
    assert size_workers(spec, facts, measured=150 * 2**20) == 2


def test_env_values_may_use_the_domains_of_this_environment(tmp_path: Path) -> None:
    """Django's ALLOWED_HOSTS from the domains the inventory gives, not written twice."""
    (tmp_path / "inv.yml").write_text("hosts: {web1: {address: 10.0.0.1}}\n"
                                      "app: {domains: [www.shop.test, shop.test]}\n")
    (tmp_path / "shipit.yml").write_text("name: a\nweb: {app: a:app}\ndomains: [a.test]\nenv:\n"
                                         "  HOSTS: \"{{ domains | join(',') }},127.0.0.1\"\n")
    inv = load_inventory(tmp_path / "inv.yml")
    spec = load_app_spec(tmp_path, inv.app, inv.path)
    target = Target("prod", inv, spec, {}, ("web1",), "web1")
    assert 'HOSTS="www.shop.test,shop.test,127.0.0.1"' in render_env_file(target)
    (tmp_path / "shipit.yml").write_text("name: a\nweb: {app: a:app}\ndomains: [a.test]\n"
                                         "env: {X: '{{ domain }}'}\n")
    with pytest.raises(ValidationError, match="undefined variable domain; env values may use database, domains, env_name"):
        load_app_spec(tmp_path)


def test_env_values_may_use_the_database_of_this_environment(tmp_path: Path) -> None:
    """A database URL written once: an inventory that renames the database changes it too."""
    (tmp_path / "inv.yml").write_text("hosts: {web1: {address: 10.0.0.1}, db1: {address: 10.0.0.9}}\n"
                                      "groups: {web: {hosts: [web1]}, db: {hosts: [db1]}}\n"
                                      "app: {database: {name: shop_prod, user: shop, password_secret: PW}}\n")
    (tmp_path / "shipit.yml").write_text(
        "name: a\nweb: {app: a:app}\ndomains: [a.test]\nsecrets: [PW]\n"
        "database: {name: shop, user: shop, password_secret: PW}\nenv:\n"
        "  URL: \"postgresql://{{ database.user }}:{{ secrets.PW }}@{{ hostvars[groups.db[0]].address }}"
        "/{{ database.name }}\"\n")
    inv = load_inventory(tmp_path / "inv.yml")
    target = Target("prod", inv, load_app_spec(tmp_path, inv.app, inv.path), {"PW": "pw"}, ("web1",), "web1")
    assert 'URL="postgresql://shop:pw@10.0.0.9/shop_prod"' in render_env_file(target)


def test_urlquote_makes_a_password_one_url_component() -> None:
    from shipit.templating import Templar, make_environment
    templar = Templar(make_environment(), {"pw": "a/b@c:d e%"})
    assert templar.render("{{ pw | urlquote }}") == "a%2Fb%40c%3Ad%20e%25"
    assert templar.render("{{ pw | urlencode }}") == "a/b%40c%3Ad%20e%25"  # Jinja's keeps the /


@pytest.mark.parametrize(("text", "sizes"), [("1", (1,)), ("100%", ("100%",)), ("1,50%", (1, "50%")),
                                             (" 2 , 25% ", (2, "25%"))])
def test_parse_serial_gives_the_batch_sizes_of_serial(text: str, sizes: tuple[int | str, ...]) -> None:
    assert parse_serial(text) == sizes


@pytest.mark.parametrize("text", ["", "0", "0%", "101%", "x", "1,", "-1", "1.5"])
def test_parse_serial_refuses_what_is_not_a_batch_size(text: str) -> None:
    with pytest.raises(ValueError, match="batch size"):
        parse_serial(text)
