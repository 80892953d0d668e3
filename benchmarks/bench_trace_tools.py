"""Speed of the workload generators and the torch.profiler importer (a benchmark, not a test).

Generators: one training step of Llama-3-70B on 64 ranks (TP8 x DP8, NVFP4, with and without
sequence parallelism + distributed optimizer + recompute) and of the DeepSeek-V3-like MoE on 64
ranks (DP64 x EP64). Importer: the committed H100 capture replicated ``--copies`` times along the
time axis (a long profile), with and without ``all_kernels``. Prints wall times and sizes.

Run: python benchmarks/bench_trace_tools.py [--copies 200]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

from blackwell_sim.trace.generators import generate
from blackwell_sim.trace.torch_profile import import_torch_profile

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "torch_profile" / \
    "torch_profile_small_transformer.json.gz"


def _timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"  {label:<58} {time.perf_counter() - t0:7.2f} s", end="")
    return out


def _long_profile(copies: int, path: Path) -> int:
    """The fixture's events ``copies`` times, shifted in time and in their ids."""
    doc = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    events, span = [], 50_000.0
    for i in range(copies):
        for ev in doc["traceEvents"]:
            ev = dict(ev)
            if isinstance(ev.get("ts"), (int, float)):
                ev["ts"] += i * span
            if isinstance(ev.get("args"), dict):
                args = dict(ev["args"])
                for key in ("correlation", "External id"):
                    if isinstance(args.get(key), int):
                        args[key] += i * 1_000_000
                ev["args"] = args
            events.append(ev)
    doc["traceEvents"] = events
    path.write_text(json.dumps(doc))
    return len(events)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=200, help="fixture copies in the long profile")
    args = ap.parse_args()
    print("generators")
    for label, kw in (("llama3-70b train TP8 x DP8 nvfp4", {}),
                      ("  + sequence parallel, distributed optimizer, recompute",
                       {"sequence_parallel": True, "distributed_optimizer": True, "recompute": True})):
        doc = _timed(label, lambda kw=kw: generate("llama3-70b", batch=64, seq=4096, tp=8, dp=8, recipe="nvfp4", **kw))
        print(f"  ({len(doc['ops']):,} ops)")
    doc = _timed("deepseek-v3-like train DP64 x EP64 mxfp8",
                 lambda: generate("deepseek-v3-like", batch=64, seq=4096, dp=64, ep=64, recipe="mxfp8"))
    print(f"  ({len(doc['ops']):,} ops)")
    print("importer")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.json"
        n = _long_profile(args.copies, path)
        print(f"  long profile: {n:,} events, {path.stat().st_size / 1e6:.0f} MB")
        for all_kernels in (False, True):
            out = _timed(f"import (all_kernels={all_kernels})",
                         lambda a=all_kernels: import_torch_profile(path, all_kernels=a))
            print(f"  ({len(out['ops']):,} ops)")


if __name__ == "__main__":
    main()
