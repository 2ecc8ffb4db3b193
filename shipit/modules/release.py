"""The ``release_slot`` and ``release_switch`` modules: start a release in a host's idle web
slot, then put the host on it with zero downtime (or leave it be).

Each host keeps two web slots (blue/green): the slot symlink (see
:class:`shipit.layout.Layout`) points to a release, and the unit ``<app>-web@<port>.service``
runs whatever its slot points to, serving on its own unix socket
(``/run/<app>/web-<port>/web.sock``, held by systemd's ``<app>-web@<port>.socket`` and passed
to the server as fd 3, so it outlives a crashed server: connections wait in its queue while
systemd restarts it); the "port" is the slot's name. Caddy's upstream is
the link ``/srv/<app>/web.sock``, which points at the live slot's socket. Switching to a
release, in one remote script:

1. point the idle slot at the release and (re)start its unit (unless ``release_slot``
   prepared it);
2. wait until ``GET <health path>`` on that slot's own socket answers 200 (within
   ``health_timeout`` seconds; a unit that fails, hits its start limit or exits on its own
   fails the switch at once; the last status seen is in the failure message);
3. the flip: re-point ``previous`` at the release live until now and ``live`` at the new one
   (Caddy serves static files under these links), then ``web.sock`` at the new slot's socket,
   each by a rename. Caddy is NOT reloaded
   (a reload closes clients' idle keep-alive connections, and a request racing the close is
   reset: 2 of 70,165 were, measured); its next upstream dial reaches the new slot. The site
   file is (validated and) rewritten only when its content changes (first deploy, domains,
   TLS);
4. stop the old slot: it drains (in-flight requests finish), and a request Caddy sends on an
   upstream connection the old slot closes meanwhile is retried on a new dial (Go's transport
   does this for idempotent requests), which reaches the new slot;
5. check the health path again THROUGH Caddy over HTTPS: with the old slot gone, only the new
   one can answer;
6. switch ``current`` atomically (``ln -sfn`` to a temp name, then ``mv -T``), record the live
   port, enable the new slot's unit for boot and disable the old one, restart the background
   process units on the new ``current``, and record in the release log (see
   :mod:`shipit.releases`) the new release ``live`` and the old one ``retired``.

If any step before 6 fails, the script starts the old slot again when it had been stopped
(waiting for its health), points ``web.sock`` (and ``live``, ``previous``) back, puts the
previous site back if it
had been rewritten, stops the new slot, records the release ``failed`` and exits non-zero, so
a failed switch leaves the host on its previous release. A web slot left running by an
interrupted switch (not the live one) is stopped by the next run, which says so. The same
module rolls back (``action: rollback``): a rollback is a switch to an older release that is
still on the host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipit.app import EMAIL_RE, domain_problem, health_path_problem
from shipit.facts import FactQuery, files
from shipit.facts.app import release_state
from shipit.layout import Layout
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, sha256_hex
from shipit.modules.caddy_site import validated_install
from shipit.modules.deploy_state import _app_release_checks, log_append
from shipit.quoting import q

CADDY_ROOT_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


_CADDY_SPECIAL = re.compile(r"[\s\"'`{}#]")
_UPSTREAM = re.compile(r"unix//[A-Za-z0-9_./@-]+")
"""A unix-socket upstream (what :attr:`~shipit.layout.Layout.caddy_upstream` gives): nothing
the Caddyfile or a placeholder could read otherwise."""
HASHED_NAME = r"\.[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]+\.[A-Za-z0-9]+$"
"""A file name with a content hash (8+ hex digits) before its extension, e.g. Django's
ManifestStaticFilesStorage ``app.3f2a1b4c5d6e.css`` (spelled without ``{8,}``: braces are
Caddyfile placeholders)."""


@dataclass(frozen=True)
class Static:
    """Static files Caddy serves for URL prefix ``url`` (``/static/``) from the directory
    ``root`` of the live release; ``fallback``: the same directory of the previous release,
    for names the new one no longer has (pages the old release rendered during a roll).

    A switch's site gives both under the stable links :attr:`~shipit.layout.Layout.live_release`
    and :attr:`~shipit.layout.Layout.previous_release` (``/srv/<app>/live/staticfiles``), which
    the switch re-points, so the site's text is the same for every release.
    """

    url: str
    root: str
    fallback: str | None = None


def static_block(static: Static) -> list[str]:
    """Caddyfile lines (inside a site, without indentation) serving ``static`` with
    ``file_server`` under ``handle_path`` (the prefix stripped).

    Hashed names (:data:`HASHED_NAME`) are cached for a year, ``immutable``; others for 5
    minutes. A name missing from the release is looked up in ``fallback``, then 404.
    """
    lines = [f"handle_path {static.url}* {{", f"\troot * {static.root}"]
    if static.fallback:
        lines += ["\t@previous {", "\t\tnot {", "\t\t\tfile {", f"\t\t\t\troot {static.root}",
                  "\t\t\t}", "\t\t}", "\t}", f"\troot @previous {static.fallback}"]
    # two disjoint matchers: response header ops are applied in reverse order when the
    # response is written, so a default followed by an override would win over the override
    lines += [f"\t@hashed path_regexp {HASHED_NAME}",
              '\theader @hashed Cache-Control "public, max-age=31536000, immutable"',
              f"\t@plain not path_regexp {HASHED_NAME}",
              '\theader @plain Cache-Control "public, max-age=300"',
              "\tfile_server", "}"]
    return lines


def site_content(domains: list[str], upstream: str, tls_internal: bool, acme_email: str | None = None,
                 static: Static | None = None) -> str:
    """The Caddy site snippet proxying ``domains`` to ``upstream`` (HTTP redirects to HTTPS),
    and serving ``static`` files when given (:func:`static_block`).

    ``upstream`` is the app's :attr:`~shipit.layout.Layout.caddy_upstream`
    (``unix//srv/<app>/web.sock``, the link a switch re-points), so the site does not change at
    a switch and Caddy is never reloaded for one. ``domains`` must be validated hostnames (the
    app spec's loader and the module's check_params do it; here again, since the snippet is
    Caddyfile text: a newline or a brace in a domain would open a site of its own), as must the
    static URL and directories. A crashed master costs no dial error (systemd keeps the slot's
    socket listening: connections wait in its queue); should a dial fail anyway (the link
    pointing at a socket not there), Caddy retries it for up to 15 s (``lb_try_duration``)
    instead of answering 502.

    Raises:
        ValueError: a domain is not a hostname, ``*.`` wildcard or IPv4 address, the upstream
            is not ``unix/`` and an absolute path of ``[A-Za-z0-9_./@-]``, the email is not an
            email address, or a static path holds a character the Caddyfile gives a meaning
            (whitespace, quotes, braces, ``#``).
    """
    for domain in domains:
        if (problem := domain_problem(domain)) is not None:
            raise ValueError(f"domain: {problem}")
    if not _UPSTREAM.fullmatch(upstream):
        raise ValueError(f"upstream: expected unix/ and an absolute socket path, got {upstream!r}")
    if acme_email is not None and not EMAIL_RE.fullmatch(acme_email):
        raise ValueError(f"acme_email: expected an email address, got {acme_email!r}")
    if static is not None:
        for name, value in (("static url", static.url), ("static root", static.root),
                            ("static fallback", static.fallback or "/")):
            if not value.startswith("/") or _CADDY_SPECIAL.search(value):
                raise ValueError(f"{name}: expected an absolute path without whitespace, quotes, "
                                 f"braces or '#', got {value!r}")
    proxy = [f"reverse_proxy {upstream} {{", "\tlb_try_duration 15s", "\tlb_try_interval 100ms", "}"]
    body = (["tls internal"] if tls_internal else [f"tls {acme_email}"] if acme_email else []) + ["encode gzip"]
    if static is None:
        body += proxy
    else:
        body += [*static_block(static), "handle {", *("\t" + line for line in proxy), "}"]
    inner = "".join(f"\t{line}\n" for line in body)
    return (f"# managed by shipit: the live slot is the one {upstream.removeprefix('unix/')} points to\n"
            f"{', '.join(domains)} {{\n{inner}}}\n")


def slot_units(lay: Layout, *ports: int) -> str:
    """The quoted unit names of slots ``ports``: each slot's ``.service`` and the ``.socket``
    that holds its listening socket (stopped together: a listening socket left alone would
    start its service again at the next connection)."""
    return " ".join(f"{q(lay.web_unit(p))} {q(lay.web_socket_unit(p))}" for p in ports)


def slot_health_script(lay: Layout, port: int, health_path: str, timeout: int, what: str,
                       host: str = "localhost") -> str:
    """Shell waiting up to ``timeout`` seconds for 200 on ``health_path`` from slot ``port``'s
    own socket (nothing else answers there: not Caddy, not the other slot); calls
    ``fail MESSAGE`` (the script's) when the unit fails or exits, or at the deadline.

    ``host`` is the request's ``Host`` (a validated domain): the deploy sends the app's health
    host (its first domain), so an app that checks the host (Django's ``ALLOWED_HOSTS``,
    Flask's ``SERVER_NAME``) answers the check as it answers its users."""
    unit = q(lay.web_unit(port))
    sock = q(lay.web_socket(port))
    url = q(f"http://{host}{health_path}")
    too_late = q(f"{what} ({lay.web_unit(port)}) did not answer 200 on {health_path} within {timeout} s")
    return f"""deadline=$(( $(date +%s) + {timeout} ))
code=none
until code=$(curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 --unix-socket {sock} {url} 2>/dev/null) && [ "$code" = 200 ]; do
  case "$(systemctl is-active {unit})" in
    failed) fail {q(f"{lay.web_unit(port)} failed while starting (crash or start limit)")};;
    inactive) fail {q(f"{lay.web_unit(port)} exited while starting (its main process ended before answering)")};;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || fail {too_late}" (last answer: HTTP $code)"
  sleep 0.3
done"""


def start_slot_script(lay: Layout, release: str, port: int, health_path: str, timeout: int,
                      restart: bool = True, host: str = "localhost") -> str:
    """Shell pointing slot ``port`` at ``release``, (re)starting its unit (unless ``restart``
    is False: it already runs that release) and waiting up to ``timeout`` seconds for 200 on
    ``health_path`` on the slot's own unix socket (:meth:`Layout.web_socket`), asked for
    ``host`` (see :func:`slot_health_script`). Expects a ``fail MESSAGE`` function in the script."""
    unit, sock = q(lay.web_unit(port)), q(lay.web_socket_unit(port))
    socket_failed = q(f"{lay.web_socket_unit(port)} could not listen on {lay.web_socket(port)}, "
                      f"so {lay.web_unit(port)} did not start")
    start = (f"systemctl reset-failed {slot_units(lay, port)} 2>/dev/null || true\n"
             f"if ! systemctl restart {unit}; then\n"
             f"  systemctl is-failed --quiet {sock} && fail {socket_failed}\n"
             f"  fail {q(f'{lay.web_unit(port)} did not start')}\n"
             f"fi\n") if restart else ""
    return f"""mkdir -p {q(lay.slots)}
ln -sfn {q(lay.release(release))} {q(lay.slot(f".{port}.tmp"))}
mv -T {q(lay.slot(f".{port}.tmp"))} {q(lay.slot(port))}
{start}{slot_health_script(lay, port, health_path, timeout, f"release {release}", host)}"""


def flip_script(lay: Layout, port: int) -> str:
    """Shell re-pointing the app's :attr:`Layout.live_socket` at slot ``port``'s socket, atomically
    (a new link under a temp name, then ``mv -T``: rename(2)). Caddy resolves the link at each
    new upstream connection, so requests go to the new slot from the next dial on, with no
    reload and no client connection closed."""
    link = lay.live_socket
    return (f"ln -sfn {q(lay.web_socket(port))} {q(link + '.tmp')}\n"
            f"mv -T {q(link + '.tmp')} {q(link)}")


def link_script(target: str, link: str) -> str:
    """Shell pointing symlink ``link`` at ``target`` atomically (a new link under a temp name,
    then ``mv -T``: rename(2))."""
    return f"ln -sfn {q(target)} {q(link + '.tmp')}\nmv -T {q(link + '.tmp')} {q(link)}"


def restore_link_script(saved_var: str, link: str) -> str:
    """Shell putting ``link`` back to the target saved in shell variable ``saved_var`` (empty:
    there was no link, so remove it)."""
    return (f'if [ -n "${saved_var}" ]; then ln -sfn "${saved_var}" {q(link + ".tmp")} && mv -T {q(link + ".tmp")} {q(link)}; '
            f"else rm -f {q(link)}; fi")


class _SlotsModule(Module):
    """What the slot modules share: the ``release_state`` fact, the two-ports rule, and the
    checks of the values that reach their root scripts (app, release id, health path)."""

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _app_release_checks(params)
        ports = params.get("ports") or []
        if len(ports) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536
                                      for p in ports) or ports[0] == ports[1]:
            errors.append(("ports", "expected two different port numbers"))
        if (problem := health_path_problem(params.get("health_path", "/health"))) is not None:
            errors.append(("health_path", problem))
        return errors

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [release_state(params["app"])]


def idle_port(live: int | None, ports: list[int]) -> int:
    """The slot port that is not ``live`` (the first one when nothing is live)."""
    return ports[1] if live == ports[0] else ports[0]


def not_ready(state: Mapping[str, Any], release: str) -> Plan | None:
    """A failed plan when ``release`` is not ready (venv built) on the host, else None."""
    if release in state["ready"]:
        return None
    return Plan(failed=f"release {release} is not ready on this host (ready: {', '.join(state['ready']) or 'none'})")


class ReleaseSlotModule(_SlotsModule):
    """Start a release in a host's idle web slot and wait for its health check, without
    switching anything (``state: started``), or stop an idle slot (``state: stopped``).

    The deploy prepares every host this way, in parallel, before the first switch: a release
    that cannot start anywhere stops the deploy with nothing switched, and the roll itself is
    then only a Caddy flip per host (see :class:`ReleaseSwitchModule`, which finds the slot
    prepared and does not restart it).
    """

    name = "release_slot"
    doc = "Start a release in the idle web slot behind a health check (no switch), or stop the idle slot."
    params = {
        "app": Param(str, required=True, help="app name"),
        "release": Param(str, required=True, help="release id to start"),
        "ports": Param(list, required=True, help="the two local slot ports, e.g. [8000, 8001]"),
        "health_path": Param(str, default="/health"),
        "health_timeout": Param((int, float), default=30, help="seconds for the release to answer 200"),
        "health_host": Param(str, default="localhost", help="Host the health check asks for (the "
                                                            "app's first domain: what its host checks allow)"),
        "state": Param(str, default="started", choices=("started", "stopped")),
        "user": Param(str, default="shipit", help="who, for the release log"),
        "action": Param(str, default="deploy", choices=("deploy", "rollback")),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        if problems := super().check_params(params):
            return problems
        host = params.get("health_host", "localhost")
        if host != "localhost" and (problem := domain_problem(host)) is not None:
            return [("health_host", problem)]
        return []

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        return float(params["health_timeout"]) + 60.0

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        state = facts[release_state(params["app"])]
        lay = Layout(params["app"])
        release = params["release"]
        ports = [int(p) for p in params["ports"]]
        live = state["live_port"] if state["live_port"] in ports else None
        idle = idle_port(live, ports)
        if params["state"] == "stopped":
            if idle in state["active_ports"] and idle != live:
                units = slot_units(lay, idle)
                return Plan(changes=(Change(f"stop the idle slot {idle}",
                                            f"systemctl disable --quiet {units} 2>/dev/null || true\n"
                                            f"systemctl stop {units}"),))
            return Plan()
        if (failed := not_ready(state, release)) is not None:
            return failed
        if state["current"] == release and live is not None and state["slots"].get(live) == release \
                and live in state["active_ports"]:
            return Plan()  # it already serves this release
        if state["slots"].get(idle) == release and idle in state["active_ports"]:
            return Plan()  # prepared before
        timeout = int(float(params["health_timeout"]))
        unit = q(lay.web_unit(idle))
        failed_log = log_append(lay, params["user"], params["action"], release, "failed")
        script = f"""fail() {{
  systemctl stop {slot_units(lay, idle)} 2>/dev/null || true
  journalctl -u {unit} -u {q(lay.web_socket_unit(idle))} -n 15 --no-pager -o cat >&2 2>/dev/null || true
  {failed_log}
  echo "shipit: $1" >&2
  exit 1
}}
{start_slot_script(lay, release, idle, params["health_path"], timeout, host=str(params.get("health_host") or "localhost"))}"""
        return Plan(changes=(Change(f"start {release} in slot {idle}", script),))


class ReleaseSwitchModule(_SlotsModule):
    """Switch a host to a release through a second slot, health-checked, with zero downtime."""

    name = "release_switch"
    interruptible = False  # a switch cut off halfway could leave Caddy and `current` apart
    doc = "Blue/green switch of an app's web slot to a release, behind health checks and Caddy."
    params = {
        "app": Param(str, required=True, help="app name (see shipit.layout: units, paths)"),
        "release": Param(str, required=True, help="release id to serve"),
        "ports": Param(list, required=True, help="the two local slot ports, e.g. [8000, 8001]"),
        "domains": Param(list, required=True, help="site domains served by Caddy"),
        "tls_internal": Param(bool, default=True, help="Caddy's own CA (lab, private names)"),
        "acme_email": Param(str, help="the ACME account email for this site's certificates"),
        "health_path": Param(str, default="/health"),
        "health_timeout": Param((int, float), default=30, help="seconds for the release to answer 200"),
        "processes": Param(list, default=[], help="background units to restart: ['name@1', …]"),
        "action": Param(str, default="deploy", choices=("deploy", "rollback")),
        "health_host": Param(str, help="host name for the check through Caddy (default: the first "
                                       "domain; required when it is a wildcard)"),
        "user": Param(str, default="shipit", help="who, for the release log"),
        "static_url": Param(str, help="URL prefix Caddy serves from the release, e.g. /static/"),
        "static_dir": Param(str, help="the release's directory of static files, e.g. staticfiles"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        if bool(params.get("static_url")) != bool(params.get("static_dir")):
            return [("static_dir", "give static_url and static_dir together")]
        if problems := super().check_params(params):
            return problems
        if not params.get("domains"):
            return [("domains", "expected at least one domain")]
        bad = [(f"domains[{i}]", p) for i, d in enumerate(params["domains"]) if (p := domain_problem(d))]
        if bad:
            return bad
        if (problem := domain_problem(self._health_host(params))) is not None:
            return [("health_host", problem)]
        email = params.get("acme_email")
        if email is not None and (not isinstance(email, str) or not EMAIL_RE.fullmatch(email)):
            return [("acme_email", f"expected an email address (you@example.com), got {email!r}")]
        if str(self._health_host(params)).startswith("*"):
            return [("health_host", "the first domain is a wildcard: give health_host, a name it covers")]
        return []

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        """Two health waits (the slot, then through Caddy) plus starting and Caddy's reload."""
        return 2 * float(params["health_timeout"]) + 90.0

    @staticmethod
    def _health_host(params: Mapping[str, Any]) -> str:
        return str(params.get("health_host") or params["domains"][0])

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [*super().facts(params), files.file(Layout(params["app"]).caddy_site)]

    @staticmethod
    def site(params: Mapping[str, Any]) -> str:
        """The app's Caddy site for these params (:func:`site_content`; the same at every switch:
        static files are served under the ``live`` and ``previous`` links, see :class:`Static`)."""
        lay = Layout(params["app"])
        static = None
        if params.get("static_dir"):
            rel = str(params["static_dir"])
            static = Static(str(params["static_url"]), f"{lay.live_release}/{rel}", f"{lay.previous_release}/{rel}")
        return site_content(list(params["domains"]), lay.caddy_upstream,
                            bool(params["tls_internal"]), params.get("acme_email"), static)

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any], ctx: PlanContext) -> Plan:
        state = facts[release_state(params["app"])]
        lay = Layout(params["app"])
        release = params["release"]
        ports = [int(p) for p in params["ports"]]
        live = state["live_port"]
        site = self.site(params)
        site_ok = facts[files.file(lay.caddy_site)].get("sha256") == sha256_hex(site.encode())
        if (failed := not_ready(state, release)) is not None:
            return failed
        if (state["current"] == release and live in ports and state["slots"].get(live) == release
                and live in state["active_ports"]):
            changes = []
            orphans = [p for p in state["active_ports"] if p != live and p in ports]
            if orphans:
                units = slot_units(lay, *orphans)
                what = ", ".join(f"{p} ({state['slots'].get(p) or 'no release'})" for p in orphans)
                changes.append(Change(f"stop the idle slot left running by an interrupted deploy: {what}",
                                      f"systemctl disable --quiet {units} 2>/dev/null || true\n"
                                      f"systemctl stop {units}"))
            if state.get("live_link") != lay.web_socket(live):
                changes.append(Change(f"point {lay.live_socket} at the live slot {live}", flip_script(lay, live)))
            if state.get("live_release") != release:
                changes.append(Change(f"point {lay.live_release} at {release}",
                                      link_script(lay.release(release), lay.live_release)))
            if not site_ok:
                changes.append(Change(f"update {lay.caddy_site}", validated_install(
                    lay.caddy_site.removeprefix("/etc/caddy/"), site.encode())))
            return Plan(changes=tuple(changes))
        new_port = idle_port(live, ports)
        old_port = live if live in ports and live in state["active_ports"] else None
        reason = (f"{params['action']}: {state['current'] or 'nothing'} -> {release} "
                  f"(slot {new_port}{', was ' + str(old_port) if old_port else ''})")
        prepared = state["slots"].get(new_port) == release and new_port in state["active_ports"]
        if prepared:
            reason += ", prepared"
        if not site_ok:
            reason += ", Caddy site updated"
        return Plan(changes=(Change(reason, self._script(params, new_port, old_port, state["current"],
                                                         restart=not prepared, site=None if site_ok else site)),))

    def _script(self, params: Mapping[str, Any], new_port: int, old_port: int | None,
                previous: str | None = None, restart: bool = True, site: str | None = None) -> str:
        """The switch script: see the module docstring. ``site``: the Caddy site to install
        (it differs from the host's), else None (the usual switch: no Caddy reload)."""
        app = params["app"]
        lay = Layout(app)
        release = params["release"]
        domain = q(self._health_host(params))
        unit_new = q(lay.web_unit(new_port))
        unit_old = q(lay.web_unit(old_port)) if old_port else ""
        health = q(params["health_path"])
        url_caddy = "https://" + domain + health
        timeout = int(float(params["health_timeout"]))
        procs = " ".join(q(lay.process_unit(*p.split("@", 1))) for p in params["processes"])
        user, action = params["user"], params["action"]
        live_log = log_append(lay, user, action, release, "live")
        retire_log = log_append(lay, user, action, previous, "retired") if previous and previous != release else ""
        failed_log = log_append(lay, user, action, release, "failed")
        site_path = q(lay.caddy_site)
        link = q(lay.live_socket)
        if old_port:
            unflip = f"""if [ "${{old_stopped:-0}}" = 1 ]; then
    systemctl start {unit_old} || echo "shipit: could not start {lay.web_unit(old_port)} again" >&2
    ( fail() {{ echo "shipit: $1" >&2; exit 1; }}
      {slot_health_script(lay, old_port, params["health_path"], timeout, "the previous slot",
                          self._health_host(params))} ) >&2
  fi
  {flip_script(lay, old_port)}"""
        else:
            unflip = f"rm -f {link}"
        install_site = ""
        if site is not None:
            install_site = f"""prev_site=$(mktemp); had_site=0
[ -f {site_path} ] && cp -p {site_path} "$prev_site" && had_site=1
site_moved=1
( {validated_install(lay.caddy_site.removeprefix("/etc/caddy/"), site.encode())} ) >&2 || fail "Caddy rejected the site for {app}"
"""
        restore_site = f"""if [ "$had_site" = 1 ]; then cp -p "$prev_site" {q(lay.caddy_site + ".shipit-new")} && mv -f {q(lay.caddy_site + ".shipit-new")} {site_path}
    else rm -f {site_path}; fi
    systemctl reload caddy || echo "shipit: could not reload Caddy with its previous site" >&2"""
        set_previous = (link_script(lay.release(previous), lay.previous_release) + "\n"
                        if previous and previous != release else "")
        stop_old = (f"systemctl stop {slot_units(lay, old_port)}; old_stopped=1\n") if old_port else ""
        return f"""
fail() {{
  if [ "${{flipped:-0}}" = 1 ]; then
  {unflip}
  fi
  if [ "${{links_moved:-0}}" = 1 ]; then
    {restore_link_script("saved_live", lay.live_release)}
    {restore_link_script("saved_previous", lay.previous_release)}
  fi
  if [ "${{site_moved:-0}}" = 1 ]; then
    {restore_site}
  fi
  systemctl stop {slot_units(lay, new_port)} 2>/dev/null || true
  journalctl -u {unit_new} -u {q(lay.web_socket_unit(new_port))} -n 15 --no-pager -o cat >&2 2>/dev/null || true
  {failed_log}
  # last, so that the reason ends the output (a failed task reports the output's tail)
  echo "shipit: $1" >&2
  exit 1
}}
{start_slot_script(lay, release, new_port, params["health_path"], timeout, restart, self._health_host(params))}
# the static files' links: `previous` on the release live until now (Caddy's fallback for the
# names pages of the old release ask for), then `live` on the new one; the site names only them
links_moved=1
saved_live=$(readlink {q(lay.live_release)} 2>/dev/null || true)
saved_previous=$(readlink {q(lay.previous_release)} 2>/dev/null || true)
{set_previous}{link_script(lay.release(release), lay.live_release)}
# the flip: Caddy's next upstream dial reaches the new slot (no reload, no connection closed)
flipped=1
{flip_script(lay, new_port)}
{install_site}# the old slot drains: in-flight requests finish; Caddy's idle connections to it close
# and Go retries idempotent requests on a new dial, which reaches the new slot
{stop_old}cacert=-k; [ -f {CADDY_ROOT_CA} ] && cacert="--cacert {CADDY_ROOT_CA}"
deadline=$(( $(date +%s) + {timeout} ))
until code=$(curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 $cacert --resolve {domain}:443:127.0.0.1 {url_caddy} 2>/dev/null) && [ "$code" = 200 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail {q(f"release {release} answered on its slot {new_port} but not through Caddy (https://{self._health_host(params)}{params['health_path']})")}": HTTP $code"
  sleep 0.3
done
flipped=0; site_moved=0; links_moved=0
ln -sfn {q(lay.release(release))} {q(lay.current + ".tmp")}
mv -T {q(lay.current + ".tmp")} {q(lay.current)}
echo {new_port} > {q(lay.live_port_file + ".tmp")} && mv -f {q(lay.live_port_file + ".tmp")} {q(lay.live_port_file)}
systemctl enable --quiet {slot_units(lay, new_port)}
{f"systemctl disable --quiet {slot_units(lay, old_port)}" if old_port else ""}
{f"systemctl enable --quiet {procs}; systemctl restart {procs}" if procs else ""}
{live_log}
{retire_log}
"""
