"""The deploy-job anchor, pyinfra's version (benchmarks/deploy_anchors.py): the same job as
ansible_deploy.yml, written as a pyinfra user writes it. Run with ``pyinfra -y --sudo
INVENTORY pyinfra_deploy.py``; the harness passes the release through the environment:
DEPLOY_RELEASE, DEPLOY_ARTIFACT (the tarball on the runner), DB_ADDRESS, PG_VERSION,
DEPLOY_DOMAIN and DB_PASSWORD. Operation names start with their phase."""

import os
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.operations import apt, files, pip, postgres, server, systemd

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
RELEASE = os.environ["DEPLOY_RELEASE"]
ROOT = "/srv/example"
DIR = f"{ROOT}/releases/{RELEASE}"
PG = f"/etc/postgresql/{os.environ['PG_VERSION']}/main"

if "db" in host.groups:
    apt.packages(name="provision: PostgreSQL", packages=["postgresql"], cache_time=3600)
    conf = files.put(name="provision: PostgreSQL listens on the lab network",
                     src=str(HERE / "files" / "postgresql-listen.conf"), dest=f"{PG}/conf.d/example.conf")
    hba = files.line(name="provision: the app may log in from the web hosts", path=f"{PG}/pg_hba.conf",
                     line="host example example 10.231.0.0/16 scram-sha-256")
    systemd.service(name="provision: PostgreSQL restarted when its config changed", service="postgresql",
                    restarted=True, _if=lambda: conf.did_change() or hba.did_change())
    postgres.role(name="provision: app role", role="example", password=os.environ["DB_PASSWORD"],
                  _sudo_user="postgres")
    postgres.database(name="provision: app database", database="example", owner="example", _sudo_user="postgres")

if "web" in host.groups:
    apt.packages(name="provision: packages", packages=["python3-venv", "caddy", "curl"], cache_time=3600)
    server.group(name="provision: app group", group="example", system=True)
    server.user(name="provision: app user", user="example", group="example", system=True, home=ROOT,
                shell="/usr/sbin/nologin", create_home=False)
    for path in (ROOT, f"{ROOT}/releases", f"{ROOT}/shared"):
        files.directory(name="provision: directories", path=path, user="root", group="root", mode="755")
    env = files.template(name="provision: env file", src=str(TEMPLATES / "env.j2"), dest=f"{ROOT}/shared/env",
                         user="root", group="example", mode="640", db_password=os.environ["DB_PASSWORD"],
                         db_address=os.environ["DB_ADDRESS"])
    units = [files.template(name="provision: units", src=str(TEMPLATES / f"{unit}.service.j2"),
                            dest=f"/etc/systemd/system/{unit}.service", mode="644")
             for unit in ("example-web", "example-heartbeat")]
    systemd.daemon_reload(name="provision: daemon-reload when a unit changed",
                          _if=lambda: any(u.did_change() for u in units))
    caddyfile = files.template(name="provision: Caddyfile", src=str(TEMPLATES / "Caddyfile.j2"),
                               dest="/etc/caddy/Caddyfile", mode="644", domain=os.environ["DEPLOY_DOMAIN"])
    systemd.service(name="provision: Caddy enabled and running", service="caddy", running=True, enabled=True)
    systemd.service(name="provision: Caddy reloaded when its config changed", service="caddy", reloaded=True,
                    _if=caddyfile.did_change)

    files.directory(name="upload: release directory", path=DIR, mode="755")
    files.put(name="upload: release tarball", src=os.environ["DEPLOY_ARTIFACT"], dest=f"{DIR}.tar.gz")
    server.shell(name="upload: release unpacked",
                 commands=[f"test -e {DIR}/release.env || tar -xzf {DIR}.tar.gz -C {DIR}", f"rm -f {DIR}.tar.gz"])

    pip.venv(name="prepare: venv", path=f"{DIR}/venv", python="python3")
    server.shell(name="prepare: app and dependencies installed from the release's wheels",
                 commands=[f"test -x {DIR}/venv/bin/uvicorn || {DIR}/venv/bin/pip install -q --no-index "
                           f"--find-links {DIR}/wheels shipit-example-app"])

    server.shell(name="migrate: alembic upgrade head, once",
                 commands=[f"cd {DIR} && set -a && . {ROOT}/shared/env && set +a && "
                           f"runuser -u example -- {DIR}/venv/bin/alembic upgrade head"],
                 _run_once=True)

    current = files.link(name="switch: current points at the release", path=f"{ROOT}/current", target=DIR,
                         force=True, force_backup=False)
    for unit in ("example-web", "example-heartbeat"):
        systemd.service(name="switch: units restarted", service=unit, restarted=True, enabled=True,
                        _if=lambda: current.did_change() or env.did_change())
        systemd.service(name="switch: units running", service=unit, running=True, enabled=True)
    server.shell(name="switch: healthy",
                 commands=["for i in $(seq 60); do curl -fsS -o /dev/null http://127.0.0.1:8000/health && exit 0; "
                           "sleep 1; done; exit 1"])

    server.shell(name="prune: keep the newest 4 releases",
                 commands=[f"cd {ROOT}/releases && old=$(ls -1 | sort -r | tail -n +5 | "
                           f"grep -vx \"$(basename \"$(readlink {ROOT}/current)\")\" || :) && "
                           "{ [ -z \"$old\" ] || rm -rf $old; }"])

_ = inventory  # the inventory's groups (web, db) choose the operations above
