"""Anchors: shipit against pyinfra and Ansible on the same hosts, the same work, in the same run.

One command (as root, from the repository)::

    .venv/bin/python benchmarks/anchors.py                     # 3, 10 and 20 hosts, 3 repetitions
    .venv/bin/python benchmarks/anchors.py --hosts 3 --reps 3 --noops 2

It installs the pinned pyinfra and ansible-core (and matplotlib for the plot) into a venv of
their own, ``benchmarks/.venv-anchors`` (gitignored; reused when the pins match), then for each
fleet size and repetition brings up a fresh lab per tool (its own lab name, default
``anchors``), sets sshd's ``LogLevel VERBOSE`` on every host (the same for every tool), and runs
the workload of ``benchmarks/workload/`` (``shipit.yml``, ``pyinfra_deploy.py``,
``ansible.yml``: identical work) as a first run on the fresh hosts, checks that it converged
(the HTTPS site answers on every host with that host's config), then times ``--noops`` no-op
runs and checks that each changed nothing. The tools' order rotates between repetitions, so
every ratio comes from runs interleaved in this one benchmark run.

Tools: ``shipit``; ``pyinfra``; ``ansible`` (ansible-core in its default configuration:
forks 5, no pipelining; ControlPersist as default); ``ansible-tuned`` (forks = host count,
pipelining on). Both Ansible configurations are timed on no-op runs of both Ansible labs.
Every tool verifies host keys against the lab's known_hosts (strict) and gets a fresh HOME per
run (so no SSH ControlPersist socket or cache outlives a run).

Per run it records the wall time, the peak resident memory of the runner's process tree
(sampled from /proc every 20 ms: the sum over the tool's process and all its descendants,
ssh clients and Ansible's forks included), the runner's CPU time (user + system of the tool's
reaped process tree), the hosts' CPU time (``hosts_cpu_s``: the growth, over the run, of the sum
of ``usage_usec`` in ``cpu.stat`` of every host's cgroup in the unified hierarchy,
``/sys/fs/cgroup/unified/shipit-lab/<lab>/<host>/``: sshd, sudo, the tools' remote scripts and
whatever else runs in the host; empty where the lab has no such cgroups, e.g. with systemd as
PID 1), and per host, from the host's own journal for the run's time window: SSH connections
(``Accepted publickey``), exec requests (``Starting session: command``), SFTP subsystem
sessions, and sudo commands. Hosts and runner share this machine's CPUs, so a run's wall time
is at least (runner CPU + hosts CPU) / CPUs: the results' "CPU budget" table shows that floor
beside the wall time.

``--latency-ms MS`` (default 0: off) emulates a WAN link (this kernel has no netem): per lab,
``benchmarks/delay_proxy.py`` listens on 127.0.0.1, one port per host, and forwards to the
host's sshd, every chunk delayed by MS milliseconds in each direction (and one round trip for
each TCP handshake). All three tools then reach the hosts only through it (their inventories
name ``127.0.0.1`` and the host's proxy port), verifying host keys strictly against a
known_hosts of ``[127.0.0.1]:PORT`` entries built from the lab's. The harness's own checks
(setup, journal counts, the HTTPS check) still talk to the hosts directly. The proxy's CPU
time is recorded too (``proxy_cpu_s``).

Output: ``benchmarks/results/anchors.csv`` (one row per run), ``anchors.md`` (summary, ratios,
target verdicts, per-host session counts, memory, runner and host CPU, the CPU budget,
versions, machine, load at start and end, the command) and ``anchors-noop.png`` (no-op time
against host count, drawn with the anchors venv's matplotlib). With ``--latency-ms`` the same
go to ``anchors-wan.csv``, ``anchors-wan.md`` and ``anchors-wan-noop.png`` instead (the rows
carry ``latency_ms``), so the no-latency results stay as they are. Nothing here asserts
timings.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _snapshot() -> Path:
    """shipit as committed (HEAD), exported beside the runner: the work tree is shared with other
    engineers, and a half-saved file of theirs must not break (or change) a long benchmark run."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
    dest = Path(tempfile.gettempdir()) / f"anchors-shipit-{head}"
    if not (dest / "shipit" / "cli.py").exists():
        tmp = Path(tempfile.mkdtemp(prefix="anchors-snap-"))
        archive = subprocess.run(["git", "archive", "HEAD", "shipit"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        os.replace(tmp, dest) if not dest.exists() else shutil.rmtree(tmp)
    return dest


SNAPSHOT = _snapshot()
sys.path.insert(0, str(SNAPSHOT))
sys.path.insert(1, str(REPO / "benchmarks"))

from noop import machine_info  # noqa: E402

from shipit.lab import Lab, LabState  # noqa: E402
from shipit.lab.cgroups import lab_cgroup_roots  # noqa: E402

BENCH = REPO / "benchmarks"
WORKLOAD = BENCH / "workload"
RESULTS = BENCH / "results"
VENV = BENCH / ".venv-anchors"
#: The anchors, pinned (the newest that install on this machine's Python 3.11).
PINS = ["pyinfra==3.10.0", "ansible-core==2.19.14", "matplotlib==3.11.2"]
TOOLS = ["shipit", "pyinfra", "ansible", "ansible-tuned"]
SITE = "demo.test"
#: CSV columns holding floats (the rest, except the text columns, are ints); for --merge.
FLOAT_COLUMNS = ("wall_s", "peak_rss_mib", "runner_cpu_s", "hosts_cpu_s", "proxy_cpu_s")
TEXT_COLUMNS = ("tool", "lab_of", "run")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the anchors venv ---------------------------------------------------------------------
def ensure_venv() -> dict[str, str]:
    """Create/refresh ``.venv-anchors`` with the pinned versions; return the tools' versions."""
    py = VENV / "bin" / "python"
    pins_file = VENV / "pins.txt"
    if not py.exists() or not pins_file.exists() or pins_file.read_text().split() != PINS:
        log(f"installing {' '.join(PINS)} into {VENV.relative_to(REPO)}")
        if not py.exists():
            subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PINS], check=True)
        pins_file.write_text("\n".join(PINS) + "\n")

    def first_line(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]

    shipit_version = subprocess.run([sys.executable, "-m", "shipit.cli", "--version"], capture_output=True,
                                    text=True, cwd=SNAPSHOT).stdout.strip() or "?"
    return {
        "shipit": f"{shipit_version} (commit {machine_info()['commit']})",
        "pyinfra": first_line(str(VENV / "bin" / "pyinfra"), "--version"),
        "ansible-core": first_line(str(VENV / "bin" / "ansible-playbook"), "--version"),
        "python": first_line(str(py), "--version"),
    }


