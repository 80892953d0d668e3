"""Does a calibration row inherit the clock of the row before it?

Replays the GEMM part of ../shared/tools/measure_hopper.py in its own order (bf16, then fp16, then
tf32; same shapes, same buffer rotation, same warm-up and repetitions, CUDA events around each
call), sampling the SM clock and board power with NVML during each row's timed loop. Then times a
few rows again in isolation, each after an idle pause. Writes JSON lines (the format of
../shared/data/hopper/, plus ``sequence``, ``clock_mhz_median``, ``clock_mhz_min``,
``power_w_median``) to $OUT/h100_order.jsonl.

    OUT=/tmp python benchmarks/measure_h100_order.py
"""

import json
import os
import statistics
import threading
import time

import torch

OUT = os.environ.get("OUT", "/tmp")
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
IDLE_PAUSE_S = 3.0

try:
    import pynvml
    pynvml.nvmlInit()
    NVML = pynvml.nvmlDeviceGetHandleByIndex(0)
except Exception:  # noqa: BLE001 - the timings stand without clocks
    pynvml, NVML = None, None


class Sampler:
    """SM clock and board power every 5 ms while active."""

    def __init__(self):
        self.samples, self._stop = [], threading.Event()

    def __enter__(self):
        if NVML is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            clk = pynvml.nvmlDeviceGetClockInfo(NVML, pynvml.NVML_CLOCK_SM)
            pw = pynvml.nvmlDeviceGetPowerUsage(NVML) / 1000.0
            self.samples.append((clk, pw))
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        if NVML is not None:
            self._thread.join()

    def summary(self):
        if not self.samples:
            return {}
        clocks, powers = [c for c, _ in self.samples], [p for _, p in self.samples]
        return {"clock_mhz_median": statistics.median(clocks), "clock_mhz_min": min(clocks),
                "clock_mhz_max": max(clocks), "power_w_median": statistics.median(powers),
                "nvml_samples": len(clocks)}


def bench(fn, reps, warmup=5):
    """As measure_hopper.py: warm-up calls, then CUDA events around each call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    with Sampler() as sampler:
        times = []
        for _ in range(reps):
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record(); fn(); e.record(); torch.cuda.synchronize()
            times.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(times), min(times), sampler.summary()


def nbuf(bytes_per_set):
    l2 = getattr(props, "L2_cache_size", 50 * 2**20)
    return max(1, min(16, int(4 * l2 // max(bytes_per_set, 1)) + 1))


def gemm_row(dt_name, dt, m, n, kk, sequence, idle_before_s=None):
    es = torch.tensor([], dtype=dt).element_size()
    k = nbuf((m * kk + kk * n) * es)
    A = [torch.randn(m, kk, device=dev, dtype=dt) for _ in range(k)]
    B = [torch.randn(kk, n, device=dev, dtype=dt) for _ in range(k)]
    C = torch.empty(m, n, device=dev, dtype=dt)
    it = [0]

    def f():
        i = it[0] % k
        it[0] += 1
        torch.matmul(A[i], B[i], out=C)
    med, mn, clocks = bench(f, reps=20 if m * n * kk > 2**39 else 40)
    row = dict(kind="gemm", dtype=dt_name, m=m, n=n, k=kk, median_s=med, min_s=mn,
               tflops=2 * m * n * kk / med / 1e12, sequence=sequence, **clocks)
    if idle_before_s is not None:
        row["idle_before_s"] = idle_before_s   # the GPU idled this long before the row (validate: ClockHold)
    A = B = C = None   # release the buffers before empty_cache
    torch.cuda.empty_cache()
    return row


GEMM_SHAPES = [  # measure_hopper.py's list, in its order
    (1536, 1536, 1536), (3072, 3072, 3072), (5120, 5120, 5120), (10240, 10240, 10240), (12288, 12288, 12288),
    (8192, 4096, 2048), (16384, 4096, 256), (2048, 2048, 32768),
    (8, 4096, 4096), (32, 4096, 14336), (96, 14336, 4096), (192, 4096, 14336), (48, 12288, 12288),
    (768, 2048, 8192), (2048, 4096, 14336), (8192, 14336, 4096), (8192, 4096, 14336),
    (4096, 2048, 4096), (2048, 12288, 4096), (1024, 30720, 7168), (7168, 2112, 7168),
    (9216, 9216, 9216), (2500, 4500, 3500), (4096, 4096, 64), (16384, 16384, 256),
]
ISOLATED = [("bf16", (2500, 4500, 3500)), ("bf16", (192, 4096, 14336)), ("tf32", (16384, 4096, 256)),
            ("tf32", (8192, 4096, 2048)), ("bf16", (12288, 12288, 12288))]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32}


def main():
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = [dict(kind="env", name=props.name, sms=props.multi_processor_count, torch=torch.__version__,
                 cuda=torch.version.cuda, nvml=NVML is not None,
                 note="measure_hopper.py's GEMM order replayed, then rows in isolation")]
    for dt_name in ("bf16", "fp16", "tf32"):
        shapes = GEMM_SHAPES if dt_name == "bf16" else GEMM_SHAPES[:8]
        for m, n, kk in shapes:
            rows.append(gemm_row(dt_name, DTYPES[dt_name], m, n, kk, "calibration_order"))
            print(json.dumps(rows[-1]), flush=True)
    for dt_name, (m, n, kk) in ISOLATED:
        time.sleep(IDLE_PAUSE_S)
        rows.append(gemm_row(dt_name, DTYPES[dt_name], m, n, kk, f"isolated_after_{IDLE_PAUSE_S:.0f}s_idle",
                             idle_before_s=IDLE_PAUSE_S))
        print(json.dumps(rows[-1]), flush=True)
    write_rows(rows, "h100_order.jsonl")


def write_rows(rows, name):
    """$OUT/name as JSON lines, written atomically."""
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
