"""Small process and filesystem helpers shared by the lab modules."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from shipit.errors import ShipitError

__all__ = ["run", "mounts_under", "unmount_tree", "remove_tree", "LabError"]


class LabError(ShipitError):
    """A lab operation failed (a command on this machine, a host that never became ready)."""


def run(argv: Sequence[str], *, check: bool = True, input: str | None = None,
        timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on this machine, capturing text output.

    Raises :class:`LabError` carrying the command's stderr when ``check`` and it exits non-zero.
    ``timeout`` is in seconds.
    """
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {msg[-1] if msg else ''}")
    return proc


def _unescape(field: str) -> str:
    """Decode the octal escapes (``\\040``) /proc/self/mountinfo uses in paths."""
    return field.encode().decode("unicode_escape")


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo), deepest first."""
    root = str(path).rstrip("/")
    found: list[Path] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape(line.split()[4])
            if mp == root or mp.startswith(root + "/"):
                found.append(Path(mp))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_tree(path: Path) -> None:
    """Unmount everything mounted at or below ``path``, deepest first (lazily if busy)."""
    for mp in mounts_under(path):
        if run(["umount", str(mp)], check=False).returncode != 0:
            run(["umount", "-l", str(mp)], check=False)


def remove_tree(path: Path) -> None:
    """Unmount anything below ``path``, then delete it without crossing into other filesystems."""
    if not os.path.lexists(path):
        return
    unmount_tree(path)
    run(["rm", "-rf", "--one-file-system", str(path)])