# --- running a tool, with its process tree's memory sampled ----------------------------------
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_rss_kib(root: int) -> int:
    """Sum of VmRSS (KiB) over ``root`` and all its descendants."""
    kids = _children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def run_measured(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> dict[str, Any]:
    """Run ``argv``: wall seconds, exit code, output, peak RSS of its process tree (MiB)."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kib(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = -9
    finally:
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out_f.seek(0)
    err_f.seek(0)
    return {"wall": wall, "rc": rc, "cpu": cpu, "stdout": out_f.read().decode(errors="replace"),
            "stderr": err_f.read().decode(errors="replace"), "peak_rss_mib": peak / 1024}


# --- inventories for the three tools (same hosts, key, known_hosts; `shard` per host) ----------
def proxied_known_hosts(state: LabState, ports: dict[str, int]) -> str:
    """known_hosts text for the hosts as reached through the delay proxy: for each host, its key
    line(s) from the lab's known_hosts (``ADDRESS KEYTYPE BASE64``, one host per line, port 22)
    re-addressed as ``[127.0.0.1]:PORT KEYTYPE BASE64`` (``ports``: host name -> proxy port)."""
    keys: dict[str, list[str]] = {}
    for line in state.known_hosts.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            for pattern in fields[0].split(","):
                keys.setdefault(pattern, []).append(f"{fields[1]} {fields[2]}")
    out = []
    for h in state.hosts:
        if not keys.get(h.address):
            raise SystemExit(f"{h.name}: no key for {h.address} in {state.known_hosts}")
        out += [f"[127.0.0.1]:{ports[h.name]} {key}" for key in keys[h.address]]
    return "\n".join(out) + "\n"


def write_inventories(state: LabState, d: Path, ports: dict[str, int] | None = None) -> dict[str, Path]:
    """The three tools' inventories for the lab, in ``d``; returns ``{"shipit"|"ansible"|"pyinfra": path}``.

    With ``ports`` (host name -> port of its delay proxy on 127.0.0.1) every host is reached at
    127.0.0.1 on its port, and host keys are checked against ``d/proxied.known_hosts``; without,
    at its own address (port 22), against the lab's known_hosts."""
    hosts = list(enumerate(state.hosts, 1))
    known_hosts = state.known_hosts
    if ports is not None:
        known_hosts = d / "proxied.known_hosts"
        known_hosts.write_text(proxied_known_hosts(state, ports))

    def where(name: str, address: str) -> tuple[str, int | None]:
        """(address, port) to reach the host at; port None: the default (22), left unsaid."""
        return ("127.0.0.1", ports[name]) if ports is not None else (address, None)

    shipit_inv = d / "shipit.yml"
    shipit_inv.write_text("\n".join(
        ["ssh:", "  user: deploy", f"  key: {state.key}", f"  known_hosts: {known_hosts}", "hosts:"]
        + [f"  {h.name}: {{address: {a}, " + ("" if p is None else f"port: {p}, ") + f"vars: {{shard: {i}}}}}"
           for i, h in hosts for a, p in [where(h.name, h.address)]]) + "\n")
    ssh_args = (f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null "
                "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes")
    ansible_inv = d / "ansible.yml"
    ansible_inv.write_text(json.dumps({"all": {
        "vars": {"ansible_user": "deploy", "ansible_ssh_private_key_file": str(state.key),
                 "ansible_ssh_common_args": ssh_args},
        "hosts": {h.name: {"ansible_host": a, **({} if p is None else {"ansible_port": p}), "shard": i}
                  for i, h in hosts for a, p in [where(h.name, h.address)]}}}, indent=1))
    pyinfra_inv = d / "pyinfra_inventory.py"
    common = {"ssh_user": "deploy", "ssh_key": str(state.key), "ssh_known_hosts_file": str(known_hosts),
              "ssh_strict_host_key_checking": "yes"}
    pyinfra_hosts = [(h.name, {**common, "ssh_hostname": a, **({} if p is None else {"ssh_port": p}), "shard": i})
                     for i, h in hosts for a, p in [where(h.name, h.address)]]
    pyinfra_inv.write_text("hosts = [\n" + "".join(f"    {entry!r},\n" for entry in pyinfra_hosts) + "]\n")
    return {"shipit": shipit_inv, "ansible": ansible_inv, "pyinfra": pyinfra_inv}


# --- the emulated WAN link, and the hosts' CPU time -----------------------------------------------
class DelayLink:
    """``benchmarks/delay_proxy.py`` for one lab, as a child process: one port on 127.0.0.1 per host,
    forwarding to the host's sshd with ``delay_ms`` (milliseconds) each way. Use as a context
    manager; ``ports`` maps host name -> port once entered."""

    def __init__(self, state: LabState, delay_ms: int) -> None:
        self.state = state
        self.delay_ms = delay_ms
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> DelayLink:
        argv = [sys.executable, str(BENCH / "delay_proxy.py"), "--delay-ms", str(self.delay_ms),
                "--exit-on-stdin-eof", *(f"{h.name}={h.address}:22" for h in self.state.hosts)]
        # stdin stays open (a pipe) for as long as we live: the proxy exits when it closes
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            self.ports = {str(k): int(v) for k, v in json.loads(line).items()}
        except ValueError:
            self.__exit__()
            raise SystemExit(f"delay_proxy.py did not start (exit {self.proc.poll()}): {line[:200]!r}")
        log(f"  delay proxy (pid {self.proc.pid}, {self.delay_ms} ms each way): "
            + ", ".join(f"{k} 127.0.0.1:{v}" for k, v in self.ports.items()))
        return self

    def cpu_s(self) -> float:
        """CPU time (user + system, seconds) the proxy has used so far (0 when it is gone)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        """SIGTERM, then (after 5 s) SIGKILL; the proxy's exit status is not checked."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self.proc = None


def hosts_cpu_usec(state: LabState) -> int | None:
    """CPU time (microseconds) used so far by the lab's hosts: the sum of ``usage_usec`` from
    ``cpu.stat`` of every host's cgroup in the unified (v2) hierarchy,
    ``/sys/fs/cgroup/unified/shipit-lab/<lab>/<host>/``. None when no host has one there."""
    roots = [r for r in lab_cgroup_roots(state.name) if r.parent.parent.name == "unified"]
    total, found = 0, False
    for root in roots:
        for h in state.hosts:
            try:
                text = (root / h.name / "cpu.stat").read_text()
            except OSError:
                continue
            m = re.search(r"^usage_usec (\d+)$", text, re.M)
            if m:
                total += int(m.group(1))
                found = True
    return total if found else None


def tool_command(tool: str, inv: dict[str, Path], n: int, home: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYINFRA_"))}
    env["HOME"] = str(home)
    if tool == "shipit":  # the committed snapshot, run from a scratch cwd (not the shared work tree)
        env["PYTHONPATH"] = str(SNAPSHOT)
        return ([sys.executable, "-m", "shipit.cli", "run", "anchors", str(WORKLOAD / "shipit.yml"),
                 "-i", str(inv["shipit"]), "--json"], env)
    if tool == "pyinfra":
        return ([str(VENV / "bin" / "pyinfra"), "-y", "--sudo", str(inv["pyinfra"]),
                 str(WORKLOAD / "pyinfra_deploy.py")], env)
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    if tool == "ansible-tuned":
        env["ANSIBLE_FORKS"] = str(max(n, 5))
        env["ANSIBLE_PIPELINING"] = "True"
    return ([str(VENV / "bin" / "ansible-playbook"), "-i", str(inv["ansible"]), str(WORKLOAD / "ansible.yml")], env)


def changes(tool: str, res: dict[str, Any], n: int) -> int:
    """Changes the run reported (raises SystemExit when the run failed or its report is unreadable)."""
    out = res["stdout"]
    if res["rc"] != 0:
        raise SystemExit(f"{tool} failed (exit {res['rc']}):\n{out[-4000:]}\n{res['stderr'][-4000:]}")
    if tool == "shipit":
        doc = json.loads(out)
        return sum(r["changed"] for r in doc["recap"].values())
    if tool.startswith("ansible"):
        recap = re.findall(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out, re.M)
        if len(recap) != n or any(int(u) or int(f) for _, _, _, u, f in recap):
            raise SystemExit(f"{tool}: unexpected PLAY RECAP:\n{out[-3000:]}")
        return sum(int(c) for _, _, c, _, _ in recap)
    # pyinfra: its results table ends with "Grand total  <ops>  <success>  <error>  <no change>",
    # where success counts operations that changed something ("-" for none).
    text = out + res["stderr"]
    m = re.search(r"^\s*Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", text, re.M)
    if not m or m.group(3) != "-":
        raise SystemExit(f"pyinfra: no results table, or errors in it:\n{text[-3000:]}")
    return 0 if m.group(2) == "-" else int(m.group(2))


# --- the hosts ---------------------------------------------------------------------------------
def ssh_host(state: LabState, address: str, command: str, stdin: str = "", timeout: float = 120) -> str:
    argv = ["ssh", "-i", str(state.key), "-o", f"UserKnownHostsFile={state.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-l", "deploy", address, command]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=True).stdout


def each_host(state: LabState, fn: Any) -> list[Any]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fn, state.hosts))


