"""Speed of the engine (a benchmark, not a test): wall time and events per second.

Targets (issue "Engine"): fast mode 16384^3 on B200 < 1 s; the H100 calibration file < 30 s;
detailed mode 8192^3 < 60 s. Run: python benchmarks/bench_engine.py
"""

from __future__ import annotations

import time
from pathlib import Path

from blackwell_sim import load_config
from blackwell_sim.engine.kernels.gemm import simulate_gemm
from blackwell_sim.validate import validate

CALIBRATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "hopper" / "h100_sxm_calibration.jsonl"


def timed(label: str, fn) -> None:
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    events = getattr(result, "details", {}).get("events", 0) if not isinstance(result, dict) else 0
    rate = f", {events / wall:,.0f} events/s" if events else ""
    print(f"{label:<44} {wall:7.2f} s{rate}")


def main() -> None:
    b200, h100 = load_config("b200"), load_config("h100-sxm")
    timed("fast 16384^3 bf16 on B200", lambda: simulate_gemm(b200, 16384, 16384, 16384, "bf16"))
    timed("fast 16384^3 nvfp4 on B200", lambda: simulate_gemm(b200, 16384, 16384, 16384, "nvfp4"))
    timed("detailed 8192^3 bf16 on B200", lambda: simulate_gemm(b200, 8192, 8192, 8192, "bf16", fidelity="detailed"))
    timed("detailed 8192^3 bf16 on H100", lambda: simulate_gemm(h100, 8192, 8192, 8192, "bf16", fidelity="detailed"))
    if CALIBRATION.is_file():
        timed("validate h100_sxm_calibration.jsonl", lambda: validate(CALIBRATION, h100))


if __name__ == "__main__":
    main()
