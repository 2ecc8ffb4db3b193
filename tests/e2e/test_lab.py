"""The lab's hosts are real, reachable only with verified host keys, and leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import paramiko
import pytest
from click.testing import CliRunner

from shipit.lab import Lab, LabState
from shipit.lab.aptsrc import read_apt_mirror, read_security_mirror
from shipit.lab.cli import lab as lab_cli
from shipit.lab.image import SUITES
from shipit.lab.naming import HostSpec, lab_net
from shipit.lab.plan import DataHostError
from tests.e2e.conftest import LAB_NAME, SUITE

pytestmark = pytest.mark.e2e

DOWN_LAB = f"{LAB_NAME[:26]}-down"  # a second, throwaway lab beside the session's


def connect(host: HostSpec, key: Path, known_hosts: Path) -> paramiko.SSHClient:
    """SSH as deploy with strict host-key checking (RejectPolicy + the given known_hosts)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host.address, username="deploy", key_filename=str(key), look_for_keys=False,
                   allow_agent=False, timeout=10)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _, out, _ = client.exec_command(command, timeout=60)
    text = out.read().decode().strip()
    return out.channel.recv_exit_status(), text


def test_every_host_is_booted_and_deploy_has_sudo(lab: LabState) -> None:
    assert [h.name for h in lab.hosts] == ["web1", "web2", "web3", "db1"]
    for host in lab.hosts:
        client = connect(host, lab.key, lab.known_hosts)
        try:
            assert run(client, "systemctl is-system-running") == (0, "running"), host.name
            assert run(client, "sudo -n true")[0] == 0, host.name
            assert run(client, "hostname")[1] == host.name
            rc, hosts_file = run(client, "cat /etc/hosts")
            assert "localhost" in hosts_file.split() and host.name in hosts_file.split()
        finally:
            client.close()


