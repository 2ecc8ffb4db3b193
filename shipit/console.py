"""``shipit console``: a command in the app's CURRENT release, in the app's own environment.

Pure command builders (words, quoted only by the caller through :func:`shipit.quoting.q`):

- :func:`current_script` / :func:`parse_current`: which release ``current`` points to;
- :func:`console_argv`: ``systemd-run`` running the command as a transient service with what
  the app's units get: the app user and group, the release dir as working directory, the
  release's ``release.env`` and its env file read by systemd itself (so secrets reach the
  process through the 0600 env file, never through an argv, and values of any bytes arrive
  exactly), the release's venv first on ``PATH``, and the units' sandbox
  (:func:`shipit.hardening.directives`: the system and the release read-only, ``shared/``
  writable, no privileges). ``--pty`` when a person is at a terminal
  (``kamal app exec -i``, ``fly ssh console``), ``--pipe`` otherwise (output streamed, the
  exit status passed on).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shipit import hardening
from shipit.layout import Layout
from shipit.modules.release_command import release_environment
from shipit.quoting import q

_RELEASE_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,64}$")
#: What ``shipit console ENV`` runs with no command: an interactive shell.
DEFAULT_COMMAND = ("bash", "-l")


def current_script(layout: Layout) -> str:
    """Shell printing the release id ``current`` points to (nothing when there is none)."""
    return f"readlink -- {q(layout.current)} 2>/dev/null | sed 's|.*/||'\n"


def parse_current(stdout: str) -> str | None:
    """The release id printed by :func:`current_script`, or None (no release, or not an id)."""
    text = stdout.strip()
    return text if _RELEASE_ID.match(text) else None


def console_argv(layout: Layout, release: str, user: str, command: Sequence[str], *, tty: bool,
                 timeout: float | None = None) -> list[str]:
    """The ``systemd-run`` argv running ``command`` (words, not a shell line) in ``release``.

    ``command`` is run through ``/bin/sh -c 'exec "$@"'`` inside the unit, so its first word
    is found on the unit's ``PATH`` (the venv's ``bin`` first: ``python`` is the release's).
    ``tty``: a pseudo-terminal (``--pty``) or pipes (``--pipe``, stdin from /dev/null by the
    caller). ``timeout``: seconds before systemd stops it (``RuntimeMaxSec``); None: no limit.
    """
    props = [
        *release_environment(layout, release, user),
        f"Environment=VIRTUAL_ENV={layout.venv(release)}",
        # the sandbox of the app's own units: what the app cannot do, its console cannot either
        *hardening.directives([layout.shared]),
    ]
    if timeout is not None:
        props.append(f"RuntimeMaxSec={max(1, int(timeout))}")
    argv = ["systemd-run", "--quiet", "--wait", "--collect", "--service-type=exec",
            "--pty" if tty else "--pipe"]
    for prop in props:
        argv += ["-p", prop]
    return argv + ["/bin/sh", "-c", 'exec "$@"', "shipit-console", *(command or DEFAULT_COMMAND)]


def pipe_script(argv: Sequence[str]) -> str:
    """``argv`` as one shell line with stdin from /dev/null (the script itself is on stdin)."""
    return " ".join(q(w) for w in argv) + " </dev/null\n"
