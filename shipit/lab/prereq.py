"""Check that this machine can run a lab: Linux, root, systemd-nspawn, debootstrap, iptables."""

from __future__ import annotations

import os
import shutil
import sys

from shipit.errors import PrerequisiteError

__all__ = ["check_prerequisites", "REQUIRED_COMMANDS"]

#: command -> Debian package providing it
REQUIRED_COMMANDS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "iptables": "iptables",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "nsenter": "util-linux",
    "mount": "mount",
}


def check_prerequisites() -> None:
    """Raise :class:`PrerequisiteError` (one sentence saying what to do) unless the lab can run here."""
    if not sys.platform.startswith("linux"):
        raise PrerequisiteError("shipit lab needs Linux (it boots hosts with systemd-nspawn).")
    if os.geteuid() != 0:
        raise PrerequisiteError("shipit lab needs root: run it with sudo.")
    missing = sorted({pkg for cmd, pkg in REQUIRED_COMMANDS.items() if _which(cmd) is None})
    if missing:
        raise PrerequisiteError(f"shipit lab needs more packages: apt-get install {' '.join(missing)}")


def _which(cmd: str) -> str | None:
    """Find ``cmd`` on PATH or in the sbin dirs (root's PATH is not always set under sudo)."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
    return shutil.which(cmd, path=path)
