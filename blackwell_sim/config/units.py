"""One frozen dataclass per hardware unit of a GPU.

Every field names its unit (``clock_mhz``, ``bandwidth_gbps`` = gigabytes per second, ``size_bytes``)
and carries help text; the numbers themselves live in the YAML presets under ``configs/``, each
with its public source. Fields whose value is a modelling assumption say so in their help.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from blackwell_sim.config.schema import spec

Problem = tuple[str, object, str]  # (key relative to the unit, value, message)

MATH_CLASSES = ("tf32", "bf16", "fp16", "fp8", "int8", "fp6", "fp4", "fp4_k96")


@dataclass(frozen=True, kw_only=True)
class SMConfig:
    """Streaming multiprocessors: count, clocks and per-SM limits."""

    count: int = spec("number of SMs enabled on the GPU", ge=1)
    clock_mhz: float = spec("clock at which the datasheet's dense tensor TFLOPS are quoted; "
                            "peaks are derived at this clock", unit="MHz", gt=0)
    max_boost_clock_mhz: float = spec("highest SM clock the GPU boosts to (nvidia-smi max clock)",
                                      unit="MHz", gt=0)
    max_ctas: int = spec("resident thread blocks (CTAs) per SM", ge=1)
    max_threads: int = spec("resident threads per SM", ge=32)
    register_file_bytes: int = spec("register file per SM", unit="bytes", gt=0)
    fp32_flops_per_clock: int = spec("CUDA-core FP32 FLOP per clock per SM (lanes x 2 for FMA)", ge=1)
    sfu_ops_per_clock: int = spec("special-function (MUFU: exp2, rcp) results per clock per SM", ge=1)


@dataclass(frozen=True, kw_only=True)
class TensorCoreConfig:
    """Tensor cores of one SM: instruction family, shapes and per-format math throughput."""

    instruction: str = spec("MMA instruction family: wgmma (Hopper, register accumulators) or "
                            "tcgen05 (Blackwell, accumulators in TMEM)", choices=("wgmma", "tcgen05"))
    dense_flops_per_clock: Mapping[str, int] = spec(
        "dense FLOP per clock per SM by math class (tf32, bf16, fp16, fp8, int8, fp6, fp4 = "
        "block-scaled mxf4/mxf4nvf4 path, fp4_k96 = B300 dense-only K=96 path); a class that is "
        "absent has no tensor-core path on this GPU", ge=1)
    sparse_flops_per_clock: Mapping[str, int] = spec(
        "2:4-sparse FLOP per clock per SM (dense-equivalent) where it is not 2x dense", ge=1,
        default={})
    legacy_mma_flops_per_clock: Mapping[str, float] = spec(
        "per-SM FLOP per clock of Ampere-style warp-level mma.sync (register operands), which "
        "FlashAttention-2 and the memory-efficient attention kernels issue; a missing class runs "
        "at the dense rate", gt=0, default={})
    mma_m: tuple[int, ...] = spec("M extents one SM's MMA instruction supports", ge=1)
    pair_mma_m: tuple[int, ...] = spec("M extents of a 2-SM (cta_group::2) MMA; empty when the "
                                       "GPU has no paired MMA", ge=1, default=())
    max_mma_n: int = spec("largest N of one MMA instruction", ge=8)
    mma_n_step: int = spec("N must be a multiple of this", ge=1)
    mma_k_bytes: int = spec("bytes of K per MMA instruction per operand row (tf32 K=8, "
                            "f16 K=16, fp8 K=32, fp4 K=64 -> 32 bytes)", ge=1)
    mma_min_cycles: int = spec("least pipe occupancy of one MMA instruction whatever its N; small-N "
                               "MMAs cannot go faster", unit="cycles", ge=1)
    kblock_overhead_cycles: int = spec("per k-block cost the MMA pipe cannot hide: mbarrier wait on "
                                       "the SMEM stage, fence/commit of the MMA batch", unit="cycles",
                                       ge=0)
    unaligned_flops_per_clock: Mapping[str, float] = spec(
        "per-SM FLOP per clock of the library's fallback kernels when a leading dimension is not a "
        "multiple of 16 bytes (TMA needs 16-byte strides, so cuBLAS falls back to mma.sync kernels "
        "loading 'vec4b' or 'vec2b' vectors); a missing key keeps the aligned path", gt=0, default={})

    def check(self) -> Iterator[Problem]:
        for name in list(self.dense_flops_per_clock) + list(self.sparse_flops_per_clock):
            if name not in MATH_CLASSES:
                yield (f"dense_flops_per_clock.{name}", name,
                       f"unknown math class '{name}'; known: {', '.join(MATH_CLASSES)}")
        for name in self.sparse_flops_per_clock:
            if name not in self.dense_flops_per_clock and name != "fp4":
                yield (f"sparse_flops_per_clock.{name}", name, f"no dense rate for math class '{name}'")


@dataclass(frozen=True, kw_only=True)
class TMEMConfig:
    """Tensor memory (Blackwell): per-SM accumulator storage of lanes x columns x 32-bit cells."""

    lanes: int = spec("TMEM lanes (rows); one per accumulator row of an M=128 tile", ge=1)
    columns: int = spec("addressable 32-bit columns per lane", ge=1)
    size_bytes: int = spec("physical TMEM capacity per SM; at most lanes x columns x 4 bytes",
                           unit="bytes", gt=0)
    alloc_min_columns: int = spec("smallest tcgen05.alloc (allocations are powers of two >= this)",
                                  ge=1)
    read_bytes_per_clock: int = spec("TMEM -> register (tcgen05.ld) bandwidth per SM", unit="B/clk",
                                     ge=1)

    @property
    def usable_columns(self) -> int:
        return self.size_bytes // (self.lanes * 4)

    def check(self) -> Iterator[Problem]:
        if self.size_bytes > self.lanes * self.columns * 4:
            yield ("size_bytes", self.size_bytes,
                   f"TMEM of {self.size_bytes} bytes is larger than lanes x columns x 4 = "
                   f"{self.lanes * self.columns * 4} bytes (raise tmem.columns too)")
        if self.alloc_min_columns & (self.alloc_min_columns - 1):
            yield ("alloc_min_columns", self.alloc_min_columns, "must be a power of two")


@dataclass(frozen=True, kw_only=True)
class SMEMConfig:
    """Shared memory of one SM (the part of the unified L1/SMEM array usable as SMEM)."""

    size_bytes: int = spec("shared memory per SM", unit="bytes", gt=0)
    max_per_cta_bytes: int = spec("largest dynamic SMEM one CTA may allocate", unit="bytes", gt=0)
    bandwidth_bytes_per_clock: int = spec("SMEM bandwidth per SM", unit="B/clk", ge=1)

    @property
    def usable_per_cta_bytes(self) -> int:
        """SMEM one CTA can get: the per-CTA limit, capped by the SM's capacity (what-ifs)."""
        return min(self.max_per_cta_bytes, self.size_bytes)


