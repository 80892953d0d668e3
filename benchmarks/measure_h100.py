"""Measure an H100 (SXM) for blackwell-sim: sustained clock/power under GEMM load, held-out GEMM
shapes, copies, elementwise bandwidth and kernel-launch gaps.

Extends ../shared/tools/measure_hopper.py (same method and JSON-lines format): CUDA events, median of
>= 20 timed runs after warm-up, random normal inputs, input sets rotated so that the data touched
between two runs of the same set exceeds 4x L2. Rows go to $OUT/h100_extra.jsonl as they are produced
(flushed and fsynced, so a run cut off by a time limit still returns what it measured).

Kinds written (see benchmarks/data/README.md): env, gemm_power (new), gemm, copy, elementwise, launch,
env_after, error; with MEASURE_EXTENDED=1 also copy_power and idle_power.

Run: PYTHONUNBUFFERED=1 python3 benchmarks/measure_h100.py     (needs torch with CUDA)
Env: OUT (output folder, default /tmp), MEASURE_BUDGET_S (soft time budget, default 500 s),
     MEASURE_NO_PROFILER=1 (skip recording cuBLAS kernel names),
     MEASURE_EXTENDED=1 (also: a 10 s sustained GEMM, more data patterns and sizes, copy and idle power).
"""
import collections
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

import torch

T_START = time.perf_counter()
OUT = os.environ.get("OUT", "/tmp")
BUDGET_S = float(os.environ.get("MEASURE_BUDGET_S", "500"))
OUT_FILE = os.path.join(OUT, "h100_extra.jsonl")
os.makedirs(OUT, exist_ok=True)

dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
L2 = getattr(props, "L2_cache_size", 50 * 2**20) or 50 * 2**20
torch.backends.cuda.matmul.allow_tf32 = True  # only affects fp32 matmuls (the "tf32" rows)

rows = []
_fh = open(OUT_FILE, "w")


def elapsed():
    return time.perf_counter() - T_START


def time_left():
    return BUDGET_S - elapsed()


def emit(**kw):
    rows.append(kw)
    line = json.dumps(kw)
    _fh.write(line + "\n")
    _fh.flush()
    os.fsync(_fh.fileno())
    short = line if len(line) < 400 else line[:400] + "...}"
    print(f"[{elapsed():6.1f}s] {short}", flush=True)


def err(what, ex):
    emit(kind="error", what=what, err=repr(ex)[:400])


def smi(query):
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as ex:  # noqa: BLE001
        return repr(ex)


