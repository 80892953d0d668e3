"""Accuracy of the collective model on NCCL measurement files, split at 1 MiB (no GPU needed).

Runs ``blackwell_sim.validate.validate`` (what ``blackwell-sim validate FILE --config C`` runs)
and prints MAPE / max error per collective, group layout (all GPUs, sub-groups, concurrent
groups, forced NCCL_ALGO / NCCL_PROTO) and size class, for ``graph_s`` (GPU time) and
``median_s`` (one call timed alone). The tables of docs/validation.md "Collectives" come from:

    python benchmarks/measure_nccl_report.py benchmarks/data/h200x4_nccl_2026-11-26.jsonl \
        benchmarks/data/h200x4_nccl_algo_2026-11-26.jsonl --config hgx-h200-4
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from blackwell_sim import load_config
from blackwell_sim.validate import validate

MIB = 2**20


def group_of(row: dict) -> str:
    if "nccl_algo" in row or "nccl_proto" in row:
        return f"forced {row.get('nccl_algo', '-')}/{row.get('nccl_proto', '-')}"
    if row.get("concurrent"):
        return f"{len(row['concurrent'])} groups of {row['world']} at once"
    return f"{row['world']} GPUs" + (f" {row['ranks']}" if row.get("layout") else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--config", required=True)
    args = ap.parse_args()
    cfg = load_config(args.config)
    errors: dict[tuple, list[float]] = defaultdict(list)
    for path in args.files:
        for row in validate(path, cfg)["rows"]:
            key = (row["kind"], group_of(row), row["quantity"], row["bytes"] >= MIB)
            errors[key].append(abs(row["error"]))
    print(f"{'collective':15s} {'group':28s} {'quantity':9s} {'< 1 MiB':>22s} {'>= 1 MiB':>22s}")
    for kind, group, qty in sorted({k[:3] for k in errors}):
        cells = []
        for large in (False, True):
            e = errors.get((kind, group, qty, large))
            cells.append(f"{100 * np.mean(e):5.1f}% ({100 * np.max(e):5.1f}%) n={len(e):2d}" if e else "-")
        print(f"{kind:15s} {group:28s} {qty:9s} {cells[0]:>22s} {cells[1]:>22s}")


if __name__ == "__main__":
    main()
