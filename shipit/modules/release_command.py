"""The ``release_command`` module: run a command in a release's environment, as the app user.

For ``migrate`` and ``release:`` steps. The command runs in a transient systemd service
(``systemd-run --wait --pipe``), so it gets exactly what the app's units get: the app user and
group, the release directory as working directory, the release's ``release.env`` and env file
read by systemd (the same parser as the units: values of any bytes reach the process as
written), the release's venv first on ``PATH`` for the WHOLE command line (``a && b`` both see
it), the units' sandbox (:mod:`shipit.hardening`: a private ``/tmp``, no privileges, a
read-only system but the shared dir), and ``RuntimeMaxSec`` = ``timeout``: a command that
runs longer is stopped by systemd and the task fails. Output is streamed back over the pipe.
The unit is named ``<app>-release-command``: a second one cannot start while one still runs.
When the command is stopped (Ctrl-C, the task's timeout) the unit is stopped too (systemd-run
alone would leave it running), and a unit left running by a deploy that died (SIGKILL) is
stopped, with a line saying so, before the new one starts: the deploy lock says no other
deploy runs.

It always runs (the command is expected to be idempotent, as ``alembic upgrade head`` and
``manage.py migrate`` are: the database decides what is pending).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit import hardening
from shipit.layout import Layout
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, mask
from shipit.modules.deploy_state import _app_release_checks
from shipit.quoting import q

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def release_environment(layout: Layout, release: str, user: str) -> list[str]:
    """The ``systemd-run -p`` properties that put a command in ``release``'s environment, as
    the app's units have it: ``user`` (and its group), the release dir, ``release.env`` and
    the release's env file (read by systemd: secrets never in an argv), the venv first on
    ``PATH``. Pure: words, unquoted."""
    return [
        f"User={user}", f"Group={user}", f"WorkingDirectory={layout.release(release)}",
        f"EnvironmentFile={layout.release_env(release)}",
        f"EnvironmentFile={layout.env_file(release)}",
        f"Environment=PATH={layout.venv(release)}/bin:{DEFAULT_PATH}",
    ]


def systemd_run_argv(layout: Layout, release: str, command: str, user: str, timeout: float,
                     extra_env: Mapping[str, str] | None = None) -> list[str]:
    """The ``systemd-run`` argv running ``command`` (sh -c) in ``release`` as ``user``.

    ``timeout`` is in seconds (whole seconds, at least 1). Pure: returns words, unquoted.
    """
    props = [
        *release_environment(layout, release, user),
        f"RuntimeMaxSec={max(1, int(timeout))}",
        *hardening.directives([layout.shared]),  # the sandbox of the app's own units
    ]
    props += [f"Environment={k}={v}" for k, v in (extra_env or {}).items()]
    argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
            f"--unit={layout.migrate_unit}"]
    for prop in props:
        argv += ["-p", prop]
    return argv + ["/bin/sh", "-c", command]


class ReleaseCommandModule(Module):
    """Run a command line in a release's environment as the app user (``systemd-run``)."""

    name = "release_command"
    doc = "Run a command in a release's environment as the app user (migrations, release steps)."
    params = {
        "app": Param(str, required=True, help="app name (the app user has the same name)"),
        "release": Param(str, required=True, help="release id to run it in"),
        "cmd": Param(str, required=True, help="the command line (sh -c), e.g. alembic upgrade head"),
        "timeout": Param((int, float), default=600, help="seconds before systemd stops it"),
        "label": Param(str, default="run", help="what it is, for the report (migrate, release)"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _app_release_checks(params)
        cmd = params.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip() or "\n" in cmd or "\0" in cmd:
            errors.append(("cmd", "expected a one-line command"))
        timeout = params.get("timeout")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < 10**6:
            errors.append(("timeout", "expected a number of seconds > 0"))
        return errors

    def plan(self, params: Mapping[str, Any], facts: Mapping[Any, Any], ctx: PlanContext) -> Plan:
        lay = Layout(params["app"])
        argv = systemd_run_argv(lay, params["release"], params["cmd"], params["app"],
                                float(params["timeout"]))
        unit = q(f"{lay.migrate_unit}.service")
        # systemd-run --wait leaves the unit running when it is itself stopped (Ctrl-C, a
        # timeout): stop the unit then; and stop one a dead deploy left running before starting.
        # The client is killed (it ignores TERM) and reaped BEFORE the stop: a client that is
        # still starting up when the signal comes would otherwise start the unit after the
        # stop found none, and the migration ran on after shipit had gone (seen in CI under
        # load). ``$!`` is empty when the signal comes before the client is forked.
        on_signal = ('[ -z "$!" ] || kill -KILL "$!" 2>/dev/null || :; '
                     '[ -z "$!" ] || wait "$!" 2>/dev/null || :; '
                     f"systemctl stop {unit} 2>/dev/null || :; exit 143")
        script = (f"if [ \"$(systemctl show -P LoadState {unit})\" = loaded ]; then\n"
                  f"  echo shipit: stopping {unit}, left running by an earlier deploy >&2\n"
                  f"  systemctl stop {unit}\n"
                  "fi\n"
                  f"trap {q(on_signal)} HUP INT TERM\n"
                  # in the background and waited for: a trap runs only once the foreground
                  # command ends, and systemd-run --wait does not end on SIGTERM (the unit
                  # went on after Ctrl-C); ``wait`` is cut short by the signal at once
                  + " ".join(q(w) for w in argv) + " </dev/null &\n"
                  "wait $!\n"
                  "trap - HUP INT TERM")
        reason = f"{params['label']}: {mask(params['cmd'], ctx.secrets)}"
        return Plan(changes=(Change(reason, script),))

    def timeout_of(self, params: Mapping[str, Any]) -> float:
        """Seconds the executor waits for the remote command: systemd's limit plus a margin."""
        return float(params["timeout"]) + 30.0
