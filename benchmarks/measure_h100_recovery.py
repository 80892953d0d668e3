"""How fast the H100's clock comes back after heavy load, and the misaligned GEMMs' own clock.

1. cuBLAS's sm80 fallback GEMMs (leading dimensions not 16-byte aligned) in isolation, each after
   an idle pause, with the NVML SM clock (as benchmarks/measure_h100_order.py).
2. Recovery: 8192^3 bf16 GEMMs back to back for ``HEAVY_S``, then a light kernel (the misaligned
   2500x4500x3500 GEMM, far below the power limit) back to back for ``LIGHT_S``: per-call CUDA event
   times with their start offsets show the clock climbing back while light work runs. Then the
   same after ``IDLE_S`` of idle.

Writes $OUT/h100_recovery.jsonl (kinds gemm with ``sequence``, and ``clock_trace`` rows).

    OUT=/tmp python benchmarks/measure_h100_recovery.py
"""

import json
import time

import torch

from measure_h100_order import DTYPES, IDLE_PAUSE_S, NVML, Sampler, gemm_row, props, write_rows

HEAVY_S, LIGHT_S, IDLE_S = 0.4, 0.6, 0.5
MISALIGNED = [(4095, 4095, 4095), (4096, 4096, 4095), (2048, 2048, 2047), (2500, 4500, 3500)]


def timed_calls(fn, seconds):
    """Call ``fn`` back to back for ``seconds``; per call: (start offset s, GPU time s)."""
    events, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record()
        events.append((time.perf_counter() - t0, s, e))
        if len(events) % 8 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return [(t, s.elapsed_time(e) * 1e-3) for t, s, e in events]


def recovery_trace(idle_before_light_s):
    bf16 = torch.bfloat16
    a, b = torch.randn(8192, 8192, device="cuda", dtype=bf16), torch.randn(8192, 8192, device="cuda", dtype=bf16)
    x, y = torch.randn(2500, 3500, device="cuda", dtype=bf16), torch.randn(3500, 4500, device="cuda", dtype=bf16)
    out_big, out_small = torch.empty(8192, 8192, device="cuda", dtype=bf16), torch.empty(2500, 4500, device="cuda", dtype=bf16)
    for _ in range(3):
        torch.matmul(x, y, out=out_small)
    torch.cuda.synchronize()
    time.sleep(IDLE_PAUSE_S)
    with Sampler() as sampler:
        heavy = timed_calls(lambda: torch.matmul(a, b, out=out_big), HEAVY_S)
        time.sleep(idle_before_light_s)
        light = timed_calls(lambda: torch.matmul(x, y, out=out_small), LIGHT_S)
    return dict(kind="clock_trace", heavy_s=HEAVY_S, idle_between_s=idle_before_light_s,
                heavy_calls=[[round(t, 5), g] for t, g in heavy], light_calls=[[round(t, 5), g] for t, g in light],
                nvml_clock_mhz=[c for c, _ in sampler.samples], nvml_period_s=0.005)


def main():
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = [dict(kind="env", name=props.name, sms=props.multi_processor_count, torch=torch.__version__,
                 cuda=torch.version.cuda, nvml=NVML is not None)]
    for m, n, k in MISALIGNED:
        time.sleep(IDLE_PAUSE_S)
        rows.append(gemm_row("bf16", DTYPES["bf16"], m, n, k, f"isolated_after_{IDLE_PAUSE_S:.0f}s_idle",
                             idle_before_s=IDLE_PAUSE_S))
        print(json.dumps(rows[-1]), flush=True)
    for idle in (0.0, IDLE_S):
        rows.append(recovery_trace(idle))
        r = rows[-1]
        print(json.dumps({k: v for k, v in r.items() if not isinstance(v, list)}),
              "heavy median", sorted(g for _, g in r["heavy_calls"])[len(r["heavy_calls"]) // 2],
              "light first/last", r["light_calls"][:3], r["light_calls"][-3:], flush=True)
    write_rows(rows, "h100_recovery.jsonl")


if __name__ == "__main__":
    main()
