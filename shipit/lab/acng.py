"""The lab's apt cache: one apt-cacher-ng per lab, listening on the bridge gateway address.

Hosts use it as their HTTP proxy for apt. Its cache lives in
``<cache_root>/apt-cache/<lab name>/`` and survives ``down``, so repeated test runs install
packages (python3, caddy, postgresql) from this machine instead of the mirror. When
apt-cacher-ng is not installed the hosts go to the mirror directly through NAT.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from shipit.lab.naming import LabNet
from shipit.lab.network import ACNG_PORT
from shipit.lab.procs import find_pids, spawn_detached, terminate

__all__ = ["acng_available", "ensure_acng", "stop_acng", "acng_running"]

_BIN = "/usr/sbin/apt-cacher-ng"


def acng_available() -> bool:
    """True when apt-cacher-ng is installed on this machine."""
    return Path(_BIN).exists()


def _needle(lab_dir: Path) -> str:
    return f"SocketPath={lab_dir}/acng.socket"


def acng_running(lab_dir: Path) -> bool:
    """True when this lab's apt-cacher-ng process is alive."""
    return bool(find_pids("apt-cacher-ng", _needle(lab_dir)))


def ensure_acng(net: LabNet, lab_dir: Path, cache_dir: Path, wait: float = 5.0) -> bool:
    """Start this lab's apt-cacher-ng on ``net.gateway:ACNG_PORT`` unless it already runs.

    Returns True when the proxy answers (hosts should use it), False when apt-cacher-ng is not
    installed or did not come up within ``wait`` seconds.
    """
    if not acng_available():
        return False
    if not acng_running(lab_dir):
        cache_dir.mkdir(parents=True, exist_ok=True)
        (lab_dir / "acng-log").mkdir(parents=True, exist_ok=True)
        conf = lab_dir / "acng-conf"
        conf.mkdir(parents=True, exist_ok=True)
        # a plain caching proxy keyed by host name: Debian's default Remap rules (to its own
        # backend lists) answer 503 for mirrors that only resolve through this machine
        (conf / "acng.conf").write_text("SupportDir: /usr/lib/apt-cacher-ng\nExThreshold: 365\n")
        spawn_detached([_BIN, "-c", str(conf), "ForeGround=1",
                        f"BindAddress={net.gateway}", f"Port={ACNG_PORT}", f"CacheDir={cache_dir}",
                        f"LogDir={lab_dir / 'acng-log'}", f"PidFile={lab_dir / 'acng.pid'}",
                        _needle(lab_dir)],
                       lab_dir / "acng.log")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((net.gateway, ACNG_PORT), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_acng(lab_dir: Path) -> None:
    """Stop this lab's apt-cacher-ng (no-op when not running)."""
    terminate(find_pids("apt-cacher-ng", _needle(lab_dir)), grace=5.0, kill_children_first=False)


def which_acng() -> str | None:
    """Path of the apt-cacher-ng binary if installed (for messages)."""
    return shutil.which("apt-cacher-ng", path="/usr/sbin:/usr/bin")
