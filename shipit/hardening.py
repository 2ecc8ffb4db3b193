"""The systemd sandbox every unit shipit writes for an app runs in (web slots, processes,
release commands): one list, so the units and ``systemd-run`` agree.

What the app's code can do if it is compromised is bounded here: the whole file system is
read-only (``ProtectSystem=strict``) but the app's shared dir (``ReadWritePaths``), homes are
hidden, ``/tmp`` is private, no capability can be gained or kept (``CapabilityBoundingSet=``
empty, ``NoNewPrivileges``, no set-uid/set-gid files), no kernel tunables, modules, logs or
clock, no view of other users (``PrivateUsers``), no new namespaces, only the
``@system-service`` system calls minus the privileged ones, IPv4/IPv6/unix sockets only. ``systemd-analyze security`` rates the web unit at
:data:`EXPOSURE_LIMIT` or below (measured in the lab by ``tests/e2e/test_security.py``: 1.1
"OK"; the web unit as it was before was 8.5 "EXPOSED", the process unit 8.7; see
docs/security.md). Files the app creates are private to it (``UMask=0077``).

Left out on purpose: ``PrivateNetwork``/``IPAddressDeny`` (the app talks to its database and
to the world), ``MemoryDenyWriteExecute`` (breaks JITs and libffi closures some wheels use),
``RestrictAddressFamilies`` narrower than IP and unix sockets, ``RootDirectory``.

Pure data; provenance: systemd.exec(5) and the directives ``systemd-analyze security`` checks.
"""

from __future__ import annotations

from collections.abc import Sequence

EXPOSURE_LIMIT = 1.5
"""The highest ``systemd-analyze security`` exposure a web unit may have (0 safe .. 10 unsafe)."""


def directives(writable: Sequence[str]) -> list[str]:
    """``Key=value`` lines (no section header) sandboxing a service; ``writable`` are the
    absolute paths it may write (``ReadWritePaths``, ``-`` prefixed: a missing one is skipped)."""
    lines = [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        *(f"ReadWritePaths=-{p}" for p in writable),
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "PrivateIPC=yes",
        "PrivateUsers=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
        "UMask=0077",
    ]
    return lines


def unit_text(writable: Sequence[str]) -> str:
    """:func:`directives` as the lines of a ``[Service]`` section (newline-terminated)."""
    return "".join(line + "\n" for line in directives(writable))
