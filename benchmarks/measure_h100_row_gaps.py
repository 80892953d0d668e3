"""How long the calibration script leaves the GPU between rows, and each call's time within a row.

Replays the dense-GEMM loop of ../shared/tools/measure_hopper.py exactly (bf16 shapes, then the first
eight in fp16 and tf32; ``nbuf`` rotating input sets drawn with ``torch.randn``; ``bench()`` with 5
warm-up calls and 20 or 40 timed calls; ``del`` and ``torch.cuda.empty_cache()`` after each row),
and records host timestamps around each phase: the input allocation (``alloc_s``, which includes
the randn kernels and a synchronize), the warm-up, the timed loop, and the clean-up (``free_s``),
plus every timed call's GPU time. No NVML sampling (a sampler thread would perturb the gaps).

The gap between two rows' timed loops is the next row's ``free_s`` of the previous row + its own
``alloc_s`` + its warm-up: the GPU is idle or lightly loaded then, which is what lets a held clock
recover (validate's harness.ClockHold). Writes $OUT/h100_row_gaps.jsonl.

    OUT=/tmp python benchmarks/measure_h100_row_gaps.py
"""

import statistics
import time

import torch

from measure_h100_order import DTYPES, GEMM_SHAPES, nbuf, props, write_rows

dev = "cuda"


def row(dt_name, dt, m, n, kk):
    t0 = time.perf_counter()
    es = torch.tensor([], dtype=dt).element_size()
    k = nbuf((m * kk + kk * n) * es)
    A = [torch.randn(m, kk, device=dev, dtype=dt) for _ in range(k)]
    B = [torch.randn(kk, n, device=dev, dtype=dt) for _ in range(k)]
    C = torch.empty(m, n, device=dev, dtype=dt)
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    it = [0]

    def f():
        i = it[0] % k
        it[0] += 1
        torch.matmul(A[i], B[i], out=C)
    reps = 20 if m * n * kk > 2**39 else 40
    for _ in range(5):
        f()
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    times = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record(); f(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    t3 = time.perf_counter()
    A = B = C = None   # release the buffers before empty_cache (the script's del)
    torch.cuda.empty_cache()
    t4 = time.perf_counter()
    return dict(kind="gemm", dtype=dt_name, m=m, n=n, k=kk, median_s=statistics.median(times), min_s=min(times),
                tflops=2 * m * n * kk / statistics.median(times) / 1e12, sequence="calibration_order",
                rotation_sets=k, alloc_s=round(t1 - t0, 6), warmup_s=round(t2 - t1, 6), timed_s=round(t3 - t2, 6),
                free_s=round(t4 - t3, 6), call_times_s=[round(t, 8) for t in times])


def main():
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = [dict(kind="env", name=props.name, sms=props.multi_processor_count, torch=torch.__version__,
                 cuda=torch.version.cuda, note="measure_hopper.py's GEMM loop replayed with phase timestamps")]
    for dt_name in ("bf16", "fp16", "tf32"):
        shapes = GEMM_SHAPES if dt_name == "bf16" else GEMM_SHAPES[:8]
        for m, n, kk in shapes:
            rows.append(row(dt_name, DTYPES[dt_name], m, n, kk))
            r = rows[-1]
            print(f"{dt_name} {m}x{n}x{kk} sets={r['rotation_sets']} alloc={r['alloc_s']*1e3:.1f}ms "
                  f"warm={r['warmup_s']*1e3:.1f} timed={r['timed_s']*1e3:.1f} free={r['free_s']*1e3:.1f} "
                  f"median={r['median_s']*1e6:.1f}us first={r['call_times_s'][0]*1e6:.1f} last={r['call_times_s'][-1]*1e6:.1f}",
                  flush=True)
    write_rows(rows, "h100_row_gaps.jsonl")


if __name__ == "__main__":
    main()
