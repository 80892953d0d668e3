"""When does the H100's power controller hold a lowered clock after heavy work, and what ends it?

benchmarks/data/h100_recovery.jsonl showed a light GEMM running back to back at ~1565 MHz for
~34 ms after 0.4 s of 8192^3 bf16, and at 1980 MHz at once after 0.5 s idle. This script asks
what happens in between, with the misaligned 2500x4500x3500 bf16 GEMM (cuBLAS's sm80 fallback,
far below the power limit, 391 us at 1980 MHz) as the probe, timed like the calibration script's
``bench()`` (events around each call, a synchronize after it):

- ``heavy_s``: how long the 8192^3 bf16 load ran before (0.05 to 0.4 s: is a hold left only once
  the controller has pulled the clock down, after its ~100 ms response window?);
- ``interlude``: what ran between the load and the probe: nothing, an idle pause
  (``interlude_ms``), small 1024^3 GEMMs synchronised after each call (the pattern of short
  benchmark rows), or the same back to back.

Each case starts after ``REST_S`` idle. One row per case (kind ``clock_hold``) with the probe's
per-call GPU times; ``probe_ref_s`` is the probe's median alone after 3 s idle (1980 MHz).
Writes $OUT/h100_hold.jsonl.

    OUT=/tmp python benchmarks/measure_h100_hold.py
"""

import json
import statistics
import time

import torch

from measure_h100_order import props, write_rows

REST_S = 1.5
PROBE_CALLS = 45            # the calibration script's 5 warm-up + 40 timed calls
HEAVY = (8192, 8192, 8192)
PROBE = (2500, 4500, 3500)
SMALL = (1024, 1024, 1024)
CASES = [  # (heavy_s, interlude, interlude_ms)
    (0.4, "none", 0), (0.4, "idle", 2), (0.4, "idle", 5), (0.4, "idle", 10), (0.4, "idle", 20),
    (0.4, "idle", 50), (0.4, "small_synced", 5), (0.4, "small_synced", 10), (0.4, "small_synced", 20),
    (0.4, "small_back_to_back", 10), (0.4, "small_back_to_back", 20),
    (0.05, "none", 0), (0.1, "none", 0), (0.2, "none", 0),
]
REPEATS = 2


def operands(m, n, k):
    bf16 = torch.bfloat16
    a = torch.randn(m, k, device="cuda", dtype=bf16)
    b = torch.randn(k, n, device="cuda", dtype=bf16)
    return a, b, torch.empty(m, n, device="cuda", dtype=bf16)


def run_for(fn, seconds, sync_each):
    t0 = time.perf_counter()
    calls = 0
    while time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
        if sync_each or calls % 8 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return calls


def synced_calls(fn, n):
    times = []
    for _ in range(n):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    return times


def main():
    heavy_ops, probe_ops, small_ops = operands(*HEAVY), operands(*PROBE), operands(*SMALL)
    heavy = lambda: torch.matmul(heavy_ops[0], heavy_ops[1], out=heavy_ops[2])  # noqa: E731
    probe = lambda: torch.matmul(probe_ops[0], probe_ops[1], out=probe_ops[2])  # noqa: E731
    small = lambda: torch.matmul(small_ops[0], small_ops[1], out=small_ops[2])  # noqa: E731
    for fn in (heavy, probe, small):
        fn()
    torch.cuda.synchronize()
    time.sleep(3.0)
    ref = statistics.median(synced_calls(probe, 15))
    rows = [dict(kind="env", name=props.name, sms=props.multi_processor_count, torch=torch.__version__,
                 cuda=torch.version.cuda, probe=list(PROBE), heavy=list(HEAVY), small=list(SMALL),
                 probe_ref_s=ref)]
    print(json.dumps(rows[0]), flush=True)
    for rep in range(REPEATS):
        for heavy_s, interlude, ms in CASES:
            time.sleep(REST_S)
            run_for(heavy, heavy_s, sync_each=False)
            t_end = time.perf_counter()
            small_calls = 0
            if interlude == "idle":
                time.sleep(ms * 1e-3)
            elif interlude == "small_synced":
                small_calls = run_for(small, ms * 1e-3, sync_each=True)
            elif interlude == "small_back_to_back":
                small_calls = run_for(small, ms * 1e-3, sync_each=False)
            gap_s = time.perf_counter() - t_end
            times = synced_calls(probe, PROBE_CALLS)
            row = dict(kind="clock_hold", repeat=rep, heavy_s=heavy_s, interlude=interlude, interlude_ms=ms,
                       interlude_measured_s=round(gap_s, 5), small_calls=small_calls,
                       probe_times_s=[round(t, 8) for t in times], probe_ref_s=ref,
                       probe_median_s=statistics.median(times[5:]),
                       clock_mhz_est=[round(1980 * ref / t) for t in times])
            rows.append(row)
            print(heavy_s, interlude, ms, "probe median %.1f us" % (row["probe_median_s"] * 1e6),
                  "clock est first/mid/last", row["clock_mhz_est"][0], row["clock_mhz_est"][22],
                  row["clock_mhz_est"][-1], flush=True)
    write_rows(rows, "h100_hold.jsonl")


if __name__ == "__main__":
    main()
