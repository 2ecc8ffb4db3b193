"""``shipit lab``: a local lab of real Debian hosts (systemd-nspawn) to test deploys against.

Python API::

    from shipit.lab import Lab
    state = Lab("lab", "inventories").up(hosts=3, db=True)   # -> LabState
    state.inventory, state.key, state.known_hosts, state.hosts
    Lab("lab", "inventories").status()                       # -> list[HostStatus]
    Lab("lab", "inventories").down()
"""

from shipit.lab.lab import DEFAULT_CACHE_ROOT, HostStatus, Lab, LabState
from shipit.lab.naming import HostSpec

__all__ = ["Lab", "LabState", "HostStatus", "HostSpec", "DEFAULT_CACHE_ROOT"]
