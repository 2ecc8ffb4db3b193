"""Readiness of a lab host, judged the way shipit will use it: SSH as ``deploy`` with the lab
key and strict host-key checking, ``sudo -n true``, and a finished boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import paramiko

__all__ = ["Readiness", "probe"]

_PROBE = "sudo -n true && systemctl is-system-running --wait; echo; systemctl --failed --plain --no-legend"


@dataclass(frozen=True)
class Readiness:
    """Outcome of one probe.

    ``ready`` is True only when the boot finished with state ``running``. ``state`` is the
    ``is-system-running`` output (``running``, ``degraded``...) or ``""`` when we could not log
    in; ``failed_units`` lists failed systemd units; ``error`` says why login failed.
    """

    ready: bool
    state: str = ""
    failed_units: tuple[str, ...] = ()
    error: str = ""


def probe(address: str, key: Path, known_hosts: Path, timeout: float = 5.0,
          user: str = "deploy") -> Readiness:
    """SSH to ``address`` as ``user`` (host key checked against ``known_hosts``) and check boot.

    ``timeout`` (seconds) bounds connect, auth and the remote wait. Never raises for network or
    auth problems: they come back as ``Readiness(ready=False, error=...)``.
    """
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, username=user, key_filename=str(key), look_for_keys=False,
                       allow_agent=False, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout)
        _, stdout, _ = client.exec_command(_PROBE, timeout=timeout * 4)
        out = stdout.read().decode(errors="replace")
        stdout.channel.recv_exit_status()
    except (TimeoutError, paramiko.SSHException, OSError, EOFError) as e:
        return Readiness(False, error=f"{type(e).__name__}: {e}".strip())
    finally:
        client.close()
    head, _, tail = out.partition("\n")
    state = head.strip()
    failed = tuple(line.split()[0] for line in tail.splitlines() if line.strip())
    if not state:
        return Readiness(False, error="sudo -n true failed or boot state unknown")
    return Readiness(state == "running", state=state, failed_units=failed)
