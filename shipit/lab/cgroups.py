"""Give each lab host its own cgroup on machines where systemd is not PID 1.

Without this, every container's systemd shares one cgroup (that of whoever started nspawn)
and they trip over each other's ``system.slice/*`` sub-cgroups: under parallel boots units
fail with 219/CGROUP (``systemd-user-sessions`` failing leaves /run/nologin in place). With
systemd as PID 1 (``/run/systemd/system`` exists) cgroups belong to it and we leave them alone.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["host_cgroups", "remove_cgroups", "lab_cgroup_roots"]

_ROOT = Path("/sys/fs/cgroup")
_HIERARCHIES = ("systemd", "unified")


def _managed() -> list[Path]:
    """Cgroup hierarchies we may create groups in (empty when systemd manages cgroups)."""
    if Path("/run/systemd/system").exists():
        return []
    return [_ROOT / h for h in _HIERARCHIES if os.path.ismount(_ROOT / h)]


def lab_cgroup_roots(lab: str) -> list[Path]:
    """``<hierarchy>/shipit-lab/<lab>`` for every managed hierarchy (existing or not)."""
    return [h / "shipit-lab" / lab for h in _managed()]


def host_cgroups(lab: str, host: str) -> list[Path]:
    """Cgroup dirs (to be created) that the host's nspawn process should join."""
    return [root / host for root in lab_cgroup_roots(lab)]


def remove_cgroups(paths: list[Path]) -> None:
    """rmdir each cgroup tree in ``paths`` deepest first; cgroups still holding processes stay."""
    for top in paths:
        if not top.is_dir():
            continue
        dirs = [Path(d) for d, _, _ in os.walk(top)]
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass
        parent = top.parent
        while parent.name in ("shipit-lab",) or parent.parent.name == "shipit-lab":
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
