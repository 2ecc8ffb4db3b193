"""One transport per host for a whole run, created on first use and closed at the end."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from shipit.inventory import Inventory
from shipit.transport import HostKeyPolicy, SSHTarget, SSHTransport, Transport

# shipit's own known_hosts, where --accept-new-host-keys records keys it trusted on first use.
DEFAULT_TOFU_FILE = "~/.config/shipit/known_hosts"


class TransportPool:
    """Hands out one :class:`Transport` per host, reused by every play of the run.

    ``factory(host) -> Transport`` makes a new one; :func:`ssh_pool` builds the SSH factory.
    Thread-safe; :meth:`close` closes every transport made.
    """

    def __init__(self, factory: Callable[[str], Transport]) -> None:
        self._factory = factory
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def get(self, host: str) -> Transport:
        """The transport of ``host``, made by the factory on first use (thread-safe). The
        factory's errors propagate; connecting itself happens on the transport's first run."""
        with self._lock:
            if host not in self._transports:
                self._transports[host] = self._factory(host)
            return self._transports[host]

    def opened(self) -> dict[str, Transport]:
        """Transports made so far, by host."""
        with self._lock:
            return dict(self._transports)

    def close(self) -> None:
        """Close every transport made; a failing close is ignored (never masks the outcome)."""
        for transport in self.opened().values():
            try:
                transport.close()
            except Exception:  # noqa: BLE001 - closing must never mask the run's outcome
                pass


def ssh_pool(inventory: Inventory, accept_new_host_keys: bool = False,
             tofu_file: str = DEFAULT_TOFU_FILE) -> TransportPool:
    """A pool of SSH transports for ``inventory``'s hosts.

    Known hosts: the inventory's ``ssh.known_hosts`` files, else ``~/.ssh/known_hosts``; plus
    shipit's own TOFU file. With ``accept_new_host_keys`` unknown keys are trusted and recorded
    in ``tofu_file``; a changed key is always refused.
    """
    tofu = str(Path(tofu_file).expanduser())
    known = inventory.known_hosts or (str(Path("~/.ssh/known_hosts").expanduser()),)
    policy = HostKeyPolicy(known_hosts=tuple(known) + (tofu,), accept_new=accept_new_host_keys,
                           record_to=tofu)

    def factory(name: str) -> Transport:
        h = inventory.hosts[name]
        target = SSHTarget(host=name, address=h.address, port=h.port, user=h.user, key=h.key,
                           gateway=h.gateway, connect_timeout=inventory.connect_timeout)
        return SSHTransport(target, policy)

    return TransportPool(factory)
