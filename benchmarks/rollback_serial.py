"""A rollback's batch size (#12): ``shipit rollback`` of the example app on N web hosts at the app's
``serial: 1`` against ``--serial 100%`` (every host in one health-checked batch), interleaved on one
lab in one run, with a code change deployed before each rollback.

One command (as root, from the repository)::

    .venv/bin/python benchmarks/rollback_serial.py --hosts 10 --rounds 3

shipit is HEAD's ``shipit/``, exported (as in anchors.py); steps, checks and per-phase times are
those of benchmarks/deploy_anchors.py (each step checked over HTTPS through Caddy on every web
host). Output: ``benchmarks/results/rollback_serial.md`` and ``.csv``. Nothing here asserts
timings.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchors import log, setup_hosts  # noqa: E402
from deploy_anchors import RESULTS, Fleet, step, write_inventory, write_rows  # noqa: E402
from noop import machine_info  # noqa: E402

from shipit.lab import Lab  # noqa: E402

VARIANTS: list[tuple[str, tuple[str, ...]]] = [("serial 1 (the app's)", ()), ("--serial 100%", ("--serial", "100%"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    info = machine_info()
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="rollback-serial-"))
    lab = Lab("dja-shipit", tmp / "lab", log=lambda m: None)
    lab.down()
    size = str(args.hosts)
    try:
        state = lab.up(hosts=args.hosts, db=True)
        setup_hosts(state)  # as for deploy_anchors.py: sshd at LogLevel VERBOSE, fresh apt lists
        fleet = Fleet("shipit", state, write_inventory("shipit", state, tmp), tmp, None)
        log(f"lab up: {args.hosts} web hosts + db1")
        step(fleet, "first", 0, args.hosts, size, tmp / "app", rows)
        k = 0
        for rnd in range(args.rounds):
            for _, extra in (VARIANTS if rnd % 2 == 0 else VARIANTS[::-1]):
                k += 1
                step(fleet, "change", k, args.hosts, size, tmp / "app", rows)
                step(fleet, "rollback", k, args.hosts, size, tmp / "app", rows, extra)
    finally:
        lab.down()
        shutil.rmtree(tmp, ignore_errors=True)
        if rows:
            write(rows, args, info)


def write(rows: list[dict[str, Any]], args: argparse.Namespace, info: dict[str, str]) -> None:
    write_rows(rows, "rollback_serial.csv")
    loads = [r["load1"] for r in rows]
    lines = ["# Rollback: serial 1 against --serial 100%", "",
             f"Produced by `python benchmarks/rollback_serial.py --hosts {args.hosts} --rounds {args.rounds}` "
             f"(as root), {info['date']}, commit {info['commit']}; nproc {info['nproc']}, 1-minute load "
             f"{min(loads):.1f}–{max(loads):.1f} at the steps' starts. One lab of {args.hosts} web hosts + db1; "
             "each rollback follows a code-change deploy; the two variants alternate.", "",
             "| rollback | runs | median wall | min–max | prepare (median) | switch (median) |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, extra in VARIANTS:
        sel = [r for r in rows if r["step"] == "rollback" and r["args"] == " ".join(extra)]
        if not sel:
            continue
        walls = [r["wall_s"] for r in sel]
        lines.append(f"| {label} | {len(sel)} | {statistics.median(walls):.1f} s | {min(walls):.1f}–{max(walls):.1f} s"
                     f" | {statistics.median(r.get('prepare_s', 0) for r in sel):.1f} s"
                     f" | {statistics.median(r.get('switch_s', 0) for r in sel):.1f} s |")
    lines += ["", "Per-step rows: `rollback_serial.csv`.", ""]
    (RESULTS / "rollback_serial.md").write_text("\n".join(lines))
    log(f"results: {RESULTS / 'rollback_serial.md'}")


if __name__ == "__main__":
    main()
