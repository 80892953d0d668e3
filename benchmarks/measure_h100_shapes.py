"""Measure where the GEMM model is thin: small squares, skinny M, output-heavy (small K) shapes.

Same method as measure_h100.py (``median_s``: events around each call, synchronize after each;
``median_s_queued``: a sleep kernel first, so GPU time only), plus, per call, the kernels cuBLAS
launched with their grid, block, registers and GPU duration (torch.profiler's Chrome trace), so
the tile count and the persistent/non-persistent launch can be read off. Writes JSON lines to
$OUT/h100_sxm_shapes.jsonl, one row a shape as soon as it is measured.

Run on the device: python3 benchmarks/measure_h100_shapes.py
"""
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch

OUT = os.environ.get("OUT", "/tmp")
PATH = os.path.join(OUT, "h100_sxm_shapes.jsonl")
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
L2 = getattr(props, "L2_cache_size", 50 * 2**20)
SLEEP_CYCLES = 200_000
START = time.time()
BUDGET_S = float(os.environ.get("MEASURE_BUDGET_S", "200"))


def emit(**row):
    with open(PATH, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row)[:300], flush=True)


def events():
    return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)


def bench(fn, reps, queued=False, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = events()
        if queued:
            torch.cuda._sleep(SLEEP_CYCLES)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(times)


def kernels(fn):
    """[(name, grid, block, registers, dur_us)] of one call, from the profiler's Chrome trace."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        path = tmp.name
    prof.export_chrome_trace(path)
    with open(path) as f:
        trace = json.load(f)
    os.unlink(path)
    out = []
    for ev in trace.get("traceEvents", []):
        if ev.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy"):
            a = ev.get("args", {})
            out.append({"name": ev.get("name", "")[:160], "grid": a.get("grid"), "block": a.get("block"),
                        "registers": a.get("registers per thread"), "smem": a.get("shared memory"),
                        "dur_us": ev.get("dur")})
    return out


def nbuf(bytes_per_set):
    return max(1, min(16, int(4 * L2 // max(bytes_per_set, 1)) + 1))


def gemm_case(dtype, m, n, k):
    if dtype == "fp8_e4m3":
        sets = nbuf(m * k + k * n)
        A = [torch.randn(m, k, device=dev).to(torch.float8_e4m3fn) for _ in range(sets)]
        B = [torch.randn(n, k, device=dev).to(torch.float8_e4m3fn).t() for _ in range(sets)]
        one = torch.tensor(1.0, device=dev)
        it = [0]

        def f():
            i = it[0] % sets; it[0] += 1
            torch._scaled_mm(A[i], B[i], scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        return f
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32}[dtype]
    torch.backends.cuda.matmul.allow_tf32 = True
    es = torch.tensor([], dtype=dt).element_size()
    sets = nbuf((m * k + k * n) * es)
    A = [torch.randn(m, k, device=dev, dtype=dt) for _ in range(sets)]
    B = [torch.randn(k, n, device=dev, dtype=dt) for _ in range(sets)]
    C = torch.empty(m, n, device=dev, dtype=dt)
    it = [0]

    def f():
        i = it[0] % sets; it[0] += 1
        torch.matmul(A[i], B[i], out=C)
    return f


CASES = (
    [("bf16", s, s, s) for s in (512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072)]
    + [("fp16", 1536, 1536, 1536), ("fp16", 3072, 3072, 3072), ("fp8_e4m3", 1536, 1536, 1536),
       ("fp8_e4m3", 2048, 2048, 2048), ("fp8_e4m3", 3072, 3072, 3072), ("tf32", 1536, 1536, 1536)]
    + [("bf16", m, 4096, 14336) for m in (64, 128, 192, 256, 384)]
    + [("fp8_e4m3", m, 14336, 4096) for m in (128, 256, 512)]
    + [("bf16", 8192, 8192, k) for k in (64, 128, 256, 512)]
    + [(dt, 16384, 4096, 256) for dt in ("bf16", "fp16", "fp8_e4m3", "tf32")]
    + [("tf32", 8192, 4096, 2048), ("bf16", 8192, 4096, 2048)]
)

try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,clocks.max.sm,power.limit,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except Exception as ex:  # noqa: BLE001
    smi = repr(ex)
emit(kind="env", name=props.name, sms=props.multi_processor_count, l2_bytes=L2, torch=torch.__version__,
     cuda=torch.version.cuda, smi=smi)
for dtype, m, n, k in CASES:
    if time.time() - START > BUDGET_S:
        emit(kind="error", what=f"{dtype} {m}x{n}x{k}", err="skipped: time budget")
        continue
    try:
        f = gemm_case(dtype, m, n, k)
        reps = 20 if m * n * k > 2**39 else 40
        med = bench(f, reps)
        qmed = bench(f, reps, queued=True)
        ks = kernels(f)
        emit(kind="gemm", dtype=dtype, m=m, n=n, k=k, median_s=med, median_s_queued=qmed,
             tflops_queued=2 * m * n * k / qmed / 1e12, kernels=[x["name"] for x in ks], kernel_detail=ks)
    except Exception as ex:  # noqa: BLE001
        emit(kind="error", what=f"{dtype} {m}x{n}x{k}", err=repr(ex)[:300])
    torch.cuda.empty_cache()
