"""release_slot and release_switch plans as data: facts in, changes out (pure)."""

from __future__ import annotations

from typing import Any

from shipit.facts import files
from shipit.facts.app import parse, release_state
from shipit.modules.base import PlanContext, sha256_hex
from shipit.modules.release import ReleaseSlotModule, ReleaseSwitchModule, site_content

CTX = PlanContext(host="web1", host_facts={})
R1, R2 = "20261201T100001Z-aaaaaaaaaaa1", "20261201T100002Z-aaaaaaaaaaa2"
SLOT = {"app": "example", "release": R2, "ports": [8000, 8001], "health_path": "/health",
        "health_timeout": 30, "state": "started", "user": "ci", "action": "deploy"}
SWITCH = {"app": "example", "release": R2, "ports": [8000, 8001], "domains": ["example.test"],
          "health_host": None, "tls_internal": True, "acme_email": None, "health_path": "/health",
          "health_timeout": 30, "processes": [], "action": "deploy", "user": "ci"}


SITE = "/etc/caddy/sites/example.caddy"
SITE_NOW = sha256_hex(ReleaseSwitchModule.site(SWITCH).encode())


def state(site_sha: str | None = SITE_NOW, **kw: Any) -> dict[Any, Any]:
    base = {"current": R1, "live_port": 8000, "live_link": "/run/example/web-8000/web.sock", "live_release": R1,
            "slots": {8000: R1}, "releases": [R1, R2],
            "ready": [R1, R2], "active_ports": [8000], "lock": None, "log": [], "app_ports": {}}
    return {release_state("example"): {**base, **kw},
            files.file(SITE): {"exists": site_sha is not None, "sha256": site_sha}}


def test_slot_starts_the_release_in_the_idle_port_and_records_failure_on_the_way_out() -> None:
    plan = ReleaseSlotModule().plan(SLOT, state(), CTX)
    (change,) = plan.changes
    assert change.reason == f"start {R2} in slot 8001"
    assert "systemctl restart example-web@8001.service" in change.script
    # the slot is checked on its own socket: nothing else (Caddy, the other slot) answers there
    assert "--unix-socket /run/example/web-8001/web.sock http://localhost/health" in change.script
    assert f"{R2} failed >> /srv/example/releases.log" in change.script  # the fail() path


def test_the_slot_health_check_asks_for_the_apps_domain() -> None:
    """An app that checks the Host (Django's ALLOWED_HOSTS) answers the check as it answers
    its users: the request names the app's health host, not localhost (a public Django app
    allowing only its domains answered 400 to every health check)."""
    plan = ReleaseSlotModule().plan({**SLOT, "health_host": "www.shop.test"}, state(), CTX)
    assert "--unix-socket /run/example/web-8001/web.sock http://www.shop.test/health" in plan.changes[0].script
    switch = ReleaseSwitchModule().plan({**SWITCH, "release": R2}, state(slots={8000: R1}), CTX)
    assert "--unix-socket /run/example/web-8001/web.sock http://example.test/health" in switch.changes[0].script
    ((key, message),) = ReleaseSlotModule().check_params({**SLOT, "health_host": "a b"})
    assert key == "health_host" and message.startswith("expected a domain name") and "'a b'" in message
    assert ReleaseSlotModule().check_params({**SLOT, "health_host": "localhost"}) == []


def test_a_slot_whose_socket_cannot_listen_fails_naming_the_socket() -> None:
    """The slot's .service Requires its .socket: when the socket cannot bind its path, the
    restart fails, and the reason names the socket (its journal lines are in the output)."""
    (change,) = ReleaseSlotModule().plan(SLOT, state(), CTX).changes
    script = change.script
    fail_fn, body = script.split("\n}\n", 1)
    assert "systemctl stop example-web@8001.service example-web@8001.socket" in fail_fn
    assert "journalctl -u example-web@8001.service -u example-web@8001.socket -n 15" in fail_fn
    restart = body.index("if ! systemctl restart example-web@8001.service; then\n")
    named = body.index("  systemctl is-failed --quiet example-web@8001.socket && fail 'example-web@8001.socket "
                       "could not listen on /run/example/web-8001/web.sock, so example-web@8001.service did not start'\n")
    plain = body.index("  fail 'example-web@8001.service did not start'\nfi\n")
    assert body.index("systemctl reset-failed example-web@8001.service example-web@8001.socket") < restart < named < plain


