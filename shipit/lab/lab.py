"""The lab: bring a set of real Debian hosts up, report on them, take them down.

Everything a lab owns on this machine is named after it: ``<cache_root>/<name>/`` (overlays,
lab key, state), the bridge ``sl-<tag>``, iptables rules commented ``shipit-lab-<name>``,
and nspawn/apt-cacher-ng processes whose argv points into its directory. ``down`` removes
exactly those; ``up`` heals whatever a killed run left of them.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipit.lab import acng, network
from shipit.lab.aptsrc import apt_conf_for_hosts, read_apt_mirror, read_security_mirror, render_sources_list
from shipit.lab.cgroups import lab_cgroup_roots, remove_cgroups
from shipit.lab.image import DEFAULT_SUITE, ensure_base_image, recipe_for
from shipit.lab.inventory import render_inventory, render_known_hosts, write_file_atomic
from shipit.lab.machine import HostConfig, Machine
from shipit.lab.naming import HostSpec, lab_net, plan_hosts
from shipit.lab.plan import plan_up
from shipit.lab.prereq import check_prerequisites
from shipit.lab.procs import find_container_inits, find_pids, terminate
from shipit.lab.ready import Readiness, probe
from shipit.lab.util import LabError, remove_tree, run

__all__ = ["Lab", "LabState", "HostStatus", "DEFAULT_CACHE_ROOT"]

#: Where images, apt caches and per-lab state live.
DEFAULT_CACHE_ROOT = Path("/var/tmp/shipit-lab")
#: Attempts to boot one host before giving up (a host whose login block never lifts is recycled).
BOOT_ATTEMPTS = 3


@dataclass(frozen=True)
class LabState:
    """A lab that is up: where its files are, which hosts it has (in inventory order) and the
    Debian ``suite`` they run (``bookworm``, ``trixie``)."""

    name: str
    inventory: Path
    key: Path
    known_hosts: Path
    hosts: tuple[HostSpec, ...]
    apt_proxy: str | None
    suite: str = DEFAULT_SUITE


@dataclass(frozen=True)
class HostStatus:
    """One row of ``lab status``: ``machine`` is ``running`` or ``stopped``."""

    name: str
    address: str
    machine: str
    ssh_ready: bool
    detail: str


class Lab:
    """A named lab of systemd-nspawn hosts.

    ``name``: lab name (lowercase, digits, dashes). ``inventory_dir``: where ``up`` writes
    ``<name>.yml``, ``<name>.key`` and ``<name>.known_hosts``. ``cache_root``: base image,
    apt caches and per-lab state. ``log``: progress callback (one line per call).
    """

    def __init__(self, name: str = "lab", inventory_dir: Path | str = "inventories",
                 cache_root: Path = DEFAULT_CACHE_ROOT,
                 log: Callable[[str], None] | None = None) -> None:
        self.net = lab_net(name)
        self.name = name
        self.inventory_dir = Path(inventory_dir).absolute()
        self.cache_root = cache_root
        self.dir = cache_root / "labs" / name
        self._log = log or (lambda _msg: None)

    # --- paths -----------------------------------------------------------------------
    @property
    def _key(self) -> Path:
        return self.dir / "lab.key"

    @property
    def _known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def _state_file(self) -> Path:
        return self.dir / "state.json"

    def _read_state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down of this lab across processes (flock on a file beside its dir)."""
        (self.cache_root / "labs").mkdir(parents=True, exist_ok=True)
        with open(self.cache_root / "labs" / f".{self.name}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    # --- up ----------------------------------------------------------------------------
    def up(self, hosts: int = 3, db: bool = False, boot_timeout: float = 90.0,
           suite: str = DEFAULT_SUITE, prune: bool = False) -> LabState:
        """Bring the lab to ``hosts`` web hosts (+ ``db1`` if ``db``) of Debian ``suite``, all
        ready.

        Running, ready hosts are kept; dead ones, stale mounts, leftover rules are healed.
        Surplus web hosts are removed, web hosts of another suite re-created; a database host
        not asked for is kept (running, in the inventory) unless ``prune`` (see
        :mod:`shipit.lab.plan`); every removal is said through ``log``. ``boot_timeout``
        (seconds) is per boot attempt of one host.

        Raises:
            PrerequisiteError: this machine cannot run a lab.
            DataHostError: (exit 2, nothing changed) a database host of another suite
                without ``prune``.
            ValueError: an unknown ``suite`` or a bad host count.
            LabError: a host does not become ready.
        """
        check_prerequisites()
        recipe_for(suite)  # ValueError for an unknown suite, before anything changes
        specs = plan_hosts(self.net, hosts, db)
        with self._locked():
            return self._up(specs, boot_timeout, suite, prune)

    def _existing(self) -> dict[str, tuple[HostSpec, str]]:
        """The hosts this lab has now: name -> (spec, suite) from its state file and its
        hosts dir (a host without a recorded suite was booted by older code: bookworm)."""
        st = self._read_state()
        suites: dict[str, str] = st.get("suites") or {}
        specs = {h[0]: HostSpec(*h) for h in st.get("hosts", [])}
        hosts_dir = self.dir / "hosts"
        names = {p.name for p in hosts_dir.iterdir()} if hosts_dir.is_dir() else set()
        defaults = {s.name: s for s in plan_hosts(self.net, 0, True)}
        out = {}
        for name in names:
            spec = specs.get(name) or defaults.get(name) or HostSpec(name, "", "")
            out[name] = (spec, suites.get(name, st.get("suite", DEFAULT_SUITE)))
        return out

    def _up(self, wanted: list[HostSpec], boot_timeout: float, suite: str, prune: bool) -> LabState:
        t0 = time.monotonic()
        todo = plan_up(self._existing(), wanted, suite, prune, self.name)  # raises before any change
        specs = list(todo.hosts)
        self.dir.mkdir(parents=True, exist_ok=True)
        mirror = read_apt_mirror()
        security = read_security_mirror()
        if security is None:
            self._log("this machine has no Debian -security source: the hosts get none either")
        image = ensure_base_image(self.cache_root, mirror, recipe_for(suite), log=self._log)
        if not self._key.exists():
            self._key.with_suffix(".key.pub").unlink(missing_ok=True)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"shipit-lab-{self.name}",
                 "-f", str(self._key)])
        network.check_subnet_free(self.net)
        network.ensure_bridge(self.net)
        network.remove_nat(self.net)
        network.ensure_nat(self.net)
        use_proxy = acng.ensure_acng(self.net, self.dir, self.cache_root / "apt-cache" / self.name)
        proxy = f"http://{self.net.gateway}:{network.ACNG_PORT}" if use_proxy else None
        cfg = HostConfig(
            authorized_key=self._key.with_suffix(".key.pub").read_text(),
            nameservers=_nameservers(),
            sources_list=render_sources_list(suite, mirror, security),
            apt_conf=apt_conf_for_hosts(proxy),
        )
        for line in todo.messages():
            self._log(line)
        for name, _why in todo.remove + todo.replace:
            m = Machine(self.net, HostSpec(name, "", ""), self.dir, None)
            m.stop(grace=5)
            remove_tree(m.dir)
        machines = [Machine(self.net, s, self.dir, image) for s in specs]

        # hosts that are running and answer as deploy are kept as they are
        self._write_known_hosts([m for m in machines if (m.upper / "etc/ssh").exists()])
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(machines)))) as pool:
            quick = list(pool.map(lambda m: m.running() and self._probe(m, 3.0).ready, machines))
        to_boot = [m for m, ok in zip(machines, quick, strict=True) if not ok]
        if to_boot:
            self._log(f"booting {', '.join(m.spec.name for m in to_boot)}")
            with ThreadPoolExecutor(max_workers=max(1, min(32, len(to_boot)))) as pool:
                list(pool.map(lambda m: (m.stop(grace=5), m.prepare(cfg)), to_boot))
            self._write_known_hosts(machines)
            with ThreadPoolExecutor(max_workers=max(1, min(32, len(to_boot)))) as pool:
                results = list(pool.map(lambda m: self._boot(m, cfg, boot_timeout), to_boot))
            failed = [r for r in results if r]
            if failed:
                raise LabError("lab hosts did not become ready: " + "; ".join(failed))
        else:
            self._write_known_hosts(machines)
        state = self._publish(specs, proxy, suite)
        self._log(f"lab {self.name!r} up: {len(specs)} hosts in {time.monotonic() - t0:.1f}s")
        return state

    def _probe(self, m: Machine, timeout: float) -> Readiness:
        return probe(m.spec.address, self._key, self._known_hosts, timeout=timeout)

    def _boot(self, m: Machine, cfg: HostConfig, boot_timeout: float) -> str:
        """Start ``m`` and wait until it is ready; recycle it when it gets stuck.

        Returns "" on success or a one-line reason on failure (never raises for a host).
        """
        reason = ""
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            if attempt > 1:
                self._log(f"{m.spec.name}: recycling ({reason})")
                m.stop(grace=3)
                m.prepare(cfg)
            try:
                m.start()
            except LabError as e:
                reason = e.message
                continue
            reason = self._wait_ready(m, boot_timeout)
            if not reason:
                return ""
        return f"{m.spec.name}: {reason}"

    def _wait_ready(self, m: Machine, boot_timeout: float) -> str:
        """Poll readiness as deploy over SSH; "" when ready, else why it should be recycled."""
        start = time.monotonic()
        last = Readiness(False, error="not probed")
        while time.monotonic() - start < boot_timeout:
            if not m.running():
                return "systemd-nspawn exited"
            last = self._probe(m, 5.0)
            if last.ready:
                return ""
            if last.state and last.state != "running":
                return f"boot finished {last.state}; failed units: {', '.join(last.failed_units) or 'none'}"
            if time.monotonic() - start > 15:
                # boot over but deploy still locked out (e.g. systemd-user-sessions failed)?
                # (as root via nsenter: root may log in while deploy is still locked out)
                _, state = m.nsenter("systemctl", "is-system-running")
                if state in ("degraded", "maintenance"):
                    _, failed = m.nsenter("systemctl", "--failed", "--plain", "--no-legend")
                    return (f"boot finished {state} but deploy cannot log in ({last.error}); "
                            f"failed: {failed or 'none'}")
            time.sleep(0.3)
        return f"not ready after {boot_timeout:.0f}s ({last.error or last.state})"

    def _write_known_hosts(self, machines: list[Machine]) -> None:
        text = render_known_hosts([(m.spec.address, m.host_public_key()) for m in machines])
        write_file_atomic(self._known_hosts, text)

    def _publish(self, specs: list[HostSpec], proxy: str | None, suite: str) -> LabState:
        """Write inventory, key and known_hosts into the inventory dir; remember them in state."""
        inv = self.inventory_dir / f"{self.name}.yml"
        key = self.inventory_dir / f"{self.name}.key"
        kh = self.inventory_dir / f"{self.name}.known_hosts"
        write_file_atomic(key, self._key.read_text(), 0o600)
        write_file_atomic(kh, self._known_hosts.read_text())
        write_file_atomic(inv, render_inventory(specs, key.name, kh.name))
        state = {"inventory": str(inv), "key": str(key), "known_hosts": str(kh),
                 "hosts": [[s.name, s.address, s.group] for s in specs], "apt_proxy": proxy,
                 "suite": suite, "suites": {s.name: suite for s in specs}}
        write_file_atomic(self._state_file, json.dumps(state, indent=2))
        return LabState(self.name, inv, key, kh, tuple(specs), proxy, suite)

    # --- down --------------------------------------------------------------------------
    def down(self) -> None:
        """Remove everything of this lab: processes, mounts, overlays, bridge, iptables rules,
        and the inventory, key and known_hosts files ``up`` wrote. Keeps the base image and
        the apt cache. Idempotent. Raises :class:`PrerequisiteError` when not runnable here.
        """
        check_prerequisites()
        with self._locked():
            state = self._read_state()
            hosts_dir = self.dir / "hosts"
            names = [p.name for p in hosts_dir.iterdir()] if hosts_dir.is_dir() else []
            machines = [Machine(self.net, HostSpec(n, "", ""), self.dir, None) for n in names]
            # stray nspawn processes of this lab whose dirs are gone
            terminate(sorted(find_pids("systemd-nspawn", f"{self.dir}/")), grace=10)
            terminate(find_container_inits(f"upperdir={self.dir}/"), grace=0)
            for m in machines:
                m.stop(grace=5)
            acng.stop_acng(self.dir)
            remove_cgroups(lab_cgroup_roots(self.name))
            remove_tree(self.dir)
            network.remove_nat(self.net)
            network.remove_bridge(self.net)
            for key in ("inventory", "key", "known_hosts"):
                if state.get(key):
                    Path(state[key]).unlink(missing_ok=True)
            for suffix in (".yml", ".key", ".known_hosts"):
                (self.inventory_dir / f"{self.name}{suffix}").unlink(missing_ok=True)

    # --- status ------------------------------------------------------------------------
    def state(self) -> LabState | None:
        """The lab as last brought up (from its state file), or None if it was never up."""
        st = self._read_state()
        if not st:
            return None
        specs = tuple(HostSpec(*h) for h in st["hosts"])
        return LabState(self.name, Path(st["inventory"]), Path(st["key"]), Path(st["known_hosts"]),
                        specs, st.get("apt_proxy"), st.get("suite", DEFAULT_SUITE))

    def status(self) -> list[HostStatus]:
        """Machine state and SSH readiness (as deploy, strict host keys) of every host."""
        st = self.state()
        if st is None:
            return []
        machines = [Machine(self.net, s, self.dir, None) for s in st.hosts]

        def one(m: Machine) -> HostStatus:
            running = m.running()
            r = self._probe(m, 3.0) if running else Readiness(False, error="stopped")
            return HostStatus(m.spec.name, m.spec.address, "running" if running else "stopped",
                              r.ready, r.state or r.error)

        with ThreadPoolExecutor(max_workers=max(1, min(32, len(machines)))) as pool:
            return list(pool.map(one, machines))

    def ssh_argv(self, host: str, command: list[str] | None = None) -> list[str]:
        """The ``ssh`` argv reaching ``host`` as deploy with the lab key and strict host keys.

        Raises :class:`LabError` when the lab is not up or has no such host.
        """
        st = self.state()
        if st is None:
            raise LabError(f"lab {self.name!r} is not up: run `shipit lab up --name {self.name}`")
        spec = next((h for h in st.hosts if h.name == host), None)
        if spec is None:
            raise LabError(f"lab {self.name!r} has no host {host!r} "
                           f"(hosts: {', '.join(h.name for h in st.hosts)})")
        return ["ssh", "-i", str(self._key), "-o", f"UserKnownHostsFile={self._known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-l", "deploy", spec.address, *(command or [])]


def _nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, ...]:
    """IPv4 nameservers of this machine usable from a host (loopback ones are skipped)."""
    found = []
    try:
        for line in resolv_conf.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and "." in parts[1] \
                    and not parts[1].startswith("127."):
                found.append(parts[1])
    except OSError:
        pass
    return tuple(found)
