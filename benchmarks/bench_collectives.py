"""Collectives: simulation speed and accuracy (a benchmark, not a test).

Targets (issue 6): a 72-GPU 1 GiB all-reduce simulates in < 10 s of wall time; on the 2x H200
NCCL measurements MAPE <= 10% for messages >= 1 MiB and <= 25% below, per collective; HGX H100
all-reduce busbw ~450-480 GB/s with NVLS and ~330-370 without; GB200 NVL72 all-reduce busbw for
1-8 GiB in the range of the public 72-GPU nccl-tests run. Run: python benchmarks/bench_collectives.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from blackwell_sim import load_config
from blackwell_sim.engine.kernels.collectives import simulate_collective
from blackwell_sim.engine.system_run import System

NCCL = Path(__file__).resolve().parents[2] / "shared" / "data" / "hopper" / "h200x2_nvlink_nccl.jsonl"
GIB = 2**30
# coreweave/nccl-tests PR 43: a full GB200 NVL72 rack, all_reduce_perf, float, out-of-place busbw
NVL72_PUBLIC = {GIB // 2: 586.06, GIB: 681.17, 2 * GIB: 757.78, 4 * GIB: 839.16, 8 * GIB: 834.57}


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    print(f"{label:<58} {wall:7.3f} s  ({result.algo}/{result.protocol}, {result.events} events)")
    return result


def speed() -> None:
    print("== speed")
    timed("GB200 NVL72, 72-GPU 1 GiB all-reduce (tuner)", lambda: simulate_collective("gb200-nvl72", "all_reduce", GIB))
    timed("GB200 NVL72, 72-GPU 1 GiB all-reduce (ring, simple)",
          lambda: simulate_collective("gb200-nvl72", "all_reduce", GIB, algo="ring", protocol="simple"))
    timed("GB200 NVL72, 72-GPU 64 GiB all-reduce (ring, 512 events)",
          lambda: simulate_collective("gb200-nvl72", "all_reduce", 64 * GIB, algo="ring", protocol="simple"))
    start = time.perf_counter()
    sim = System("gb200-nvl72")
    for group in range(9):  # 9 concurrent 8-GPU all-reduces plus 72 copies on the same links
        sim.collective("all_reduce", GIB, ranks=range(8 * group, 8 * group + 8), algo="ring")
    for g in range(72):
        sim.copy(g, (g + 1) % 72, 256 << 20, stream="copy")
    sim.run()
    print(f"{'NVL72: 9 concurrent 8-GPU all-reduces + 72 copies':<58} {time.perf_counter() - start:7.3f} s")


def accuracy() -> None:
    print("== 2x H200 NCCL (h200x2-nvlink): MAPE per collective and size class")
    if not NCCL.is_file():
        print(f"   {NCCL} not found")
        return
    cfg = load_config("h200x2-nvlink")
    errs: dict[tuple[str, str], list[float]] = {}
    for line in NCCL.read_text().splitlines():
        row = json.loads(line)
        r = simulate_collective(cfg, row["kind"], row["bytes"], ranks=range(row["world"]))
        size = ">= 1 MiB" if row["bytes"] >= 2**20 else "< 1 MiB"
        errs.setdefault((row["kind"], size), []).append(r.time_s / row["median_s"] - 1)
    for (kind, size), e in sorted(errs.items()):
        e = np.array(e)
        print(f"   {kind:<11} {size:<9} n={len(e):>2}  MAPE {np.abs(e).mean():6.1%}  max {np.abs(e).max():6.1%}")


def public() -> None:
    print("== all-reduce busbw (GB/s) vs public results")
    hgx = load_config("hgx-h100-8")
    for n in (1, 2, 4, 8):
        nvls = simulate_collective(hgx, "all_reduce", n * GIB)
        ring = simulate_collective(hgx, "all_reduce", n * GIB, algo="ring")
        print(f"   HGX H100 8-GPU {n} GiB: {nvls.algo} {nvls.busbw_gbps:6.1f} (public ~480), "
              f"ring {ring.busbw_gbps:6.1f} (public 365-370)")
    nvl = load_config("gb200-nvl72")
    for nbytes, measured in NVL72_PUBLIC.items():
        r = simulate_collective(nvl, "all_reduce", nbytes, dtype="fp32")
        ring = simulate_collective(nvl, "all_reduce", nbytes, dtype="fp32", algo="ring")
        print(f"   GB200 NVL72 72-GPU fp32 {nbytes / GIB:>4g} GiB: {r.algo} {r.busbw_gbps:6.1f} "
              f"(ring {ring.busbw_gbps:6.1f}), public {measured:6.1f}, error {r.busbw_gbps / measured - 1:+.1%}")


if __name__ == "__main__":
    speed()
    accuracy()
    public()
