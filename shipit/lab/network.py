"""The lab's bridge and NAT: ``ip link`` and ``iptables`` rules tagged with the lab's comment.

Every rule carries ``-m comment --comment shipit-lab-<name>``, so :func:`remove_nat` deletes
exactly this lab's rules and nothing else. All functions are idempotent.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import shlex
from pathlib import Path

from shipit.lab.naming import LabNet
from shipit.lab.util import LabError, run

__all__ = ["ensure_bridge", "remove_bridge", "bridge_exists", "ensure_nat", "remove_nat",
           "tagged_rules", "check_subnet_free", "ACNG_PORT"]

#: Port of the lab's apt-cacher-ng on the bridge gateway (not 3142: a system-wide apt-cacher-ng may hold that).
ACNG_PORT = 3149


def bridge_exists(net: LabNet) -> bool:
    """True when the lab's bridge interface exists."""
    return Path(f"/sys/class/net/{net.bridge}").exists()


def check_subnet_free(net: LabNet) -> None:
    """Raise :class:`LabError` when an interface other than the lab's bridge already uses its subnet."""
    out = run(["ip", "-j", "-4", "addr", "show"]).stdout
    subnet = ipaddress.ip_network(net.subnet)
    for link in json.loads(out or "[]"):
        if link.get("ifname") == net.bridge:
            continue
        for a in link.get("addr_info", []):
            if ipaddress.ip_address(a["local"]) in subnet:
                raise LabError(f"subnet {net.subnet} of lab {net.name!r} is already used by "
                               f"{link.get('ifname')}; pick another --name")


def ensure_bridge(net: LabNet) -> None:
    """Create the bridge with the gateway address and bring it up (no-op if already so)."""
    if not bridge_exists(net):
        run(["ip", "link", "add", net.bridge, "type", "bridge"])
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", net.bridge]).stdout
    if f" {net.gateway}/24 " not in addrs:
        run(["ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge])
    run(["ip", "link", "set", net.bridge, "up"])


def remove_bridge(net: LabNet) -> None:
    """Delete the lab's bridge (its addresses go with it); no-op when absent."""
    if bridge_exists(net):
        run(["ip", "link", "del", net.bridge])


def _rules(net: LabNet) -> list[tuple[str, list[str]]]:
    """(table, rule spec after the chain verb) for every rule the lab needs."""
    c = ["-m", "comment", "--comment", net.comment]
    return [
        ("nat", ["POSTROUTING", "-s", net.subnet, "!", "-d", net.subnet, "-j", "MASQUERADE", *c]),
        ("filter", ["FORWARD", "-i", net.bridge, "-j", "ACCEPT", *c]),
        ("filter", ["FORWARD", "-o", net.bridge, "-m", "conntrack", "--ctstate",
                    "RELATED,ESTABLISHED", "-j", "ACCEPT", *c]),
        ("filter", ["INPUT", "-i", net.bridge, "-p", "tcp", "--dport", str(ACNG_PORT),
                    "-j", "ACCEPT", *c]),
    ]


def tagged_rules(net: LabNet, table: str) -> list[list[str]]:
    """This lab's rules in ``table`` as ``iptables -S`` argument lists (starting with ``-A``)."""
    out = run(["iptables", "-w", "-t", table, "-S"]).stdout
    found = []
    for line in out.splitlines():
        args = shlex.split(line)
        if args[:1] == ["-A"] and any(a == "--comment" and b == net.comment
                                      for a, b in itertools.pairwise(args)):
            found.append(args)
    return found


def remove_nat(net: LabNet) -> None:
    """Delete every iptables rule tagged with this lab's comment, in the nat and filter tables."""
    for table in ("nat", "filter"):
        for args in tagged_rules(net, table):
            run(["iptables", "-w", "-t", table, "-D", *args[1:]], check=False)


def ensure_nat(net: LabNet) -> None:
    """Enable IPv4 forwarding and (re)install exactly the lab's tagged rules.

    Raises :class:`LabError` if iptables refuses a rule.
    """
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    for table, spec in _rules(net):
        if run(["iptables", "-w", "-t", table, "-C", *spec], check=False).returncode != 0:
            run(["iptables", "-w", "-t", table, "-I", *spec[:1], "1", *spec[1:]])
