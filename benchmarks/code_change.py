"""Code-change benchmark (#12): a one-line code change deployed, then rolled back, by shipit at
a BASE commit (exported with ``git archive``) and by this tree, interleaved in one run on the
same lab, so that the machine's load (shared today) weighs on both alike.

For each fleet size: a fresh lab of N web hosts + ``db1``; a first deploy of the example app
by this tree (release R0: both versions then start every round from R0 live, with this
tree's parts store and relocatable venv on the hosts); then ``--rounds`` rounds, each running
BASE and this tree in turn (the order alternates per round): deploy a copy of the app with a
new one-line change (a new release each time), then ``shipit rollback`` (back to R0). Each
step is the whole CLI process with ``--json``, checked (new release on every host; the
rollback back to R0). Recorded per step: wall time, the outcome's ``durations`` (per phase),
``uploaded_bytes`` (this tree only; BASE sends the whole artifact, its size is given) and
``uptime``'s 1-minute load at the start. Results: ratios (this tree / BASE) of medians from
the same run; absolute seconds are inflated by the shared machine and are given for the
phases' shares only.

Usage (as root, from the repository)::

    .venv/bin/python benchmarks/code_change.py --base 687c804 --hosts 3 10 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
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

EXAMPLE = REPO / "examples" / "app"
RESULTS = REPO / "benchmarks" / "results"
DB_PASSWORD = "bench-Secret-pw-1"


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(tree: Path | None, state: LabState, env_name: str, home: Path, work: Path, command: str,
        app: Path) -> dict[str, Any]:
    """One ``shipit COMMAND ENV --json``; ``tree``: an exported shipit put first on the path."""
    env = {**os.environ, "HOME": str(home), "DB_PASSWORD": DB_PASSWORD, "COLUMNS": "200"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    argv = [sys.executable, "-m", "shipit.cli", command, env_name, "-i", str(state.inventory),
            "--app", str(app), "--json"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"shipit {command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(done.stdout)
    doc["wall"] = wall
    return doc


def copy_app(dest: Path, suffix: str) -> Path:
    """``dest``: the example app with ``suffix`` appended to its main module, changed in place
    when ``dest`` exists (as a user edits a work tree: the same directory every time)."""
    if not dest.exists():
        shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".venv"))
    main = dest / "src" / "example_app" / "main.py"
    main.write_text((EXAMPLE / "src" / "example_app" / "main.py").read_text() + suffix)
    return dest


def bench(n: int, base: str, rounds: int, rows: list[dict[str, Any]]) -> None:
    name = "fast-bench"
    with tempfile.TemporaryDirectory(prefix="shipit-bench-change-") as tmp:
        old = Path(tmp, "base")
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", base, "shipit"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        home, work = Path(tmp, "home"), Path(tmp, "work")
        work.mkdir()
        cache = Path(os.environ.get("SHIPIT_CACHE_DIR") or "~/.cache/shipit").expanduser()
        os.environ.setdefault("SHIPIT_CACHE_DIR", str(cache))
        lab = Lab(name, Path(tmp, "inventory"), log=lambda m: print(f"  lab: {m}", flush=True))
        lab.down()
        try:
            state = lab.up(hosts=n, db=True)
            first = run(None, state, name, home, work, "deploy", copy_app(Path(tmp, "app"), "\n# r0\n"))
            r0 = first["release"]
            print(f"[{n} hosts] first deploy {first['wall']:.1f} s ({r0})", flush=True)
            k = 0
            for rnd in range(rounds):
                versions = [("base", old), ("branch", None)]
                if rnd % 2:
                    versions.reverse()
                for label, tree in versions:
                    k += 1
                    app = copy_app(Path(tmp, "app"), f"\n# change {k}\n")
                    for step, command in (("change", "deploy"), ("rollback", "rollback")):
                        load = load1()
                        doc = run(tree, state, name, home, work, command, app)
                        want = r0 if step == "rollback" else None
                        serving = set(doc["serving"].values())
                        if (want and serving != {want}) or (not want and (serving == {r0} or len(serving) != 1)):
                            raise SystemExit(f"{label} {step}: serving {doc['serving']} (R0 {r0})")
                        sent = doc.get("uploaded_bytes") or {}
                        row = {"hosts": n, "round": rnd + 1, "version": label, "step": step,
                               "wall_s": round(doc["wall"], 2), "load1": load,
                               "uploaded_max_bytes": max(sent.values()) if sent else "",
                               **{f"{p}_s": round(v, 2) for p, v in doc.get("durations", {}).items()}}
                        rows.append(row)
                        print(f"[{n} hosts] {label} {step}: {row}", flush=True)
        finally:
            lab.down()


def report(rows: list[dict[str, Any]], base: str, args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("hosts", "round", "version", "step"), k))
    with open(RESULTS / "code_change.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    lines = ["# Code-change benchmark", "",
             f"Produced by `python benchmarks/code_change.py --base {base} --hosts "
             f"{' '.join(map(str, args.hosts))} --rounds {args.rounds}` at commit {head} (branch) against "
             f"{base} (base), interleaved in one run on the same lab. The machine was shared with other "
             f"work: 1-minute load {min(r['load1'] for r in rows):.1f}–{max(r['load1'] for r in rows):.1f} "
             "on 2 CPUs during the steps, so the seconds are inflated and only the ratios measured in "
             "the same run mean something.", "",
             "| hosts | step | base median wall | branch median wall | branch / base | bytes sent per host (branch) |",
             "|---:|---|---:|---:|---:|---:|"]
    for n in sorted({r["hosts"] for r in rows}):
        for step in ("change", "rollback"):
            b = [r["wall_s"] for r in rows if r["hosts"] == n and r["step"] == step and r["version"] == "base"]
            f_ = [r["wall_s"] for r in rows if r["hosts"] == n and r["step"] == step and r["version"] == "branch"]
            sent = [r["uploaded_max_bytes"] for r in rows if r["hosts"] == n and r["step"] == step
                    and r["version"] == "branch" and r["uploaded_max_bytes"] != ""]
            if b and f_:
                mb, mf = statistics.median(b), statistics.median(f_)
                lines.append(f"| {n} | {step} | {mb:.1f} s | {mf:.1f} s | {mf / mb:.2f} | "
                             f"{(max(sent) / 1024):.1f} KiB |" if sent else
                             f"| {n} | {step} | {mb:.1f} s | {mf:.1f} s | {mf / mb:.2f} | - |")
    lines += ["", "Per phase (median seconds; `switch` of the base includes its `prepare`):", ""]
    phases = ["build", "upload", "migrate", "prepare", "switch", "prune"]
    lines += ["| hosts | step | version | " + " | ".join(phases) + " |", "|---:|---|---|" + "---:|" * len(phases)]
    for n in sorted({r["hosts"] for r in rows}):
        for step in ("change", "rollback"):
            for version in ("base", "branch"):
                sel = [r for r in rows if r["hosts"] == n and r["step"] == step and r["version"] == version]
                if not sel:
                    continue
                cells = []
                for p in phases:
                    vals = [r[f"{p}_s"] for r in sel if f"{p}_s" in r]
                    cells.append(f"{statistics.median(vals):.1f}" if vals else "-")
                lines.append(f"| {n} | {step} | {version} | " + " | ".join(cells) + " |")
    lines += ["", "Per-step rows: `code_change.csv`. Not done here: the pyinfra / Ansible anchors of "
              "issue 12 doing the same job."]
    (RESULTS / "code_change.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with (e.g. main before the change)")
    parser.add_argument("--hosts", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    try:
        for n in args.hosts:
            bench(n, args.base, args.rounds, rows)
    finally:
        if rows:
            report(rows, args.base, args)


if __name__ == "__main__":
    main()
