"""Two apps on the same hosts (issue 11 item 7): the example app a second time, under another
name, domain, ports and database, deployed beside the first; both serve over HTTPS, and
re-deploying one leaves the other's files, units, Caddy site and database access untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_deploy import DOMAIN, WEB, copy_app, serving
from trustlib import TrustEnv, https_get_as

from shipit.lab import LabState

pytestmark = pytest.mark.e2e

SECOND = "second"
SECOND_DOMAIN = "second.shipit.test"


def second_app(dest: Path, tag: str = "") -> Path:
    app = copy_app(dest, main_suffix=f"\n# second app {tag}\n")
    spec = app / "shipit.yml"
    text = spec.read_text()
    for old, new in {"database: {name: example, user: example,": f"database: {{name: {SECOND}, user: {SECOND},",
                     "\nname: example\n": f"\nname: {SECOND}\n",
                     "port: 8000": "port: 8010",
                     "domains: [example.shipit.test]": f"domains: [{SECOND_DOMAIN}]",
                     "/example\"": f"/{SECOND}\"",
                     }.items():
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text.replace("postgresql+psycopg://example:", f"postgresql+psycopg://{SECOND}:"))
    return app


def fingerprint(env: TrustEnv, app: str) -> dict[str, str]:
    script = f"""ls -la --time-style=full-iso /srv/{app} /srv/{app}/releases /srv/{app}/slots
        readlink /srv/{app}/current; cat /srv/{app}/.live-port
        systemctl list-units '{app}-*' --all --plain --no-legend | sort
        md5sum /etc/systemd/system/{app}-*.service /etc/caddy/sites/* 2>/dev/null | grep -i '{app}' || true
        cat /srv/{app}/releases.log
    """
    return {h: env.run_on(h, script) for h in WEB}


@pytest.fixture(scope="module")
def env(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustEnv]:
    work = tmp_path_factory.mktemp("shared")
    (work / "home").mkdir()
    the_env = TrustEnv(lab, work / "home", work)
    yield the_env
    for host in WEB:  # the modules after this one find the lab's one app, as before
        the_env.run_on(host, f"""
            systemctl stop '{SECOND}-*' 2>/dev/null || true
            rm -f /etc/systemd/system/{SECOND}-* /etc/systemd/system/*.wants/{SECOND}-* \\
                /etc/caddy/sites/{SECOND}.caddy
            rm -rf /srv/{SECOND}
            systemctl daemon-reload; systemctl reload caddy || true
        """)


def releases_served(env: TrustEnv, domain: str) -> dict[str, Any]:
    out = {}
    for host in WEB:
        status, doc = https_get_as(env.address(host), env.cafile(host), domain, "/")
        assert status == 200, (host, domain, status, doc)
        out[host] = doc["release"]
    return out


def test_two_apps_on_the_same_hosts_both_serve_and_leave_each_other_alone(env: TrustEnv) -> None:
    try:  # the first app as an earlier module left it (one release everywhere), else deployed
        first_release = serving(env)
        assert len(set(first_release.values())) == 1 and set(first_release) == set(WEB)
    except (AssertionError, OSError, KeyError):
        one = env.deploy_ok(app=copy_app(env.work / "app-first", main_suffix="\n# first app\n"))
        first_release = {h: one["release"] for h in WEB}
    two = env.deploy_ok(app=second_app(env.work / "app-second"))
    assert releases_served(env, DOMAIN) == first_release
    assert releases_served(env, SECOND_DOMAIN) == {h: two["release"] for h in WEB}

    # re-deploy the first with a change: the second is untouched, and the reverse
    before = fingerprint(env, SECOND)
    one_b = env.deploy_ok(app=copy_app(env.work / "app-first-b", main_suffix="\n# first app b\n"))
    assert fingerprint(env, SECOND) == before
    assert releases_served(env, SECOND_DOMAIN) == {h: two["release"] for h in WEB}
    assert releases_served(env, DOMAIN) == {h: one_b["release"] for h in WEB}

    before = fingerprint(env, "example")
    two_b = env.deploy_ok(app=second_app(env.work / "app-second-b", "b"))
    assert fingerprint(env, "example") == before
    assert releases_served(env, DOMAIN) == {h: one_b["release"] for h in WEB}
    assert releases_served(env, SECOND_DOMAIN) == {h: two_b["release"] for h in WEB}