SETUP = """set -e
printf 'LogLevel VERBOSE\\n' > /etc/ssh/sshd_config.d/05-anchors.conf
systemctl reload ssh
for i in 1 2 3; do timeout 90 apt-get -q update </dev/null >/dev/null 2>&1 && break; done
mkdir -p /var/lib/apt/periodic
touch /var/lib/apt/periodic/update-success-stamp /var/lib/apt/periodic/shipit-update-success-stamp
"""


def setup_hosts(state: LabState) -> None:
    """The same for every tool, before its first run: sshd at LogLevel VERBOSE (to count sessions), and
    fresh apt lists with the stamps the three tools read (pyinfra and Ansible: update-success-stamp;
    shipit: its own), so no measured run does `apt-get update`: with ten hosts updating at once
    through the lab's apt cache, `apt-get update` hung on some hosts (acquire methods idle) in two
    pyinfra first runs out of three at 10 hosts; here it runs under `timeout`, retried."""
    each_host(state, lambda h: ssh_host(state, h.address, "sudo -n /bin/sh -s", SETUP, timeout=400))


def count_sessions(state: LabState, since: float, until: float) -> list[dict[str, int]]:
    """Per host, from its journal between two instants: connections, execs, sftp, sudo commands."""
    script = f"""j() {{ journalctl -q --no-pager -o cat --since @{since:.6f} --until @{until:.6f} "$@"; }}
s=$(j -u ssh)
printf '%s %s %s %s\\n' "$(printf '%s\\n' "$s" | grep -c 'Accepted publickey')" \\
  "$(printf '%s\\n' "$s" | grep -c 'Starting session: command')" \\
  "$(printf '%s\\n' "$s" | grep -c 'Starting session: subsystem')" \\
  "$(j _COMM=sudo | grep -c 'COMMAND=')"
"""

    def one(h: Any) -> dict[str, int]:
        c, e, s, u = (int(x) for x in ssh_host(state, h.address, "sudo -n /bin/sh -s", script).split())
        return {"connections": c, "execs": e, "sftp": s, "sudo": u}

    return each_host(state, one)