def nbuf(bytes_per_set, cap=16):
    """Input sets to rotate so that > 4x L2 is touched between two uses of one set."""
    return max(1, min(cap, int(4 * L2 // max(bytes_per_set, 1)) + 1))


def new_events(n=2):
    return [torch.cuda.Event(enable_timing=True) for _ in range(n)]


def bench(fn, reps=30, warmup=5):
    """measure_hopper.py's method: events around each call, synchronize after each; median, min."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = new_events()
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(times), min(times)


SLEEP_CYCLES = 200_000  # ~100 us at ~2 GHz: longer than the host needs to enqueue one call
HAS_SLEEP = hasattr(torch.cuda, "_sleep")


def bench_queued(fn, reps=30, warmup=2):
    """As bench(), but a GPU-side sleep kernel runs first, so the start event and the call are already
    queued when the GPU reaches them: the time excludes the host's launch latency (matters for
    calls of a few microseconds)."""
    if not HAS_SLEEP:
        return None, None
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = new_events()
        torch.cuda._sleep(SLEEP_CYCLES)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(times), min(times)


# ----------------------------------------------------------------------------- kernel names
_PROF_OK = os.environ.get("MEASURE_NO_PROFILER") != "1"


def kernel_names(fn):
    """Names of the GPU kernels one call of fn launches (torch.profiler), truncated; None on failure."""
    global _PROF_OK
    if not _PROF_OK or time_left() < 60:
        return None
    try:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        names = []
        for ev in prof.events():
            dt = getattr(ev, "device_type", None)
            if dt is not None and "CUDA" in str(dt):
                nm = ev.name[:160]
                if nm not in names:
                    names.append(nm)
        return names
    except Exception as ex:  # noqa: BLE001
        _PROF_OK = False
        err("profiler", ex)
        return None


# ----------------------------------------------------------------------------- clock/power sampler
class Sampler:
    """Background thread sampling SM clock, power, temperature (NVML via pynvml, else nvidia-smi -lms)."""

    def __init__(self, period_s=0.05):
        self.period = period_s
        self.samples = []  # (t_perf, sm_mhz, power_w, power_inst_w or None, temp_c, reasons or None)
        self.energy = []   # (t_perf, energy_mJ)
        self.backend = None
        self._stop = threading.Event()
        self._thread = None
        self._proc = None
        self._lock = threading.Lock()
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nv = pynvml
            self.h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            self.nv.nvmlDeviceGetClockInfo(self.h, pynvml.NVML_CLOCK_SM)
            self.backend = "pynvml"
        except Exception as ex:  # noqa: BLE001
            self.nv = None
            self.backend = "nvidia-smi"
            self.nvml_error = repr(ex)[:200]

    def _nvml_loop(self):
        nv, h = self.nv, self.h
        fi = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", None)
        reasons_fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            getattr(nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                clk = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
                pw = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
                tc = nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
                pinst = None
                if fi is not None:
                    try:
                        v = nv.nvmlDeviceGetFieldValues(h, [fi])[0]
                        if v.nvmlReturn == 0:
                            pinst = v.value.uiVal / 1000.0
                    except Exception:  # noqa: BLE001
                        fi = None
                rs = None
                if reasons_fn is not None:
                    try:
                        rs = int(reasons_fn(h))
                    except Exception:  # noqa: BLE001
                        reasons_fn = None
                with self._lock:
                    self.samples.append((t, clk, pw, pinst, tc, rs))
                try:
                    en = nv.nvmlDeviceGetTotalEnergyConsumption(h)
                    with self._lock:
                        self.energy.append((t, en))
                except Exception:  # noqa: BLE001
                    pass
            except Exception:  # noqa: BLE001
                pass
            self._stop.wait(max(0.0, self.period - (time.perf_counter() - t)))

    def _smi_loop(self):
        try:
            self._proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=clocks.sm,power.draw,temperature.gpu", "--format=csv,noheader,nounits",
                 "-lms", str(int(self.period * 1000))], stdout=subprocess.PIPE, text=True)
        except Exception as ex:  # noqa: BLE001
            self.smi_error = repr(ex)[:200]
            return
        for line in self._proc.stdout:
            t = time.perf_counter()
            try:
                clk, pw, tc = [float(x) for x in line.strip().split(",")[:3]]
                with self._lock:
                    self.samples.append((t, clk, pw, None, tc, None))
            except Exception:  # noqa: BLE001
                pass
            if self._stop.is_set():
                break

    def start(self):
        if self.backend == "nvidia-smi":
            self.period = max(self.period, 0.1)
            target = self._smi_loop
        else:
            target = self._nvml_loop
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        time.sleep(0.3)

    def stop(self):
        self._stop.set()
        if self._proc is not None:
            try:
                self._proc.terminate()
            except Exception:  # noqa: BLE001
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)

    def window(self, t0, t1):
        with self._lock:
            s = [x for x in self.samples if t0 <= x[0] <= t1]
            en = [x for x in self.energy if t0 <= x[0] <= t1]
        return s, en

    def summary(self, t0, t1, series_origin=None):
        s, en = self.window(t0, t1)
        out = dict(n_samples=len(s), sampler=self.backend)
        if not s:
            return out
        clk = [x[1] for x in s]; pw = [x[2] for x in s]; tc = [x[4] for x in s]
        out.update(sm_clock_mhz_mean=statistics.fmean(clk), sm_clock_mhz_min=min(clk), sm_clock_mhz_max=max(clk),
                   sm_clock_mhz_median=statistics.median(clk),
                   power_w_mean=statistics.fmean(pw), power_w_max=max(pw),
                   temperature_c=tc[-1], temperature_c_start=tc[0])
        pi = [x[3] for x in s if x[3] is not None]
        if pi:
            out.update(power_inst_w_mean=statistics.fmean(pi), power_inst_w_max=max(pi))
        rs = [x[5] for x in s if x[5] is not None]
        if rs:
            acc = 0
            for r in rs:
                acc |= r
            out["clock_event_reasons_or"] = acc  # NVML bitmask OR'ed over samples (0x4 = SW power cap, ...)
        if len(en) >= 2 and en[-1][0] > en[0][0]:
            out["power_w_energy"] = (en[-1][1] - en[0][1]) / 1000.0 / (en[-1][0] - en[0][0])
        if series_origin is not None:
            out["series"] = [[round(x[0] - series_origin, 3), x[1], round(x[2], 1),
                              None if x[3] is None else round(x[3], 1)] for x in s]
        return out


# ----------------------------------------------------------------------------- tensors
DT = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32, "fp32": torch.float32}
ES = {"bf16": 2, "fp16": 2, "tf32": 4, "fp32": 4, "fp8_e4m3": 1}


def make_gemm(dtype, m, n, k, data="random", batch=1, cap=16):
    """Return (fn, nsets): fn() runs one GEMM C = A B, rotating among nsets input sets."""
    bshape = (batch,) if batch > 1 else ()
    nsets = nbuf(batch * (m * k + k * n) * ES[dtype], cap=cap)

    def gen(shape, dt):
        if data == "zeros":
            return torch.zeros(*shape, device=dev, dtype=dt)
        if data == "ones":
            return torch.ones(*shape, device=dev, dtype=dt)
        if data == "half_zeros":  # randn with a random half of the elements set to zero
            x = torch.randn(*shape, device=dev, dtype=dt)
            return x * (torch.rand(*shape, device=dev) < 0.5).to(dt)
        return torch.randn(*shape, device=dev, dtype=dt)

    if dtype == "fp8_e4m3":
        f8 = torch.float8_e4m3fn
        if data == "zeros":
            A = [torch.zeros(m, k, device=dev, dtype=f8) for _ in range(nsets)]
            B = [torch.zeros(n, k, device=dev, dtype=f8).t() for _ in range(nsets)]
        else:
            A = [torch.randn(m, k, device=dev).to(f8) for _ in range(nsets)]
            B = [torch.randn(n, k, device=dev).to(f8).t() for _ in range(nsets)]  # column-major B
        sa = torch.tensor(1.0, device=dev); sb = torch.tensor(1.0, device=dev)
        it = [0]

        def fn():
            i = it[0] % nsets; it[0] += 1
            return torch._scaled_mm(A[i], B[i], scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
        return fn, nsets

    dt = DT[dtype]
    A = [gen(bshape + (m, k), dt) for _ in range(nsets)]
    B = [gen(bshape + (k, n), dt) for _ in range(nsets)]
    C = torch.empty(*(bshape + (m, n)), device=dev, dtype=dt)
    it = [0]
    if batch > 1:
        def fn():
            i = it[0] % nsets; it[0] += 1
            return torch.bmm(A[i], B[i], out=C)
    else:
        def fn():
            i = it[0] % nsets; it[0] += 1
            return torch.matmul(A[i], B[i], out=C)
    return fn, nsets


def free():
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


# ============================================================================= 1. env
env = dict(kind="env", name=props.name, sms=props.multi_processor_count, l2_bytes=L2, mem_bytes=props.total_memory,
           torch=torch.__version__, cuda=torch.version.cuda, capability=list(torch.cuda.get_device_capability()),
           cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           python=platform.python_version(), kernel=platform.release(),
           allow_tf32=torch.backends.cuda.matmul.allow_tf32,
           bf16_reduced_precision_reduction=getattr(torch.backends.cuda.matmul,
                                                    "allow_bf16_reduced_precision_reduction", None),
           fp16_reduced_precision_reduction=getattr(torch.backends.cuda.matmul,
                                                    "allow_fp16_reduced_precision_reduction", None),
           script="benchmarks/measure_h100.py")
env["smi"] = smi("name,clocks.max.sm,clocks.sm,clocks.max.mem,power.limit,driver_version")
env["smi_extra"] = smi("pstate,clocks.mem,clocks.applications.graphics,clocks.default_applications.graphics,"
                       "power.default_limit,power.max_limit,enforced.power.limit,temperature.gpu,power.draw,"
                       "persistence_mode,ecc.mode.current,pci.bus_id")
env["device_label"] = "H200" if "H200" in props.name else ("H100" if "H100" in props.name else props.name)
emit(**env)

# ============================================================================= 2. gemm_power
sampler = Sampler(period_s=0.05)
sampler.start()
env_s = sampler.summary(0, time.perf_counter())
print("sampler:", sampler.backend, getattr(sampler, "nvml_error", ""), "idle:", {
    k: env_s.get(k) for k in ("sm_clock_mhz_mean", "power_w_mean", "temperature_c")}, flush=True)


def run_loop(fn, duration_s, keep=True, depth=4):
    """Back-to-back calls for duration_s (host clock), events around each call, at most `depth`
    calls queued ahead so the GPU never idles and the host clock tracks the GPU within ~depth calls."""
    pairs = []
    pending = collections.deque()
    t0 = time.perf_counter()
    while True:
        s, e = new_events()
        s.record(); fn(); e.record()
        if keep:
            pairs.append((s, e))
        pending.append(e)
        if len(pending) > depth:
            pending.popleft().synchronize()
        if time.perf_counter() - t0 >= duration_s:
            break
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    times = [s.elapsed_time(e) * 1e-3 for s, e in pairs]
    return times, t0, t1


def gemm_power(dtype, data, m=8192, n=8192, k=8192, warm_s=1.5, dur_s=2.0, phase="sustained", series=False, **extra):
    try:
        fn, nsets = make_gemm(dtype, m, n, k, data=data)
        fn(); fn(); torch.cuda.synchronize()  # handle creation, heuristics (not timed)
        t_pre = time.perf_counter()
        if warm_s > 0:
            run_loop(fn, warm_s, keep=False)
        times, t0, t1 = run_loop(fn, dur_s)
        med = statistics.median(times)
        row = dict(kind="gemm_power", dtype=dtype, m=m, n=n, k=k, data=data, phase=phase, warm_s=warm_s,
                   duration_s=round(t1 - t0, 3), iters=len(times), median_s=med, min_s=min(times),
                   mean_s=statistics.fmean(times), first_s=times[0], last_s=times[-1],
                   tflops=2 * m * n * k / med / 1e12, rotation_sets=nsets)
        row.update(sampler.summary(t0, t1, series_origin=(t_pre if series else None)))
        if series:  # clock right before the loop started (idle or previous state)
            s_before, _ = sampler.window(t_pre - 0.5, t_pre)
            if s_before:
                row["sm_clock_mhz_before"] = s_before[-1][1]; row["power_w_before"] = s_before[-1][2]
            # time per GEMM over the first 100 ms and the last 100 ms of the loop
            acc, head = 0.0, []
            for x in times:
                if acc > 0.1:
                    break
                head.append(x); acc += x
            row["median_s_first100ms"] = statistics.median(head) if head else None
        row.update(extra)
        emit(**row)
    except Exception as ex:  # noqa: BLE001
        err(f"gemm_power {dtype} {data}", ex)
    free()


# the cold-start row first, while the GPU is still idle: 1 s of bf16 8192^3 from idle, no warm-up
gemm_power("bf16", "random", warm_s=0.0, dur_s=1.0, phase="cold_start", series=True)
for dtype, data in [("bf16", "random"), ("bf16", "zeros"), ("fp8_e4m3", "zeros"), ("fp8_e4m3", "random"),
                    ("tf32", "random"), ("tf32", "zeros")]:
    gemm_power(dtype, data, series=True)
gemm_power("bf16", "random", series=True, repeat=True)  # order/drift check: same as the first sustained row
sampler.stop()

# ============================================================================= 3. gemm shapes
GEMMS = [  # (dtype, m, n, k, batch, note)
    ("bf16", 4096, 4096, 4096, 1, ""), ("bf16", 8192, 8192, 8192, 1, ""), ("bf16", 6144, 6144, 6144, 1, ""),
    ("bf16", 2048, 2048, 2048, 1, ""), ("bf16", 1024, 1024, 1024, 1, ""), ("bf16", 512, 512, 512, 1, ""),
    ("bf16", 4096, 14336, 4096, 1, ""), ("bf16", 4096, 4096, 14336, 1, ""), ("bf16", 128, 4096, 4096, 1, ""),
    ("bf16", 16, 8192, 8192, 1, ""), ("bf16", 256, 8192, 8192, 1, ""), ("bf16", 1, 4096, 4096, 1, "gemv"),
    ("bf16", 8192, 8192, 128, 1, ""),
    # misaligned leading dimensions (cuBLAS fallback kernels)
    ("bf16", 2500, 4500, 3500, 1, "misaligned; repeat of a calibration-file shape"),
    ("bf16", 2504, 4504, 3504, 1, "aligned neighbour of 2500x4500x3500"),
    ("bf16", 2048, 2048, 2047, 1, "misaligned k"), ("bf16", 2047, 2048, 2048, 1, "misaligned m"),
    ("bf16", 2048, 2047, 2048, 1, "misaligned n"), ("bf16", 4095, 4095, 4095, 1, "misaligned"),
    ("bf16", 4096, 4096, 4095, 1, "misaligned k"),
    ("fp8_e4m3", 4096, 4096, 4096, 1, ""), ("fp8_e4m3", 8192, 8192, 8192, 1, ""),
    ("fp8_e4m3", 2048, 2048, 2048, 1, ""), ("fp8_e4m3", 128, 8192, 8192, 1, ""),
    ("fp8_e4m3", 16384, 8192, 1024, 1, ""),
    ("tf32", 4096, 4096, 4096, 1, ""), ("tf32", 8192, 8192, 8192, 1, ""), ("tf32", 128, 8192, 8192, 1, ""),
    ("fp16", 4096, 4096, 4096, 1, ""), ("fp16", 8192, 8192, 8192, 1, ""),
    ("bf16", 2048, 2048, 2048, 8, "torch.bmm"), ("bf16", 1024, 1024, 128, 32, "torch.bmm"),
    ("bf16", 512, 512, 512, 64, "torch.bmm"),
    ("bf16", 16384, 16384, 16384, 1, "if time allows"),
]
for dtype, m, n, k, batch, note in GEMMS:
    flops = 2 * batch * m * n * k
    if time_left() < (90 if flops > 2**42 else 45):
        emit(kind="error", what=f"gemm {dtype} {batch}x{m},{n},{k}", err="skipped: time budget")
        continue
    try:
        fn, nsets = make_gemm(dtype, m, n, k, batch=batch, cap=256)
        reps = 20 if flops > 2**40 else 40
        med, mn = bench(fn, reps=reps)
        qmed, qmn = bench_queued(fn, reps=reps)
        row = dict(kind="gemm", dtype=dtype, m=m, n=n, k=k)
        if batch > 1:
            row["batch"] = batch
        row.update(median_s=med, min_s=mn, tflops=flops / med / 1e12, median_s_queued=qmed,
                   tflops_queued=(flops / qmed / 1e12) if qmed else None, rotation_sets=nsets)
        kn = kernel_names(fn)
        if kn is not None:
            row["kernels"] = kn
        if note:
            row["note"] = note
        emit(**row)
        del fn
    except Exception as ex:  # noqa: BLE001
        err(f"gemm {dtype} {batch}x{m},{n},{k}", ex)
    free()

# ============================================================================= 4. copies, elementwise
for mib in [1, 4, 64, 256, 1024, 4096]:
    if time_left() < 30:
        emit(kind="error", what=f"copy {mib}", err="skipped: time budget"); continue
    try:
        n = mib * 2**20 // 4
        nsets = nbuf(n * 8, cap=512)
        src = [torch.randn(n, device=dev) for _ in range(nsets)]
        dst = [torch.empty_like(s) for s in src]
        it = [0]

        def f():
            i = it[0] % nsets; it[0] += 1
            dst[i].copy_(src[i])
        reps = 40 if mib <= 1024 else 20
        med, mn = bench(f, reps=reps)
        qmed, _ = bench_queued(f, reps=reps)
        emit(kind="copy", mib=mib, median_s=med, min_s=mn, gbps=2 * n * 4 / med / 1e9, median_s_queued=qmed,
             gbps_queued=(2 * n * 4 / qmed / 1e9) if qmed else None, rotation_sets=nsets)
        del src, dst, f
    except Exception as ex:  # noqa: BLE001
        err(f"copy {mib}", ex)
    free()

ELEM = [("mul_scalar", 64), ("mul_scalar", 512), ("mul_scalar", 2048), ("add", 512)]
for op, mib in ELEM:
    if time_left() < 20:
        emit(kind="error", what=f"elementwise {op} {mib}", err="skipped: time budget"); continue
    try:
        n = mib * 2**20 // 2
        nin = 1 if op == "mul_scalar" else 2
        per_set = (nin + 1) * n * 2
        nsets = nbuf(per_set, cap=64)
        X = [[torch.randn(n, device=dev, dtype=torch.bfloat16) for _ in range(nin)] for _ in range(nsets)]
        Y = [torch.empty(n, device=dev, dtype=torch.bfloat16) for _ in range(nsets)]
        it = [0]
        if op == "mul_scalar":
            def f():
                i = it[0] % nsets; it[0] += 1
                torch.mul(X[i][0], 2.0, out=Y[i])
        else:
            def f():
                i = it[0] % nsets; it[0] += 1
                torch.add(X[i][0], X[i][1], out=Y[i])
        med, mn = bench(f, reps=30)
        qmed, _ = bench_queued(f, reps=30)
        br, bw = nin * n * 2, n * 2
        emit(kind="elementwise", op=op, expr="y = 2*x" if op == "mul_scalar" else "y = a + b", dtype="bf16",
             mib_per_tensor=mib, bytes_read=br, bytes_written=bw, median_s=med, min_s=mn,
             gbps=(br + bw) / med / 1e9, median_s_queued=qmed, rotation_sets=nsets)
        del X, Y, f
    except Exception as ex:  # noqa: BLE001
        err(f"elementwise {op} {mib}", ex)
    free()

# ============================================================================= 5. launch
try:
    x = torch.zeros(1, device=dev)
    N = 1000
    for _ in range(200):
        x.add_(1)
    torch.cuda.synchronize()
    per, host = [], []
    for _ in range(10):
        s, e = new_events()
        s.record()
        h0 = time.perf_counter()
        for _ in range(N):
            x.add_(1)
        h1 = time.perf_counter()
        e.record(); torch.cuda.synchronize()
        per.append(s.elapsed_time(e) * 1e-3 / N); host.append((h1 - h0) / N)
    row = dict(kind="launch", op="x.add_(1) on a 1-element fp32 tensor", n_launches=N,
               median_s=statistics.median(per), min_s=min(per), host_s_per_launch=statistics.median(host))
    # the same kernel alone, already queued behind a sleep kernel (its duration on the GPU)
    qmed, _ = bench_queued(lambda: x.add_(1), reps=50)
    row["single_kernel_queued_s"] = qmed
    # the same N launches through a CUDA graph
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                x.add_(1)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(N):
                x.add_(1)
        g.replay(); torch.cuda.synchronize()
        gper = []
        for _ in range(10):
            s, e = new_events()
            s.record(); g.replay(); e.record(); torch.cuda.synchronize()
            gper.append(s.elapsed_time(e) * 1e-3 / N)
        row.update(graph_median_s=statistics.median(gper), graph_min_s=min(gper))
        del g
    except Exception as ex:  # noqa: BLE001
        row["graph_error"] = repr(ex)[:200]
    emit(**row)
except Exception as ex:  # noqa: BLE001
    err("launch", ex)

# ============================================================================= 6. extended (MEASURE_EXTENDED=1)
if os.environ.get("MEASURE_EXTENDED") == "1":
    sampler = Sampler(period_s=0.05)
    sampler.start()
    ext = [  # (dtype, data, m, warm_s, dur_s, phase)
        ("bf16", "random", 8192, 0.5, 10.0, "long"),
        ("bf16", "ones", 8192, 1.5, 2.0, "sustained"), ("bf16", "half_zeros", 8192, 1.5, 2.0, "sustained"),
        ("fp16", "random", 8192, 1.5, 2.0, "sustained"), ("fp16", "zeros", 8192, 1.5, 2.0, "sustained"),
        ("bf16", "random", 4096, 1.5, 2.0, "sustained"), ("bf16", "random", 16384, 1.5, 3.0, "sustained"),
        ("fp8_e4m3", "random", 16384, 1.5, 3.0, "sustained"),
    ]
    for dtype, data, m, warm_s, dur_s, phase in ext:
        if time_left() < 40:
            emit(kind="error", what=f"gemm_power {dtype} {data} {m}", err="skipped: time budget"); continue
        gemm_power(dtype, data, m=m, n=m, k=m, warm_s=warm_s, dur_s=dur_s, phase=phase, series=True, extended=True)
    # sustained copy (memory-bound): clock and power
    try:
        n = 2**30 // 4
        src = torch.randn(n, device=dev); dst = torch.empty_like(src)
        f = lambda: dst.copy_(src)  # noqa: E731
        f(); torch.cuda.synchronize()
        run_loop(f, 1.0, keep=False)
        times, t0, t1 = run_loop(f, 2.0)
        med = statistics.median(times)
        row = dict(kind="copy_power", mib=1024, median_s=med, gbps=2 * n * 4 / med / 1e9, iters=len(times),
                   duration_s=round(t1 - t0, 3), warm_s=1.0)
        row.update(sampler.summary(t0, t1))
        emit(**row)
        del src, dst, f
    except Exception as ex:  # noqa: BLE001
        err("copy_power", ex)
    free()
    # idle after load: 2 s rest, then 2 s sampled with nothing running
    time.sleep(2.0)
    t0 = time.perf_counter(); time.sleep(2.0); t1 = time.perf_counter()
    emit(kind="idle_power", rest_s=2.0, **sampler.summary(t0, t1))
    sampler.stop()

emit(kind="env_after", smi=smi("clocks.sm,clocks.mem,temperature.gpu,power.draw,pstate"), elapsed_s=round(elapsed(), 1))
_fh.close()


# ============================================================================= summary
def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


print("\n==== SUMMARY ====", flush=True)
print("env:", env.get("name"), "|", env.get("smi"), "| torch", env.get("torch"), "cuda", env.get("cuda"))
print("\n-- gemm_power (m=n=k): dtype m data phase | TFLOPS | SM MHz mean/min | W mean/max (energy) | T C | reasons")
for r in rows:
    if r["kind"] == "gemm_power":
        print(f"{r['dtype']:9s} {r['m']:5d} {r['data']:10s} {r['phase']:10s}{' rep' if r.get('repeat') else ''} | "
              f"{fmt(r['tflops'])} | {fmt(r.get('sm_clock_mhz_mean'), 0)}/{fmt(r.get('sm_clock_mhz_min'), 0)} | "
              f"{fmt(r.get('power_w_mean'))}/{fmt(r.get('power_w_max'))} ({fmt(r.get('power_w_energy'))}) | "
              f"{r.get('temperature_c')} | {hex(r['clock_event_reasons_or']) if 'clock_event_reasons_or' in r else '-'}")
for r in rows:
    if r["kind"] in ("copy_power", "idle_power"):
        print(f"{r['kind']}: SM MHz {fmt(r.get('sm_clock_mhz_mean'), 0)}, W {fmt(r.get('power_w_mean'))} "
              f"(energy {fmt(r.get('power_w_energy'))}), {fmt(r.get('gbps'), 0)} GB/s")
print("\n-- gemm: dtype batch m n k | median us | TFLOPS | queued TFLOPS | kernel")
for r in rows:
    if r["kind"] == "gemm":
        kn = [x for x in (r.get("kernels") or []) if not x.startswith("Memset")] or ["-"]
        print(f"{r['dtype']:9s} {r.get('batch', 1):3d} {r['m']:6d} {r['n']:6d} {r['k']:6d} | {r['median_s'] * 1e6:10.1f} | "
              f"{fmt(r['tflops'])} | {fmt(r.get('tflops_queued'))} | {kn[0][:70]}")
print("\n-- copy / elementwise: size | median us | GB/s (read+written) | queued us")
for r in rows:
    if r["kind"] == "copy":
        print(f"copy {r['mib']:5d} MiB | {r['median_s'] * 1e6:9.1f} | {r['gbps']:7.0f} | {fmt((r.get('median_s_queued') or 0) * 1e6)}")
    if r["kind"] == "elementwise":
        print(f"{r['op']:10s} {r['mib_per_tensor']:5d} MiB | {r['median_s'] * 1e6:9.1f} | {r['gbps']:7.0f} | "
              f"{fmt((r.get('median_s_queued') or 0) * 1e6)}")
for r in rows:
    if r["kind"] == "launch":
        print(f"\nlaunch: {r['median_s'] * 1e6:.2f} us/launch back-to-back (host {r['host_s_per_launch'] * 1e6:.2f} us), "
              f"graph {fmt((r.get('graph_median_s') or 0) * 1e6, 2)} us/node, "
              f"single queued kernel {fmt((r.get('single_kernel_queued_s') or 0) * 1e6, 2)} us")
errs = [r for r in rows if r["kind"] == "error"]
print(f"\nerrors: {len(errs)}")
for r in errs:
    print("  ", r["what"], r["err"][:200])
print("DONE", len(rows), "rows in", round(elapsed(), 1), "s ->", OUT_FILE, flush=True)
