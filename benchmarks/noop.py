"""No-op run benchmark: how long a converged fleet takes to say "nothing to do", and in how
many SSH round trips.

For each fleet size it brings up a fresh lab of that many web hosts (its own lab, default name
``bench-noop``), runs ``tests/e2e/playbooks/converge.yml`` once to converge (the first-run
time), then times ``--runs`` no-op runs of the real CLI (a subprocess, as a user would run it)
and records per host the SSH exec requests from the ``--json`` recap, cross-checked against
the ``sudo`` sessions each host's journal saw during the no-op runs (every round trip but the
host-facts one runs through sudo). Writes ``benchmarks/results/noop.csv`` and ``noop.md`` and
takes its lab down, also on failure.

Usage (as root, from the repository)::

    .venv/bin/python benchmarks/noop.py                   # 3 and 10 hosts, 5 no-op runs each
    .venv/bin/python benchmarks/noop.py --hosts 3 --runs 3
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shipit.lab import Lab, LabState  # noqa: E402

PLAYBOOK = REPO / "tests" / "e2e" / "playbooks" / "converge.yml"
RESULTS = REPO / "benchmarks" / "results"


def shipit_run(state: LabState, home: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    """One ``shipit run`` of the converge playbook: (wall seconds, --json document)."""
    argv = [sys.executable, "-m", "shipit.cli", "run", "bench", str(PLAYBOOK), "-i", str(state.inventory),
            "--json", *extra]
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env={**os.environ, "HOME": str(home)},
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"shipit run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return wall, doc


def on_host(state: LabState, address: str, script: str) -> str:
    """Run ``script`` as root on a host (``sudo /bin/sh``, so it is not counted as shipit's ``sh -s``)."""
    argv = ["ssh", "-i", str(state.key), "-o", f"UserKnownHostsFile={state.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-l", "deploy", address, "sudo -n /bin/sh -s"]
    proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=120, check=True)
    return proc.stdout.strip()


def sudo_sessions(state: LabState, since: int) -> dict[str, int]:
    """Per host: ``sudo sh -s`` sessions (shipit's privileged round trips) since ``since`` (epoch)."""
    script = (f"journalctl -q --no-pager -o cat _COMM=sudo --since @{since} "
              "| grep -c 'COMMAND=/usr/bin/sh -s' || true")
    return {h.name: int(on_host(state, h.address, script) or 0) for h in state.hosts}


