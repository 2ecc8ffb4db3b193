"""The deploy-job anchor's rollback, pyinfra's version (as ansible_rollback.yml): ``current``
goes back to the release before it, the units restart, health is checked. Run with ``pyinfra
-y --sudo INVENTORY pyinfra_rollback.py --limit web``."""

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

ROOT = "/srv/example"

if "web" in host.groups:
    releases = sorted(host.get_fact(Command, f"ls -1 {ROOT}/releases").split())
    current = host.get_fact(Command, f"basename \"$(readlink {ROOT}/current)\"").strip()
    at = releases.index(current)
    if at == 0:
        raise SystemExit(f"{host.name}: no release before {current} to roll back to")
    files.link(name="switch: current points at the release before", path=f"{ROOT}/current",
               target=f"{ROOT}/releases/{releases[at - 1]}", force=True, force_backup=False)
    for unit in ("example-web", "example-heartbeat"):
        systemd.service(name="switch: units restarted", service=unit, restarted=True)
    server.shell(name="switch: healthy",
                 commands=["for i in $(seq 60); do curl -fsS -o /dev/null http://127.0.0.1:8000/health && exit 0; "
                           "sleep 1; done; exit 1"])
