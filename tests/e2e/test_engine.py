"""The core engine on real hosts (issue 3's "done when"), through the real CLI in a subprocess.

Every run gets its own HOME (so ``~/.config/shipit/known_hosts`` and ``~/.ssh`` of whoever runs
the tests are neither read nor written) and is checked on the hosts themselves over SSH.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipit.facts import FactQuery, build_gather_script, split_gather_output
from shipit.facts.registry import fact_kinds
from shipit.lab import LabState
from shipit.lab.naming import HostSpec

pytestmark = pytest.mark.e2e

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
CONVERGE = PLAYBOOKS / "converge.yml"
WEB = ("web1", "web2", "web3")
REPO = Path(__file__).resolve().parents[2]


# ---- helpers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"stdout is not JSON (rc={self.rc}):\n{self.stdout}\n{self.stderr}") from None
        return doc

    def __str__(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


def shipit(*args: str | Path, home: Path, timeout: float = 600) -> Run:
    """Run ``python -m shipit.cli ARGS`` with HOME=home; never raises on a non-zero exit."""
    env = {**os.environ, "HOME": str(home), "COLUMNS": "200"}
    env.pop("SHIPIT_BECOME_PASSWORD", None)
    proc = subprocess.run([sys.executable, "-m", "shipit.cli", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def spec(lab: LabState, name: str) -> HostSpec:
    return next(h for h in lab.hosts if h.name == name)


def on_host(lab: LabState, name: str, command: str) -> tuple[int, str]:
    """Run ``command`` (sh, as root via sudo) on lab host ``name``; (rc, stdout stripped)."""
    argv = ["ssh", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-l", "deploy",
            spec(lab, name).address, "sudo -n /bin/sh -s"]
    proc = subprocess.run(argv, input=command, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 255, f"ssh to {name} failed: {proc.stderr}"
    return proc.returncode, proc.stdout.strip()


def host_out(lab: LabState, name: str, command: str) -> str:
    rc, out = on_host(lab, name, command)
    assert rc == 0, f"{name}: `{command}` exited {rc}: {out}"
    return out


def copy_inventory(lab: LabState, dest: Path, known_hosts: str | None = None) -> Path:
    """A copy of the lab's inventory (key and known_hosts beside it) in ``dest``.

    ``known_hosts``: text to use instead of the lab's known_hosts.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(lab.key, dest / lab.key.name)
    os.chmod(dest / lab.key.name, 0o600)
    (dest / lab.known_hosts.name).write_text(known_hosts if known_hosts is not None
                                             else lab.known_hosts.read_text())
    inv = dest / lab.inventory.name
    inv.write_text(lab.inventory.read_text())
    return inv


def known_lines(lab: LabState) -> dict[str, str]:
    """address -> "type base64" of the lab's known_hosts."""
    return dict(line.split(" ", 1) for line in lab.known_hosts.read_text().splitlines() if line)


def assert_recap(doc: dict[str, Any], hosts: tuple[str, ...], **expected: Any) -> None:
    for h in hosts:
        row = doc["recap"][h]
        for key, value in expected.items():
            assert row[key] == value, f"{h}: recap {key} is {row[key]}, expected {value}: {row}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