@dataclass(frozen=True, kw_only=True)
class TMAConfig:
    """Tensor Memory Accelerator: bulk asynchronous global <-> SMEM copies."""

    latency_cycles: int = spec("issue-to-first-byte latency of a TMA load that hits L2", unit="cycles",
                               ge=0)
    max_inflight_bytes: int = spec("bytes of TMA loads one SM can have outstanding", unit="bytes", gt=0)
    max_cluster_size: int = spec("largest thread-block cluster a TMA multicast can span", ge=1)


@dataclass(frozen=True, kw_only=True)
class L2Config:
    """Level-2 cache shared by all SMs, split into partitions (one per die on B200)."""

    size_bytes: int = spec("total L2 capacity", unit="bytes", gt=0)
    partitions: int = spec("L2 partitions; an SM reaches its own partition faster", ge=1)
    line_bytes: int = spec("cache line size", unit="bytes", ge=1)
    bandwidth_gbps: float = spec("aggregate L2 read bandwidth", unit="GB/s", gt=0)
    near_latency_cycles: int = spec("load latency of a hit in the SM's own partition", unit="cycles",
                                    ge=0)
    far_latency_cycles: int = spec("load latency of a hit in the other partition", unit="cycles", ge=0)
    dirty_fraction: float = spec("share of L2 that may hold dirty lines: a kernel's writes up to this "
                                 "are retired into the write-back L2 and reach HBM after it ends",
                                 ge=0, le=1, default=0.0)


@dataclass(frozen=True, kw_only=True)
class L2CompressionConfig:
    """Compute data compression (Ampere+): opt-in compression of compressible allocations in
    L2 and DRAM. The mission's "L2 sparse compressor"; off unless a tensor is marked compressible."""

    enabled: bool = spec("compress tensors marked compressible (what-if switch)", default=False)
    default_density: float = spec("fraction of non-zero sectors assumed when operand values are "
                                  "unknown (1.0 = incompressible)", gt=0, le=1, default=1.0)
    max_bandwidth_ratio: float = spec("best DRAM/L2 bandwidth amplification of compressed data", ge=1)
    max_capacity_ratio: float = spec("best effective L2 capacity amplification", ge=1)
    bandwidth_gbps: float = spec("throughput of the (de)compression unit", unit="GB/s", gt=0)
    latency_cycles: int = spec("extra latency added to a compressed access", unit="cycles", ge=0)


