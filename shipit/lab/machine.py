"""One lab host: an overlayfs copy of the base image booted by systemd-nspawn.

Directory of a host: ``<lab_dir>/hosts/<host>/`` with ``upper/`` and ``work/`` (the overlay's
writable layers, kept across restarts so host keys survive), ``root/`` (the merged mount) and
``console.log`` (nspawn's output).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from shipit.lab.cgroups import host_cgroups, remove_cgroups
from shipit.lab.naming import HostSpec, LabNet
from shipit.lab.procs import children, find_container_inits, find_pids, spawn_detached, terminate
from shipit.lab.util import LabError, run, unmount_tree

__all__ = ["HostConfig", "Machine"]


#: Masked per host (not in the image, so cached images stay valid): password-agent paths that
#: have no console to serve in a container and, under load, fail and leave the boot degraded.
HOST_MASKED_UNITS = ("systemd-ask-password-console.path", "systemd-ask-password-wall.path")


@dataclass(frozen=True)
class HostConfig:
    """What a host needs written into its overlay at every start.

    ``authorized_key`` is the lab's public key line; ``nameservers`` are IPv4 addresses for
    /etc/resolv.conf; ``sources_list`` and ``apt_conf`` are apt configuration file contents.
    """

    authorized_key: str
    nameservers: tuple[str, ...]
    sources_list: str
    apt_conf: str


class Machine:
    """A lab host on this machine. Cheap to construct; every method looks at the live system."""

    def __init__(self, net: LabNet, spec: HostSpec, lab_dir: Path, image: Path | None) -> None:
        """``image`` is the base image dir (only needed to start the host)."""
        self.net = net
        self.spec = spec
        self.image = image
        self.dir = lab_dir / "hosts" / spec.name
        self.root = self.dir / "root"
        self.upper = self.dir / "upper"

    # --- state -------------------------------------------------------------------------
    def pids(self) -> list[int]:
        """Pids of systemd-nspawn processes running this host (normally zero or one)."""
        return sorted(find_pids("systemd-nspawn", str(self.root)))

    def running(self) -> bool:
        """True when an nspawn process for this host is alive."""
        return bool(self.pids())

    def init_pid(self) -> int | None:
        """Pid (in our namespace) of the container's PID 1, or None."""
        for pid in self.pids():
            kids = children(pid)
            if kids:
                return kids[0]
        return None

    def host_public_key(self) -> str:
        """The host's ed25519 public key line, read from its overlay (never from the network).

        Raises :class:`LabError` if the host was never prepared.
        """
        path = self.upper / "etc/ssh/ssh_host_ed25519_key.pub"
        try:
            return path.read_text().strip()
        except OSError as e:
            raise LabError(f"{self.spec.name}: no host key at {path}") from e

    # --- lifecycle ---------------------------------------------------------------------
    def stop(self, grace: float = 10.0) -> None:
        """Stop nspawn (orderly shutdown, then kill after ``grace`` s) and unmount the overlay."""
        terminate(self.pids(), grace=grace)
        # a container whose nspawn was killed keeps running on its own: kill its PID 1
        terminate(find_container_inits(f"upperdir={self.upper},"), grace=0)
        veth = Path("/sys/class/net") / f"vb-{self.net.machine(self.spec.name)}"
        if veth.exists():
            run(["ip", "link", "del", veth.name], check=False)
        unmount_tree(self.root)
        remove_cgroups(host_cgroups(self.net.name, self.spec.name))

    def prepare(self, cfg: HostConfig) -> None:
        """Mount a fresh overlay (upper layer kept) and write the host's own configuration.

        Generates the host's SSH host key on first prepare only. Raises :class:`LabError`.
        """
        if self.image is None:
            raise LabError("internal: no base image given for starting a host")
        unmount_tree(self.root)  # stale mount of a killed run or a dead machine
        for d in (self.upper, self.dir / "work", self.root):
            d.mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={self.image},upperdir={self.upper},workdir={self.dir / 'work'}",
             str(self.root)])
        self._configure(cfg)

    def _write(self, rel: str, text: str, mode: int = 0o644, uid: int = 0) -> None:
        p = self.root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or p.exists():
            p.unlink()
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(p, uid, uid)
        os.chmod(p, mode)

    def _configure(self, cfg: HostConfig) -> None:
        name, addr = self.spec.name, self.spec.address
        self._write("/etc/hostname", f"{name}\n")
        self._write("/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n{addr}\t{name}\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n")
        dns = "".join(f"DNS={ns}\n" for ns in cfg.nameservers)
        self._write("/etc/systemd/network/10-host0.network",
                    f"[Match]\nName=host0\n\n[Network]\nAddress={addr}/24\nGateway={self.net.gateway}\n"
                    f"{dns}LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
        self._write("/etc/resolv.conf", "".join(f"nameserver {ns}\n" for ns in cfg.nameservers))
        if not (self.upper / "etc/machine-id").exists():
            self._write("/etc/machine-id", secrets.token_hex(16) + "\n", 0o444)
        self._write("/etc/apt/sources.list", cfg.sources_list)
        self._write("/etc/apt/apt.conf.d/90shipit-lab", cfg.apt_conf)
        self._write("/home/deploy/.ssh/authorized_keys", cfg.authorized_key.strip() + "\n", 0o600, uid=1000)
        for unit in HOST_MASKED_UNITS:
            link = self.root / "etc/systemd/system" / unit
            if not link.is_symlink():
                link.unlink(missing_ok=True)
                link.symlink_to("/dev/null")
        key = self.root / "etc/ssh/ssh_host_ed25519_key"
        if not (self.upper / "etc/ssh/ssh_host_ed25519_key").exists():
            for old in key.parent.glob("ssh_host_*"):
                old.unlink()
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(key)])

    def start(self) -> None:
        """Boot the prepared host with systemd-nspawn, detached from this process.

        Raises :class:`LabError` if nspawn exits at once (its output is in console.log).
        """
        log = self.dir / "console.log"
        log.write_text("")
        groups = host_cgroups(self.net.name, self.spec.name)
        join = ('while [ "$1" != -- ]; do mkdir -p "$1" && echo $$ > "$1/cgroup.procs" || exit 1; '
                'shift; done; shift; exec "$@"')
        spawn_detached([
            "sh", "-c", join, "sh", *map(str, groups), "--",
            "systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit",
            f"--network-bridge={self.net.bridge}", "-M", self.net.machine(self.spec.name),
            f"--hostname={self.spec.name}", "--console=passive", "--resolv-conf=off",
            "--timezone=off", "--link-journal=no",
        ], log)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.init_pid() is not None:
                return
            time.sleep(0.05)
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise LabError(f"{self.spec.name}: systemd-nspawn did not start: {' / '.join(tail)}")

    def nsenter(self, *argv: str, timeout: float = 10) -> tuple[int, str]:
        """Run ``argv`` inside the running host as root via nsenter; (exit code, stdout).

        Returns (-1, "") when the host is not running. Used only for diagnosis, never for
        readiness (that is checked over SSH as deploy).
        """
        pid = self.init_pid()
        if pid is None:
            return -1, ""
        p = run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", *argv], check=False,
                timeout=timeout)
        return p.returncode, p.stdout.strip()
