"""The ``release_switch`` module: put a host on a release with zero downtime, or leave it be.

Each host keeps two web slots, one local port each (blue/green): ``/srv/<app>/slots/<port>``
is a symlink to a release, and the unit ``<app>-web@<port>.service`` runs whatever its slot
points to. Switching to a release, in one remote script:

1. point the idle slot at the release and (re)start its unit;
2. wait until ``GET <health path>`` on that port answers 200 (within ``health_timeout``
   seconds; a unit that fails, hits its start limit or exits on its own fails the switch
   at once);
3. rewrite the Caddy site to proxy to that port, validate, graceful reload (in-flight requests
   finish on the old port), and check the health path again THROUGH Caddy over HTTPS;
4. switch ``current`` atomically (``ln -sfn`` to a temp name, then ``mv -T``), record the live
   port, enable the new slot's unit for boot and disable/stop the old one, restart the
   background process units on the new ``current``;
5. append a line to ``/srv/<app>/releases.log`` (time, user, action, release, result).

If any step before 4 fails, the old slot is still serving: the script puts Caddy back on it
if it had been moved, stops the new slot, logs the failure and exits non-zero, so a failed
switch leaves the host on its previous release. The same module rolls back (``action:
rollback``), because a rollback is a switch to an older release that is still on the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q
from shipit.modules.caddy_site import validated_install

CADDY_ROOT_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


def site_content(domains: list[str], port: int, tls_internal: bool) -> str:
    """The Caddy site snippet proxying ``domains`` to ``127.0.0.1:port`` (HTTP redirects to HTTPS)."""
    tls = "\ttls internal\n" if tls_internal else ""
    return (f"# managed by shipit: the live slot is port {port}\n{', '.join(domains)} {{\n{tls}"
            f"\tencode gzip\n\treverse_proxy 127.0.0.1:{port}\n}}\n")


class ReleaseSwitchModule(Module):
    """Switch a host to a release through a second slot, health-checked, with zero downtime."""

    name = "release_switch"
    doc = "Blue/green switch of an app's web slot to a release, behind health checks and Caddy."
    params = {
        "app": Param(str, required=True, help="app name (units <app>-web@PORT, /srv/<app>)"),
        "release": Param(str, required=True, help="release id to serve"),
        "ports": Param(list, required=True, help="the two local slot ports, e.g. [8000, 8001]"),
        "domains": Param(list, required=True, help="site domains served by Caddy"),
        "tls_internal": Param(bool, default=True, help="Caddy's own CA (lab, private names)"),
        "health_path": Param(str, default="/health"),
        "health_timeout": Param((int, float), default=30, help="seconds for the release to answer 200"),
        "processes": Param(list, default=[], help="background units to restart: ['name@1', …]"),
        "action": Param(str, default="deploy", choices=("deploy", "rollback")),
        "user": Param(str, default="shipit", help="who, for the release log"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        ports = params.get("ports") or []
        if len(ports) != 2 or not all(isinstance(p, int) for p in ports) or ports[0] == ports[1]:
            return [("ports", "expected two different port numbers")]
        if not params.get("domains"):
            return [("domains", "expected at least one domain")]
        return []

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [FactQuery("release_state", f"/srv/{params['app']}")]

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        state = facts[FactQuery("release_state", f"/srv/{params['app']}")]
        release = params["release"]
        ports = [int(p) for p in params["ports"]]
        live = state["live_port"]
        if release not in state["ready"]:
            ready = ", ".join(state["ready"]) or "none"
            return Plan(failed=f"release {release} is not ready on this host (ready: {ready})")
        if (state["current"] == release and live in ports and state["slots"].get(live) == release
                and live in state["active_ports"]):
            return Plan()
        new_port = ports[1] if live == ports[0] else ports[0]
        old_port = live if live in ports and live in state["active_ports"] else None
        reason = (f"{params['action']}: {state['current'] or 'nothing'} -> {release} "
                  f"(slot {new_port}{', was ' + str(old_port) if old_port else ''})")
        return Plan(changes=(Change(reason, self._script(params, new_port, old_port)),))

    def _script(self, params: Mapping[str, Any], new_port: int, old_port: int | None) -> str:
        app = params["app"]
        root = f"/srv/{app}"
        release = params["release"]
        domain = params["domains"][0]
        unit_new = f"{app}-web@{new_port}.service"
        unit_old = f"{app}-web@{old_port}.service" if old_port else ""
        new_site = site_content(list(params["domains"]), new_port, bool(params["tls_internal"]))
        old_site = site_content(list(params["domains"]), old_port, bool(params["tls_internal"])) if old_port else ""
        health = q(params["health_path"])
        timeout = int(float(params["health_timeout"]))
        procs = " ".join(q(f"{app}-{p}.service") for p in params["processes"])
        log = (f'printf "%s\\t%s\\t%s\\t%s\\t%s\\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" {q(params["user"])} '
               f'{q(params["action"])} {q(release)} "$1" >> {root}/releases.log')
        restore_caddy = validated_install(f"sites/{app}.caddy", old_site.encode()) if old_port else \
            f"rm -f /etc/caddy/sites/{app}.caddy; systemctl reload caddy || true"
        return f"""
log_result() {{ {log}; }}
fail() {{
  if [ "${{caddy_moved:-0}}" = 1 ]; then
    ( {restore_caddy} ) >&2 || echo "shipit: could not restore the Caddy site" >&2
  fi
  systemctl stop {unit_new} 2>/dev/null || true
  journalctl -u {unit_new} -n 15 --no-pager -o cat >&2 2>/dev/null || true
  log_result failed
  # last, so that the reason ends the output (a failed task reports the output's tail)
  echo "shipit: $1" >&2
  exit 1
}}
mkdir -p {root}/slots
ln -sfn ../releases/{q(release)} {root}/slots/.{new_port}.tmp
mv -T {root}/slots/.{new_port}.tmp {root}/slots/{new_port}
systemctl reset-failed {unit_new} 2>/dev/null || true
systemctl restart {unit_new} || fail "{unit_new} did not start"
deadline=$(( $(date +%s) + {timeout} ))
until curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:{new_port}{health}; do
  case "$(systemctl is-active {unit_new})" in
    failed) fail "{unit_new} failed while starting (crash or start limit)";;
    inactive) fail "{unit_new} exited while starting (its main process ended before answering)";;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || fail "release {release} ({unit_new}) did not answer 200 on {health} within {timeout} s"
  sleep 0.3
done
caddy_moved=1
( {validated_install(f"sites/{app}.caddy", new_site.encode())} ) >&2 || fail "Caddy rejected the site for port {new_port}"
cacert=-k; [ -f {CADDY_ROOT_CA} ] && cacert="--cacert {CADDY_ROOT_CA}"
deadline=$(( $(date +%s) + {timeout} ))
until curl -fsS -o /dev/null --max-time 5 $cacert --resolve {q(domain)}:443:127.0.0.1 https://{domain}{health}; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "release {release} answered on port {new_port} but not through Caddy (https://{domain}{health})"
  sleep 0.3
done
caddy_moved=0
ln -sfn releases/{q(release)} {root}/.current.tmp
mv -T {root}/.current.tmp {root}/current
echo {new_port} > {root}/.live-port.tmp && mv -f {root}/.live-port.tmp {root}/.live-port
systemctl enable --quiet {unit_new}
{f"systemctl disable --quiet {unit_old}; systemctl stop {unit_old}" if unit_old else ""}
{f"systemctl enable --quiet {procs}; systemctl restart {procs}" if procs else ""}
log_result ok
"""
