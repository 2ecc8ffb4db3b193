"""The deploy job (#12): shipit against pyinfra and Ansible deploying the same app the same way,
on the same kind of lab, interleaved in one run.

One command (as root, from the repository)::

    .venv/bin/python benchmarks/deploy_anchors.py                        # 10 hosts at 25 ms, 3 and 10 hosts
    .venv/bin/python benchmarks/deploy_anchors.py --sizes 3 --rounds 1    # a quick look

The job is the example app (``examples/app``: FastAPI, uvicorn with 2 workers, a heartbeat
worker, PostgreSQL on ``db1``, alembic migrations, Caddy for HTTPS) deployed Ansistrano-style:
a release built on the runner is uploaded, its venv built from wheels, migrations run once,
``current`` pointed at it, the units restarted, health checked; old releases pruned; a
rollback points ``current`` at the previous release again. The anchors are written as their
users would write them, with nothing but the tools themselves (``benchmarks/deploy_job/``:
``pyinfra_deploy.py`` / ``pyinfra_rollback.py``, ``ansible_deploy.yml`` /
``ansible_rollback.yml``, shared templates); before each of their deploys the harness builds
the release as such a user's script does (``pip wheel`` of the app and its dependencies into
a wheelhouse from a warm pip cache, then a tarball with ``alembic.ini``, ``migrations/`` and a
``release.env`` naming the release), and that build is timed as the step's ``build`` phase.
shipit runs its own ``shipit deploy`` / ``shipit rollback`` (the committed HEAD, exported
with ``git archive``, as benchmarks/anchors.py does). The anchors restart every host at once
(Ansistrano's and pyinfra's default, with a moment of downtime per host); shipit rolls with
the example app's ``serial: 1`` behind health checks (no request lost): a conservative
comparison for shipit.

Tools: ``shipit``, ``pyinfra`` (pinned as in anchors.py), ``ansible`` (ansible-core tuned:
forks = host count + 1, pipelining on: the faster Ansible of benchmarks/results/anchors.md).

For each size (``--sizes``: ``N`` web hosts + ``db1``, or ``N@MS`` for the same behind
``benchmarks/delay_proxy.py`` at MS milliseconds each way), every tool gets a fresh lab of its
own (``dja-<tool>``), prepared the same way for all (``setup_hosts`` of anchors.py: sshd at
LogLevel VERBOSE, fresh apt lists), and all three labs stay up together so that steps can
interleave: the first deploy by each tool in turn, then ``--rounds`` rounds of a one-line code
change deployed by each tool in turn followed by a rollback by each tool in turn (the tools'
order rotates each round). Every step is checked over HTTPS through Caddy on every web host
(``GET /`` answers with the expected release, which also proves the database and its
migrations). Recorded per step: wall time (build included for the anchors), the phases
(shipit: its ``--json`` ``durations``; anchors: from the timestamps of their task / operation
lines, each named after its phase), the runner's CPU time, the hosts' CPU time (cgroups, as in
anchors.py), the 1-minute load, and per web host from its journal: SSH connections, exec
requests, SFTP sessions and sudo commands.

Output: ``benchmarks/results/deploy.csv`` (one row per step), ``deploy.md`` (tables, ratios
against the faster anchor, targets, command, versions, machine) and ``deploy.png``. Nothing
here asserts timings.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anchors  # noqa: E402  (exports the HEAD snapshot of shipit and puts it first on sys.path)
from anchors import VENV, count_sessions, ensure_venv, hosts_cpu_usec, log, setup_hosts  # noqa: E402
from noop import machine_info  # noqa: E402

from shipit.lab import Lab, LabState  # noqa: E402

REPO = anchors.REPO
JOB = REPO / "benchmarks" / "deploy_job"
EXAMPLE = REPO / "examples" / "app"
RESULTS = REPO / "benchmarks" / "results"
TOOLS = ["shipit", "pyinfra", "ansible"]
DOMAIN = "example.shipit.test"  # the example app's domain (its shipit.yml), used by every tool
DB_PASSWORD = "bench-Secret-pw-1"
PG_VERSION = "15"  # PostgreSQL of the lab's Debian 12 hosts
PHASES = ["plan", "build", "provision", "upload", "migrate", "prepare", "switch", "prune"]
#: An anchor's task (Ansible: ``TASK [phase: ...]``) or operation (pyinfra: ``--> Starting [run once]
#: operation: phase: ...``, with colour codes) starting; group 1 is its phase.
_PHASE_LINE = re.compile(r"(?:TASK \[|Starting (?:run once )?operation:(?:\s|\x1b\[[0-9;]*m)*)"
                         r"(provision|upload|prepare|migrate|switch|prune):")


@dataclasses.dataclass
class Fleet:
    """One tool's lab for one size: its state, the tool's inventory, the release it serves and the
    ones it has deployed (oldest first), scratch dirs."""

    tool: str
    state: LabState
    inventory: Path
    tmp: Path
    link: TransparentDelay | None
    releases: list[str] = dataclasses.field(default_factory=list)
    serving: str = ""

    @property
    def web(self) -> list[Any]:
        return [h for h in self.state.hosts if h.group == "web"]

    @property
    def db_address(self) -> str:
        return next(h.address for h in self.state.hosts if h.group == "db")


# --- inventories -----------------------------------------------------------------------------------
def write_inventory(tool: str, state: LabState, d: Path) -> Path:
    """The tool's inventory of the lab (groups ``web`` and ``db``, hosts at their own addresses, keys
    checked strictly against the lab's known_hosts) in ``d``."""
    groups: dict[str, list[str]] = {}
    for h in state.hosts:
        groups.setdefault(h.group, []).append(h.name)
    by_name = {h.name: h for h in state.hosts}
    if tool == "shipit":
        path = d / "shipit-inventory.yml"
        lines = ["ssh:", "  user: deploy", f"  key: {state.key}", f"  known_hosts: {state.known_hosts}", "hosts:"]
        lines += [f"  {h.name}: {{address: {h.address}}}" for h in state.hosts]
        lines += ["groups:"] + [f"  {g}: {{hosts: [{', '.join(names)}]}}" for g, names in groups.items()]
        path.write_text("\n".join(lines) + "\n")
        return path
    if tool == "ansible":
        path = d / "ansible-inventory.json"
        ssh_args = (f"-o UserKnownHostsFile={state.known_hosts} -o GlobalKnownHostsFile=/dev/null "
                    "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes")
        path.write_text(json.dumps({"all": {
            "vars": {"ansible_user": "deploy", "ansible_ssh_private_key_file": str(state.key),
                     "ansible_ssh_common_args": ssh_args},
            "children": {g: {"hosts": {n: {"ansible_host": by_name[n].address} for n in names}}
                         for g, names in groups.items()}}}, indent=1))
        return path
    path = d / "pyinfra_inventory.py"
    common = {"ssh_user": "deploy", "ssh_key": str(state.key), "ssh_known_hosts_file": str(state.known_hosts),
              "ssh_strict_host_key_checking": "yes"}
    text = ""
    for g, names in groups.items():
        entries = [(n, {**common, "ssh_hostname": by_name[n].address}) for n in names]
        text += f"{g} = [\n" + "".join(f"    {e!r},\n" for e in entries) + "]\n"
    path.write_text(text)
    return path


