"""Speed of whole-model replay (a benchmark, not a test).

Target (issue "Traces and reports"): one Llama-3-70B training step on 64 GPUs (TP8 x DP8) in
fast fidelity in under 60 s wall, thanks to the per-op memo (identical ops simulated once).
Prints the wall time of each stage and the memo's hit rate.

Run: python benchmarks/bench_replay.py [--system gb200-nvl72] [--batch 8] [--seq 8192]
"""

from __future__ import annotations

import argparse
import time

import blackwell_sim as bs
from blackwell_sim.trace import parse_document
from blackwell_sim.trace.generators import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama3-70b")
    ap.add_argument("--system", default=None, help="system preset (default: the generator's for 64 ranks)")
    ap.add_argument("--batch", type=int, default=8, help="global batch in sequences (one per DP rank)")
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--tp", type=int, default=8)
    ap.add_argument("--dp", type=int, default=8)
    ap.add_argument("--recipe", default="nvfp4")
    args = ap.parse_args()

    t0 = time.perf_counter()
    doc = generate(args.model, mode="train", batch=args.batch, seq=args.seq, tp=args.tp, dp=args.dp,
                   recipe=args.recipe, system=args.system)
    t1 = time.perf_counter()
    trace = parse_document(doc)
    t2 = time.perf_counter()
    memo: dict = {}
    result = bs.simulate(trace, fidelity="fast", memo=memo)
    t3 = time.perf_counter()
    frame = result.ops
    print(f"{args.model} train step, TP{args.tp} x DP{args.dp} on {result.config.name}, recipe {args.recipe}")
    print(f"  ops {len(trace.ops):,}, rows {len(frame):,}, distinct simulations {len(memo):,} "
          f"(rows reusing a memo entry: {100 * frame['cached'].mean():.2f}%)")
    print(f"  generate {t1 - t0:6.2f} s | validate {t2 - t1:6.2f} s | replay+summary {t3 - t2:6.2f} s "
          f"| total {t3 - t0:6.2f} s (target < 60 s)")
    print(f"  simulated step time {result.summary['total_time_s'] * 1e3:.1f} ms, "
          f"{result.summary['achieved_tflops']:.0f} TFLOPS over all ranks")


if __name__ == "__main__":
    main()
