"""The web server command of a release: which server runs the app, how, bound where.

Pure: :func:`server_argv` turns (server, interface, app reference, bind, workers, threads)
into the argv of the server process, nothing else. It is the one place that spells a web
server's command line; the release's ``release.env`` carries its result per slot (see
:func:`shipit.deploy.render_release_env`) and the web unit runs it (``exec`` in ``sh -c``, so
the server is the unit's main process and receives systemd's SIGTERM itself).

Servers (the choices of the app spec's ``web.server``):

``uvicorn`` (ASGI; the default for ``web.asgi``)
    ``uvicorn APP [--factory] --host H --port P --workers N --timeout-graceful-shutdown S --no-access-log``
    (``--uds PATH`` for a unix socket, ``--fd 3`` for the socket systemd passes: a web slot's).
``gunicorn`` (WSGI; the default for ``web.wsgi``; ASGI with uvicorn's worker class)
    ``gunicorn APP --bind H:P --workers N --graceful-timeout S`` plus ``--threads T`` (the
    ``gthread`` worker, WSGI only) or ``--worker-class uvicorn_worker.UvicornWorker`` (ASGI: the
    app must depend on ``uvicorn-worker``); ``--bind unix:PATH`` for a unix socket; no ``--bind`` for the socket systemd passes (a web
    slot's: gunicorn finds it by ``LISTEN_FDS``).

Both stop gracefully on SIGTERM: they stop accepting, let requests in flight finish for up to
:data:`GRACEFUL_SECONDS`, then exit (the web unit's ``TimeoutStopSec`` is longer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GRACEFUL_SECONDS = 20
"""Seconds a stopping server lets in-flight requests finish (the unit waits 30 s)."""

SERVERS: dict[str, tuple[str, ...]] = {"asgi": ("uvicorn", "gunicorn"), "wsgi": ("gunicorn",)}
"""The servers each interface accepts; the first is the default."""

DISTRIBUTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("asgi", "uvicorn"): ("uvicorn",),
    ("wsgi", "gunicorn"): ("gunicorn",),
    ("asgi", "gunicorn"): ("gunicorn", "uvicorn-worker"),
}
"""The distributions the app's dependencies must include for each (interface, server)."""

APP_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?$")
"""``module.path:attribute``, or ``module.path:factory()`` for an application factory called
with no arguments (Flask's ``create_app()`` pattern); no spaces: it is split as one word."""

_SAFE_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+(\(\))?$")


def is_factory(app: str) -> bool:
    """Whether the app reference ``app`` (:data:`APP_REF`) names a factory: ``mod:create_app()``."""
    return app.endswith("()")