class TransparentDelay:
    """An emulated WAN link between this machine and a lab's hosts, for every SSH connection made here:
    ``benchmarks/delay_proxy.py`` (``delay_ms`` milliseconds each way per chunk, one port on 127.0.0.1
    per host) runs as ``nobody``, and one iptables rule per host in the nat table's OUTPUT chain
    redirects this machine's connections to the host's port 22 to that host's proxy port, except the
    proxy's own (``! --uid-owner nobody``). So every tool reaches the hosts at their own addresses with
    their own host keys, and a host's address means the same to the app (PostgreSQL's listen address
    and pg_hba, DATABASE_URL) as without the delay. Use as a context manager; the rules go on exit."""

    COMMENT = "shipit-bench-delay"

    def __init__(self, state: LabState, delay_ms: int) -> None:
        self.state = state
        self.delay_ms = delay_ms
        self.proc: subprocess.Popen[str] | None = None
        self.rules: list[list[str]] = []

    def __enter__(self) -> TransparentDelay:
        argv = ["runuser", "-u", "nobody", "--", "/usr/bin/python3", str(REPO / "benchmarks" / "delay_proxy.py"),
                "--delay-ms", str(self.delay_ms), "--exit-on-stdin-eof",
                *(f"{h.name}={h.address}:22" for h in self.state.hosts)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            ports = {str(k): int(v) for k, v in json.loads(line).items()}
        except ValueError:
            rc = self.proc.poll()
            self.__exit__()
            raise SystemExit(f"delay_proxy.py did not start (exit {rc}): {line[:200]!r}") from None
        for h in self.state.hosts:
            rule = ["OUTPUT", "-p", "tcp", "-d", h.address, "--dport", "22", "-m", "owner", "!", "--uid-owner",
                    "nobody", "-m", "comment", "--comment", self.COMMENT, "-j", "REDIRECT", "--to-ports",
                    str(ports[h.name])]
            subprocess.run(["iptables", "-t", "nat", "-A", *rule], check=True)
            self.rules.append(rule)
        log(f"  delay: {self.delay_ms} ms each way on every SSH connection to {len(ports)} hosts")
        return self

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the proxy has used so far (0 when it is gone)."""
        if self.proc is None:
            return 0.0
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def __exit__(self, *exc: object) -> None:
        for rule in self.rules:
            subprocess.run(["iptables", "-t", "nat", "-D", *rule], check=False)
        self.rules = []
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, 15)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, 9)
                    self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# --- the runner's build for the anchors ------------------------------------------------------------
def edit_app(dest: Path, suffix: str) -> Path:
    """The example app in ``dest`` (copied the first time) with ``suffix`` appended to its main module,
    changed in place, as a user edits a work tree."""
    if not dest.exists():
        shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".venv"))
    main = dest / "src" / "example_app" / "main.py"
    main.write_text((EXAMPLE / "src" / "example_app" / "main.py").read_text() + suffix)
    return dest


def build_release(app: Path, release: str, out: Path, env: dict[str, str]) -> Path:
    """What an anchor user's build script does: ``pip wheel`` of the app and its dependencies into a
    wheelhouse (pip's cache warm), then ``release.tar.gz`` with it, ``alembic.ini``, ``migrations/``
    and ``release.env`` (``SHIPIT_RELEASE=<release>``, which the app reports). Returns the tarball."""
    stage = out / release
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "wheels").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(stage / "wheels"), str(app)],
                   env=env, check=True, capture_output=True, timeout=600)
    shutil.copy(app / "alembic.ini", stage / "alembic.ini")
    shutil.copytree(app / "migrations", stage / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    (stage / "release.env").write_text(f"SHIPIT_RELEASE={release}\n")
    tarball = out / f"{release}.tar.gz"
    subprocess.run(["tar", "-czf", str(tarball), "-C", str(stage), "."], check=True)
    shutil.rmtree(stage)
    return tarball


# --- one step ----------------------------------------------------------------------------------------
def run_streamed(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 1800) -> dict[str, Any]:
    """Run ``argv`` with its stdout and stderr merged and each line timestamped as it comes (seconds
    since the start): wall seconds, exit code, ``lines`` [(t, text)], ``stdout`` (shipit's JSON goes
    to stdout, its progress to stderr: kept apart)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    lines: list[tuple[float, str]] = []
    out: list[bytes] = []

    def pump(stream: Any, keep: list[bytes] | None) -> None:
        for raw in stream:
            lines.append((time.perf_counter() - started, raw.decode(errors="replace").rstrip("\n")))
            if keep is not None:
                keep.append(raw)

    pumps = [threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, None), daemon=True)]
    for t in pumps:
        t.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        rc = proc.wait()
    for t in pumps:
        t.join(10)
    wall = time.perf_counter() - started
    lines.sort(key=lambda x: x[0])
    return {"wall": wall, "rc": rc, "lines": lines, "stdout": b"".join(out).decode(errors="replace")}


