"""The anchors workload (benchmarks/anchors.py), pyinfra's version: the same work as
shipit.yml and ansible.yml. Every operation runs through sudo (``_sudo`` in the inventory's
data); ``shard`` is a host variable from the inventory."""

from pathlib import Path

from pyinfra import host
from pyinfra.operations import apt, files, server, systemd

HERE = Path(__file__).resolve().parent

apt.packages(name="Packages", packages=["python3", "python3-venv", "caddy"], update=True, cache_time=3600)

server.group(name="App group", group="app", system=True)

server.user(name="App user", user="app", group="app", system=True, home="/srv/app",
            shell="/usr/sbin/nologin", create_home=False)

files.directory(name="App directory", path="/srv/app", user="app", group="app", mode="755")

files.template(name="Per-host config", src=str(HERE / "templates" / "config.ini.j2"), dest="/srv/app/config.ini",
               user="app", group="app", mode="640", shard=host.data.shard)

unit = files.put(name="Demo unit", src=str(HERE / "files" / "demo.service"),
                 dest="/etc/systemd/system/demo.service", user="root", group="root", mode="644")

systemd.daemon_reload(name="Daemon-reload when the unit changed", _if=unit.did_change)

systemd.service(name="Demo service enabled and started", service="demo.service", running=True, enabled=True)

caddyfile = files.put(name="Caddyfile", src=str(HERE / "files" / "Caddyfile"), dest="/etc/caddy/Caddyfile",
                      user="root", group="root", mode="644")

systemd.service(name="Caddy enabled and running", service="caddy", running=True, enabled=True)

systemd.service(name="Reload caddy when the Caddyfile changed", service="caddy", reloaded=True,
                _if=caddyfile.did_change)
