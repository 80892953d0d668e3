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
    reduction_bandwidth_gbps: float = spec("in-switch reduction throughput per chip", unit="GB/s",
                                           ge=0)


@dataclass(frozen=True, kw_only=True)
class FabricConfig:
    """How the GPUs' NVLink links are wired."""

    topology: str = spec("'nvswitch' (every GPU links to switch chips) or 'direct' (two GPUs "
                         "joined by all their links)", choices=("nvswitch", "direct"))
    switches: int = spec("NVSwitch chips in the NVLink domain (0 for direct)", ge=0)
    gpu_links_per_switch: tuple[int, ...] = spec("links from each GPU to switch chip i (one entry per "
                                                 "chip; sums to nvlink.links)", ge=0, default=())
    switch: SwitchConfig | None = spec("the switch chip; null for direct", default=None)


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
