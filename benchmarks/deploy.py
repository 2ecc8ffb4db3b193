"""Deploy benchmark (issue 4): how long the real CLI takes to deploy the example app to a fleet,
re-deploy it unchanged, deploy a code change, and roll back.

For each fleet size it brings up a fresh lab of that many web hosts plus ``db1`` (its own lab,
default name ``bench-deploy``) and times, with the real CLI as a subprocess
(``shipit deploy ENV -i INVENTORY --app DIR --json``):

(a) the first deploy of ``examples/app`` to the fresh hosts;
(b) ``--runs`` no-op re-deploys (median);
(c) a deploy of a changed copy of the app (a comment appended to ``src/example_app/main.py``);
(d) ``--rollbacks`` rollbacks, each followed by a deploy of the changed app again (medians of
    both: the re-deploy after a rollback only switches, the release is still on the hosts).

Every step is checked against its ``--json`` document (first: ``changed > 0``; no-op:
``changed == 0`` and the same release; change: a new release; rollback: back to the first
release; re-deploy: the changed release again) and the benchmark stops with a message if not.
Where the time goes is taken from the CLI's own progress lines on stderr, timestamped as they
arrive: start-up, artifact build on the runner, provisioning + upload + migrations, and the
rolling switch (plus pruning). Writes ``benchmarks/results/deploy_steps.csv`` and ``deploy_steps.md`` and
takes its lab down, also on failure.

The runner's wheel cache (``~/.cache/shipit/wheels`` of the invoking user) is copied into the
benchmark's temporary HOME when present, so the build does not go to a package index.

Usage (as root, from the repository)::

    .venv/bin/python benchmarks/deploy.py                   # 3 and 10 hosts
    .venv/bin/python benchmarks/deploy.py --hosts 3 --runs 3 --rollbacks 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "benchmarks"))

from noop import machine_info  # noqa: E402

from shipit.lab import Lab, LabState  # noqa: E402

EXAMPLE = REPO / "examples" / "app"
RESULTS = REPO / "benchmarks" / "results"
DB_PASSWORD = "bench-Secret-pw-1"


class Failed(SystemExit):
    pass


def shipit(state: LabState, env_name: str, home: Path, work: Path, command: str, app: Path) -> dict[str, Any]:
    """One ``shipit deploy|rollback`` with ``--json``: the document plus timing and phases.

    stderr (the human progress lines under ``--json``) is read line by line and timestamped,
    which splits the wall time into phases without changing what the CLI does.
    """
    argv = [sys.executable, "-m", "shipit.cli", command, env_name, "-i", str(state.inventory),
            "--app", str(app), "--json"]
    env = {**os.environ, "HOME": str(home), "DB_PASSWORD": DB_PASSWORD, "COLUMNS": "200"}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1)
    lines: list[tuple[float, str]] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()  # stderr is the reader thread's alone (not communicate())
    try:
        proc.wait(timeout=1800)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Failed(f"shipit {command} did not finish in 30 min")
    wall = time.perf_counter() - started
    reader.join(timeout=10)
    stderr = "\n".join(text for _, text in lines)
    if proc.returncode != 0:
        raise Failed(f"shipit {command} failed (exit {proc.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
    try:
        doc: dict[str, Any] = json.loads(stdout)
    except ValueError:
        raise Failed(f"shipit {command} --json printed no JSON document:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    doc["wall"] = wall
    doc["stderr"] = lines
    doc["phases"] = phases(lines, wall)
    return doc


def phases(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """Split a run's wall time at its progress lines: ``build …`` / ``  artifact …`` (deploy only)
    and the first ``switch …``."""
    def first(pattern: str) -> float | None:
        return next((t for t, text in lines if re.search(pattern, text)), None)

    build, artifact = first(r"(^|\s)build /"), first(r"(^|\s)artifact [0-9a-f]{12} ")
    switch = first(r"(^|\s)switch (canary|batch)")
    out: dict[str, float] = {}
    if build is not None and artifact is not None:
        out["startup"] = build
        out["build"] = artifact - build
        if switch is not None:
            out["provision_upload_migrate"] = switch - artifact
    elif switch is not None:
        out["startup_states"] = switch
    if switch is not None:
        out["switch_prune"] = wall - switch
    return {k: round(v, 3) for k, v in out.items()}


def check(ok: bool, message: str) -> None:
    if not ok:
        raise Failed(f"benchmark check failed: {message}")


def copy_app(dest: Path, suffix: str = "") -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".venv"))
    if suffix:
        main = dest / "src" / "example_app" / "main.py"
        main.write_text(main.read_text() + suffix)
    return dest


def bench_size(n: int, runs: int, rollbacks: int, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shipit-bench-deploy-") as tmp:
        home, work = Path(tmp, "home"), Path(tmp, "work")
        work.mkdir()
        wheels = Path("~/.cache/shipit/wheels").expanduser()
        target = home / ".cache" / "shipit" / "wheels"
        if wheels.is_dir():
            shutil.copytree(wheels, target, ignore=shutil.ignore_patterns("shipit_example_app-*"))
        else:
            target.mkdir(parents=True)
        app = copy_app(Path(tmp, "app"))
        changed_app = copy_app(Path(tmp, "app-v2"), "\n# benchmark: a change to the code\n")
        lab = Lab(name, Path(tmp, "inventory"), log=lambda m: print(f"  lab: {m}", flush=True))
        lab.down()  # start from fresh hosts
        try:
            t0 = time.perf_counter()
            state = lab.up(hosts=n, db=True)
            up_s = time.perf_counter() - t0
            print(f"[{n} hosts] lab up in {up_s:.1f} s", flush=True)

            def step(kind: str, index: int, command: str, source: Path) -> dict[str, Any]:
                doc = shipit(state, name, home, work, command, source)
                rows.append({"hosts": n, "step": kind, "index": index, "wall_s": round(doc["wall"], 3),
                             "duration_s": doc.get("duration", ""), "changed": doc["changed"],
                             "release": doc["release"], **{f"phase_{k}_s": v for k, v in doc["phases"].items()}})
                print(f"[{n} hosts] {kind} {index}: {doc['wall']:.2f} s, {doc['changed']} changes, "
                      f"release {doc['release']}, phases {doc['phases']}", flush=True)
                if not doc["phases"]:
                    print("  (no progress lines recognised; stderr was:)\n" +
                          "\n".join(f"  {t:7.2f} {text}" for t, text in doc["stderr"][:40]), flush=True)
                return doc

            first = step("first", 0, "deploy", app)
            v1 = first["release"]
            check(first["changed"] > 0, f"the first deploy at {n} hosts changed nothing")
            check(len(first["serving"]) == n and set(first["serving"].values()) == {v1},
                  f"after the first deploy not all {n} hosts serve {v1}: {first['serving']}")
            noops = []
            for i in range(1, runs + 1):
                doc = step("noop", i, "deploy", app)
                check(doc["changed"] == 0, f"no-op re-deploy {i} at {n} hosts changed {doc['changed']} things")
                check(doc["release"] == v1, f"no-op re-deploy {i} made a new release {doc['release']} (was {v1})")
                noops.append(doc)
            change = step("change", 0, "deploy", changed_app)
            v2 = change["release"]
            check(v2 != v1 and change["changed"] > 0, f"the changed app deployed as {v2} with "
                  f"{change['changed']} changes (first release {v1})")
            check(set(change["serving"].values()) == {v2}, f"not every host serves {v2}: {change['serving']}")
            backs, agains = [], []
            for i in range(1, rollbacks + 1):
                back = step("rollback", i, "rollback", changed_app)
                check(back["release"] == v1 and set(back["serving"].values()) == {v1},
                      f"rollback {i} went to {back['release']} ({back['serving']}), not back to {v1}")
                check(back["changed"] > 0, f"rollback {i} changed nothing")
                backs.append(back)
                again = step("redeploy", i, "deploy", changed_app)
                check(again["release"] == v2 and set(again["serving"].values()) == {v2},
                      f"re-deploy {i} after the rollback serves {again['serving']}, not {v2}")
                agains.append(again)
            def med(docs: list[dict[str, Any]]) -> float:
                return float(statistics.median(d["wall"] for d in docs))

            return {"hosts": n, "up_s": up_s, "first": first, "noop_median": med(noops),
                    "noop_min": min(d["wall"] for d in noops), "noop_max": max(d["wall"] for d in noops),
                    "noops": noops, "change": change, "rollback_median": med(backs), "rollbacks": backs,
                    "redeploy_median": med(agains), "redeploys": agains, "runs": runs, "n_rollbacks": rollbacks}
        finally:
            lab.down()
            print(f"[{n} hosts] lab down", flush=True)




def fmt_phases(doc: dict[str, Any]) -> str:
    names = {"startup": "start-up", "build": "build", "provision_upload_migrate": "provision+upload+migrate",
             "startup_states": "start-up+states", "switch_prune": "switch"}
    return ", ".join(f"{names[k]} {v:.1f}" for k, v in doc["phases"].items())


def write_results(summaries: list[dict[str, Any]], rows: list[dict[str, Any]], command: str,
                  info: dict[str, str], skipped: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(RESULTS / "deploy_steps.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Deploy benchmark",
        "",
        f"Produced by `{command}` (from the repository root, as root) on {info['date']}, "
        f"commit {info['commit']} at the start (plus the working tree).",
        "",
        f"Machine: nproc {info['nproc']} ({info['cpu']}), {info['memory']} RAM, kernel {info['kernel']}, "
        f"Python {info['python']}; 1-minute load average {info['load']} at the start (other work on "
        "the machine makes the spread). Hosts are systemd-nspawn containers on this same machine "
        "(`shipit lab`, N web hosts + `db1`), sharing its CPUs with the runner; apt goes through the "
        "lab's apt-cacher-ng, and the runner's wheel cache is warm (copied into the benchmark's HOME), "
        "so neither a package index nor a WAN is in these numbers.",
        "",
        "Each step is the whole `shipit deploy|rollback ENV -i INVENTORY --app DIR --json` process "
        "(interpreter start-up included), checked against its JSON (`changed`, `release`, `serving`). "
        "Phases (seconds) come from the CLI's progress lines on stderr, timestamped as they arrive: "
        "start-up (imports, spec, playbook validation), build (artifact build on the runner: "
        "`pip wheel` from the warm cache + tarball), provision+upload+migrate (host states, lock, "
        "provisioning plays on every host and db1, artifact upload and unpack, migrations on the "
        "leader) and switch (rolling switch batch by batch behind health checks, then pruning).",
        "",
        "| hosts | lab up | (a) first deploy | (b) no-op re-deploy, median (min–max) | (c) changed app "
        "| (d) rollback, median | deploy again after rollback, median |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        f, c = s["first"], s["change"]
        lines.append(
            f"| {s['hosts']} | {s['up_s']:.0f} s | {f['wall']:.1f} s ({f['changed']} changes) | "
            f"{s['noop_median']:.1f} s ({s['noop_min']:.1f}–{s['noop_max']:.1f}), {s['runs']} runs | "
            f"{c['wall']:.1f} s ({c['changed']} changes) | {s['rollback_median']:.1f} s, "
            f"{s['n_rollbacks']} runs | {s['redeploy_median']:.1f} s, {s['n_rollbacks']} runs |")
    lines += ["", "Where the time goes (seconds, one representative run of each step):", ""]
    for s in summaries:
        lines.append(f"- {s['hosts']} hosts — first: {fmt_phases(s['first'])}; "
                     f"no-op: {fmt_phases(s['noops'][len(s['noops']) // 2])}; "
                     f"change: {fmt_phases(s['change'])}; rollback: {fmt_phases(s['rollbacks'][0])}; "
                     f"deploy again: {fmt_phases(s['redeploys'][0])}.")
    lines += ["", "## Notes", ""] + NOTES(summaries)
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    lines += ["", "Per-step rows (with every phase and release id): `deploy_steps.csv`.", ""]
    (RESULTS / "deploy_steps.md").write_text("\n".join(lines))


def NOTES(summaries: list[dict[str, Any]]) -> list[str]:  # noqa: N802
    """Notes derived from the measured phases (written by hand in prose, numbers filled in)."""
    out = []
    for s in summaries:
        f = s["first"]["phases"]
        noop = s["noops"][len(s["noops"]) // 2]["phases"]
        c = s["change"]["phases"]
        total = s["first"]["wall"]
        prov = f.get("provision_upload_migrate", 0.0)
        out.append(
            f"- {s['hosts']} hosts: the first deploy is {100 * prov / total:.0f}% provisioning + upload + "
            f"migrations ({prov:.1f} s of {total:.1f} s: packages, Python venvs, Caddy, Postgres on fresh "
            f"hosts), the runner's build {f.get('build', 0):.1f} s, the switch {f.get('switch_prune', 0):.1f} s. "
            f"A no-op re-deploy spends {noop.get('build', 0):.1f} s on the artifact (it needs it for the "
            f"release id), then checks every host ({noop.get('provision_upload_migrate', 0):.1f} s) and switches "
            f"nothing ({noop.get('switch_prune', 0):.1f} s). A code change costs build "
            f"{c.get('build', 0):.1f} s + upload/migrate {c.get('provision_upload_migrate', 0):.1f} s + "
            f"rolling switch {c.get('switch_prune', 0):.1f} s; a rollback is only the rolling switch.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[3, 10], help="fleet sizes (default: 3 10)")
    parser.add_argument("--runs", type=int, default=3, help="no-op re-deploys per size (default 3)")
    parser.add_argument("--rollbacks", type=int, default=2,
                        help="rollback + deploy-again cycles per size (default 2)")
    parser.add_argument("--name", default="bench-deploy", help="lab name (default bench-deploy)")
    parser.add_argument("--deadline", type=float, default=0.0, metavar="MINUTES",
                        help="skip the remaining sizes once this many minutes have passed (0: none)")
    args = parser.parse_args()
    # SIGINT/SIGTERM (also when started in the background, where SIGINT is ignored) raise
    # KeyboardInterrupt, so the lab still comes down and finished sizes are still written
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.runs < 1 or args.rollbacks < 1:
        parser.error("--runs and --rollbacks must be at least 1")
    command = "python benchmarks/deploy.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    info = machine_info(Path("/proc/loadavg").read_text().split()[0])  # load and commit at the start
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    skipped: list[str] = []
    for i, n in enumerate(args.hosts):
        if args.deadline and summaries and time.monotonic() - started > args.deadline * 60:
            skipped.append(f"{n} hosts (the run's --deadline of {args.deadline:g} min had passed)")
            continue
        try:
            summaries.append(bench_size(n, args.runs, args.rollbacks, args.name, rows))
        except KeyboardInterrupt:  # the lab is down already (bench_size's finally)
            if not summaries:
                raise
            skipped += [f"{m} hosts (interrupted after {(time.monotonic() - started) / 60:.0f} min: "
                        "over the time box)" for m in args.hosts[i:]]
            rows[:] = [r for r in rows if r["hosts"] != n]
            break
        # results so far, so that an interrupted larger size leaves the smaller ones recorded
        write_results(summaries, rows, command, info, skipped + [f"{m} hosts (not run yet)" for m in args.hosts[i + 1:]])
    write_results(summaries, rows, command, info, skipped)
    print((RESULTS / "deploy_steps.md").read_text())


if __name__ == "__main__":
    main()
