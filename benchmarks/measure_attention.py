"""Measure scaled_dot_product_attention on a Hopper GPU: calibration-style and queued medians.

Extends shared/tools/measure_hopper.py's method (same shapes, same SDPA calls, same autograd
forward+backward with gradients accumulating into .grad). For every case it times:

- ``*_median_s``: exactly as measure_hopper.py ``bench()``: start event, the call, end event,
  synchronize after each call (5 warm-up, then timed calls). The median includes the host's
  dispatch latency of the PyTorch call, because the GPU idles between the start event and the
  first kernel.
- ``*_queued_median_s``: a ``torch.cuda._sleep`` kernel (~0.5 ms) is queued first, so the start
  event, the call's kernels and the end event are all queued behind it: GPU time only.
- ``*_host_s``: median host wall time of issuing the call while the GPU is busy (dispatch cost).

Also one profiler pass per case lists the kernels of forward and of forward+backward with their
GPU durations (so the backward's preprocessing, dQ conversion and gradient-accumulation kernels
are visible). Writes JSON lines to $OUT/h100_sxm_attention.jsonl.
"""
import json, os, statistics, subprocess, time
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

OUT = os.environ.get("OUT", "/tmp")
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
rows = []
SLEEP_CYCLES = 1_000_000  # ~0.5 ms at 1.98 GHz: longer than any call's host dispatch


def emit(**kw):
    rows.append(kw)
    print(json.dumps(kw), flush=True)


def smi():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,clocks.max.sm,clocks.sm,power.draw,power.limit,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    except Exception as ex:  # noqa: BLE001
        return repr(ex)


def bench(fn, reps, warmup=5):
    """measure_hopper.py's bench(): events around each call, synchronize after each."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(times)


def bench_queued(fn, reps):
    """GPU time only: the call is queued behind a sleep kernel; also the host issue time."""
    torch.cuda.synchronize()
    times, host = [], []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(SLEEP_CYCLES)
        s.record()
        t0 = time.perf_counter(); fn(); host.append(time.perf_counter() - t0)
        e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(times), statistics.median(host)


def kernels(fn):
    """Kernel names and GPU durations (s) of one call, from the profiler."""
    from torch.profiler import ProfilerActivity, profile
    fn(); torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(); torch.cuda.synchronize()
    out = []
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            out.append([ev.name[:90], round(ev.device_time * 1e-6, 9)])
    return out


BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}
CAL = [(32, 8, 512, 64, False), (4, 32, 1024, 64, True), (2, 32, 2048, 64, False), (1, 32, 4096, 64, True),
       (32, 8, 512, 128, True), (4, 32, 1024, 128, False), (2, 32, 2048, 128, True), (1, 32, 4096, 128, False),
       (1, 8, 32768, 128, True), (8, 16, 1024, 256, False), (2, 16, 4096, 256, True)]
# (b, h, h_kv, s, s_kv, d, causal): GQA prefill, decode against a KV cache, short prefill
EXTRA = [(4, 32, 8, 2048, 2048, 128, True), (2, 32, 4, 4096, 4096, 128, False),
         (16, 32, 8, 1, 4096, 128, False), (64, 32, 8, 1, 2048, 128, False), (4, 32, 8, 1, 32768, 128, False),
         (8, 32, 32, 1, 8192, 128, False), (8, 16, 16, 128, 128, 64, False), (1, 32, 32, 512, 512, 128, True)]

# MEASURE_SET=heldout: shapes that are in neither list above (prefill with and without GQA, long
# sequences, chunked prefill, decode), flash and cudnn only, written to h100_sxm_attention_heldout.jsonl
HELDOUT = [(8, 16, 16, 2048, 2048, 64, False), (16, 16, 16, 1024, 1024, 128, True), (2, 24, 24, 8192, 8192, 128, True),
           (1, 64, 8, 8192, 8192, 128, True), (4, 32, 8, 4096, 4096, 128, False), (2, 32, 32, 4096, 4096, 64, False),
           (1, 16, 16, 16384, 16384, 128, False), (4, 16, 16, 2048, 2048, 256, False), (8, 8, 8, 1024, 1024, 256, True),
           (4, 32, 8, 512, 4096, 128, False), (32, 32, 8, 1, 1024, 128, False), (1, 64, 8, 1, 131072, 128, False),
           (128, 32, 8, 1, 512, 128, False), (16, 32, 32, 1, 2048, 64, False), (1, 32, 32, 2048, 2048, 128, True)]
HELD = os.environ.get("MEASURE_SET") == "heldout"
if HELD:
    BACKENDS.pop("efficient")

emit(kind="env", name=props.name, sms=props.multi_processor_count, torch=torch.__version__,
     cuda=torch.version.cuda, smi=smi())

cases = HELDOUT if HELD else [(b, h, h, s, s, d, c) for (b, h, s, d, c) in CAL] + EXTRA
t_start = time.time()
for (b, h, hkv, s, skv, d, causal) in cases:
    for name, backend in BACKENDS.items():
        if time.time() - t_start > 170:
            break
        try:
            q = torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
            k = torch.randn(b, hkv, skv, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
            v = torch.randn_like(k, requires_grad=True)
            gqa = hkv != h
            flops = 4 * b * h * s * skv * d * (0.5 if causal else 1.0)
            with sdpa_kernel([backend]):
                fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
                long = flops > 2e11
                reps = 12 if long else 30
                med = bench(fwd, reps)
                qmed, host = bench_queued(fwd, reps)
                o = fwd(); g = torch.randn_like(o)
                def fb():
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
                    out.backward(g)
                bmed = bench(fb, 8 if long else 20)
                bq, bhost = bench_queued(fb, 8 if long else 20)
                kf, kfb = kernels(fwd), kernels(fb)
            row = dict(kind="attention", backend=name, b=b, h=h, s=s, d=d, causal=causal, dtype="bf16",
                       fwd_median_s=med, fwdbwd_median_s=bmed, fwd_queued_median_s=qmed,
                       fwdbwd_queued_median_s=bq, fwd_host_s=host, fwdbwd_host_s=bhost,
                       fwd_kernels=kf, fwdbwd_kernels=kfb)
            if hkv != h:
                row["h_kv"] = hkv
            if skv != s:
                row["s_kv"] = skv
            emit(**row)
            del q, k, v, o, g
        except Exception as ex:  # noqa: BLE001
            emit(kind="error", what=f"attn {name} {b},{h},{hkv},{s},{skv},{d},{causal}", err=repr(ex)[:300])
        torch.cuda.empty_cache()

emit(kind="env_after", smi=smi(), elapsed_s=time.time() - t_start)
with open(os.path.join(OUT, "h100_sxm_attention_heldout.jsonl" if HELD else "h100_sxm_attention.jsonl"), "w") as fh:
    for r in rows:
        fh.write(json.dumps(r) + "\n")
print("DONE", len(rows))
