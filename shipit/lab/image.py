"""The cached base image: a debootstrapped Debian with systemd and sshd, but no Python.

Cached under ``<cache_root>/images/<recipe-hash>/``, built atomically (into a temporary dir,
then renamed) under a lock so two concurrent ``up`` runs never build twice. Nothing may
depend on it being there: :func:`ensure_base_image` builds it when missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from shipit.lab.util import LabError, remove_tree, run

__all__ = ["ImageRecipe", "DEFAULT_RECIPE", "SUITES", "DEFAULT_SUITE", "recipe_for",
           "ensure_base_image", "image_path"]

#: Bump when the customisation below changes, so cached images built by older code are rebuilt.
CUSTOMIZE_VERSION = 4

#: Units that slow boot or make noise in a throwaway lab host.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service", "apt-daily-upgrade.service",
    "dpkg-db-backup.timer", "e2scrub_all.timer", "fstrim.timer", "systemd-tmpfiles-clean.timer",
    "console-getty.service", "getty@.service", "systemd-networkd-wait-online.service",
    "systemd-timesyncd.service", "man-db.timer",
)


@dataclass(frozen=True)
class ImageRecipe:
    """What goes into the base image. Its :meth:`key` names the cache entry."""

    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = field(default=(
        "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "sudo", "ca-certificates",
    ))

    def key(self) -> str:
        """16 hex chars hashing suite, variant, packages and the customisation version."""
        data = json.dumps([self.suite, self.variant, sorted(self.packages), CUSTOMIZE_VERSION,
                           MASKED_UNITS])
        return hashlib.sha256(data.encode()).hexdigest()[:16]


DEFAULT_RECIPE = ImageRecipe()

#: The Debian suites a lab boots: Debian 12 and 13. (Ubuntu's archives are not reachable from
#: the machines this is tested on; see README "Distributions".)
SUITES = ("bookworm", "trixie")
#: What ``shipit lab up`` boots without ``--suite``: Debian 12, what CI and most servers in use
#: run today; trixie is one flag away and CI runs the deploy smoke test on it too.
DEFAULT_SUITE = "bookworm"


def recipe_for(suite: str) -> ImageRecipe:
    """The image recipe of Debian ``suite``. Raises ValueError for a suite not in :data:`SUITES`."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: expected one of {', '.join(SUITES)}")
    return replace(DEFAULT_RECIPE, suite=suite)


def image_path(cache_root: Path, recipe: ImageRecipe = DEFAULT_RECIPE) -> Path:
    """Where the image for ``recipe`` lives (whether built or not)."""
    return cache_root / "images" / f"{recipe.suite}-{recipe.key()}"


def ensure_base_image(cache_root: Path, mirror: str, recipe: ImageRecipe = DEFAULT_RECIPE,
                      log: Callable[[str], None] | None = None) -> Path:
    """Return the path of the built image for ``recipe``, building it first if needed.

    ``mirror`` is the Debian mirror URI used by debootstrap. Takes an exclusive lock on
    ``<cache_root>/images/.lock`` while checking/building. Raises :class:`LabError` when
    debootstrap fails (its log stays in ``<cache_root>/images/last-build.log``).
    """
    images = cache_root / "images"
    images.mkdir(parents=True, exist_ok=True)
    final = image_path(cache_root, recipe)
    if (final / ".shipit-image-complete").exists():
        return final
    with open(images / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".shipit-image-complete").exists():
            return final
        # leftovers of a killed build (may still hold debootstrap's proc/sys mounts)
        for stale in images.glob("tmp-*"):
            remove_tree(stale)
        tmp = images / f"tmp-{final.name}-{os.getpid()}"
        if log:
            log(f"building base image {final.name} with debootstrap (once; takes a few minutes)")
        started = time.monotonic()
        logfile = images / "last-build.log"
        proc = run(["debootstrap", f"--variant={recipe.variant}",
                    f"--include={','.join(recipe.packages)}", recipe.suite, str(tmp), mirror],
                   check=False, timeout=1800)
        logfile.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            remove_tree(tmp)
            raise LabError(f"debootstrap failed (exit {proc.returncode}); see {logfile}")
        try:
            _customize(tmp)
        except Exception:
            remove_tree(tmp)
            raise
        (tmp / ".shipit-image-complete").write_text(f"built in {time.monotonic() - started:.0f}s\n")
        if final.exists():
            remove_tree(final)
        os.rename(tmp, final)
        _prune_other_images(images, keep=final, suite=recipe.suite)
        if log:
            log(f"base image built in {time.monotonic() - started:.0f}s")
        return final


def _prune_other_images(images: Path, keep: Path, suite: str) -> None:
    """Delete images of older recipes of the same ``suite`` that no mounted overlay uses (they
    are ~250 MB each); the other suites' images stay cached."""
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    for other in images.iterdir():
        if other != keep and other.is_dir() and other.name.startswith(f"{suite}-") \
                and (other / ".shipit-image-complete").exists() \
                and f"lowerdir={other}," not in mounts and f"lowerdir={other}:" not in mounts:
            remove_tree(other)


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``root/rel`` (creating parents) with permission ``mode``."""
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink():
        p.unlink()
    p.write_text(text)
    os.chmod(p, mode)


def _customize(root: Path) -> None:
    """Turn a fresh debootstrap tree into the lab's host image (deploy user, sshd, networkd)."""
    unmount_leftovers = [m for m in ("proc", "sys") if os.path.ismount(root / m)]
    for m in unmount_leftovers:
        run(["umount", "-l", str(root / m)], check=False)
    run(["chroot", str(root), "useradd", "--create-home", "--uid", "1000", "--shell", "/bin/bash",
         "deploy"])
    _write(root, "/etc/sudoers.d/deploy", "deploy ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)
    ssh_dir = root / "home/deploy/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, 1000, 1000)
    # host keys are generated per host in its overlay; the image carries none
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, "/etc/ssh/sshd_config.d/10-shipit-lab.conf",
           "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
           "HostKey /etc/ssh/ssh_host_ed25519_key\nUseDNS no\n")
    _write(root, "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root, "/etc/machine-id", "")
    _write(root, "/etc/dpkg/dpkg.cfg.d/01-shipit-lab-nodoc",
           "path-exclude=/usr/share/man/*\npath-exclude=/usr/share/doc/*\n"
           "path-include=/usr/share/doc/*/copyright\npath-exclude=/usr/share/locale/*\n"
           "path-include=/usr/share/locale/locale.alias\n")
    # throwaway hosts: skip dpkg's fsyncs (measured ~1 s of ~18 s for postgresql+caddy+python3)
    _write(root, "/etc/dpkg/dpkg.cfg.d/02-shipit-lab-unsafe-io", "force-unsafe-io\n")
    run(["chroot", str(root), "systemctl", "enable", "systemd-networkd.service", "ssh.service"])
    run(["chroot", str(root), "systemctl", "mask", *MASKED_UNITS])
    run(["chroot", str(root), "apt-get", "clean"])
    # debootstrap's sources.list names the build mirror; hosts get theirs written at up time
    _write(root, "/etc/apt/sources.list", "")
    if (root / "usr/bin/python3").exists():
        raise LabError("the base image unexpectedly contains python3; installing it is shipit's job")