def bench_size(n: int, runs: int, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shipit-bench-") as tmp:
        home = Path(tmp, "home")
        home.mkdir()
        lab = Lab(name, Path(tmp, "inventory"), log=lambda m: print(f"  lab: {m}", flush=True))
        lab.down()  # start from fresh hosts
        try:
            t0 = time.perf_counter()
            state = lab.up(hosts=n, db=False)
            up_s = time.perf_counter() - t0
            print(f"[{n} hosts] lab up in {up_s:.1f} s", flush=True)
            first_wall, first = shipit_run(state, home)
            changed = sum(r["changed"] for r in first["recap"].values())
            rows.append(_row(n, "first", 0, first_wall, first))
            print(f"[{n} hosts] first run {first_wall:.2f} s, {changed} changes", flush=True)
            since = int(on_host(state, state.hosts[0].address, "sleep 1; date +%s"))
            walls: list[float] = []
            engine: list[float] = []
            execs: list[int] = []
            for i in range(1, runs + 1):
                wall, doc = shipit_run(state, home)
                total_changed = sum(r["changed"] for r in doc["recap"].values())
                if total_changed:
                    raise SystemExit(f"no-op run {i} at {n} hosts changed {total_changed} things")
                rows.append(_row(n, "noop", i, wall, doc))
                walls.append(wall)
                engine.append(doc["duration"])
                execs += [r["ssh_execs"] for r in doc["recap"].values()]
                print(f"[{n} hosts] no-op run {i}: {wall:.2f} s wall, engine {doc['duration']:.2f} s",
                      flush=True)
            sudo = sudo_sessions(state, since)
            return {
                "hosts": n, "tasks": sum(1 for t in first["tasks"] if t["host"] == state.hosts[0].name),
                "up_s": up_s, "first_wall": first_wall, "first_changed": changed,
                "noop_median": statistics.median(walls), "noop_min": min(walls), "noop_max": max(walls),
                "engine_median": statistics.median(engine),
                "execs_min": min(execs), "execs_max": max(execs),
                "sudo_per_run": sorted({v / runs for v in sudo.values()}),
                "runs": runs,
            }
        finally:
            lab.down()
            print(f"[{n} hosts] lab down", flush=True)


def _row(n: int, kind: str, index: int, wall: float, doc: dict[str, Any]) -> dict[str, Any]:
    recap = doc["recap"].values()
    return {"hosts": n, "run": kind, "index": index, "wall_s": round(wall, 3),
            "engine_s": doc["duration"], "changed": sum(r["changed"] for r in recap),
            "ssh_execs_per_host_min": min(r["ssh_execs"] for r in recap),
            "ssh_execs_per_host_max": max(r["ssh_execs"] for r in recap),
            "sftp_total": sum(r["sftp_transfers"] for r in recap)}


def machine_info(load: str | None = None) -> dict[str, str]:
    """Date, CPU, memory, kernel, Python, commit and 1-minute load (``load``, else read now)."""
    def out(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": out("nproc"), "cpu": cpu, "memory": f"{mem_kb / 1048576:.1f} GiB",
            "kernel": platform.release(), "python": platform.python_version(),
            "load": load if load is not None else Path("/proc/loadavg").read_text().split()[0],
            "commit": out("git", "rev-parse", "--short", "HEAD")}


def write_results(summaries: list[dict[str, Any]], rows: list[dict[str, Any]], command: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "noop.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    info = machine_info()
    lines = [
        "# No-op run benchmark",
        "",
        f"Produced by `{command}` (from the repository root, as root) on {info['date']}, "
        f"commit {info['commit']}.",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, kernel {info['kernel']}, "
        f"Python {info['python']}; 1-minute load average {info['load']} when the results were "
        "written (other work on the machine makes the spread). Hosts are systemd-nspawn "
        "containers on this same machine (`shipit lab`), sharing its CPUs with the runner: the "
        "network is a local bridge, so these numbers are the engine's own cost plus SSH and "
        "sshd/sudo process start-up on the hosts, not WAN latency. apt goes through the lab's "
        "apt-cacher-ng (warm after the first size).",
        "",
        "Playbook: `tests/e2e/playbooks/converge.yml` "
        f"({summaries[0]['tasks']} task results per host on the first run, default `--forks 20`). "
        "Wall time is the whole `shipit run … --json` process (interpreter start-up and imports "
        "included); engine time is the run's `duration` from the JSON.",
        "",
        "| hosts | first run (converge) | no-op wall, median (min–max) | no-op engine, median "
        "| SSH execs / host / no-op run | sudo `sh -s` sessions / host / run, seen in host journals |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        execs = str(s["execs_min"]) if s["execs_min"] == s["execs_max"] else f"{s['execs_min']}–{s['execs_max']}"
        sudo = ", ".join(f"{v:g}" for v in s["sudo_per_run"])
        lines.append(f"| {s['hosts']} | {s['first_wall']:.2f} s ({s['first_changed']} changes) | "
                     f"{s['noop_median']:.2f} s ({s['noop_min']:.2f}–{s['noop_max']:.2f}), {s['runs']} runs | "
                     f"{s['engine_median']:.2f} s | {execs} | {sudo} |")
    lines += [
        "",
        "SSH execs per host on a no-op run: one unprivileged round trip gathers the host facts, "
        "one privileged (`sudo sh -s`) round trip gathers every fact the play's tasks need. "
        "The host-side count of sudo sessions confirms the second (the first runs without sudo). "
        "Per-run rows: `noop.csv`.",
        "",
    ]
    (RESULTS / "noop.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[3, 10], help="fleet sizes (default: 3 10)")
    parser.add_argument("--runs", type=int, default=5, help="timed no-op runs per size (default 5, min 3)")
    parser.add_argument("--name", default="bench-noop", help="lab name (default bench-noop)")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3 (the median of fewer is not worth recording)")
    command = "python benchmarks/noop.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    rows: list[dict[str, Any]] = []
    summaries = [bench_size(n, args.runs, args.name, rows) for n in args.hosts]
    write_results(summaries, rows, command)
    print((RESULTS / "noop.md").read_text())


if __name__ == "__main__":
    main()
