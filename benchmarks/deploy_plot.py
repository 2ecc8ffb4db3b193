"""Draws ``deploy.png`` from ``deploy.csv`` (benchmarks/deploy_anchors.py): per size, the median wall
time of each step (first deploy, code change, rollback) for each tool, as grouped bars. Run by
deploy_anchors.py with the anchors venv's matplotlib::

    benchmarks/.venv-anchors/bin/python benchmarks/deploy_plot.py results/deploy.csv results/deploy.png 3 10 10@25
"""

from __future__ import annotations

import csv
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOOLS = ["shipit", "pyinfra", "ansible"]
STEPS = [("first", "first deploy"), ("change", "code change"), ("rollback", "rollback")]


def main(csv_path: str, png_path: str, sizes: list[str]) -> None:
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 4), squeeze=False, sharey=True)
    width = 0.8 / len(TOOLS)
    for ax, size in zip(axes[0], sizes, strict=True):
        for i, tool in enumerate(TOOLS):
            vals = []
            for step, _ in STEPS:
                sel = [float(r["wall_s"]) for r in rows if r["size"] == size and r["tool"] == tool and r["step"] == step]
                vals.append(statistics.median(sel) if sel else 0.0)
            xs = [j + (i - (len(TOOLS) - 1) / 2) * width for j in range(len(STEPS))]
            bars = ax.bar(xs, vals, width, label=tool)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(len(STEPS)), [label for _, label in STEPS])
        hosts, _, ms = size.partition("@")
        ax.set_title(f"{hosts} web hosts" + (f", {ms} ms each way" if ms else ""))
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("median wall time (s)")
    axes[0][0].legend()
    fig.suptitle("The same deploy job of the example app: shipit, pyinfra, Ansible (lower is better)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
