"""Where an app lives on a host: every path, unit name and variable name, derived in one place.

Nothing else in shipit spells these: modules, facts, the deploy and the built-in playbooks
(through the ``app.paths`` and ``app.units`` variables, see :meth:`Layout.variables`) all ask
a :class:`Layout`. The shape on a host, for an app named ``example``::

    /srv/example/                       root (root:root 0755)
      releases/<id>/                    one release: code, venv/, .shipit/ (root-owned)
      releases/<id>.tar.gz              the uploaded artifact of that release (before parts)
      parts/<sha256>.gz                 the artifact parts store (content-addressed; pruned
                                        with the releases that use them)
      parts/<sha256>.d/                 a deps part unpacked once; releases hard-link it
      env/<id>.env                      the release's environment (root:root 0600; systemd
                                        reads it before dropping privileges, the app user
                                        can neither read nor replace it)
      shared/                           persistent data of the app user (media, sqlite…)
      shared/<dir>                      a shared dir (``shared_dirs``), linked as
                                        releases/<id>/<dir> -> ../../shared/<dir>
      current -> releases/<id>          switched atomically
      slots/<port> -> ../releases/<id>  the two web slots (blue/green)
      web.sock -> /run/example/web-<port>/web.sock
                                        what Caddy dials: the live slot's socket, switched
                                        atomically (rename), so no Caddy reload at a switch
      live -> releases/<id>             the live slot's release, switched with web.sock
                                        (Caddy serves static files under it)
      previous -> releases/<id>         the release live before it (static fallback)
      .live-port                        the live slot (also written at a switch)
      .deploy-lock/info                 the deploy lock (who, when, which release)
      releases.log                      one line per release event (see shipit.releases)
      .paused-units                     the app's units a database restore stopped (web
                                        hosts; started again and removed after it)
      backups/<name>.dump               on the db host: pg_dump -Fc of the app's database
                                        (dir postgres:postgres 0700; see shipit.backups)
    /run/example/web-<port>/web.sock    a web slot's unix socket (held by systemd:
                                        example-web@<port>.socket)
    /etc/caddy/sites/example.caddy      the app's Caddy site
    /run/caddy/admin.sock               Caddy's admin API (root and caddy only)
    example-web@<port>.service          a web slot (and its example-web@<port>.socket);
                                        example-<process>@<n>.service a process
    example-job-<name>.service          a scheduled job (``schedule:``), started by its
    example-job-<name>.timer            timer (/etc/systemd/system/, both)

Pure: no I/O. Ids and names are validated elsewhere (app names ``[a-z][a-z0-9-]*``, release
ids ``YYYYmmddTHHMMSSZ-<hex>``); this module only joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipit.webserver import Bind

BASE = "/srv"
CADDY_SITES = "/etc/caddy/sites"
CADDY_RUNTIME_NAME = "caddy"
"""Caddy's systemd ``RuntimeDirectory=`` (``/run/caddy``, 0750 caddy:caddy)."""
CADDY_RUNTIME_DIR = f"/run/{CADDY_RUNTIME_NAME}"
CADDY_ADMIN_SOCKET = f"{CADDY_RUNTIME_DIR}/admin.sock"
"""Caddy's admin API (a unix socket: only root and the caddy user reach it)."""
RUN = "/run"
SYSTEMD_UNIT_DIR = "/etc/systemd/system"
"""Where shipit writes unit files (the ``systemd_unit`` module, the scheduled jobs)."""


