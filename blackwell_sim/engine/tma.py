"""Tensor Memory Accelerator: latency, in-flight limit and multicast.

A CTA's load stream cannot exceed ``in-flight bytes / latency`` (Little's law): the in-flight bytes
are the SMEM stages not being consumed (at most ``tma.max_inflight_bytes``). This is what keeps a
skinny GEMM with few CTAs from reaching HBM bandwidth. Multicast delivers one L2 read to every CTA
of a cluster row/column, dividing that operand's L2 -> SM traffic by the cluster extent.
"""

from __future__ import annotations

from blackwell_sim.config.units import TMAConfig


class TMA:
    def __init__(self, cfg: TMAConfig, clock_hz: float) -> None:
        self.cfg = cfg
        self.latency_s = cfg.latency_cycles / clock_hz

    def inflight_bytes(self, stages: int, stage_bytes: float) -> float:
        return min(max(stages - 1, 1) * stage_bytes, self.cfg.max_inflight_bytes)

    def rate_cap(self, stages: int, stage_bytes: float, latency_s: float) -> float:
        """Largest bytes/s one CTA's loads can sustain at ``latency_s`` round trip."""
        return self.inflight_bytes(stages, stage_bytes) / max(latency_s, 1e-12)