@dataclass(frozen=True, kw_only=True)
class HBMConfig:
    """Device memory (HBM stacks)."""

    size_bytes: int = spec("device memory capacity", unit="bytes", gt=0)
    bandwidth_gbps: float = spec("peak HBM bandwidth (datasheet)", unit="GB/s", gt=0)
    stacks: int = spec("HBM stacks", ge=1)
    latency_ns: float = spec("load latency of an L2 miss served by HBM", unit="ns", ge=0)
    refresh_overhead: float = spec("fraction of DRAM time lost to refresh (tRFC / tREFI)", ge=0, lt=1)
    turnaround_overhead: float = spec("fraction of bandwidth lost to read<->write bus turnarounds "
                                      "when reads and writes are evenly mixed (tWTR, tRTW)", ge=0, lt=1)

    def effective_bytes_per_s(self, read_bytes: float, write_bytes: float) -> float:
        """Sustainable bandwidth for a read/write mix: peak less refresh, less turnarounds in
        proportion to the mix (0 for pure reads or writes, 1 for equal parts)."""
        total = read_bytes + write_bytes
        mix = 2 * min(read_bytes, write_bytes) / total if total > 0 else 0.0
        return (self.bandwidth_gbps * 1e9 * (1 - self.refresh_overhead)
                * (1 - self.turnaround_overhead * mix))


@dataclass(frozen=True, kw_only=True)
class DieLinkConfig:
    """Die-to-die interconnect of a two-die GPU (NV-HBI on B200)."""

    bandwidth_gbps: float = spec("die-to-die bandwidth", unit="GB/s", gt=0)
    latency_ns: float = spec("added latency of a cross-die access", unit="ns", ge=0)


@dataclass(frozen=True, kw_only=True)
class NVLinkConfig:
    """The GPU's NVLink ports."""

    generation: int = spec("NVLink generation", ge=1)
    links: int = spec("NVLink links per GPU", ge=0)
    bandwidth_per_link_gbps: float = spec("bandwidth of one link, per direction", unit="GB/s", gt=0)
    latency_ns: float = spec("one-way latency GPU -> switch -> GPU for a small message", unit="ns",
                             ge=0)

    @property
    def bandwidth_gbps(self) -> float:
        """Aggregate NVLink bandwidth per direction."""
        return self.links * self.bandwidth_per_link_gbps


@dataclass(frozen=True, kw_only=True)
class PowerConfig:
    """Board power: the limit the sustained clock must respect."""

    limit_w: float = spec("board power limit (TDP)", unit="W", gt=0)
    idle_w: float = spec("board power with clocks up but no work (static + clock tree)", unit="W",
                         ge=0)
    tensor_pj_per_flop: Mapping[str, float] = spec(
        "tensor-core energy per FLOP by math class at max boost clock/voltage, random data", unit="pJ",
        gt=0)
    sm_active_w: float = spec("power of all SMs busy with non-tensor work (issue, registers, SMEM, "
                              "TMA) at max boost clock", unit="W", ge=0)
    hbm_pj_per_byte: float = spec("HBM access energy", unit="pJ/B", ge=0)
    l2_pj_per_byte: float = spec("on-chip L2 <-> SM data movement energy", unit="pJ/B", ge=0)
    voltage_exponent: float = spec("dynamic energy per operation scales as (f/f_max)^this (V^2 with "
                                   "V roughly proportional to f across the DVFS range)", ge=0)
    data_activity: float = spec("switching activity of the operand data relative to random normal "
                                "data (1.0); all-zero operands toggle far fewer bits", ge=0, le=2,
                                default=1.0)
    min_clock_mhz: float = spec("lowest sustained SM clock the power manager will set", unit="MHz",
                                gt=0)
    activity_clock_cap_mhz: Mapping[str, float] = spec(
        "SM clock ceiling while the tensor cores of a math class are busy, whatever the board power "
        "(a current / voltage-regulator limit: H100 holds it even with all-zero operands far below "
        "the power limit); a missing class has no cap", unit="MHz", gt=0, default={})
    response_ms: float = spec("time the power controller takes to pull the clock down from boost to "
                              "the power-limited clock after heavy work starts from rest; a burst "
                              "shorter than this runs at the capped boost clock", unit="ms", ge=0,
                              default=0.0)
    burst_limit_w: float | None = spec(
        "power the controller tolerates during the response window before it pulls the clock down "
        "(a short-term limit; one below limit_w has no effect); null: the same as limit_w", unit="W", gt=0,
        default=None)
    hold_clock_mhz: float | None = spec(
        "the clock the controller holds once power-limited work ends, before it lets the clock climb "
        "back to boost; work in that window runs no faster (null: no hold)", unit="MHz", gt=0,
        default=None)
    hold_ms: float = spec("how long of lighter work the controller holds ``hold_clock_mhz`` after "
                          "power-limited work", unit="ms", ge=0, default=0.0)

    def check(self) -> Iterator[Problem]:
        if self.idle_w >= self.limit_w:
            yield ("idle_w", self.idle_w, f"idle power {self.idle_w:g} W is not below the limit "
                                          f"{self.limit_w:g} W")


@dataclass(frozen=True, kw_only=True)
class LaunchConfig:
    """Host-side kernel launch."""

    overhead_us: float = spec("GPU-side cost of one kernel launch: from the previous work on the "
                              "stream (or a recorded event) to the kernel's first CTA, with the "
                              "launch already queued (host dispatch time is not part of it)",
                              unit="us", ge=0)
    cta_setup_cycles: int = spec("per-CTA prologue before the first load is issued: barrier init, "
                                 "TMA descriptor prefetch, TMEM allocation", unit="cycles", ge=0)
