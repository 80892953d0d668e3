"""Speed of the sweep machinery (a benchmark, not a test).

Measures, for a grid of small GEMM points (each simulate call is a few tens of ms, so the sweep's
own costs show): the time to check every point up front (:func:`blackwell_sim.sweep.plan`: one
config load, mostly YAML parsing, per distinct value of a config key), the
wall time of the same sweep in this process (``--workers 0``) and on N local processes, and the
per-point overhead against calling :func:`blackwell_sim.simulate` in a loop. The results files of
all executors must be byte-identical (checked).

Run: python benchmarks/bench_sweep.py [--points 32] [--workers 2] [--plan-values 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import blackwell_sim as bs
from blackwell_sim.sweep import load_spec, plan, run_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=32, help="GEMM points in the timed sweeps")
    ap.add_argument("--workers", type=int, default=2, help="local processes of the parallel run")
    ap.add_argument("--plan-values", type=int, default=200,
                    help="distinct sm.count values of the plan-only timing (x 10 m values = points)")
    args = ap.parse_args()

    trace = "gemm:m=1024,n=1024,k=1024,dtype=bf16"
    counts = list(range(20, 20 + args.points))
    spec = load_spec(trace=trace, vary=[f"sm.count={','.join(map(str, counts))}"])

    t0 = time.perf_counter()
    for sm in counts:
        bs.simulate({"ops": [{"op": "gemm", "m": 1024, "n": 1024, "k": 1024}]}, "b200",
                    overrides={"sm.count": sm})
    direct_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        times, files = {}, {}
        for name, workers in (("serial", 0), (f"{args.workers} processes", args.workers)):
            t0 = time.perf_counter()
            run_sweep(spec, Path(tmp) / name, workers=workers, progress=False)
            times[name] = time.perf_counter() - t0
            files[name] = (Path(tmp) / name / "results.jsonl").read_bytes()
        assert len(set(files.values())) == 1, "executors disagree"

    big = load_spec(trace=trace, vary=[f"sm.count=1:{args.plan_values}", "m=256:2560:256"])
    t0 = time.perf_counter()
    plan_points = len(plan(big))
    plan_s = time.perf_counter() - t0

    print(f"direct simulate loop: {args.points} points in {direct_s:.2f} s ({direct_s / args.points * 1e3:.1f} ms/point)")
    for name, wall in times.items():
        print(f"sweep {name:>12}: {args.points} points in {wall:.2f} s ({wall / args.points * 1e3:.1f} ms/point, "
              f"{args.points / wall:.1f} points/s)")
    print(f"serial sweep overhead over the direct loop: {(times['serial'] - direct_s) / args.points * 1e3:.1f} ms/point")
    print(f"plan (check) of {plan_points} points ({args.plan_values} config values x 10 workloads): {plan_s:.2f} s "
          f"({plan_s / args.plan_values * 1e3:.1f} ms per distinct config value, "
          f"{plan_s / plan_points * 1e3:.2f} ms/point)")
    print("results.jsonl byte-identical across executors: yes")


if __name__ == "__main__":
    main()
