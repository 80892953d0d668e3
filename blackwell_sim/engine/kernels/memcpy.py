"""Device-to-device copy and other memory-bound elementwise kernels.

A grid-stride kernel on every SM: each SM streams its share of the bytes through HBM (reads and
writes contend on one HBM link whose sustainable rate depends on the read/write mix) and L2,
limited per SM by its in-flight bytes over the HBM latency (Little's law). Events per chunk.
Writes up to the L2's dirty capacity (``l2.dirty_fraction``) retire into the write-back L2 and
are written to HBM after the kernel, so a small copy costs its reads only.
"""

from __future__ import annotations

import math

import simpy

from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.engine.hbm import HBM
from blackwell_sim.engine.result import KernelResult
from blackwell_sim.errors import BlackwellSimError

CHUNK_BYTES = 4 << 20          # bytes one SM moves per event
LSU_INFLIGHT_BYTES_PER_SM = 64 * 1024  # vectorised loads in flight per SM (16 B x 4 unroll x 1024 threads)


def simulate_memory_kernel(gpu: GPUConfig, read_bytes: float, write_bytes: float, *,
                           name: str = "memcpy", flops: float = 0.0) -> KernelResult:
    """A kernel that reads ``read_bytes`` and writes ``write_bytes`` once each (HBM-resident)."""
    for label, value in (("read_bytes", read_bytes), ("write_bytes", write_bytes)):
        if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise BlackwellSimError(f"{name}: {label} must be a non-negative number, got {value!r}")
    if read_bytes + write_bytes <= 0:
        raise BlackwellSimError(f"{name}: nothing to move (read_bytes + write_bytes = 0)")
    env = simpy.Environment()
    absorbed = min(write_bytes, gpu.l2.dirty_fraction * gpu.l2.size_bytes)  # written back after the kernel
    hbm = HBM(gpu.hbm, read_bytes, write_bytes - absorbed)
    clock_hz = gpu.sm.max_boost_clock_mhz * 1e6
    sms = gpu.sm.count
    total = read_bytes + write_bytes
    per_sm = (total - absorbed) / sms
    cap = LSU_INFLIGHT_BYTES_PER_SM / hbm.latency_s
    events = [0]

    def worker():
        remaining = per_sm
        yield env.timeout(hbm.latency_s)  # first loads in flight
        while remaining > 0:
            chunk = min(CHUNK_BYTES, remaining)
            hbm.join()
            t = hbm.seconds_for(chunk, cap)
            yield env.timeout(t)
            hbm.leave()
            remaining -= chunk
            events[0] += 1

    procs = [env.process(worker()) for _ in range(sms)]
    env.run(simpy.AllOf(env, procs))
    launch_s = gpu.launch.overhead_us * 1e-6
    time_s = launch_s + env.now
    hbm_bytes = total - absorbed               # what reaches HBM while the kernel runs
    gbps = hbm_bytes / time_s / 1e9
    peak = gpu.hbm.bandwidth_gbps
    return KernelResult(
        kernel=name, time_s=time_s, cycles=time_s * clock_hz, clock_mhz=clock_hz / 1e6, flops=flops,
        tflops=flops / time_s / 1e12, peak_tflops=0.0, percent_of_peak=100 * gbps / peak,
        bound="launch" if launch_s > env.now else "hbm", tile="grid-stride",
        bytes={"hbm": hbm_bytes, "l2": total}, bandwidth_gbps={"hbm": gbps, "effective": total / time_s / 1e9},
        utilization={"hbm": gbps / peak},
        efficiency={"hbm_sustainable": hbm.bytes_per_s / (peak * 1e9),
                    "launch_and_latency": hbm.bytes_moved / hbm.bytes_per_s / time_s},
        details={"events": events[0], "launch_s": launch_s, "read_bytes": read_bytes,
                 "write_bytes": write_bytes, "writes_absorbed_by_l2_bytes": absorbed})


def simulate_memcpy(config, nbytes: float) -> KernelResult:
    """Device-to-device copy of ``nbytes`` (reads and writes ``nbytes`` each)."""
    gpu = config.gpu if hasattr(config, "gpu_count") else config
    return simulate_memory_kernel(gpu, nbytes, nbytes, name=f"memcpy {nbytes / 2**20:g} MiB")
