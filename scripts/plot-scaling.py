"""Plots docs/bench/scaling.csv (scripts/bench-scaling.sh): measured throughput against HSM
sessions, one curve per device parallelism, each with its model min(sessions, parallelism) /
latency dashed.

    python plot-scaling.py CSV PNG
"""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_path: str, png_path: str) -> None:
    curves: dict[int, list[dict[str, str]]] = defaultdict(list)
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            curves[int(row["parallelism"])].append(row)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for parallel, rows in sorted(curves.items(), reverse=True):
        rows.sort(key=lambda r: int(r["sessions"]))
        sessions = [int(r["sessions"]) for r in rows]
        measured = [float(r["ops_per_s"]) for r in rows]
        model = [float(r["model_ops_per_s"]) for r in rows]
        line = ax.plot(
            sessions, measured, marker="o", label=f"measured, device parallelism {parallel}"
        )
        ax.plot(
            sessions,
            model,
            linestyle="--",
            color=line[0].get_color(),
            alpha=0.6,
            label=f"model min(sessions, {parallel}) / latency",
        )
    first = next(iter(curves.values()))[0]
    latency_ms = int(first["latency_us"]) / 1000
    key_type = first["key_type"]
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8, 16, 32], labels=["1", "2", "4", "8", "16", "32"])
    ax.set_xlabel("backend.sessions")
    ax.set_ylabel(f"Sign ({key_type}) / s")
    ax.set_title(
        f"Signet against a {latency_ms:g} ms HSM (SoftHSM2 + pkcs11-slow), audit fsync always",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