@dataclass(frozen=True)
class Layout:
    """Every path and unit name of app ``app`` on a host (see the module docstring)."""

    app: str
    base: str = BASE

    # ---- app-wide paths ------------------------------------------------------------------
    @property
    def root(self) -> str:
        """``/srv/<app>``."""
        return f"{self.base}/{self.app}"

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def parts(self) -> str:
        """The content-addressed store of artifact parts (root:root 0755)."""
        return f"{self.root}/parts"

    def part(self, sha256: str) -> str:
        """``/srv/<app>/parts/<sha256>.gz``: one stored part, named by its bytes' digest."""
        return f"{self.parts}/{sha256}.gz"

    def part_dir(self, sha256: str) -> str:
        """``/srv/<app>/parts/<sha256>.d``: a deps part unpacked (releases hard-link its files)."""
        return f"{self.parts}/{sha256}.d"

    @property
    def env_dir(self) -> str:
        """Root-owned directory of the releases' env files (mode 0700)."""
        return f"{self.root}/env"

    @property
    def shared(self) -> str:
        """The app user's persistent data (owned by the app user, never pruned)."""
        return f"{self.root}/shared"

    def shared_dir(self, name: str) -> str:
        """``shared/<name>``: a shared dir of the app spec (a validated relative path)."""
        return f"{self.shared}/{name}"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def slots(self) -> str:
        return f"{self.root}/slots"

    @property
    def live_port_file(self) -> str:
        return f"{self.root}/.live-port"

    @property
    def live_socket(self) -> str:
        """The symlink Caddy's upstream dials (``unix/<this>``): it points at the live slot's
        :meth:`web_socket`; a switch re-points it with a rename (no Caddy reload)."""
        return f"{self.root}/web.sock"

    @property
    def live_release(self) -> str:
        """``/srv/<app>/live -> releases/<id>``: the release the live slot serves, re-pointed
        (rename) with :attr:`live_socket` at a switch. Caddy serves the app's static files
        under it, so its site names no release and needs no reload at a switch."""
        return f"{self.root}/live"

    @property
    def previous_release(self) -> str:
        """``/srv/<app>/previous -> releases/<id>``: the release live before :attr:`live_release`
        (Caddy's fallback for static names the live release no longer has)."""
        return f"{self.root}/previous"

    @property
    def caddy_upstream(self) -> str:
        """The ``reverse_proxy`` upstream of the app's Caddy site: ``unix/`` + :attr:`live_socket`."""
        return f"unix/{self.live_socket}"

    @property
    def lock_dir(self) -> str:
        """The deploy lock: a directory created atomically with ``mkdir``."""
        return f"{self.root}/.deploy-lock"

    @property
    def lock_info(self) -> str:
        return f"{self.lock_dir}/info"

    @property
    def release_log(self) -> str:
        return f"{self.root}/releases.log"

    @property
    def ports_file(self) -> str:
        """The two local ports this app's web slots use (written at provisioning)."""
        return f"{self.root}/.ports"

    @property
    def all_ports_files(self) -> str:
        """A glob matching every app's :attr:`ports_file` on the host (for clash checks)."""
        return f"{self.base}/*/.ports"

    @property
    def caddy_site(self) -> str:
        return f"{CADDY_SITES}/{self.app}.caddy"

    @property
    def paused_units(self) -> str:
        """The app's units a database restore stopped on a web host, one a line (see
        :func:`shipit.backups.pause_script`); removed once they are started again."""
        return f"{self.root}/.paused-units"

    # ---- on the database host --------------------------------------------------------------
    @property
    def backups_dir(self) -> str:
        """``/srv/<app>/backups`` on the db host: the database's dumps (postgres:postgres 0700,
        written and pruned by the postgres user only)."""
        return f"{self.root}/backups"

    def backup(self, name: str) -> str:
        """``/srv/<app>/backups/<name>.dump``: one ``pg_dump -Fc`` (``name``: a validated
        backup name, e.g. the release it was taken before)."""
        return f"{self.backups_dir}/{name}.dump"

    # ---- per release ---------------------------------------------------------------------
    def release(self, release_id: str) -> str:
        """``/srv/<app>/releases/<id>``."""
        return f"{self.releases}/{release_id}"

    def tarball(self, release_id: str) -> str:
        return f"{self.releases}/{release_id}.tar.gz"

    def env_file(self, release_id: str) -> str:
        return f"{self.env_dir}/{release_id}.env"

    def meta(self, release_id: str) -> str:
        """The release's own metadata dir (``.shipit/``: release.env, markers, wheels)."""
        return f"{self.release(release_id)}/.shipit"

    def release_parts(self, release_id: str) -> str:
        """The sha256 of each part the release was unpacked from, one a line (written last)."""
        return f"{self.meta(release_id)}/parts"

    def release_env(self, release_id: str) -> str:
        """What the release runs (no secrets): ``SHIPIT_*`` lines read by its units."""
        return f"{self.meta(release_id)}/release.env"

    def venv(self, release_id: str) -> str:
        return f"{self.release(release_id)}/venv"

    def in_release(self, release_id: str, rel: str) -> str:
        """A path inside a release (``rel`` a validated relative path, e.g. ``staticfiles``)."""
        return f"{self.release(release_id)}/{rel}"

    def slot(self, port: int | str) -> str:
        """A web slot's symlink (``port`` may be systemd's ``%i``)."""
        return f"{self.slots}/{port}"

    # ---- where a web slot listens ------------------------------------------------------------
    def web_socket(self, port: int | str) -> str:
        """``/run/<app>/web-<port>/web.sock``: the unix socket slot ``port`` listens on (its
        ``.socket`` unit's ``ListenStream``; systemd makes the directory)."""
        return f"{RUN}/{self.app}/web-{port}/web.sock"

    def web_bind(self, port: int | str) -> Bind:
        """How the web server of slot ``port`` (or ``%i``) binds: on the listening socket its
        ``.socket`` unit holds (:meth:`web_socket`), passed as fd 3
        (:meth:`shipit.webserver.Bind.systemd`). Because systemd owns the socket, it outlives
        the server: connections arriving while a crashed master restarts wait in its queue
        instead of being refused or reset."""
        return Bind.systemd(self.web_socket(port))

    def slot_of_socket(self, path: str) -> int | None:
        """The slot port whose :meth:`web_socket` is ``path`` (what :attr:`live_socket` points
        to), else None."""
        head, sep, tail = path.partition(f"{RUN}/{self.app}/web-")
        port = tail.removesuffix("/web.sock")
        return int(port) if sep and not head and port.isdigit() and tail.endswith("/web.sock") else None

    # ---- units -----------------------------------------------------------------------------
    @property
    def web_unit_template(self) -> str:
        return f"{self.app}-web@.service"

    @property
    def web_unit_prefix(self) -> str:
        """``<app>-web@``: a web slot's unit is this, the port, then ``.service``."""
        return f"{self.app}-web@"

    def web_unit(self, port: int | str) -> str:
        return f"{self.web_unit_prefix}{port}.service"

    @property
    def web_socket_unit_template(self) -> str:
        return f"{self.app}-web@.socket"

    def web_socket_unit(self, port: int | str) -> str:
        """The ``.socket`` unit holding slot ``port``'s listening socket (see :meth:`web_bind`)."""
        return f"{self.web_unit_prefix}{port}.socket"

    def process_unit_template(self, process: str) -> str:
        return f"{self.app}-{process}@.service"

    def process_unit(self, process: str, instance: int | str) -> str:
        return f"{self.app}-{process}@{instance}.service"

    @property
    def job_unit_prefix(self) -> str:
        """``<app>-job-``: a scheduled job's units are this, the job's name, then ``.service``
        (what runs) and ``.timer`` (when)."""
        return f"{self.app}-job-"

    def job_service(self, job: str) -> str:
        """``<app>-job-<job>.service``: one run of scheduled job ``job`` (``*``: a glob)."""
        return f"{self.job_unit_prefix}{job}.service"

    def job_timer(self, job: str) -> str:
        """``<app>-job-<job>.timer``: when scheduled job ``job`` runs (``*``: a glob)."""
        return f"{self.job_unit_prefix}{job}.timer"

    def job_of_unit(self, unit: str) -> str | None:
        """The job name of one of this app's job units (``.service`` or ``.timer``), else None."""
        for suffix in (".service", ".timer"):
            if unit.startswith(self.job_unit_prefix) and unit.endswith(suffix):
                name = unit[len(self.job_unit_prefix):-len(suffix)]
                return name or None
        return None

    @staticmethod
    def job_variable(job: str) -> str:
        """The ``SHIPIT_JOB_<name>`` variable of a release's ``release.env`` holding a job's
        command line (``-`` as ``_``)."""
        return "SHIPIT_JOB_" + job.replace("-", "_")

    @property
    def migrate_unit(self) -> str:
        """The transient unit migrations and release commands run in (``systemd-run``)."""
        return f"{self.app}-release-command"

    def unit_kind(self, unit: str) -> tuple[str, str] | None:
        """``("web", "8001")`` or ``("<process>", "1")`` for one of this app's units, else None.

        The app's name may itself contain ``-``: it is matched as a whole prefix.
        """
        prefix = f"{self.app}-"
        if not unit.startswith(prefix) or "@" not in unit:
            return None
        name, _, rest = unit[len(prefix):].partition("@")
        instance = rest.removesuffix(".service")
        if not name or not instance:
            return None
        return name, instance

    @staticmethod
    def command_variable(process: str) -> str:
        """The ``SHIPIT_COMMAND_<name>`` variable holding a process's command line."""
        return "SHIPIT_COMMAND_" + process.replace("-", "_")

    # ---- for the playbooks -----------------------------------------------------------------
    def variables(self, release_id: str = "") -> dict[str, Any]:
        """``{"paths": {...}, "units": {...}, "web_bind": {...}}``, the playbooks' ``app.paths``
        / ``app.units`` / ``app.web_bind`` (the server arguments binding slot ``%i``:
        ``{"uvicorn": "--fd 3", "gunicorn": ""}``: see :meth:`web_bind`).

        Release paths (``paths.release``, ``paths.tarball``, ...) are those of ``release_id``
        ("" outside a deploy: then they are not given).
        """
        paths: dict[str, str] = {
            "root": self.root, "releases": self.releases, "env_dir": self.env_dir,
            "shared": self.shared, "current": self.current, "slots": self.slots,
            "release_log": self.release_log, "caddy_site": self.caddy_site,
            "ports_file": self.ports_file, "parts": self.parts, "live_socket": self.live_socket,
            "live_release": self.live_release, "previous_release": self.previous_release,
            "caddy_sites": CADDY_SITES, "slot_template": self.slot("%i"),
            "caddy_runtime_name": CADDY_RUNTIME_NAME, "caddy_admin_socket": CADDY_ADMIN_SOCKET,
            "web_socket_template": self.web_socket("%i"),
        }
        if release_id:
            paths.update({"release": self.release(release_id), "tarball": self.tarball(release_id),
                          "env_file": self.env_file(release_id), "meta": self.meta(release_id),
                          "release_env": self.release_env(release_id), "venv": self.venv(release_id)})
        units = {"web_template": self.web_unit_template, "web_prefix": self.web_unit_prefix,
                 "web_socket_template": self.web_socket_unit_template,
                 "web_socket": self.web_socket_unit("%i")}
        bind = self.web_bind("%i")
        web_bind = {"uvicorn": " ".join(bind.uvicorn_args()), "gunicorn": " ".join(bind.gunicorn_args())}
        return {"paths": paths, "units": units, "web_bind": web_bind}
