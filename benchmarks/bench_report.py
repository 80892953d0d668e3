"""Speed of writing a report folder for a whole-model frame (a benchmark, not a test).

`blackwell-sim run` writes results.csv, summary.json, timeline.json and the plots after the replay;
for a Llama-3-70B training step on 64 GPUs (about 137K rows) that must stay a small part of the
60 s budget of the issue "Traces and reports". The frame is synthetic but shaped like that one:
per rank a compute stream of back-to-back GEMMs / attention / elementwise ops in three formats and
a comm stream of collectives that overlap it. Prints the wall time of each report stage.

Run: python benchmarks/bench_report.py [--ranks 64] [--ops-per-rank 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import blackwell_sim as bs
from blackwell_sim.report import (
    COLUMN_NAMES,
    summarize,
    validate_frame,
    write_chrome_trace,
    write_plots,
    write_results_csv,
    write_summary_json,
)
from blackwell_sim.report.frame import coerce_frame


def synthetic_frame(ranks: int, ops_per_rank: int, seed: int = 0) -> pd.DataFrame:
    """Back-to-back ops per (rank, stream); every 8th op is a collective on the comm stream."""
    rng = np.random.default_rng(seed)
    n = ranks * ops_per_rank
    rank = np.repeat(np.arange(ranks), ops_per_rank)
    comm = (np.arange(n) % 8) == 7
    kind = np.where(comm, "all_reduce", rng.choice(["gemm", "attention", "elementwise"], n, p=[.6, .2, .2]))
    dtype = np.where(kind == "gemm", rng.choice(["nvfp4", "mxfp8", "bf16"], n),
                     np.where(kind == "attention", "bf16", ""))
    peak = pd.Series(dtype).map({"nvfp4": 9000.0, "mxfp8": 4500.0, "bf16": 2250.0}).to_numpy(dtype=float)
    time_s = rng.uniform(5e-6, 5e-4, n)
    start = np.zeros(n)
    for r in range(ranks):
        for stream_mask in (comm, ~comm):
            idx = np.flatnonzero((rank == r) & stream_mask)
            start[idx] = np.concatenate([[0.0], np.cumsum(time_s[idx])[:-1]])
    flops = np.where(kind == "all_reduce", 0.0, time_s * rng.uniform(2e14, 5e15, n))
    f = pd.DataFrame({c: np.nan for c in COLUMN_NAMES}, index=range(n))
    f["name"] = [f"op{i}" for i in range(n)]
    f["op"], f["rank"], f["stream"] = kind, rank, np.where(comm, "comm", "compute")
    f["layer"], f["phase"] = "", np.where(np.arange(n) % 3 == 0, "fwd", "bwd")
    f["start_s"], f["time_s"], f["end_s"] = start, time_s, start + time_s
    f["flops"], f["peak_tflops"] = flops, peak
    f["tflops"] = flops / time_s / 1e12
    f["pct_of_peak"] = 100 * f["tflops"] / peak
    f["dtype"], f["sparse"], f["cached"] = dtype, False, rng.random(n) < 0.99
    f["bound"] = np.where(comm, "nvlink", rng.choice(["compute", "power", "hbm"], n))
    f["tile"] = ""
    f["bytes_hbm"], f["bytes_l2"] = time_s * 3e12, time_s * 2e13
    f["bytes_fabric"] = np.where(comm, time_s * 4e11, 0.0)
    f["energy_j"] = np.where(comm, np.nan, time_s * 900.0)
    return coerce_frame(f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=64)
    ap.add_argument("--ops-per-rank", type=int, default=2150, help="default: ~137K rows over 64 ranks")
    ap.add_argument("--config", default="gb200-nvl72")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary one)")
    args = ap.parse_args()
    config = bs.load_config(args.config)
    t0 = time.perf_counter()
    frame = synthetic_frame(args.ranks, args.ops_per_rank)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_report_"))
    print(f"synthetic frame: {len(frame):,} rows on {args.ranks} ranks ({time.perf_counter() - t0:.2f} s "
          f"to build); writing {out}")
    stages = [("validate", lambda: validate_frame(frame)),
              ("summarize", lambda: summarize(frame, config)),
              ("summary.json", lambda: write_summary_json(summarize(frame, config), out / "summary.json")),
              ("results.csv", lambda: write_results_csv(frame, out / "results.csv")),
              ("timeline.json", lambda: write_chrome_trace(frame, out / "timeline.json")),
              ("plots", lambda: write_plots(frame, config, out))]
    total = 0.0
    for name, fn in stages:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        total += dt
        print(f"  {name:<14} {dt:6.2f} s")
    size_mb = (out / "timeline.json").stat().st_size / 1e6
    print(f"  {'total':<14} {total:6.2f} s  (timeline.json {size_mb:.0f} MB)")


if __name__ == "__main__":
    main()