def check_site(state: LabState, deadline_s: float = 45) -> None:
    """The HTTPS site answers on every host, with that host's own config (shard = its index)."""
    def one(ih: tuple[int, Any]) -> None:
        i, h = ih
        end = time.monotonic() + deadline_s
        last = ""
        while True:
            proc = subprocess.run(["curl", "-sk", "--max-time", "5", "--resolve", f"{SITE}:443:{h.address}",
                                   f"https://{SITE}/config.ini"], capture_output=True, text=True)
            if proc.returncode == 0 and f"shard = {i}" in proc.stdout:
                return
            last = f"curl exit {proc.returncode}: {proc.stdout[:200]} {proc.stderr[:200]}"
            if time.monotonic() > end:
                raise SystemExit(f"{h.name} ({h.address}): the HTTPS site does not answer as it should: {last}")
            time.sleep(1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, enumerate(state.hosts, 1)))


# --- one measured run ----------------------------------------------------------------------------
def measured(tool: str, kind: str, n: int, rep: int, lab_tool: str, state: LabState, inv: dict[str, Path],
             tmp: Path, rows: list[dict[str, Any]], link: DelayLink | None = None) -> dict[str, Any]:
    """One timed run of ``tool`` (``kind``: "first" or "noop") on the lab's ``n`` hosts; checks it, appends
    its row to ``rows`` and returns it. ``link``: the lab's delay proxy, when the tools go through one.

    The row: hosts, rep, tool, lab_of, run, latency_ms (one way, 0 = direct), wall_s, changed,
    peak_rss_mib, runner_cpu_s, hosts_cpu_s (all hosts together; "" when unmeasurable), proxy_cpu_s
    (with a link), and ``<connections|execs|sftp|sudo>_per_host_<min|max>``."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=tmp))
    argv, env = tool_command(tool, inv, n, home)
    cwd = Path(tempfile.mkdtemp(prefix="cwd-", dir=tmp))  # no stray ansible.cfg / config.py
    since = time.time()
    hosts_cpu_before = hosts_cpu_usec(state)
    proxy_cpu_before = link.cpu_s() if link else 0.0
    res = run_measured(argv, env, cwd)
    hosts_cpu_after = hosts_cpu_usec(state)
    proxy_cpu = link.cpu_s() - proxy_cpu_before if link else None
    until = time.time() + 0.3
    hosts_cpu: float | str = ""
    if hosts_cpu_before is not None and hosts_cpu_after is not None:
        hosts_cpu = round((hosts_cpu_after - hosts_cpu_before) / 1e6, 3)
    n_changed = changes(tool, res, n)
    if kind == "noop" and n_changed:
        raise SystemExit(f"{tool}: no-op run at {n} hosts reported {n_changed} changes:\n{res['stdout'][-3000:]}")
    if kind == "first":
        check_site(state)
    time.sleep(0.5)  # let journald take the last lines
    sessions = count_sessions(state, since, until)
    row: dict[str, Any] = {
        "hosts": n, "rep": rep, "tool": tool, "lab_of": lab_tool, "run": kind,
        "latency_ms": link.delay_ms if link else 0, "wall_s": round(res["wall"], 3), "changed": n_changed,
        "peak_rss_mib": round(res["peak_rss_mib"], 1), "runner_cpu_s": round(res["cpu"], 3), "hosts_cpu_s": hosts_cpu}
    if proxy_cpu is not None:
        row["proxy_cpu_s"] = round(proxy_cpu, 3)
    for key in ("connections", "execs", "sftp", "sudo"):
        vals = [s[key] for s in sessions]
        row[f"{key}_per_host_min"] = min(vals)
        row[f"{key}_per_host_max"] = max(vals)
    rows.append(row)
    log(f"  {n} hosts rep {rep} {tool:13s} {kind:5s} {res['wall']:7.2f} s  changed {n_changed:3d}  "
        f"peak {res['peak_rss_mib']:6.1f} MiB  cpu runner {res['cpu']:.2f} s hosts {hosts_cpu or '?'} s  "
        f"per host: conn {row['connections_per_host_max']} "
        f"exec {row['execs_per_host_max']} sftp {row['sftp_per_host_max']} sudo {row['sudo_per_host_max']}")
    return row


def one_lab(lab_tool: str, n: int, rep: int, noops: int, name: str, rows: list[dict[str, Any]],
            ansible_noops: int = 1, latency_ms: int = 0) -> None:
    """A fresh lab; the first run of ``lab_tool``; then ``noops`` no-op rounds; the lab goes down.
    With ``latency_ms`` > 0 the tools reach the hosts through a delay proxy (stopped before the lab)."""
    with tempfile.TemporaryDirectory(prefix="anchors-") as t, contextlib.ExitStack() as stack:
        tmp = Path(t)
        lab = Lab(name, tmp / "inventory", log=lambda m: None)
        lab.down()
        stack.callback(lab.down)
        state = lab.up(hosts=n, db=False)
        setup_hosts(state)
        link = stack.enter_context(DelayLink(state, latency_ms)) if latency_ms > 0 else None
        inv = write_inventories(state, tmp, link.ports if link else None)
        measured(lab_tool, "first", n, rep, lab_tool, state, inv, tmp, rows, link)
        noop_tools = {"ansible": ["ansible", "ansible-tuned"],
                      "ansible-tuned": ["ansible-tuned", "ansible"]}.get(lab_tool, [lab_tool])
        for _ in range(ansible_noops if lab_tool.startswith("ansible") else noops):
            for tool in noop_tools:
                measured(tool, "noop", n, rep, lab_tool, state, inv, tmp, rows, link)


def warm_up(name: str) -> None:
    """Fill the lab's apt cache (caddy & co.) so that no tool pays the mirror's download."""
    log("warm-up: one host, shipit workload (untimed, fills the lab's apt cache)")
    one_lab("shipit", 1, 0, 0, name, [])


# --- results ---------------------------------------------------------------------------------
def med(rows: list[dict[str, Any]], key: str = "wall_s") -> float | None:
    vals = [r[key] for r in rows]
    return statistics.median(vals) if vals else None


def spread(rows: list[dict[str, Any]], key: str = "wall_s", unit: str = " s") -> str:
    if not rows:
        return "–"
    vals = [r[key] for r in rows]
    m = statistics.median(vals)
    fmt = "{:.2f}" if unit == " s" else "{:.0f}"
    return f"{fmt.format(m)}{unit} ({fmt.format(min(vals))}–{fmt.format(max(vals))}, n={len(vals)})"


def per_host(rows: list[dict[str, Any]], key: str) -> str:
    lo = min(r[f"{key}_per_host_min"] for r in rows)
    hi = max(r[f"{key}_per_host_max"] for r in rows)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def select(rows: list[dict[str, Any]], n: int, tool: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["hosts"] == n and r["tool"] == tool and r["run"] == kind]


def measured_rows(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """The rows where every one of ``keys`` has a value (merged older rows may lack newer columns)."""
    return [r for r in rows if all(r.get(k) not in (None, "") for k in keys)]


def results_stem(latency_ms: int) -> str:
    """File name stem of the results: ``anchors``, or ``anchors-wan`` with an emulated latency."""
    return "anchors-wan" if latency_ms > 0 else "anchors"


def cpu_budget_lines(rows: list[dict[str, Any]], sizes: list[int], cpus: int) -> list[str]:
    """The "CPU budget" section: per size and tool, medians over no-op runs of the runner's and the hosts'
    CPU seconds, the CPU-bound floor (runner + hosts [+ proxy]) / ``cpus`` in seconds, and the wall time."""
    with_proxy = any(r.get("proxy_cpu_s") not in (None, "") for r in rows)
    out = ["", "## CPU budget, no-op (median)", "",
           f"Runner and hosts share this machine's {cpus} CPUs, so no run can take less wall time than "
           f"(runner CPU + hosts CPU{' + proxy CPU' if with_proxy else ''}) / {cpus}: the CPU-bound floor. "
           "Where the floor comes close to the wall time, the run was bound by the shared CPUs (and a "
           "fleet of real machines, each with its own CPUs, would be faster); where it is far below, the "
           "time went to waiting (network round trips, sleeps, timeouts, serialisation).", "",
           "| hosts | tool | runner CPU (s) | hosts CPU (s) | "
           + ("proxy CPU (s) | " if with_proxy else "") + "CPU-bound floor (s) | wall (s) | floor ÷ wall |",
           "|---:|---|---:|---:|" + ("---:|" if with_proxy else "") + "---:|---:|---:|"]
    for n in sizes:
        for t in TOOLS:
            nr = measured_rows(select(rows, n, t, "noop"), "runner_cpu_s", "hosts_cpu_s")
            if not nr:
                continue
            floors = [(r["runner_cpu_s"] + r["hosts_cpu_s"] + (r.get("proxy_cpu_s") or 0)) / cpus for r in nr]
            wall = statistics.median(r["wall_s"] for r in nr)
            floor = statistics.median(floors)
            proxy = measured_rows(nr, "proxy_cpu_s")
            cells = [f"{med(nr, 'runner_cpu_s'):.2f}", f"{med(nr, 'hosts_cpu_s'):.2f}"]
            if with_proxy:
                cells.append(f"{med(proxy, 'proxy_cpu_s'):.2f}" if proxy else "–")
            cells += [f"{floor:.2f}", f"{wall:.2f}", f"{floor / wall:.2f}"]
            out.append(f"| {n} | {t} | " + " | ".join(cells) + " |")
    return out


def write_results(rows: list[dict[str, Any]], sizes: list[int], versions: dict[str, str], command: str,
                  load_start: str, started: str, notes: list[str], latency_ms: int = 0) -> None:
    """``<stem>.csv`` and ``<stem>.md`` in ``RESULTS`` (stem: :func:`results_stem`) from ``rows`` (all of one
    ``latency_ms``, milliseconds each way) for the fleet ``sizes``."""
    stem = results_stem(latency_ms)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{stem}.csv", "w", newline="") as fh:
        fields = list(dict.fromkeys(k for r in rows for k in r))  # merged rows may lack newer columns
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    info = machine_info()
    load_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    cpus = os.cpu_count() or 1
    wan = (f" over an emulated WAN link ({latency_ms} ms each way, round trip {2 * latency_ms} ms)"
           if latency_ms else "")
    L: list[str] = [
        f"# Anchors: shipit, pyinfra and Ansible on the same hosts{wan}",
        "",
        f"Produced by `{command}` (from the repository root, as root), started {started}, "
        f"written {info['date']}; shipit as committed at {SNAPSHOT.name.rsplit('-', 1)[1]} (the runner exports "
        "HEAD's `shipit/` and runs that).",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, kernel {info['kernel']}. "
        f"Load average (1, 5, 15 min) at start {load_start}, at end {load_end} (the benchmark's own runs raise "
        "it, Ansible's most; anything else running on the machine adds to the spread). Hosts are systemd-nspawn "
        "Debian 12 containers on this same machine (`shipit lab`), sharing its CPUs with the runner; apt "
        "goes through the lab's apt-cacher-ng, warmed before the first measurement.",
        "",
        "Versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "Workload (`benchmarks/workload/`: `shipit.yml`, `pyinfra_deploy.py`, `ansible.yml`, same "
        "`templates/` and `files/`), as the `deploy` user with sudo: apt `python3 python3-venv caddy`; "
        "system group and user `app`, `/srv/app` owned by it; `demo.service` (`python3 -m http.server 8000 "
        "--bind 127.0.0.1` as `app`, `Restart=on-failure`) written, daemon-reloaded when changed, enabled and "
        "started; `/etc/caddy/Caddyfile` with a `tls internal` HTTPS site `demo.test` proxying to it, Caddy "
        "reloaded when it changed; `/srv/app/config.ini` templated with the per-host variable `shard`. "
        "Ansible's version starts with a `raw` task installing python3 (the hosts have none, and Ansible's "
        "modules need it). Every first run is checked: `curl -k --resolve demo.test:443:ADDR "
        "https://demo.test/config.ini` from the runner answers on every host with that host's `shard`. "
        "Every no-op run is checked: shipit's `--json` recap, Ansible's PLAY RECAP, pyinfra's results "
        "table all report 0 changed.",
        "",
        "Method: for each fleet size and repetition, each tool's first run gets a fresh lab (fresh hosts); "
        "on that converged lab follow the no-op runs (on the Ansible labs, the default and tuned "
        "configurations alternate). Tools run one after another and their order rotates between "
        "repetitions, so every figure and ratio below comes from runs interleaved in this one benchmark run. "
        "`ansible` = ansible-core's defaults (forks 5, pipelining off, ControlPersist 60 s); "
        "`ansible-tuned` = forks = host count, pipelining on. Each run gets a fresh HOME (no ControlPersist "
        "socket or fact cache carries over). Host keys are verified against the lab's known_hosts by every "
        "tool (shipit's inventory `known_hosts`; pyinfra `ssh_known_hosts_file` + "
        "`ssh_strict_host_key_checking=yes`; Ansible `ansible_ssh_common_args` with `UserKnownHostsFile` "
        "and `StrictHostKeyChecking=yes`). sshd on every host logs at `LogLevel VERBOSE` (set before any "
        "tool runs), and the per-host session counts below are read from each host's journal for the run's "
        "time window. Peak memory is the largest sum of RSS over the tool's process tree (ssh clients and "
        "forks included), sampled every 20 ms. Times are the whole process's wall time (start-up included). "
        "Runner CPU is the user + system time of the tool's process tree (the processes it waited for); "
        "host CPU is the growth over the run of `usage_usec` in `cpu.stat` of every host's cgroup "
        "(`/sys/fs/cgroup/unified/shipit-lab/<lab>/<host>/`): sshd, sudo, the tools' remote scripts and "
        "whatever else ran in the hosts meanwhile. Hosts and runner share this machine's "
        f"{cpus} CPUs, so a run's wall time is at least (runner CPU + hosts CPU) / {cpus} "
        "(see the CPU budget below).",
        "",
    ]
    if latency_ms:
        L += [
            f"Emulated WAN: every tool reached every host's sshd through `benchmarks/delay_proxy.py` (one "
            f"process per lab, user space: this kernel has no netem), which delays every chunk by {latency_ms} ms "
            f"in each direction (a chunk read at t is written at t + {latency_ms} ms; order kept) and makes "
            f"each new TCP connection pay one round trip ({2 * latency_ms} ms) for its handshake. The "
            "inventories name 127.0.0.1 and the host's proxy port; host keys are verified strictly against "
            "`[127.0.0.1]:PORT` entries carrying the lab's host keys. Bandwidth is not limited. The harness's "
            "own checks (setup, journal counts, the HTTPS check) go to the hosts directly.",
            "",
        ]
    L += notes
    L += [f"## Wall time{' at ' + str(latency_ms) + ' ms each way' if latency_ms else ''}, median (min–max, n runs)",
          "",
          "| hosts | run | " + " | ".join(TOOLS) + " | shipit ÷ pyinfra | shipit ÷ ansible | shipit ÷ ansible-tuned |",
          "|---:|---|" + "---:|" * (len(TOOLS) + 3)]
    ratios: dict[tuple[int, str, str], float] = {}
    for n in sizes:
        for kind in ("first", "noop"):
            cells = [spread(select(rows, n, t, kind)) for t in TOOLS]
            rcells = []
            base = med(select(rows, n, "shipit", kind))
            for other in ("pyinfra", "ansible", "ansible-tuned"):
                o = med(select(rows, n, other, kind))
                if base is not None and o:
                    ratios[(n, kind, other)] = base / o
                    rcells.append(f"{base / o:.3f}")
                else:
                    rcells.append("–")
            L.append(f"| {n} | {'first run' if kind == 'first' else 'no-op'} | " + " | ".join(cells + rcells) + " |")
    L += ["", "## Per host on a no-op run (from the hosts' sshd and sudo journal), and peak runner memory", "",
          "| hosts | tool | SSH connections | exec requests | SFTP sessions | sudo commands | peak RSS no-op "
          "| peak RSS first run | runner CPU no-op (user+sys) | host CPU per host, no-op (ms) |",
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        for t in TOOLS:
            nr = select(rows, n, t, "noop")
            fr = select(rows, n, t, "first")
            if not nr:
                continue
            per_host_ms = [{"host_cpu_ms": r["hosts_cpu_s"] / r["hosts"] * 1000}
                           for r in measured_rows(nr, "hosts_cpu_s")]
            L.append(f"| {n} | {t} | {per_host(nr, 'connections')} | {per_host(nr, 'execs')} | {per_host(nr, 'sftp')} "
                     f"| {per_host(nr, 'sudo')} | {spread(nr, 'peak_rss_mib', ' MiB')} | {spread(fr, 'peak_rss_mib', ' MiB')} "
                     f"| {spread(measured_rows(nr, 'runner_cpu_s'), 'runner_cpu_s')} "
                     f"| {spread(per_host_ms, 'host_cpu_ms', ' ms')} |")
    L += ["", "First runs, per host (same counts, for the record):", "",
          "| hosts | tool | SSH connections | exec requests | SFTP sessions | sudo commands |", "|---:|---|---:|---:|---:|---:|"]
    for n in sizes:
        for t in TOOLS:
            fr = select(rows, n, t, "first")
            if fr:
                L.append(f"| {n} | {t} | {per_host(fr, 'connections')} | {per_host(fr, 'execs')} | "
                         f"{per_host(fr, 'sftp')} | {per_host(fr, 'sudo')} |")
    L += ["", "Host CPU per host is the hosts' CPU time during a no-op run divided by the number of hosts "
          "(median over the no-op runs, min–max, n)."]
    L += cpu_budget_lines(rows, sizes, cpus)
    L += ["", "## Targets (reported, never asserted)", ""]
    if latency_ms:
        L += ["The targets are stated for the direct (LAN) runs; here at the emulated latency for comparison.", ""]
    L += target_lines(rows, sizes, ratios)
    L += ["", f"Per-run rows: `{stem}.csv`. Plot: `{stem}-noop.png` (no-op wall time, median with min–max, "
          "against host count).", ""]
    (RESULTS / f"{stem}.md").write_text("\n".join(L))


def target_lines(rows: list[dict[str, Any]], sizes: list[int], ratios: dict[tuple[int, str, str], float]) -> list[str]:
    out = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    if 10 in sizes:
        r = ratios.get((10, "noop", "pyinfra"))
        if r is not None:
            out.append(f"- No-op at 10 hosts ≤ 0.25× pyinfra: {r:.3f}× — {verdict(r <= 0.25)}.")
        r = ratios.get((10, "noop", "ansible"))
        if r is not None:
            out.append(f"- No-op at 10 hosts ≤ 0.05× Ansible (default): {r:.3f}× — {verdict(r <= 0.05)}.")
    execs = [r["execs_per_host_max"] for r in rows if r["tool"] == "shipit" and r["run"] == "noop"]
    if execs:
        out.append(f"- shipit no-op exec requests per host ≤ 3: at most {max(execs)} — {verdict(max(execs) <= 3)} "
                   "(one `sudo sh -s` round trip per host gathers the host's and every task's facts, whatever "
                   "the number of tasks; a no-op changes nothing, so there is no second).")
    lo, hi = min(sizes), max(sizes)
    a, b = med(select(rows, lo, "shipit", "noop")), med(select(rows, hi, "shipit", "noop"))
    if a and b and hi >= 20:
        out.append(f"- shipit no-op at {hi} hosts ≤ 1.5× {lo} hosts: {b:.2f} s ÷ {a:.2f} s = {b / a:.2f}× — "
                   f"{verdict(b / a <= 1.5)}.")
    for n in sizes:
        r = ratios.get((n, "first", "pyinfra"))
        if r is not None:
            out.append(f"- First run at {n} hosts not slower than pyinfra: {r:.2f}× pyinfra — {verdict(r <= 1.0)}.")
    return out


def plot(latency_ms: int = 0) -> None:
    """``<stem>-noop.png`` from ``<stem>.csv`` (stem: :func:`results_stem`), with the anchors venv's matplotlib."""
    stem = results_stem(latency_ms)
    subprocess.run([str(VENV / "bin" / "python"), str(BENCH / "anchors_plot.py"), str(RESULTS / f"{stem}.csv"),
                    str(RESULTS / f"{stem}-noop.png")], check=True)


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill PID: stop cleanly, labs down
    signal.signal(signal.SIGINT, signal.default_int_handler)   # also when started in the background
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[3, 10, 20], help="fleet sizes (default 3 10 20)")
    parser.add_argument("--reps", type=int, default=3, help="first runs per tool and size (fresh labs; default 3)")
    parser.add_argument("--reps-at", action="append", default=[], metavar="N:REPS",
                        help="fewer (or more) repetitions at one size, e.g. 20:2")
    parser.add_argument("--noops", type=int, default=3,
                        help="no-op runs on each converged shipit and pyinfra lab (default 3)")
    parser.add_argument("--ansible-noops", type=int, default=1,
                        help="no-op rounds (default, then tuned, or the reverse) on each converged Ansible lab "
                             "(default 1: two no-op runs of each Ansible configuration per repetition)")
    parser.add_argument("--tools", nargs="+", default=TOOLS, choices=TOOLS)
    parser.add_argument("--name", default="anchors", help="lab name (default anchors)")
    parser.add_argument("--merge", type=Path, metavar="CSV",
                        help="keep the rows of an earlier anchors.csv for the sizes not measured now (each "
                             "size's ratios still come from one invocation; say so with --note)")
    parser.add_argument("--note", action="append", default=[], help="a line for the results' notes")
    parser.add_argument("--deadline", type=float, default=0, help="minutes; skip sizes not started by then")
    parser.add_argument("--latency-ms", type=int, default=0, metavar="MS",
                        help="emulated WAN: every tool reaches the hosts through benchmarks/delay_proxy.py, MS "
                             "milliseconds each way (default 0: direct); results go to anchors-wan.{md,csv}")
    args = parser.parse_args()
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    reps_at = {int(k): int(v) for k, v in (s.split(":") for s in args.reps_at)}
    command = "python benchmarks/anchors.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    t0 = time.monotonic()
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    started = machine_info()["date"]
    versions = ensure_venv()
    log(f"versions: {versions}; load {load_start}")
    rows: list[dict[str, Any]] = []
    notes: list[str] = [f"- {line}" for line in args.note]
    done_sizes: list[int] = []
    if args.merge:  # rows of the same latency (none recorded: 0) for the sizes not measured now
        with open(args.merge, newline="") as fh:
            for r in csv.DictReader(fh):
                if int(r["hosts"]) in args.hosts or int(r.get("latency_ms") or 0) != args.latency_ms:
                    continue
                row = {k: (v if k in TEXT_COLUMNS or v in ("", None) else float(v) if k in FLOAT_COLUMNS else int(v))
                       for k, v in r.items()}
                row["latency_ms"] = args.latency_ms  # rows from before the column were direct runs
                rows.append(row)
        done_sizes = sorted({r["hosts"] for r in rows})
    try:
        warm_up(args.name)
        for n in args.hosts:
            if args.deadline and time.monotonic() - t0 > args.deadline * 60:
                notes.append(f"- {n} hosts skipped: the {args.deadline:g}-minute deadline had passed.")
                continue
            reps = reps_at.get(n, args.reps)
            if reps != args.reps:
                notes.append(f"- {n} hosts: {reps} repetitions of first runs instead of {args.reps} (time).")
            for rep in range(1, reps + 1):
                k = (rep - 1) % len(args.tools)
                for tool in args.tools[k:] + args.tools[:k]:
                    for attempt in (1, 2):
                        mark = len(rows)
                        try:
                            one_lab(tool, n, rep, args.noops, args.name, rows, args.ansible_noops,
                                    args.latency_ms)
                            break
                        except SystemExit as exc:  # a failed/hung run: once more on a fresh lab
                            del rows[mark:]
                            log(f"  {tool} at {n} hosts, rep {rep}, attempt {attempt} failed: {str(exc)[-1500:]}")
                            if attempt == 2:
                                raise
                            notes.append(f"- {n} hosts, rep {rep}, {tool}: attempt 1 failed and was redone on a "
                                         f"fresh lab ({str(exc).splitlines()[0][:160]}).")
            done_sizes = sorted(done_sizes + [n])
            write_results([r for r in rows if r["hosts"] in done_sizes], done_sizes, versions, command,
                          load_start, started, ["Notes:", ""] + notes + [""] if notes else [], args.latency_ms)
            plot(args.latency_ms)
    except (KeyboardInterrupt, SystemExit) as exc:
        notes.append(f"- stopped during the next size ({type(exc).__name__}: {str(exc)[:300]}); the sizes "
                     "above were completed.")
    if notes:
        notes = ["Notes:", ""] + notes + [""]
    if rows and done_sizes:
        rows = [r for r in rows if r["hosts"] in done_sizes]
        write_results(rows, done_sizes, versions, command, load_start, started, notes, args.latency_ms)
        plot(args.latency_ms)
        print((RESULTS / f"{results_stem(args.latency_ms)}.md").read_text())


if __name__ == "__main__":
    main()