def anchor_phases(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """Seconds per phase from the anchors' task / operation lines: a phase runs from its first line to
    the next phase's first line (the last to the end); ``plan`` is the time before the first (start-up,
    connecting, and for pyinfra its fact gathering and planning of every operation)."""
    starts: list[tuple[float, str]] = []
    for t, text in lines:
        m = _PHASE_LINE.search(text)
        if m and (not starts or starts[-1][1] != m.group(1)):
            starts.append((t, m.group(1)))
    out: dict[str, float] = {"plan": starts[0][0] if starts else wall}
    for (t, phase), nxt in zip(starts, [*(s[0] for s in starts[1:]), wall], strict=True):
        out[phase] = out.get(phase, 0.0) + (nxt - t)
    return out


def tool_argv(f: Fleet, step: str, release: str, artifact: Path | None, app: Path, n: int,
              home: Path, shipit_args: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYINFRA_"))}
    env.update(HOME=str(home), DB_PASSWORD=DB_PASSWORD, PYTHONUNBUFFERED="1", COLUMNS="200")
    if f.tool == "shipit":  # its cache (wheels, parts, uv's) warm after the first deploy, as on a laptop
        env.update(PYTHONPATH=str(anchors.SNAPSHOT), SHIPIT_CACHE_DIR=str(f.tmp / "shipit-cache"))
        return ([sys.executable, "-m", "shipit.cli", "deploy" if step != "rollback" else "rollback",
                 f.state.name, "-i", str(f.inventory), "--app", str(app), "--json", *shipit_args], env)
    env.update(DEPLOY_RELEASE=release, DEPLOY_ARTIFACT=str(artifact or ""), DB_ADDRESS=f.db_address,
               PG_VERSION=PG_VERSION, DEPLOY_DOMAIN=DOMAIN)
    if f.tool == "pyinfra":
        script = "pyinfra_rollback.py" if step == "rollback" else "pyinfra_deploy.py"
        return ([str(VENV / "bin" / "pyinfra"), "-y", "--sudo", str(f.inventory), str(JOB / script)], env)
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_FORKS=str(n + 1), ANSIBLE_PIPELINING="True",
               ANSIBLE_HOST_KEY_CHECKING="True")
    if step == "rollback":
        return ([str(VENV / "bin" / "ansible-playbook"), "-i", str(f.inventory), str(JOB / "ansible_rollback.yml")],
                env)
    extra = {"release": release, "artifact": str(artifact), "db_address": f.db_address, "pg_version": PG_VERSION,
             "domain": DOMAIN}
    return ([str(VENV / "bin" / "ansible-playbook"), "-i", str(f.inventory), "-e", json.dumps(extra),
             str(JOB / "ansible_deploy.yml")], env)


def served(f: Fleet, deadline_s: float = 60) -> dict[str, str]:
    """The release each web host serves over HTTPS through its Caddy (``GET /`` of the app), waited for
    up to ``deadline_s`` seconds while a host does not answer 200."""
    def one(h: Any) -> tuple[str, str]:
        end, last = time.monotonic() + deadline_s, ""
        while True:
            p = subprocess.run(["curl", "-sk", "--max-time", "5", "--resolve", f"{DOMAIN}:443:{h.address}",
                                "-w", "\n%{http_code}", f"https://{DOMAIN}/"], capture_output=True, text=True)
            body, _, code = p.stdout.rpartition("\n")
            if code == "200":
                return h.name, str(json.loads(body).get("release"))
            last = f"curl exit {p.returncode}, HTTP {code}: {body[:200]}"
            if time.monotonic() > end:
                return h.name, f"(no answer: {last})"
            time.sleep(1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, f.web))