def test_inventory_files(lab: LabState) -> None:
    text = lab.inventory.read_text()
    assert f"key: {lab.key.name}" in text and f"known_hosts: {lab.known_hosts.name}" in text
    assert "  db: {hosts: [db1]}" in text
    assert lab.key.stat().st_mode & 0o777 == 0o600
    keys = [line.split()[2] for line in lab.known_hosts.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 4, "each host must have its own host key"


def test_mismatched_host_key_is_refused(lab: LabState, tmp_path: Path) -> None:
    web1, web2 = lab.hosts[0], lab.hosts[1]
    lines = dict(line.split(" ", 1) for line in lab.known_hosts.read_text().splitlines())
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{web1.address} {lines[web2.address]}\n")  # web1 listed with web2's key
    with pytest.raises(paramiko.BadHostKeyException):
        connect(web1, lab.key, wrong)
    ssh = Lab(lab.name).ssh_argv("web1", ["true"])
    ssh[ssh.index(next(a for a in ssh if a.startswith("UserKnownHostsFile=")))] = \
        f"UserKnownHostsFile={wrong}"
    proc = subprocess.run(ssh, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in proc.stderr


def test_apt_works_on_a_host(lab: LabState) -> None:
    client = connect(lab.hosts[-1], lab.key, lab.known_hosts)
    try:
        rc, out = run(client, "sudo apt-get update 2>&1")
        assert rc == 0 and "Err:" not in out and "Failed" not in out, out
        if read_security_mirror():  # this machine has Debian's security updates: the hosts too
            assert f" {SUITE}-security " in out, out
        mirror_host = urlsplit(read_apt_mirror()).hostname
        assert run(client, f"getent hosts {mirror_host}")[0] == 0, "DNS must work on the hosts"
    finally:
        client.close()


def test_hosts_run_the_requested_suite(lab: LabState) -> None:
    assert lab.suite == SUITE
    client = connect(lab.hosts[0], lab.key, lab.known_hosts)
    try:
        assert run(client, ". /etc/os-release; echo $VERSION_CODENAME")[1] == SUITE
        sources = run(client, "cat /etc/apt/sources.list")[1].splitlines()
        assert [line.split()[2] for line in sources][:2] == [SUITE, f"{SUITE}-updates"]
    finally:
        client.close()


def test_up_without_db_keeps_the_db_host_and_its_data(lab: LabState, lab_api: Lab) -> None:
    """#11 item 8: `lab up` without --db deleted a running db host and its data."""
    db1 = lab.hosts[-1]
    client = connect(db1, lab.key, lab.known_hosts)
    try:
        assert run(client, "sudo sh -c 'echo kept > /var/lib/shipit-lab-e2e-data'")[0] == 0
    finally:
        client.close()
    pids = lab_api_pids(lab_api, db1)
    said: list[str] = []
    again = Lab(lab.name, lab.inventory.parent, log=said.append).up(hosts=3, db=False, suite=SUITE)
    assert [h.name for h in again.hosts] == ["web1", "web2", "web3", "db1"]
    assert "keeping db1: it holds data (a database); `--prune` removes it" in said
    assert "  db: {hosts: [db1]}" in again.inventory.read_text()
    assert lab_api_pids(lab_api, db1) == pids
    client = connect(db1, lab.key, lab.known_hosts)
    try:
        assert run(client, "cat /var/lib/shipit-lab-e2e-data") == (0, "kept")
    finally:
        client.close()
    # another suite would wipe db1: refused, exit 2, nothing changed
    other = next(s for s in SUITES if s != SUITE)
    with pytest.raises(DataHostError) as info:
        lab_api.up(hosts=3, db=True, suite=other)
    assert info.value.exit_code == 2 and "db1" in info.value.message and "--prune" in info.value.message
    assert lab_api_pids(lab_api, db1) == pids and lab_api.state() is not None
    assert lab_api.state().suite == SUITE  # type: ignore[union-attr]


def test_second_up_keeps_hosts(lab: LabState, lab_api: Lab, lab_timings: dict[str, float]) -> None:
    before = {h.name: lab_api_pids(lab_api, h) for h in lab.hosts}
    known = lab.known_hosts.read_text()
    started = time.monotonic()
    again = lab_api.up(hosts=3, db=True, suite=SUITE)
    lab_timings["second up"] = time.monotonic() - started
    assert again.hosts == lab.hosts
    assert again.known_hosts.read_text() == known
    assert {h.name: lab_api_pids(lab_api, h) for h in lab.hosts} == before


def lab_api_pids(the_lab: Lab, host: HostSpec) -> list[int]:
    from shipit.lab.machine import Machine

    return Machine(the_lab.net, host, the_lab.dir, None).pids()


def test_status_command(lab: LabState) -> None:
    result = CliRunner().invoke(lab_cli, ["status", "--name", lab.name])
    assert result.exit_code == 0, result.output
    for host in lab.hosts:
        row = next(line for line in result.output.splitlines() if f" {host.name} " in line)
        assert "running" in row and "yes" in row and host.address in row


def snapshot(name: str) -> dict[str, str]:
    """What lab ``name`` must leave as it found: its links, mounts, iptables rules and cgroups
    (the lines naming its tag or name: other labs, e.g. another xdist worker's, come and go
    meanwhile)."""
    net = lab_net(name)

    def out(*argv: str) -> list[str]:
        lines = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
        return [line for line in lines if net.tag in line or f"/{name}/" in line or net.comment in line]

    return {
        "ip link": "\n".join(line.split(":")[1] for line in out("ip", "-o", "link")),
        "mount": "\n".join(out("mount")),
        "iptables -t nat -S": "\n".join(out("iptables", "-w", "-t", "nat", "-S")),
        "iptables -S": "\n".join(out("iptables", "-w", "-S")),
        "cgroups": "\n".join(sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/shipit-lab/*")
                                     if p.name in (name, net.tag))),
    }


def test_fresh_lab_heals_and_down_leaves_nothing(lab: LabState, tmp_path: Path,
                                                  lab_timings: dict[str, float]) -> None:
    # `lab` first, so the shared lab is already in the before-snapshot
    before = snapshot(DOWN_LAB)
    other = Lab(DOWN_LAB, tmp_path)
    try:
        started = time.monotonic()
        state = other.up(hosts=1, db=False)
        lab_timings["up 1 host (separate lab)"] = time.monotonic() - started
        during = snapshot(DOWN_LAB)       # the filter sees this lab's own links, mounts and rules
        assert all(during[what] for what in ("ip link", "mount", "iptables -t nat -S")), during
        client = connect(state.hosts[0], state.key, state.known_hosts)
        try:
            assert run(client, "command -v python3 || echo absent")[1] == "absent"
        finally:
            client.close()
        # a killed run: nspawn gone, overlay still mounted; the next up must heal it
        pids = lab_api_pids(other, state.hosts[0])
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while lab_api_pids(other, state.hosts[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        healed = other.up(hosts=1, db=False)
        client = connect(healed.hosts[0], healed.key, healed.known_hosts)
        try:
            assert run(client, "systemctl is-system-running") == (0, "running")
        finally:
            client.close()
        # the other suite: web1 is re-created from that suite's image, and it is said
        said: list[str] = []
        suite = next(s for s in SUITES if s != healed.suite)
        started = time.monotonic()
        switched = Lab(DOWN_LAB, tmp_path, log=said.append).up(hosts=1, suite=suite)
        lab_timings[f"up 1 host, suite -> {suite}"] = time.monotonic() - started
        assert f"replacing web1: {healed.suite} -> {suite}" in said and switched.suite == suite
        client = connect(switched.hosts[0], switched.key, switched.known_hosts)
        try:
            assert run(client, ". /etc/os-release; echo $VERSION_CODENAME") == (0, suite)
            assert run(client, "systemctl is-system-running") == (0, "running")
        finally:
            client.close()
    finally:
        started = time.monotonic()
        other.down()
        lab_timings["down (separate lab)"] = time.monotonic() - started
    after = snapshot(DOWN_LAB)
    for what in before:
        assert after[what] == before[what], f"`{what}` differs after down"
    assert not list(tmp_path.iterdir()), "down must remove the inventory, key and known_hosts"
