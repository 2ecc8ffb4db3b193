"""Pure naming for a lab: its hash, subnet, bridge, machine names and host addresses."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["HostSpec", "LabNet", "lab_net", "plan_hosts", "validate_lab_name", "DB_OCTET",
           "MAX_WEB_HOSTS"]

#: Last octet of ``db1``; web hosts take 11..(10+N).
DB_OCTET = 200
#: web hosts are .11 .. .(10+N); keep them below the db address.
MAX_WEB_HOSTS = DB_OCTET - 11
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class HostSpec:
    """One lab host: inventory ``name`` (web1, db1), its ``address`` and ``group`` (web/db)."""

    name: str
    address: str
    group: str


@dataclass(frozen=True)
class LabNet:
    """Network identity of a lab derived from its name.

    ``tag`` is 5 hex chars of the name's hash; ``subnet`` is ``10.231.K.0/24``;
    ``gateway`` is ``10.231.K.1`` (on the bridge); ``bridge`` is ``sl-<tag>`` (8 chars).
    """

    name: str
    tag: str
    octet: int

    @property
    def prefix(self) -> str:
        """``10.231.K`` (no trailing dot)."""
        return f"10.231.{self.octet}"

    @property
    def subnet(self) -> str:
        return f"{self.prefix}.0/24"

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"

    @property
    def bridge(self) -> str:
        return f"sl-{self.tag}"

    @property
    def comment(self) -> str:
        """The iptables comment tagging this lab's rules."""
        return f"shipit-lab-{self.name}"

    def machine(self, host: str) -> str:
        """nspawn machine name for ``host``: ``<tag>-<host>``; its veth ``vb-<tag>-<host>`` fits 15 chars."""
        return f"{self.tag}-{host}"


def validate_lab_name(name: str) -> str:
    """Return ``name`` if it is a valid lab name (lowercase letters, digits, dashes; ≤31 chars).

    Raises ValueError otherwise.
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid lab name {name!r}: use lowercase letters, digits and dashes (at most 31)")
    return name


def lab_net(name: str) -> LabNet:
    """Derive the lab's network identity from its name (stable across runs and machines)."""
    digest = hashlib.sha256(validate_lab_name(name).encode()).digest()
    return LabNet(name=name, tag=digest.hex()[:5], octet=2 + int.from_bytes(digest[3:5], "big") % 252)


def plan_hosts(net: LabNet, hosts: int, db: bool) -> list[HostSpec]:
    """The hosts of a lab: ``web1..webN`` at ``.11..(10+N)``, then ``db1`` at ``.200`` if ``db``.

    Raises ValueError when ``hosts`` is outside 0..MAX_WEB_HOSTS.
    """
    if not 0 <= hosts <= MAX_WEB_HOSTS:
        raise ValueError(f"--hosts must be between 0 and {MAX_WEB_HOSTS}, not {hosts}")
    specs = [HostSpec(f"web{i}", f"{net.prefix}.{10 + i}", "web") for i in range(1, hosts + 1)]
    if db:
        specs.append(HostSpec("db1", f"{net.prefix}.{DB_OCTET}", "db"))
    return specs