def step(f: Fleet, kind: str, k: int, n: int, size: str, app_dir: Path, rows: list[dict[str, Any]],
         shipit_args: tuple[str, ...] = ()) -> None:
    """One timed step (``kind``: first, change or rollback; ``k``: the round, 0 for the first) by the
    fleet's tool, checked over HTTPS on every web host; its row goes to ``rows`` (with
    ``shipit_args``, options added to shipit's command line, e.g. ``("--serial", "100%")``)."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=f.tmp))
    cwd = Path(tempfile.mkdtemp(prefix="cwd-", dir=f.tmp))
    app = edit_app(app_dir, f"\n# {'r0' if kind == 'first' else f'change {k}'}\n") if kind != "rollback" else app_dir
    release = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{k:02d}" if kind != "rollback" else ""
    load = float(Path("/proc/loadavg").read_text().split()[0])
    web_state = dataclasses.replace(f.state, hosts=tuple(f.web))
    since = time.time()
    cpu_before = hosts_cpu_usec(f.state)
    proxy_before = f.link.cpu_s() if f.link else 0.0
    build_s, artifact = 0.0, None
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if f.tool != "shipit" and kind != "rollback":
        t0 = time.perf_counter()
        artifact = build_release(app, release, f.tmp, {**os.environ, "PIP_CACHE_DIR": str(f.tmp / "pip-cache")})
        build_s = time.perf_counter() - t0
    argv, env = tool_argv(f, kind, release, artifact, app, n, home, shipit_args)
    res = run_streamed(argv, env, cwd)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after = hosts_cpu_usec(f.state)
    proxy_cpu = round(f.link.cpu_s() - proxy_before, 2) if f.link else ""
    until = time.time() + 0.3
    tail = "\n".join(text for _, text in res["lines"][-60:])
    if res["rc"] != 0:
        raise SystemExit(f"{f.tool} {kind} at {size} failed (exit {res['rc']}):\n{tail}")
    if f.tool == "shipit":
        doc = json.loads(res["stdout"])
        phases = {p: float(v) for p, v in doc.get("durations", {}).items()}
        want = doc["release"] if kind != "rollback" else next(iter(set(doc["serving"].values())))
        sent = max((doc.get("uploaded_bytes") or {"": 0}).values())
    else:
        phases = {**anchor_phases(res["lines"], res["wall"]), "build": build_s}
        sent = ""
        if kind == "rollback":
            want = f.releases[f.releases.index(f.serving) - 1]
        else:
            want = release
    answers = served(f)
    if set(answers.values()) != {want}:
        raise SystemExit(f"{f.tool} {kind} at {size}: hosts serve {answers}, expected {want}\n{tail}")
    if kind == "rollback" and want == f.serving:
        raise SystemExit(f"{f.tool} rollback at {size} left {want} serving")
    if kind != "rollback":
        f.releases.append(want)
    f.serving = want
    time.sleep(0.5)  # let journald take the last lines
    sessions = count_sessions(web_state, since, until)
    row: dict[str, Any] = {
        "size": size, "hosts": n, "latency_ms": f.link.delay_ms if f.link else 0, "tool": f.tool, "step": kind,
        "args": " ".join(shipit_args),
        "round": k, "release": want, "wall_s": round(res["wall"] + build_s, 2), "load1": load,
        "runner_cpu_s": round(ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime, 2),
        "hosts_cpu_s": round((cpu_after - cpu_before) / 1e6, 2) if cpu_before is not None and cpu_after is not None
        else "",
        "proxy_cpu_s": proxy_cpu, "uploaded_max_bytes": sent,
        **{f"{p}_s": round(v, 2) for p, v in phases.items()}}
    for key in ("connections", "execs", "sftp", "sudo"):
        row[f"{key}_per_host_max"] = max(s[key] for s in sessions)
    rows.append(row)
    log(f"  {size:>6} {f.tool:8s} {kind:8s} r{k} {row['wall_s']:7.1f} s  load {load:5.1f}  "
        + " ".join(f"{p} {phases[p]:.1f}" for p in PHASES if p in phases)
        + f"  per host: conn {row['connections_per_host_max']} exec {row['execs_per_host_max']}"
          f" sftp {row['sftp_per_host_max']} sudo {row['sudo_per_host_max']}")


# --- one size ------------------------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    """``N`` or ``N@MS`` -> (web hosts, milliseconds each way)."""
    hosts, _, ms = text.partition("@")
    return int(hosts), int(ms or 0)


def one_size(size: str, rounds: int, rotate: int, rows: list[dict[str, Any]]) -> None:
    n, ms = parse_size(size)
    fleets: list[Fleet] = []
    labs: list[Lab] = []
    tmp_root = Path(tempfile.mkdtemp(prefix="deploy-anchors-"))
    try:
        for tool in TOOLS:
            tmp = tmp_root / tool
            tmp.mkdir()
            lab = Lab(f"dja-{tool}", tmp / "lab", log=lambda m: None)
            lab.down()
            labs.append(lab)
            state = lab.up(hosts=n, db=True)
            setup_hosts(state)
            link = TransparentDelay(state, ms).__enter__() if ms > 0 else None
            fleets.append(Fleet(tool, state, write_inventory(tool, state, tmp), tmp, link))
            log(f"{size}: lab dja-{tool} up ({n} web hosts + db1)")
        order = fleets[rotate % 3:] + fleets[:rotate % 3]
        apps = {f.tool: f.tmp / "app" for f in fleets}
        for f in order:
            step(f, "first", 0, n, size, apps[f.tool], rows)
        for k in range(1, rounds + 1):
            order = order[1:] + order[:1]
            for f in order:
                step(f, "change", k, n, size, apps[f.tool], rows)
            for f in order:
                step(f, "rollback", k, n, size, apps[f.tool], rows)
    finally:
        for f in fleets:
            if f.link:
                f.link.__exit__()
        for lab in labs:
            lab.down()
        shutil.rmtree(tmp_root, ignore_errors=True)


# --- results ----------------------------------------------------------------------------------------------
def med(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def pick(rows: list[dict[str, Any]], size: str, tool: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["size"] == size and r["tool"] == tool and r["step"] == kind]


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f} s"


def write_rows(rows: list[dict[str, Any]], name: str) -> None:
    """``RESULTS/name``: one CSV row per step, the columns every row has, in first-seen order."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(RESULTS / name, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def write_results(rows: list[dict[str, Any]], sizes: list[str], versions: dict[str, str], command: str,
                  info: dict[str, str]) -> None:
    write_rows(rows, "deploy.csv")
    loads = [r["load1"] for r in rows]
    lines = ["# Deploy benchmark: the deploy job, shipit against pyinfra and Ansible", "",
             f"Produced by `{command}` (from the repository root, as root), {info['date']}, commit {info['commit']}. "
             f"Machine: nproc {info['nproc']} ({info['cpu']}), {info['memory']}, kernel {info['kernel']}, Python "
             f"{info['python']}; 1-minute load {min(loads):.1f}–{max(loads):.1f} at the steps' starts. Hosts are "
             "systemd-nspawn containers on this machine (`shipit lab`: N web hosts + `db1`, Debian 12), sharing its "
             "CPUs with the runner. Versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()) + ".", "",
             "Every step is the whole tool process (and, for the anchors, the runner's build before it), checked "
             "over HTTPS through Caddy on every web host. Medians over the rounds; the tools' steps interleave.", "",
             "| size | step | shipit | pyinfra | ansible | shipit ÷ faster anchor |",
             "|---|---|---:|---:|---:|---:|"]
    for size in sizes:
        for kind in ("first", "change", "rollback"):
            m = {t: med([r["wall_s"] for r in pick(rows, size, t, kind)]) for t in TOOLS}
            anchor = min((v for t, v in m.items() if t != "shipit" and v is not None), default=None)
            ratio = f"{m['shipit'] / anchor:.2f}" if m["shipit"] is not None and anchor else "–"
            label = size.replace("@", " hosts @ ") + " ms" if "@" in size else f"{size} hosts"
            lines.append(f"| {label} | {kind} | " + " | ".join(fmt(m[t]) for t in TOOLS) + f" | {ratio} |")
    lines += ["", "## Phases (median seconds)", "",
              "shipit: its own `durations`; the anchors: from their task / operation lines (`plan` is the time "
              "before their first task runs: start-up, connecting, and for pyinfra its fact gathering and "
              "planning of every operation; `build` is the runner's build before the tool starts).", "",
              "| size | step | tool | " + " | ".join(PHASES) + " | SSH connections / execs / sftp / sudo per host |",
              "|---|---|---|" + "---:|" * len(PHASES) + "---|"]
    for size in sizes:
        for kind in ("first", "change", "rollback"):
            for t in TOOLS:
                sel = pick(rows, size, t, kind)
                if not sel:
                    continue
                cells = [f"{med([r[f'{p}_s'] for r in sel if r.get(f'{p}_s') not in (None, '')]):.1f}"
                         if any(r.get(f"{p}_s") not in (None, "") for r in sel) else "–" for p in PHASES]
                counts = " / ".join(str(max(r[f"{c}_per_host_max"] for r in sel))
                                    for c in ("connections", "execs", "sftp", "sudo"))
                lines.append(f"| {size} | {kind} | {t} | " + " | ".join(cells) + f" | {counts} |")
    lines += ["", "## CPU (median seconds per step)", "",
              "Runner and hosts share this machine's CPUs: a step cannot take less wall time than "
              f"(runner CPU + hosts CPU) / {info['nproc']}.", "",
              "| size | step | tool | runner CPU | hosts CPU | CPU-bound floor | wall |", "|---|---|---|---:|---:|---:|---:|"]
    cpus = int(info["nproc"]) if info["nproc"].isdigit() else 1
    for size in sizes:
        for kind in ("first", "change", "rollback"):
            for t in TOOLS:
                sel = [r for r in pick(rows, size, t, kind) if r["hosts_cpu_s"] != ""]
                if sel:
                    rc, hc = med([r["runner_cpu_s"] for r in sel]), med([r["hosts_cpu_s"] for r in sel])
                    assert rc is not None and hc is not None
                    lines.append(f"| {size} | {kind} | {t} | {rc:.1f} | {hc:.1f} | {(rc + hc) / cpus:.1f} | "
                                 f"{fmt(med([r['wall_s'] for r in sel]))} |")
    lines += ["", "Per-step rows: `deploy.csv`; plot: `deploy.png`.", ""]
    (RESULTS / "deploy.md").write_text("\n".join(lines))


