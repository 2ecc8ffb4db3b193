"""Deploy hooks: the app's executables in ``.shipit/hooks/``, run on the runner (as Kamal's
``.kamal/hooks`` and Capistrano's ``before``/``after`` tasks).

Hooks (each optional): ``pre-build`` (before the artifact is built; the release id is not
known yet), ``pre-deploy`` (artifact built, before the deploy lock), ``post-deploy`` (after a
successful deploy), ``deploy-failed`` (after a deploy that stopped), ``post-rollback``. A
``pre-*`` hook that exits non-zero (or runs past its timeout) stops the deploy before the
lock is taken: nothing on any host was changed. A ``post-*``/``deploy-failed`` hook's failure
is a warning only: the deploy has already happened (or failed).

A hook runs in the app's directory with the runner's environment plus (:func:`hook_env`):
``SHIPIT_HOOK``, ``SHIPIT_ENV``, ``SHIPIT_APP``, ``SHIPIT_ACTION`` (deploy | rollback),
``SHIPIT_RELEASE`` (the release id, "" for ``pre-build``), ``SHIPIT_HOSTS`` (the web hosts,
comma-separated), ``SHIPIT_USER`` (user@runner), and for the ones after the fact
``SHIPIT_RESULT`` (ok | failed), ``SHIPIT_DURATION`` (seconds, e.g. ``42.3``) and
``SHIPIT_ERROR`` (why it failed, else ""). Its stdout and stderr go to shipit's stderr (so
``--json`` output stays one document); its stdin is /dev/null.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipit.errors import Problem, ShipitError, ValidationError

HOOKS = ("pre-build", "pre-deploy", "post-deploy", "deploy-failed", "post-rollback")
HOOK_DIR = Path(".shipit") / "hooks"
#: Seconds a hook may run before it is killed (and, for a pre-* hook, the deploy stopped).
HOOK_TIMEOUT = 600.0


class HookFailed(ShipitError):
    """A ``pre-*`` hook exited non-zero or timed out: the deploy did not start (exit 1)."""


def hook_env(hook: str, env_name: str, app: str, action: str, release: str, hosts: Sequence[str],
             user: str, result: str | None = None, duration: float | None = None,
             error: str | None = None) -> dict[str, str]:
    """The ``SHIPIT_*`` variables a hook gets (see the module docstring). Pure."""
    values = {"SHIPIT_HOOK": hook, "SHIPIT_ENV": env_name, "SHIPIT_APP": app, "SHIPIT_ACTION": action,
              "SHIPIT_RELEASE": release, "SHIPIT_HOSTS": ",".join(hosts), "SHIPIT_USER": user}
    if result is not None:
        values["SHIPIT_RESULT"] = result
        values["SHIPIT_DURATION"] = f"{duration or 0.0:.1f}"
        values["SHIPIT_ERROR"] = error or ""
    return values


def find_hooks(app_dir: str | Path) -> dict[str, Path]:
    """The app's hooks by name (only those present).

    Raises:
        ValidationError: a file in ``.shipit/hooks`` that is not a known hook (with the
            closest name), or a hook that is not executable.
    """
    import difflib

    folder = Path(app_dir) / HOOK_DIR
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    problems = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.endswith(("~", ".sample", ".md")):
            continue
        if path.name not in HOOKS:
            close = difflib.get_close_matches(path.name, HOOKS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(Problem(str(path), 0, path.name, f"not a hook shipit runs (hooks: {', '.join(HOOKS)}){hint}"))
        elif not path.is_file() or not os.access(path, os.X_OK):
            problems.append(Problem(str(path), 0, path.name, f"the hook is not executable: chmod +x {path}"))
        else:
            found[path.name] = path
    if problems:
        raise ValidationError(problems)
    return found


@dataclass(frozen=True)
class Hooks:
    """The hooks of one app directory, run with :meth:`run`."""

    app_dir: str
    found: Mapping[str, Path]
    timeout: float = HOOK_TIMEOUT

    @classmethod
    def load(cls, app_dir: str | Path) -> Hooks:
        """Raises: ValidationError (see :func:`find_hooks`)."""
        return cls(str(app_dir), find_hooks(app_dir))

    def run(self, hook: str, variables: Mapping[str, str]) -> None:
        """Run ``hook`` if the app has it.

        Raises:
            HookFailed: a ``pre-*`` hook exited non-zero, could not start, or timed out.
            Other hooks' failures are printed as a warning on stderr and not raised.
        """
        path = self.found.get(hook)
        if path is None:
            return
        why = self._run(path, variables)
        if why is None:
            return
        if hook.startswith("pre-"):
            raise HookFailed(f"the {hook} hook ({path}) {why}; the deploy did not start, nothing was changed")
        print(f"warning: the {hook} hook ({path}) {why}", file=sys.stderr, flush=True)

    def _run(self, path: Path, variables: Mapping[str, str]) -> str | None:
        try:
            sink: int | None = sys.stderr.fileno()  # live, when stderr is a real file
        except (OSError, ValueError):
            sink = None  # (click's test runner) collected, then written
        try:
            done = subprocess.run([str(path.resolve())], cwd=self.app_dir, env={**os.environ, **variables},
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if sink is None else sink,
                                  stderr=subprocess.STDOUT if sink is None else sink,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            return f"was killed after {self.timeout:g} s (its timeout)"
        except OSError as exc:
            return f"could not start: {exc}"
        if sink is None and done.stdout:
            sys.stderr.write(done.stdout.decode("utf-8", "replace"))
            sys.stderr.flush()
        return None if done.returncode == 0 else f"exited {done.returncode}"
