"""A system: several identical GPUs joined by an NVLink fabric (direct links or NVSwitch chips)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.config.schema import spec, to_plain
from blackwell_sim.config.units import Problem


@dataclass(frozen=True, kw_only=True)
class SwitchConfig:
    """One NVLink Switch chip."""

    name: str = spec("switch chip, e.g. 'NVSwitch gen4'")
    ports: int = spec("NVLink ports per chip", ge=1)
    port_bandwidth_gbps: float = spec("bandwidth of one port, per direction", unit="GB/s", gt=0)
    latency_ns: float = spec("port-to-port latency through the chip", unit="ns", ge=0)
    nvls: bool = spec("in-switch reduction and multicast (NVLink SHARP / NVLS) available")
    reduction_gflops: float = spec("in-switch reduction ALU throughput per chip: element additions "
                                   "per second (any element width)", unit="GFLOP/s", ge=0)

    @property
    def bandwidth_gbps(self) -> float:
        """Port bandwidth of the whole chip, per direction."""
        return self.ports * self.port_bandwidth_gbps


# NCCL's latency model (NVIDIA/nccl src/graph/tuning.cc, ncclTopoTuneModel, NVLink rows of baseLat
# and hwLat): a ring costs base + steps x per-step latency, a tree base + 2 x hops x per-hop latency.
# Values of NCCL 2.2x (ring LL 6.6 + 0.6/step, LL128 14.0 + 1.9, Simple 8.4 + 3.4; tree LL 6.8 +
# 0.6, LL128 14.0 + 1.25, Simple 8.4 + 4.0 per hop), the version we measured: NCCL 2.28.9 printed
# exactly these sums in its latency table on our 4x H200 (benchmarks/data/
# h200x4_nccl_tuning_2026-11-26.log, e.g. ring all-reduce 10.2 / 25.4 / 28.8 us at 4 ranks, 7.8 /
# 17.8 / 15.2 at 2). Exception: Simple's ring base, 14.4 us (ours, see SIMPLE below).
_NCCL = "NCCL 2.28 src/graph/tuning.cc (baseLat / hwLat, NVLink)"


@dataclass(frozen=True, kw_only=True)
class ProtocolConfig:
    """One NCCL protocol (LL, LL128 or Simple): its latencies and how much of each byte is data."""

    data_fraction: float = spec("data bytes per byte stored and sent (LL: 4 of 8, a flag in each "
                                "8-byte store; LL128: 120 of 128; Simple: 1)", gt=0, le=1)
    ring_base_latency_us: float = spec(f"fixed latency of a ring collective [{_NCCL}]", unit="us", ge=0)
    ring_step_latency_us: float = spec(f"latency added per ring step [{_NCCL}]", unit="us", ge=0)
    tree_base_latency_us: float = spec(f"fixed latency of a tree collective [{_NCCL}]", unit="us", ge=0)
    tree_step_latency_us: float = spec(f"latency added per tree hop [{_NCCL}]", unit="us", ge=0)
    channel_efficiency: float = spec(
        "fraction of a channel's Simple load/store throughput this protocol's CTA reaches besides "
        "the flag bytes (receivers poll a flag per 8-byte word (LL) or 128-byte line (LL128)). LL "
        "0.68: the 64 MiB-1 GiB ring all-reduce plateau with NCCL_PROTO=LL on our 4x H200 "
        "(benchmarks/data/h200x4_nccl_algo_2026-11-26.jsonl; NCCL's tuner assumes 0.5); LL128 0.83: the 4-64 MiB CUDA-graph rows of benchmarks/data/"
        "h200x2_nccl_2026-11-26.jsonl (our measurement)", gt=0, le=1)
    slice_bytes: int = spec(
        "bytes a receiver waits for before it consumes (one flag per slice): a ring step's pipeline "
        "fills one slice per dependent step before it streams. Simple: NCCL's 4 MiB buffer / 8 "
        "steps x 2 steps per slice = 1 MiB; LL and LL128: 0, a flag in every word or line", unit="B",
        ge=0)


# SIMPLE ring_base_latency_us 14.4 (NCCL's table: 8.4): the forced-Simple (NCCL_PROTO=Simple) ring
# all-reduce of 1-8 KiB on our 4x H200 took 36.5 us in CUDA graphs, = launch 1.7 + base + 6 x 3.4.
LL = ProtocolConfig(data_fraction=0.5, ring_base_latency_us=6.6, ring_step_latency_us=0.6,
                    tree_base_latency_us=6.8, tree_step_latency_us=0.6, channel_efficiency=0.68,
                    slice_bytes=0)
LL128 = ProtocolConfig(data_fraction=120 / 128, ring_base_latency_us=14.0, ring_step_latency_us=1.9,
                       tree_base_latency_us=14.0, tree_step_latency_us=1.25, channel_efficiency=0.83,
                       slice_bytes=0)
SIMPLE = ProtocolConfig(data_fraction=1.0, ring_base_latency_us=14.4, ring_step_latency_us=3.4,
                        tree_base_latency_us=8.4, tree_step_latency_us=4.0, channel_efficiency=1.0,
                        slice_bytes=1 << 20)


@dataclass(frozen=True, kw_only=True)
class CollectiveConfig:
    """The collective library (NCCL-like) running on the fabric.

    Defaults are the Hopper values calibrated on our 2x H200 NCCL measurement
    (shared/data/hopper/h200x2_nvlink_nccl.jsonl, see docs/validation.md "Collectives") and NCCL's
    published latency table; system presets override what differs and cite why.
    """

    host_issue_us: float = spec(
        "host time of one collective call before its kernel is queued (framework dispatch, NCCL "
        "enqueue). A call timed alone lasts host_issue + max(kernel, host_return); CUDA graphs "
        "and back-to-back loops hide both. 13.5 us with host_return 21.5 us: fits the per-call "
        "2x H200 file (shared/data/hopper/h200x2_nvlink_nccl.jsonl, floor ~35 us, and 4-512 MiB "
        "rows = 13.5 us + the CUDA-graph kernel time of benchmarks/data/h200x2_nccl_2026-11-26.jsonl). "
        "A property of the host and software stack: that second session's floor was ~60 us",
        unit="us", ge=0, default=13.5)
    host_return_us: float = spec(
        "host time after the kernel is queued until the call returns (the GPU runs meanwhile); "
        "see host_issue_us", unit="us", ge=0, default=21.5)
    launch_overhead_us: float = spec(
        "GPU-side start of a collective kernel beyond NCCL's base latency, paid even inside a "
        "CUDA graph; a property of the machine. 0.3 us: CUDA-graph floors of 2-GPU NCCL calls on "
        "the 2x H200 NV18 machine (AR 8.0, AG 7.3, RS 7.65 us; benchmarks/data/"
        "h200x2_nccl_2026-11-26.jsonl) minus NCCL's LL ring latency (7.8 / 7.2 / 7.2 us). The 4x "
        "H200 NVSwitch machine needs 1.7 (configs/hgx-h200-4.yaml)",
        unit="us", ge=0, default=0.3)
    channels: int = spec("NCCL channels (one CTA on one SM each) of a ring / tree / direct "
                         "collective (NCCL on NVLink Hopper: 24 rings; estimate from NCCL logs)",
                         ge=1, le=128, default=24)
    channel_bandwidth_gbps: float = spec(
        "bytes one channel's CTA loads and stores per second (FIFO and input reads, local and "
        "remote stores); with the per-collective count of memory operations per link byte this "
        "bounds a collective by its SMs. Calibrated on the 2x H200 all-reduce / all-gather "
        "plateaus (our measurement)", unit="GB/s", gt=0, default=58.3)
    nvls_enabled: bool = spec("let all-reduce use NVLS (in-switch reduction) where the switch "
                              "supports it", default=True)
    nvls_channels: int = spec("channels (SMs) an NVLS all-reduce occupies (NCCL NVLS default 16 "
                              "on Hopper; estimate)", ge=1, le=128, default=16)
    nvls_link_efficiency: float = spec(
        "fraction of the link payload rate that multimem ld_reduce / st traffic reaches (read "
        "requests and reduced responses share the packets). 0.83: H100 8-GPU NVLS algbw 273 GB/s "
        "x (1 + 1/8) / 370 GB/s payload (NVIDIA/nccl issue 1455, nccl-tests issue 212)",
        gt=0, le=1, default=0.83)
    nvls_latency_us: float = spec("latency of an NVLS all-reduce beyond the kernel launch: a 2-GPU "
                                  "NVLS all-reduce in CUDA graphs takes ~6 us (NVIDIA/nccl issue "
                                  "1259), minus the default launch_overhead_us 0.3", unit="us", ge=0,
                                  default=5.7)
    chunk_bytes: int = spec("bytes per rank and channel moved per pipeline event (NCCL Simple "
                            "chunk: 4 MiB buffer / 8 steps x 4 steps per chunk = 2 MiB); events "
                            "per collective = per-rank bytes / (channels x chunk), at least one",
                            unit="B", ge=1024, default=2 << 20)
    ll: ProtocolConfig = spec("LL protocol", default=LL)
    ll128: ProtocolConfig = spec("LL128 protocol", default=LL128)
    simple: ProtocolConfig = spec("Simple protocol", default=SIMPLE)


@dataclass(frozen=True, kw_only=True)
class FabricConfig:
    """How the GPUs' NVLink links are wired."""

    topology: str = spec("'nvswitch' (every GPU links to switch chips) or 'direct' (two GPUs "
                         "joined by all their links)", choices=("nvswitch", "direct"))
    switches: int = spec("NVSwitch chips in the NVLink domain (0 for direct)", ge=0)
    gpu_links_per_switch: tuple[int, ...] = spec("links from each GPU to switch chip i (one entry per "
                                                 "chip; sums to nvlink.links)", ge=0, default=())
    switch: SwitchConfig | None = spec("the switch chip; null for direct", default=None)
    link_efficiency: float = spec(
        "payload fraction of the NVLink line rate a GPU-to-GPU stream reaches (packet headers, "
        "flow control, CRC). NVLink 4: 370 of 450 GB/s per direction (NCCL maintainer, "
        "nccl-tests issue 212 and NVIDIA/nccl issue 1442)", gt=0, le=1, default=0.82)
    collective: CollectiveConfig = spec("the collective library on this fabric",
                                        default=CollectiveConfig())


