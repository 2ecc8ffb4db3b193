"""Read the Debian mirror this machine uses from its own apt configuration.

The lab's hosts must use the same mirror as the machine that runs them, and over plain HTTP:
the hosts do not trust any TLS interception CA this machine may trust. Nothing here names a
mirror host; it is always read at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shipit.errors import PrerequisiteError

__all__ = ["parse_deb822_mirror", "parse_one_line_mirror", "read_apt_mirror", "as_http",
           "parse_deb822_security", "parse_one_line_security", "read_security_mirror",
           "render_sources_list"]


def _is_debian_main(uri: str, suites: list[str]) -> bool:
    """True when ``uri`` serves the main archive (not ``-security``), judged by its suites."""
    return any(not s.endswith("-security") and "/" not in s for s in suites) and "security" not in uri


def _is_security(uri: str, suites: list[str]) -> bool:
    """True when ``uri`` serves Debian's security updates (a ``<suite>-security`` suite)."""
    return any(s.endswith("-security") for s in suites)


def parse_deb822_mirror(text: str) -> str | None:
    """Return the first ``URIs:`` of a ``Types: deb`` stanza for the main archive, or None.

    ``text`` is the content of a deb822 ``*.sources`` file. Comment lines are ignored.
    """
    return next((uri for uri, suites in _deb822_entries(text) if _is_debian_main(uri, suites)), None)


def parse_deb822_security(text: str) -> str | None:
    """Return the first ``URIs:`` of a ``Types: deb`` stanza serving a ``*-security`` suite, or None."""
    return next((uri for uri, suites in _deb822_entries(text) if _is_security(uri, suites)), None)


def _deb822_entries(text: str) -> list[tuple[str, list[str]]]:
    """``(uri, suites)`` of every enabled ``Types: deb`` stanza, in order."""
    found: list[tuple[str, list[str]]] = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        uris = fields.get("uris", "").split()
        suites = fields.get("suites", "").split()
        found += [(uri, suites) for uri in uris]
    return found


def parse_one_line_mirror(text: str) -> str | None:
    """Return the URI of the first ``deb`` line for the main archive in a ``sources.list``, or None."""
    return next((uri for uri, suites in _one_line_entries(text) if _is_debian_main(uri, suites)), None)


def parse_one_line_security(text: str) -> str | None:
    """Return the URI of the first ``deb`` line of a ``*-security`` suite in a ``sources.list``, or None."""
    return next((uri for uri, suites in _one_line_entries(text) if _is_security(uri, suites)), None)


def _one_line_entries(text: str) -> list[tuple[str, list[str]]]:
    """``(uri, [suite])`` of every ``deb`` line of a one-line-style ``sources.list``, in order."""
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options such as [signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            found.append((words[0], [words[1]]))
    return found


def as_http(uri: str) -> str:
    """Rewrite an ``https://`` mirror URI to ``http://`` (hosts cannot verify this machine's TLS)."""
    uri = uri.rstrip("/")
    if uri.startswith("https://"):
        return "http://" + uri[len("https://"):]
    return uri


def read_apt_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """Return the main Debian mirror URI (``http://...``, no trailing slash) configured under ``apt_dir``.

    Looks at ``sources.list.d/*.sources`` (deb822), then ``sources.list.d/*.list`` and
    ``sources.list``. Raises :class:`PrerequisiteError` when no ``deb`` source is configured.
    """
    uri = _read_first(apt_dir, parse_deb822_mirror, parse_one_line_mirror)
    if uri:
        return uri
    raise PrerequisiteError(
        f"No Debian mirror found in {apt_dir}/sources.list or {apt_dir}/sources.list.d/: "
        "configure apt on this machine (the lab's hosts use the same mirror)."
    )


def read_security_mirror(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The Debian security archive URI (``http://...``) configured under ``apt_dir``, or None
    when this machine has no ``*-security`` source (the lab's hosts then get none either)."""
    return _read_first(apt_dir, parse_deb822_security, parse_one_line_security)


def render_sources_list(suite: str, mirror: str, security: str | None) -> str:
    """The hosts' ``/etc/apt/sources.list`` for Debian ``suite`` (``bookworm``, ``trixie``):
    ``suite`` and ``suite-updates`` from ``mirror``, ``suite-security`` from ``security``
    (left out when None), ``main`` only. One-line format: apt 2.6 (bookworm) and apt 3.0
    (trixie) both read it.

    >>> print(render_sources_list("trixie", "http://m/debian", "http://m/debian-security"), end="")
    deb http://m/debian trixie main
    deb http://m/debian trixie-updates main
    deb http://m/debian-security trixie-security main
    """
    lines = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if security:
        lines.append(f"deb {security} {suite}-security main")
    return "\n".join(lines) + "\n"


def _read_first(apt_dir: Path, deb822: Callable[[str], str | None],
                one_line: Callable[[str], str | None]) -> str | None:
    """The first URI ``deb822``/``one_line`` find in apt's source files under ``apt_dir``,
    rewritten to http (see :func:`as_http`), or None."""
    candidates: list[tuple[Path, bool]] = []
    d = apt_dir / "sources.list.d"
    if d.is_dir():
        candidates += [(p, True) for p in sorted(d.glob("*.sources"))]
        candidates += [(p, False) for p in sorted(d.glob("*.list"))]
    candidates.append((apt_dir / "sources.list", False))
    for path, is_deb822 in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        uri = deb822(text) if is_deb822 else one_line(text)
        if uri:
            return as_http(uri)
    return None


def apt_conf_for_hosts(proxy: str | None, apt_config_dump: str | None = None) -> str:
    """apt.conf text for lab hosts: the HTTP ``proxy`` (if any) plus this machine's
    ``Acquire::Check-Valid-Until``/``Check-Date`` settings (a snapshot mirror needs them).

    ``apt_config_dump`` is the output of ``apt-config dump`` (read from this machine when None).
    """
    if apt_config_dump is None:
        import subprocess
        try:
            apt_config_dump = subprocess.run(["apt-config", "dump"], capture_output=True,
                                             text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            apt_config_dump = ""
    lines = ["// written by shipit lab up"]
    if proxy:
        lines.append(f'Acquire::http::Proxy "{proxy}";')
    for line in apt_config_dump.splitlines():
        key = line.split(" ", 1)[0]
        if key in ("Acquire::Check-Valid-Until", "Acquire::Check-Date"):
            lines.append(line.strip())
    return "\n".join(lines) + "\n"