def test_slot_is_a_no_op_when_prepared_or_already_serving() -> None:
    prepared = state(slots={8000: R1, 8001: R2}, active_ports=[8000, 8001])
    assert not ReleaseSlotModule().plan(SLOT, prepared, CTX).changes
    serving = state(current=R2, slots={8000: R2})
    assert not ReleaseSlotModule().plan(SLOT, serving, CTX).changes


def test_slot_refuses_a_release_that_is_not_ready() -> None:
    plan = ReleaseSlotModule().plan(SLOT, state(ready=[R1]), CTX)
    assert plan.failed == f"release {R2} is not ready on this host (ready: {R1})"
    plan = ReleaseSwitchModule().plan(SWITCH, state(ready=[R1]), CTX)
    assert plan.failed == f"release {R2} is not ready on this host (ready: {R1})"


def test_stopping_the_idle_slot_never_stops_the_live_one() -> None:
    stop = {**SLOT, "state": "stopped"}
    assert [c.reason for c in ReleaseSlotModule().plan(stop, state(active_ports=[8000, 8001]), CTX).changes] \
        == ["stop the idle slot 8001"]
    assert not ReleaseSlotModule().plan(stop, state(), CTX).changes


def test_switch_to_a_prepared_slot_does_not_restart_it() -> None:
    prepared = state(slots={8000: R1, 8001: R2}, active_ports=[8000, 8001])
    (change,) = ReleaseSwitchModule().plan(SWITCH, prepared, CTX).changes
    assert change.reason.endswith("(slot 8001, was 8000), prepared")
    assert "systemctl restart example-web@8001.service" not in change.script
    (cold,) = ReleaseSwitchModule().plan(SWITCH, state(), CTX).changes
    assert "systemctl restart example-web@8001.service" in cold.script


def test_both_modules_refuse_bad_ports() -> None:
    for module, params in ((ReleaseSlotModule(), SLOT), (ReleaseSwitchModule(), SWITCH)):
        assert module.check_params({**params, "ports": [8000, 8000]}) == [("ports", "expected two different port numbers")]
    assert ReleaseSwitchModule().check_params({**SWITCH, "domains": []}) == [("domains", "expected at least one domain")]


def test_the_site_proxies_to_the_link_not_to_a_port() -> None:
    site = site_content(["example.test"], "unix//srv/example/web.sock", True)
    assert "reverse_proxy unix//srv/example/web.sock {" in site and "127.0.0.1" not in site
    assert "lb_try_duration 15s" in site and "tls internal" in site


def test_a_switch_flips_the_link_without_reloading_caddy() -> None:
    (change,) = ReleaseSwitchModule().plan(SWITCH, state(), CTX).changes
    script = change.script
    flip = ("ln -sfn /run/example/web-8001/web.sock /srv/example/web.sock.tmp\n"
            "mv -T /srv/example/web.sock.tmp /srv/example/web.sock")
    assert flip in script
    fail_fn, body = script.split("\n}\n", 1)
    assert "caddy" not in change.reason.lower() and "reload caddy" not in body and "caddy validate" not in body
    # order: the slot's own health, the flip, the old slot drained, then the check through Caddy
    own = script.index("--unix-socket /run/example/web-8001/web.sock")
    stop_old = script.index("systemctl stop example-web@8000.service example-web@8000.socket; old_stopped=1")
    through = script.index("--resolve example.test:443:127.0.0.1 https://example.test/health")
    assert own < script.index(flip) < stop_old < through < script.index("mv -T /srv/example/current.tmp")
    # a failure after the flip starts the old slot again and points the link back at it
    assert "systemctl start example-web@8000.service" in fail_fn
    assert "ln -sfn /run/example/web-8000/web.sock /srv/example/web.sock.tmp" in fail_fn