def plot(sizes: list[str]) -> None:
    """``deploy.png`` from ``deploy.csv``, drawn with the anchors venv's matplotlib (a subprocess)."""
    subprocess.run([str(VENV / "bin" / "python"), str(REPO / "benchmarks" / "deploy_plot.py"),
                    str(RESULTS / "deploy.csv"), str(RESULTS / "deploy.png"), *sizes], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10@25", "3", "10"],
                        help="N (web hosts) or N@MS (behind the delay proxy, MS milliseconds each way)")
    parser.add_argument("--rounds", type=int, default=2, help="code change + rollback rounds per size")
    args = parser.parse_args()
    command = "python benchmarks/deploy_anchors.py " + " ".join(sys.argv[1:])
    versions = ensure_venv()
    versions.pop("python", None)
    info = machine_info()
    versions["shipit"] = f"commit {info['commit']} (HEAD, exported)"
    rows: list[dict[str, Any]] = []
    try:
        for i, size in enumerate(args.sizes):
            one_size(size, args.rounds, i, rows)
    finally:
        if rows:
            done = [s for s in args.sizes if any(r["size"] == s for r in rows)]
            write_results(rows, done, versions, command.strip(), info)
            plot(done)
            log(f"results: {RESULTS / 'deploy.md'}")


if __name__ == "__main__":
    main()
