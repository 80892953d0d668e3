"""Hardware counters of cuBLAS GEMMs on H100 (Nsight Compute), to name what bounds a kernel.

Runs each GEMM of ``SHAPES`` a few times unprofiled (warm-up: cuBLAS picks and loads its kernel),
then once between cudaProfilerStart/Stop, so that ``ncu --profile-from-start off`` reads the
counters of that one call. Layouts as in ../shared/tools/measure_hopper.py: A[M,K] @ B[K,N],
row-major, random N(0,1) data (fp8: B stored [N,K] and transposed, as there).

Two steps (the second turns ncu's CSV into our JSON-lines rows):

    ncu --clock-control none --profile-from-start off --csv --page raw --print-units base \\
        --metrics $(python benchmarks/profile_h100_gemm_counters.py --metrics) \\
        python benchmarks/profile_h100_gemm_counters.py > /tmp/ncu.csv
    python benchmarks/profile_h100_gemm_counters.py --parse /tmp/ncu.csv > $OUT/h100_gemm_counters.jsonl

``--metrics`` prints the metric list filtered to the names ``ncu --query-metrics`` knows on this
GPU (an unknown name makes ncu refuse the whole list).
"""

import csv
import json
import subprocess
import sys

SHAPES = [  # (dtype, m, n, k)
    ("bf16", 192, 4096, 14336),
    ("bf16", 256, 4096, 14336),
    ("bf16", 384, 4096, 14336),
    ("bf16", 128, 4096, 14336),
    ("bf16", 2048, 4096, 14336),
    ("bf16", 8192, 4096, 2048),
    ("bf16", 8192, 8192, 64),
    ("bf16", 3072, 3072, 3072),
    ("fp8_e4m3", 256, 14336, 4096),
    ("tf32", 8192, 4096, 2048),
]

METRICS = [
    "gpu__time_duration.sum",
    "sm__cycles_elapsed.avg.per_second",
    "sm__cycles_elapsed.max",
    "dram__bytes_read.sum",
    "dram__bytes_write.sum",
    "lts__t_bytes.sum",
    "lts__t_sectors_op_read.sum",
    "lts__t_sectors_srcunit_tex_op_read.sum",
    "lts__t_sectors_srcunit_tex_op_read_lookup_hit.sum",
    "lts__t_sectors_srcunit_tex_op_read_lookup_miss.sum",
    "lts__throughput.avg.pct_of_peak_sustained_elapsed",
    "lts__t_sectors.avg.pct_of_peak_sustained_elapsed",
    "l1tex__m_xbar2l1tex_read_bytes.sum",
    "l1tex__m_xbar2l1tex_read_bytes.sum.pct_of_peak_sustained_elapsed",
    "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_elapsed",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed",
    "sm__inst_executed_pipe_tensor_op_gmma.sum",
    "smsp__inst_executed.sum",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
    "launch__grid_size",
    "launch__cluster_dim_x",
    "launch__cluster_dim_y",
]


def known_metrics() -> list[str]:
    out = subprocess.run(["ncu", "--query-metrics"], capture_output=True, text=True, check=True).stdout
    bases = {line.split()[0] for line in out.splitlines() if line.strip() and not line.startswith("-")}
    return [m for m in METRICS if m.split(".")[0] in bases]


def run_shapes() -> None:
    import torch

    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    for dtype, m, n, k in SHAPES:
        if dtype == "fp8_e4m3":
            a = torch.randn(m, k, device=dev).to(torch.float8_e4m3fn)
            b = torch.randn(n, k, device=dev).to(torch.float8_e4m3fn).t()
            one = torch.ones((), device=dev)
            def call(a=a, b=b, one=one):
                return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        else:
            dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32}[dtype]
            a = torch.randn(m, k, device=dev, dtype=dt)
            b = torch.randn(k, n, device=dev, dtype=dt)
            c = torch.empty(m, n, device=dev, dtype=dt)
            def call(a=a, b=b, c=c):
                return torch.matmul(a, b, out=c)
        for _ in range(5):
            call()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStart()
        torch.cuda.nvtx.range_push(f"{dtype} {m}x{n}x{k}")
        call()
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
        torch.cuda.cudart().cudaProfilerStop()
        print(f"# shape {dtype} {m} {n} {k}", file=sys.stderr)


def parse(path: str) -> None:
    """ncu raw CSV -> one JSON row per profiled kernel, in launch order, tagged with its GEMM."""
    with open(path) as f:
        lines = [ln for ln in f if ln.startswith('"')]
    rows = list(csv.DictReader(lines))
    rows = [r for r in rows if r.get("ID", "").isdigit()]
    shape_iter = iter(SHAPES)
    current = None
    for r in rows:
        name = r["Kernel Name"]
        if "Memset" in name or "memset" in name:
            continue
        if "splitKreduce" not in name:
            current = next(shape_iter)
        dtype, m, n, k = current
        out = {"kind": "gemm_counters", "dtype": dtype, "m": m, "n": n, "k": k, "kernel": name[:160]}
        for key in METRICS:
            if key in r and r[key] not in ("", "n/a"):
                try:
                    out[key] = float(r[key].replace(",", ""))
                except ValueError:
                    out[key] = r[key]
        print(json.dumps(out))


if __name__ == "__main__":
    if "--metrics" in sys.argv:
        print(",".join(known_metrics()))
    elif "--parse" in sys.argv:
        parse(sys.argv[sys.argv.index("--parse") + 1])
    else:
        run_shapes()