@dataclass(frozen=True)
class Bind:
    """Where the server listens: a TCP ``host`` and ``port``, a unix socket ``path``, or a
    listening socket inherited as file descriptor ``fd`` (systemd socket activation: ``path``
    then names the socket the ``.socket`` unit holds, for the record; the server binds nothing).

    ``port`` may be a string for a placeholder the caller substitutes (e.g. systemd's ``%i``).
    A web slot's bind is :meth:`shipit.layout.Layout.web_bind` (``fd`` 3).
    """

    host: str = "127.0.0.1"
    port: int | str | None = None
    path: str | None = None
    fd: int | None = None

    @classmethod
    def tcp(cls, port: int | str, host: str = "127.0.0.1") -> Bind:
        return cls(host=host, port=port)

    @classmethod
    def unix(cls, path: str) -> Bind:
        return cls(path=path)

    @classmethod
    def systemd(cls, path: str, fd: int = 3) -> Bind:
        """The socket systemd's ``.socket`` unit listens on at ``path``, passed as ``fd`` (3 is
        ``SD_LISTEN_FDS_START``, the first socket systemd passes)."""
        return cls(path=path, fd=fd)

    def uvicorn_args(self) -> list[str]:
        """uvicorn's bind options: ``--fd N``, ``--uds PATH`` or ``--host H --port P``."""
        if self.fd is not None:
            return ["--fd", str(self.fd)]
        if self.path:
            return ["--uds", self.path]
        return ["--host", self.host, "--port", str(self.port)]

    def gunicorn_args(self) -> list[str]:
        """gunicorn's ``--bind``: ``unix:PATH`` or ``H:P``; nothing for systemd's socket.

        gunicorn takes the sockets systemd passes by itself (``LISTEN_FDS``/``LISTEN_PID``: the
        web unit ``exec``s it, so the pid matches) and then never unlinks the socket's path at
        exit. A ``--bind fd://3`` beside them would make it adopt fd 3 twice: the first adoption
        closes the descriptor, the second fails with EBADF (gunicorn 23, seen on the lab).
        """
        if self.fd is not None:
            return []
        return ["--bind", f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"]


def server_argv(server: str, interface: str, app: str, bind: Bind, workers: int | str,
                threads: int | None = None, graceful: int = GRACEFUL_SECONDS) -> tuple[str, ...]:
    """The argv (words, unquoted) of the web server serving ``app`` on ``bind``.

    Args:
        server: ``uvicorn`` or ``gunicorn`` (see :data:`SERVERS`).
        interface: ``asgi`` or ``wsgi``.
        app: ``module:attribute`` or ``module:factory()`` (:data:`APP_REF`); gunicorn is given
            a factory call as it is (gunicorn calls it), uvicorn its name and ``--factory``.
        bind: where to listen.
        workers: worker processes.
        threads: gunicorn's threads per worker (WSGI only; None or 1: the sync worker).
        graceful: seconds in-flight requests get on SIGTERM.

    The first word is the executable's name (the caller prefixes the venv's ``bin/``). Every
    word matches ``[A-Za-z0-9_@%+=:,./-]+``, a factory call ending in ``()``, so the argv
    survives ``sh``'s word splitting (parentheses from an expansion are not shell syntax).

    Raises:
        ValueError: an unknown server or interface, a server the interface does not accept,
            threads with ASGI or uvicorn, a malformed app reference, or a word that would not
            survive word splitting.
    """
    if interface not in SERVERS or server not in SERVERS[interface]:
        raise ValueError(f"server {server!r} does not serve {interface!r} apps; expected one of "
                         f"{', '.join(SERVERS.get(interface, ()))}")
    if not APP_REF.match(app):
        raise ValueError(f"expected module:attribute or module:factory(), got {app!r}")
    if threads not in (None, 1) and (server != "gunicorn" or interface != "wsgi"):
        raise ValueError("threads are gunicorn's, for WSGI apps")
    if server == "uvicorn":
        # uvicorn calls a factory itself when told so (--factory) and takes its bare name
        factory = ["--factory"] if is_factory(app) else []
        argv = ["uvicorn", app.removesuffix("()"), *factory, *bind.uvicorn_args(), "--workers", str(workers),
                "--timeout-graceful-shutdown", str(graceful), "--no-access-log"]
    else:
        argv = ["gunicorn", app, *bind.gunicorn_args(), "--workers", str(workers),
                "--graceful-timeout", str(graceful)]
        if interface == "asgi":
            argv += ["--worker-class", "uvicorn_worker.UvicornWorker"]
        elif threads and threads > 1:
            argv += ["--threads", str(threads)]
    for word in argv:
        if not _SAFE_WORD.match(word):
            raise ValueError(f"{word!r} cannot be part of the server's command line")
    return tuple(argv)


def missing_distributions(interface: str, server: str, requirements: tuple[str, ...] | list[str]) -> list[str]:
    """Pure: the distributions ``server`` needs that the artifact's pinned ``requirements``
    (``name==version`` lines) lack, e.g. ``["gunicorn"]`` for a WSGI app without it."""
    have = {re.sub(r"[-_.]+", "-", r.split("==", 1)[0]).lower() for r in requirements}
    return [d for d in DISTRIBUTIONS.get((interface, server), ()) if d not in have]