@dataclass(frozen=True, kw_only=True)
class SystemConfig:
    """GPUs of one NVLink domain plus their fabric."""

    name: str = spec("system name, e.g. 'GB200 NVL72'")
    gpu: GPUConfig = spec("the GPU (a preset name, or a mapping that may 'extends:' one)")
    gpu_count: int = spec("GPUs in the NVLink domain", ge=1)
    fabric: FabricConfig = spec("NVLink fabric")

    def check(self) -> Iterator[Problem]:
        fab = self.fabric
        if fab.topology == "direct":
            if self.gpu_count != 2:
                yield ("gpu_count", self.gpu_count, "a direct fabric joins exactly 2 GPUs")
            return
        if fab.switch is None or fab.switches < 1:
            yield ("fabric.switch", None, "an nvswitch fabric needs switches >= 1 and a switch section")
            return
        if len(fab.gpu_links_per_switch) != fab.switches:
            yield ("fabric.gpu_links_per_switch", list(fab.gpu_links_per_switch),
                   f"needs one entry per switch chip ({fab.switches})")
            return
        if sum(fab.gpu_links_per_switch) != self.gpu.nvlink.links:
            yield ("fabric.gpu_links_per_switch", list(fab.gpu_links_per_switch),
                   f"sums to {sum(fab.gpu_links_per_switch)} but each GPU has "
                   f"{self.gpu.nvlink.links} NVLink links")
        for i, links in enumerate(fab.gpu_links_per_switch):
            if links * self.gpu_count > fab.switch.ports:
                yield ("fabric.gpu_links_per_switch", links,
                       f"switch {i} would need {links * self.gpu_count} ports but has {fab.switch.ports}")
                return

    def peak_tflops(self, fmt: str, sparse: bool = False, clock_mhz: float | None = None) -> float:
        """Aggregate peak of all GPUs (per GPU: ``system.gpu.peak_tflops``)."""
        return self.gpu_count * self.gpu.peak_tflops(fmt, sparse, clock_mhz)

    @property
    def fabric_bandwidth_gbps(self) -> float:
        """All-to-all NVLink bandwidth of the domain, both directions counted (NVIDIA's convention
        for the NVL72's 130 TB/s): GPUs x links x per-link bandwidth x 2."""
        return self.gpu_count * self.gpu.nvlink.bandwidth_gbps * 2

    def peak_bandwidth(self) -> dict[str, float]:
        """Per-GPU levels from the GPU plus the fabric's aggregate, in GB/s."""
        out = self.gpu.peak_bandwidth()
        out["fabric_bidirectional"] = self.fabric_bandwidth_gbps
        return out

    def to_dict(self) -> dict:
        return to_plain(self)
