"""Pure rendering of the files ``shipit lab up`` writes: inventory YAML and known_hosts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from shipit.lab.naming import HostSpec

__all__ = ["render_inventory", "render_known_hosts", "write_file_atomic"]


def render_inventory(hosts: Sequence[HostSpec], key_file: str, known_hosts_file: str,
                     user: str = "deploy") -> str:
    """The inventory YAML in shipit's native shape.

    ``key_file`` and ``known_hosts_file`` are paths relative to the inventory file.
    Groups are listed in first-appearance order of the hosts.
    """
    lines = [
        "# written by `shipit lab up`; regenerated on every up",
        "ssh:",
        f"  user: {user}",
        f"  key: {key_file}",
        f"  known_hosts: {known_hosts_file}",
        "hosts:",
    ]
    lines += [f"  {h.name}: {{address: {h.address}}}" for h in hosts]
    groups: dict[str, list[str]] = {}
    for h in hosts:
        groups.setdefault(h.group, []).append(h.name)
    if groups:
        lines.append("groups:")
        lines += [f"  {g}: {{hosts: [{', '.join(names)}]}}" for g, names in groups.items()]
    else:
        lines.append("groups: {}")
    return "\n".join(lines) + "\n"


def render_known_hosts(entries: Sequence[tuple[str, str]]) -> str:
    """known_hosts text from ``(address, public_key_line)`` pairs.

    ``public_key_line`` is the content of an ``ssh_host_*_key.pub`` file (``type base64 [comment]``);
    the comment is dropped and the bare address (port 22) is used as the host pattern.
    Raises ValueError on a malformed key line.
    """
    out = []
    for address, pub in entries:
        parts = pub.split()
        if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
            raise ValueError(f"not an SSH public key for {address}: {pub[:40]!r}")
        out.append(f"{address} {parts[0]} {parts[1]}")
    return "\n".join(out) + ("\n" if out else "")


def write_file_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temp file and rename, with permission ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