# ---- converge, idempotence, handlers ------------------------------------------------------
@pytest.fixture(scope="module")
def converged(lab: LabState, home: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The converge playbook run twice on the three fresh web hosts: (first, second) JSON."""
    for h in WEB:
        assert on_host(lab, h, "test -e /srv/shipdemo")[0] == 1, \
            f"{h} is not fresh: left over from a killed session? `shipit lab down --name {lab.name}`"
    first = shipit("run", "lab", CONVERGE, "-i", lab.inventory, "--limit", "web", "--json", home=home)
    assert first.rc == 0, first
    second = shipit("run", "lab", CONVERGE, "-i", lab.inventory, "--limit", "web", "--json", home=home)
    assert second.rc == 0, second
    return first.doc, second.doc


def test_first_run_converges_three_fresh_hosts(lab: LabState, converged: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, _ = converged
    assert set(first["recap"]) == set(WEB)
    assert_recap(first, WEB, failed=0, unreachable=False)
    for h in WEB:
        statuses = {t["task"]: t["status"] for t in first["tasks"] if t["host"] == h}
        # every task acted on a fresh host, and the handler ran once
        assert statuses == {
            "Install a small package": "changed", "Service group": "changed",
            "Service user": "changed", "App directory": "changed", "Config file": "changed",
            "Per-host page": "changed", "Demo unit": "changed",
            "One-time initialisation": "changed", "Seed once": "changed",
            "Demo service is running and enabled": "ok", "restart shipdemo": "changed",
        }, (h, statuses)
        assert first["recap"][h]["changed"] == 10

    for h in WEB:
        address = spec(lab, h).address
        assert host_out(lab, h, "jq -n '1+1'") == "2"
        _, _, uid, gid, _, home_dir, shell = host_out(lab, h, "getent passwd shipdemo").split(":")
        assert int(uid) < 1000 and home_dir == "/var/lib/shipdemo" and shell == "/usr/sbin/nologin"
        assert host_out(lab, h, "getent group shipdemo").split(":")[2] == gid
        assert host_out(lab, h, "stat -c '%F %a %U %G' /srv/shipdemo") == "directory 750 shipdemo shipdemo"
        assert host_out(lab, h, "stat -c '%F %a %U %G' /srv/shipdemo/demo.conf") == \
            "regular file 640 shipdemo shipdemo"
        assert host_out(lab, h, "cat /srv/shipdemo/demo.conf") == \
            "# managed by shipit\ngreeting=hello from shipit"
        assert host_out(lab, h, "stat -c '%a %U %G' /srv/shipdemo/index.txt") == "644 root shipdemo"
        assert host_out(lab, h, "cat /srv/shipdemo/index.txt") == \
            f"host={h}\naddress={address}\ngroups=web\nos=debian 12"
        assert host_out(lab, h, "systemctl is-enabled shipdemo") == "enabled"
        assert host_out(lab, h, "systemctl is-active shipdemo") == "active"
        pid = host_out(lab, h, "systemctl show -P MainPID shipdemo")
        assert host_out(lab, h, f"ps -o user= -p {pid}") == "shipdemo"
        assert host_out(lab, h, "test -f /srv/shipdemo/.initialized && echo yes") == "yes"
        assert host_out(lab, h, "cat /srv/shipdemo/seed.log") == "seeded-by-shipit"


def test_second_run_changes_nothing(lab: LabState, converged: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, second = converged
    assert set(second["recap"]) == set(WEB)
    assert_recap(second, WEB, changed=0, failed=0, unreachable=False, sftp_transfers=0)
    assert not second["failed"]
    for h in WEB:
        statuses = {t["task"]: t["status"] for t in second["tasks"] if t["host"] == h}
        assert statuses["One-time initialisation"] == "skipped"     # creates: exists
        assert statuses["Seed once"] == "skipped"                   # unless: succeeded
        assert "restart shipdemo" not in statuses                   # nothing notified it
        assert host_out(lab, h, "cat /srv/shipdemo/seed.log") == "seeded-by-shipit"


def test_drift_is_repaired_and_notifies_the_handler(lab: LabState, home: Path,
                                                    converged: tuple[dict[str, Any], dict[str, Any]]) -> None:
    before = host_out(lab, "web2", "systemctl show -P InvocationID shipdemo")
    host_out(lab, "web2", "echo tampered >> /srv/shipdemo/demo.conf && chmod 0666 /srv/shipdemo/demo.conf")
    run = shipit("run", "lab", CONVERGE, "-i", lab.inventory, "--limit", "web2", "--json", home=home)
    assert run.rc == 0, run
    changed = [(t["task"], t["reasons"]) for t in run.doc["tasks"] if t["status"] == "changed"]
    assert [c[0] for c in changed] == ["Config file", "restart shipdemo"], changed
    assert "content differs" in changed[0][1][0] and "mode 0666 -> 0640" in changed[0][1][0]
    assert host_out(lab, "web2", "cat /srv/shipdemo/demo.conf") == "# managed by shipit\ngreeting=hello from shipit"
    assert host_out(lab, "web2", "stat -c %a /srv/shipdemo/demo.conf") == "640"
    after = host_out(lab, "web2", "systemctl show -P InvocationID shipdemo")
    assert after and after != before, "the handler did not restart shipdemo"
    again = shipit("run", "lab", CONVERGE, "-i", lab.inventory, "--limit", "web2", "--json", home=home)
    assert again.rc == 0, again
    assert_recap(again.doc, ("web2",), changed=0, failed=0)


# ---- check mode ---------------------------------------------------------------------------
def test_check_mode_lists_changes_and_changes_nothing(lab: LabState, home: Path) -> None:
    probe = ("test -e /srv/shipdemo; echo dir=$?; getent passwd shipdemo >/dev/null; echo user=$?; "
             "dpkg-query -W -f='${Status}' jq 2>/dev/null | grep -q installed; echo jq=$?; "
             "test -e /etc/systemd/system/shipdemo.service; echo unit=$?; "
             "find /etc /srv /var/lib/dpkg /var/lib/apt/periodic -printf '%p %T@ %m %u\\n' 2>/dev/null "
             "| sort | md5sum")
    before = host_out(lab, "db1", probe)
    assert before.startswith("dir=1\nuser=2\njq=1\nunit=1\n"), before
    run = shipit("run", "lab", CONVERGE, "-i", lab.inventory, "--limit", "db1", "--check", "--json",
                 home=home)
    assert run.rc == 0, run
    doc = run.doc
    assert doc["check"] is True and set(doc["recap"]) == {"db1"}
    assert doc["recap"]["db1"]["changed"] >= 9 and doc["recap"]["db1"]["failed"] == 0
    reasons = {t["task"]: t["reasons"] for t in doc["tasks"] if t["status"] == "changed"}
    assert "create /srv/shipdemo/demo.conf" in reasons["Config file"]
    assert any("jq" in r for r in reasons["Install a small package"]), reasons
    assert any("start shipdemo.service" in r for r in reasons["Demo unit"]), reasons
    assert all(t["message"] == "check mode: not applied" for t in doc["tasks"] if t["status"] == "changed")
    assert host_out(lab, "db1", probe) == before, "check mode changed something on db1"
    assert doc["recap"]["db1"]["sftp_transfers"] == 0


# ---- validation: one clear error, exit 2, no connection ------------------------------------
class Listener:
    """A TCP listener on loopback that counts the connections it is offered (and closes them;
    subclasses :meth:`handle` them otherwise)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture()
def listener() -> Iterator[Listener]:
    li = Listener()
    yield li
    li.close()


BAD_INPUTS = {
    # name: (playbook text, line, what the message must contain)
    "bad yaml": ("- name: p\n  hosts: web\n  tasks:\n    - name: x\n      apt: {name: jq\n"
                 "    - name: y\n      group: {name: g}\n",
                 6, ["invalid YAML", "expected ',' or '}'", "opened at line 5"]),
    "unknown module": ("- name: p\n  hosts: web\n  tasks:\n    - name: ok\n      group: {name: g}\n"
                       "    - name: typo\n      aptt: {name: jq}\n",
                       7, ["aptt: unknown module", "modules: ", " apt, ", "did you mean 'apt'?"]),
    "unknown param": ("- name: p\n  hosts: web\n  tasks:\n    - name: x\n      apt:\n        name: jq\n"
                      "        version: '1.6'\n",
                      7, ["apt.version: unknown param of module apt",
                          "expected one of cache_valid_time, name, state, update_cache"]),
    "mistyped param": ("- name: p\n  hosts: web\n  tasks:\n    - name: x\n      file:\n"
                       "        path: /tmp/x\n        mode: 0644\n",
                       7, ["file.mode: expected a string, got 420"]),
    "mistyped bool": ("- name: p\n  hosts: web\n  tasks:\n    - name: x\n      user:\n"
                      "        name: bob\n        system: sometimes\n",
                      7, ["user.system: expected true or false, got 'sometimes'"]),
    "undefined group": ("- name: p\n  hosts: webz\n  tasks:\n    - name: x\n      group: {name: g}\n",
                        2, ["hosts: 'webz' is neither a host nor a group", "groups: db, web"]),
    "undefined variable": ("- name: p\n  hosts: web\n  tasks:\n    - name: x\n      file:\n"
                           "        path: \"/tmp/{{ no_such_var }}\"\n",
                           5, ["file: undefined variable 'no_such_var' (for hosts: web1, web2)"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_error_and_no_connection(case: str, tmp_path: Path, listener: Listener) -> None:
    text, line, expected = BAD_INPUTS[case]
    book = tmp_path / "book.yml"
    book.write_text(text)
    inv = tmp_path / "inv.yml"
    # every host points at the listener: any connection attempt would be counted
    inv.write_text(yaml.safe_dump({
        "ssh": {"user": "deploy"},
        "hosts": {n: {"address": "127.0.0.1", "port": listener.port} for n in ("web1", "web2", "db1")},
        "groups": {"web": {"hosts": ["web1", "web2"]}, "db": {"hosts": ["db1"]}},
    }))
    run = shipit("run", "lab", book, "-i", inv, "--json", home=tmp_path, timeout=60)
    assert run.rc == 2, run
    assert "Traceback" not in run.stderr, run
    doc = json.loads(run.stdout)  # --json: one error document on stdout, the problem in it
    assert doc["error"] == "invalid input; nothing was touched" and len(doc["problems"]) == 1, doc
    assert doc["problems"][0]["file"] == str(book) and doc["problems"][0]["line"] == line, doc
    lines = run.stderr.strip().splitlines()
    assert lines[0] == "error: invalid input; nothing was touched", run
    assert len(lines) == 2, f"expected exactly one problem line:\n{run.stderr}"
    problem = lines[1].strip()
    assert problem.startswith(f"{book}:{line}: "), problem
    for fragment in expected:
        assert fragment in problem, (fragment, problem)
    assert listener.accepted == 0, "a connection was made despite invalid input"


def test_the_listener_would_see_a_connection(tmp_path: Path, listener: Listener) -> None:
    """Control for the test above: a VALID playbook against the same inventory connects."""
    book = tmp_path / "book.yml"
    book.write_text("- name: p\n  hosts: web\n  tasks:\n    - name: x\n      group: {name: g}\n")
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"ssh": {"user": "deploy", "connect_timeout": 2},
                                   "hosts": {"web1": {"address": "127.0.0.1", "port": listener.port}},
                                   "groups": {"web": {"hosts": ["web1"]}}}))
    run = shipit("run", "lab", book, "-i", inv, "--json", home=tmp_path, timeout=60)
    assert run.rc == 1 and run.doc["recap"]["web1"]["unreachable"] is True, run
    assert listener.accepted >= 1


# ---- host keys ----------------------------------------------------------------------------
def marker_playbook(tmp_path: Path, marker: str, fatal: bool) -> Path:
    book = tmp_path / f"marker-{fatal}.yml"
    book.write_text(yaml.safe_dump([{
        "name": "marker", "hosts": "web", "serial": 1, "any_errors_fatal": fatal,
        "tasks": [{"name": "drop a marker", "file": {"path": marker, "content": "x\n"}}],
    }], sort_keys=False))
    return book


def test_changed_host_key_is_refused_and_other_hosts_go_on(lab: LabState, tmp_path: Path) -> None:
    kh = known_lines(lab)
    web1, web2 = spec(lab, "web1").address, spec(lab, "web2").address
    wrong = "".join(f"{addr} {kh[web2] if addr == web1 else key}\n" for addr, key in kh.items())
    inv = copy_inventory(lab, tmp_path / "inv", known_hosts=wrong)
    marker = f"/tmp/shipit-e2e-{uuid.uuid4().hex}"
    try:
        run = shipit("run", "lab", marker_playbook(tmp_path, marker, fatal=False), "-i", inv, "--json",
                     home=tmp_path)
        assert run.rc == 1, run
        doc = run.doc
        assert doc["recap"]["web1"]["unreachable"] is True and doc["recap"]["web1"]["ssh_execs"] == 0
        assert_recap(doc, ("web2", "web3"), unreachable=False, failed=0, changed=1)
        assert "CHANGED" in run.stderr and "SHA256:" in run.stderr, run
        assert "SHA256:" in doc["recap"]["web1"]["message"], doc["recap"]["web1"]
        assert on_host(lab, "web1", f"test -e {marker}")[0] == 1
        assert host_out(lab, "web2", f"cat {marker}") == "x"
        assert host_out(lab, "web3", f"cat {marker}") == "x"

        fatal_marker = marker + "-fatal"
        run = shipit("run", "lab", marker_playbook(tmp_path, fatal_marker, fatal=True), "-i", inv,
                     "--json", home=tmp_path)
        assert run.rc == 1, run
        assert "any_errors_fatal" in run.doc["stopped"], run
        for h in WEB:
            assert on_host(lab, h, f"test -e {fatal_marker}")[0] == 1, f"{h} ran after a fatal error"
    finally:
        for h in WEB:
            on_host(lab, h, f"rm -f {marker} {marker}-fatal")


def test_unknown_host_key_needs_accept_new_host_keys(lab: LabState, tmp_path: Path) -> None:
    kh = known_lines(lab)
    web1 = spec(lab, "web1").address
    inv = copy_inventory(lab, tmp_path / "inv",
                         known_hosts="".join(f"{a} {k}\n" for a, k in kh.items() if a != web1))
    home = tmp_path / "home"
    home.mkdir()
    tofu = home / ".config" / "shipit" / "known_hosts"

    refused = shipit("exec", "lab", "-i", inv, "--limit", "web", "--json", "--", "hostname", home=home)
    assert refused.rc == 1, refused
    results = {r["host"]: r for r in json.loads(refused.stdout)["results"]}
    assert results["web1"]["rc"] is None
    assert "unknown host key" in results["web1"]["stderr"] and "SHA256:" in results["web1"]["stderr"]
    assert "--accept-new-host-keys" in results["web1"]["stderr"]
    assert results["web2"]["stdout"].strip() == "web2" and results["web3"]["stdout"].strip() == "web3"
    assert not tofu.exists()

    accepted = shipit("exec", "lab", "-i", inv, "--limit", "web1", "--json", "--accept-new-host-keys",
                      "--", "hostname", home=home)
    assert accepted.rc == 0, accepted
    assert json.loads(accepted.stdout)["results"][0]["stdout"].strip() == "web1"
    recorded = tofu.read_text().split()
    host_keys = {" ".join(line.split()[:2]) for line in
                 host_out(lab, "web1", "cat /etc/ssh/ssh_host_*_key.pub").splitlines()}
    assert recorded[0] == web1 and f"{recorded[1]} {recorded[2]}" in host_keys, recorded

    # recorded: trusted next time without the flag; a playbook run works too
    again = shipit("run", "lab", CONVERGE, "-i", inv, "--limit", "web1", "--check", "--json", home=home)
    assert again.rc == 0, again
    assert again.doc["recap"]["web1"]["unreachable"] is False


# ---- facts and exec -----------------------------------------------------------------------
def test_facts_command(lab: LabState, home: Path) -> None:
    run = shipit("facts", "lab", "-i", lab.inventory, "--json", home=home)
    assert run.rc == 0, run
    doc = run.doc
    assert doc["unreachable"] == {}
    assert set(doc["facts"]) == {h.name for h in lab.hosts}
    for h in lab.hosts:
        f = doc["facts"][h.name]
        assert (f["os_id"], f["os_version"], f["codename"]) == ("debian", "12", "bookworm")
        assert f["hostname"] == h.name
        assert f["cpus"] == int(host_out(lab, h.name, "nproc"))
        assert f["mem_total"] > 0 and len(f["load"]) == 3 and f["systemd"]
        assert f["boot_id"] == host_out(lab, h.name, "cat /proc/sys/kernel/random/boot_id")


def test_exec_command(lab: LabState, home: Path) -> None:
    run = shipit("exec", "lab", "-i", lab.inventory, "--json", "--", "echo", "$(hostname)", "$(id -un)",
                 home=home)
    assert run.rc == 0, run
    results = {r["host"]: r for r in json.loads(run.stdout)["results"]}
    assert set(results) == {h.name for h in lab.hosts}
    for name, r in results.items():
        assert (r["rc"], r["stdout"].strip()) == (0, f"{name} deploy"), r

    become = shipit("exec", "lab", "-i", lab.inventory, "--limit", "web1,db1", "--become", "--json",
                    "--", "id", "-u", home=home)
    assert become.rc == 0, become
    assert {r["host"]: r["stdout"].strip() for r in json.loads(become.stdout)["results"]} == \
        {"web1": "0", "db1": "0"}

    failing = shipit("exec", "lab", "-i", lab.inventory, "--limit", "web2", "--json", "--",
                     "echo oops >&2; exit 3", home=home)
    assert failing.rc == 1, failing
    r = json.loads(failing.stdout)["results"][0]
    assert (r["host"], r["rc"], r["stderr"].strip()) == ("web2", 3, "oops")


class Forwarder(Listener):
    """A TCP forwarder on loopback (a port the kernel picks) to ``address:22``, for tests of
    what a connection through another port looks like."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        upstream = socket.create_connection((self.address, 22), timeout=10)
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_ssh_config_port_and_hostname_are_honoured(lab: LabState, tmp_path: Path) -> None:
    """An inventory host with no address and no port: ~/.ssh/config's HostName and Port say
    where it is (as OpenSSH would), and its host key is checked under ``[127.0.0.1]:PORT``."""
    web1 = spec(lab, "web1")
    fwd = Forwarder(web1.address)
    try:
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text(f"Host viaport\n  HostName 127.0.0.1\n  Port {fwd.port}\n")
        key = known_lines(lab)[web1.address]
        (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{fwd.port} {key}\n")
        shutil.copy(lab.key, tmp_path / "lab.key")
        os.chmod(tmp_path / "lab.key", 0o600)
        inv = tmp_path / "inv.yml"
        inv.write_text("ssh: {user: deploy, key: lab.key, known_hosts: known_hosts}\nhosts:\n  viaport: {}\n")
        run = shipit("exec", "lab", "-i", inv, "--json", "--", "hostname", home=home)
        assert run.rc == 0, run
        assert json.loads(run.stdout)["results"][0]["stdout"].strip() == "web1"
        assert fwd.accepted == 1
    finally:
        fwd.close()


# ---- round trips --------------------------------------------------------------------------
def doubled_playbook(dest: Path) -> Path:
    """converge.yml with every task listed twice (templates copied beside it)."""
    shutil.copytree(PLAYBOOKS / "templates", dest / "templates")
    plays = yaml.safe_load(CONVERGE.read_text())
    for play in plays:
        play["tasks"] = play["tasks"] + [{**t, "name": t["name"] + " (again)"} for t in play["tasks"]]
    out = dest / "converge-x2.yml"
    out.write_text(yaml.safe_dump(plays, sort_keys=False))
    return out


def sudo_count(lab: LabState, name: str, since: str) -> int:
    """sudo invocations by deploy on ``name`` since ``since`` (an epoch timestamp), from journald."""
    out = host_out(lab, name, f"journalctl -q --no-pager -o cat _COMM=sudo --since @{since} "
                              "| grep -c 'COMMAND=/usr/bin/sh -c' || true")
    return int(out or 0)


def test_batched_facts_agree_with_one_by_one(lab: LabState) -> None:
    """A play's gather batches queries of one kind into one process (stat, dpkg-query,
    apt-cache, systemctl); on a real host that must read exactly what one query at a time
    reads, odd args included (spaces, symlinks, devices, unknown names, name:arch)."""
    kinds = fact_kinds()
    host_out(lab, "web1", "mkdir -p '/tmp/batch dir  x' && printf x > '/tmp/batch dir  x/f'")
    queries = ([FactQuery("file", p) for p in ("/etc/os-release", "/etc", "/bin", "/dev/null", "/nope",
                                               "/tmp/batch dir  x", "/tmp/batch dir  x/f")]
               + [FactQuery("deb", n) for n in ("openssh-server", "sudo", "no-such-pkg-x", "libc6:amd64",
                                                "libc6:i386")]
               + [FactQuery("apt_policy", n) for n in ("openssh-server", "no-such-pkg-x", "sudo",
                                                       "libc6:amd64")]
               + [FactQuery("unit", n) for n in ("ssh.service", "nosuch.service", "getty@.service",
                                                  "systemd-journald.service")])

    def gather(qs: list[FactQuery]) -> dict[FactQuery, Any]:
        out = host_out(lab, "web1", "export LC_ALL=C\n" + build_gather_script(qs, kinds, "T"))
        return split_gather_output(out + "\n", qs, kinds, "T")

    batched = gather(queries)
    assert "@@shipit:T:batch:" in build_gather_script(queries, kinds, "T")
    for q in queries:
        alone = gather([q])[q]
        if q.kind == "unit":  # live counters may move between the two reads
            alone, now = {k: v for k, v in alone.items() if k != "main_pid"}, \
                {k: v for k, v in batched[q].items() if k != "main_pid"}
            assert alone == now, q
        else:
            assert alone == batched[q], q
    assert batched[FactQuery("file", "/tmp/batch dir  x/f")]["sha256"] == \
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"  # sha256 of "x"
    assert batched[FactQuery("deb", "sudo")]["installed"] is True
    assert batched[FactQuery("unit", "ssh.service")]["active_state"] == "active"


def test_noop_round_trips_are_constant(lab: LabState, tmp_path: Path, home: Path,
                                       converged: tuple[dict[str, Any], dict[str, Any]]) -> None:
    single = converged[1]
    assert len(yaml.safe_load(CONVERGE.read_text())[0]["tasks"]) >= 10
    execs = {h: single["recap"][h]["ssh_execs"] for h in WEB}
    assert all(1 <= n <= 3 for n in execs.values()), execs

    book = doubled_playbook(tmp_path)
    since = host_out(lab, "web1", "sleep 1; date +%s")
    double = shipit("run", "lab", book, "-i", lab.inventory, "--limit", "web", "--json", home=home)
    assert double.rc == 0, double
    assert len([t for t in double.doc["tasks"] if t["host"] == "web1"]) == 20
    assert_recap(double.doc, WEB, changed=0, failed=0)
    assert {h: double.doc["recap"][h]["ssh_execs"] for h in WEB} == execs
    # the hosts saw it too: the privileged round trips (every exec but the host-facts one,
    # which runs without sudo) appear in web1's journal as sudo sessions of `sh -s`
    seen = sudo_count(lab, "web1", since)
    assert 1 <= seen <= execs["web1"], (seen, execs)