def test_a_switch_installs_the_site_only_when_it_differs() -> None:
    (change,) = ReleaseSwitchModule().plan(SWITCH, state(site_sha=None), CTX).changes
    assert change.reason.endswith(", Caddy site updated")
    assert "caddy validate" in change.script and 'prev_site=$(mktemp)' in change.script
    (change,) = ReleaseSwitchModule().plan(SWITCH, state(site_sha="0" * 64), CTX).changes
    assert "caddy validate" in change.script


def test_a_host_on_the_release_is_a_no_op_but_orphans_link_and_site_are_repaired() -> None:
    on_it = {"current": R2, "live_port": 8001, "live_link": "/run/example/web-8001/web.sock", "live_release": R2,
             "slots": {8000: R1, 8001: R2}, "active_ports": [8001]}
    assert not ReleaseSwitchModule().plan(SWITCH, state(**on_it), CTX).changes
    orphan = ReleaseSwitchModule().plan(SWITCH, state(**{**on_it, "active_ports": [8000, 8001]}), CTX)
    assert [c.reason for c in orphan.changes] == [
        f"stop the idle slot left running by an interrupted deploy: 8000 ({R1})"]
    assert "systemctl stop example-web@8000.service" in orphan.changes[0].script
    stale = ReleaseSwitchModule().plan(SWITCH, state(site_sha=None, **{**on_it, "live_link": None,
                                                                        "live_release": None}), CTX)
    assert [c.reason for c in stale.changes] == ["point /srv/example/web.sock at the live slot 8001",
                                                 f"point /srv/example/live at {R2}",
                                                 "update /etc/caddy/sites/example.caddy"]


def test_the_live_slot_is_the_one_the_link_points_at() -> None:
    out = "app=example\ncurrent=R\nlive_port=8000\nlive_link=/run/example/web-8001/web.sock\n"
    assert parse(out)["live_port"] == 8001
    # a host last switched by an older shipit (no link): the .live-port file says
    assert parse("app=example\nlive_port=8000\nlive_link=\n")["live_port"] == 8000
    assert parse("app=example\nlive_port=8000\nlive_link=/elsewhere/web.sock\n")["live_port"] == 8000


STATIC = {**SWITCH, "static_url": "/static/", "static_dir": "staticfiles"}


def test_the_static_site_names_no_release_so_a_switch_needs_no_reload() -> None:
    site = ReleaseSwitchModule.site(STATIC)
    assert site == ReleaseSwitchModule.site({**STATIC, "release": R1})  # the same text for every release
    assert "root * /srv/example/live/staticfiles" in site and "root @previous /srv/example/previous/staticfiles" in site
    assert "releases/" not in site
    sha = sha256_hex(site.encode())
    (change,) = ReleaseSwitchModule().plan(STATIC, state(site_sha=sha), CTX).changes
    script = change.script
    fail_fn, body = script.split("\n}\n", 1)
    assert "caddy validate" not in body and "reload caddy" not in body
    # previous <- the release live until now, live <- the new one, both before the socket flip
    prev = body.index(f"ln -sfn /srv/example/releases/{R1} /srv/example/previous.tmp\nmv -T /srv/example/previous.tmp /srv/example/previous")
    live = body.index(f"ln -sfn /srv/example/releases/{R2} /srv/example/live.tmp\nmv -T /srv/example/live.tmp /srv/example/live")
    assert body.index("saved_live=$(readlink /srv/example/live") < prev < live < body.index("/srv/example/web.sock.tmp\nmv -T")
    # a failed switch puts both links back as they were (or removes them: there were none)
    assert 'if [ -n "$saved_live" ]; then ln -sfn "$saved_live" /srv/example/live.tmp' in fail_fn
    assert "else rm -f /srv/example/previous; fi" in fail_fn
    # re-switching to the release already current leaves `previous` alone
    (same,) = ReleaseSwitchModule().plan({**STATIC, "release": R1}, state(site_sha=sha, active_ports=[]), CTX).changes
    assert "/srv/example/previous.tmp\nmv" not in same.script.split("\n}\n", 1)[1]
