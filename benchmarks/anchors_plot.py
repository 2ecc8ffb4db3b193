"""Plot no-op wall time against host count from ``anchors.csv`` (run with the anchors venv's Python,
which has matplotlib; shipit does not depend on it). Usage: anchors_plot.py CSV PNG"""

import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOOLS = [("shipit", "shipit"), ("pyinfra", "pyinfra"), ("ansible", "Ansible (default)"),
         ("ansible-tuned", "Ansible (forks=hosts, pipelining)")]


def main(src: str, dest: str) -> None:
    walls: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    latencies: set[int] = set()
    with open(src) as fh:
        for row in csv.DictReader(fh):
            if row["run"] == "noop":
                walls[row["tool"]][int(row["hosts"])].append(float(row["wall_s"]))
                latencies.add(int(float(row.get("latency_ms") or 0)))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for tool, label in TOOLS:
        if tool not in walls:
            continue
        sizes = sorted(walls[tool])
        meds = [statistics.median(walls[tool][n]) for n in sizes]
        lo = [m - min(walls[tool][n]) for m, n in zip(meds, sizes)]
        hi = [max(walls[tool][n]) - m for m, n in zip(meds, sizes)]
        ax.errorbar(sizes, meds, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax.set_xlabel("hosts")
    ax.set_ylabel("no-op run, wall time (s), median with min–max")
    ax.set_yscale("log")
    link = f", {max(latencies)} ms latency each way" if max(latencies, default=0) else ""
    ax.set_title(f"No-op run of the same workload (benchmarks/anchors.py{link})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="small")
    fig.tight_layout()
    fig.savefig(dest, bbox_inches="tight")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
