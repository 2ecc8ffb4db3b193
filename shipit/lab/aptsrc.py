"""Read the Debian mirror this machine uses from its own apt configuration.

The lab's hosts must use the same mirror as the machine that runs them, and over plain HTTP:
the hosts do not trust any TLS interception CA this machine may trust. Nothing here names a
mirror host; it is always read at run time.
"""

from __future__ import annotations

from pathlib import Path

from shipit.errors import PrerequisiteError

__all__ = ["parse_deb822_mirror", "parse_one_line_mirror", "read_apt_mirror", "as_http"]


def _is_debian_main(uri: str, suites: list[str]) -> bool:
    """True when ``uri`` serves the main archive (not ``-security``), judged by its suites."""
    return any(not s.endswith("-security") and "/" not in s for s in suites) and "security" not in uri


def parse_deb822_mirror(text: str) -> str | None:
    """Return the first ``URIs:`` of a ``Types: deb`` stanza for the main archive, or None.

    ``text`` is the content of a deb822 ``*.sources`` file. Comment lines are ignored.
    """
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
        for uri in uris:
            if _is_debian_main(uri, suites):
                return uri
    return None


def parse_one_line_mirror(text: str) -> str | None:
    """Return the URI of the first ``deb`` line for the main archive in a ``sources.list``, or None."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options such as [signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2 and _is_debian_main(words[0], [words[1]]):
            return words[0]
    return None


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
    candidates: list[tuple[Path, bool]] = []
    d = apt_dir / "sources.list.d"
    if d.is_dir():
        candidates += [(p, True) for p in sorted(d.glob("*.sources"))]
        candidates += [(p, False) for p in sorted(d.glob("*.list"))]
    candidates.append((apt_dir / "sources.list", False))
    for path, deb822 in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        uri = parse_deb822_mirror(text) if deb822 else parse_one_line_mirror(text)
        if uri:
            return as_http(uri)
    raise PrerequisiteError(
        f"No Debian mirror found in {apt_dir}/sources.list or {apt_dir}/sources.list.d/: "
        "configure apt on this machine (the lab's hosts use the same mirror)."
    )


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
