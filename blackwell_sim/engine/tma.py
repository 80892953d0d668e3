"""Tensor Memory Accelerator: latency, in-flight limit and multicast.

A CTA's load stream cannot exceed ``in-flight bytes / latency`` (Little's law). Two limits apply:
the kernel's SMEM stages (modelled by the main loop itself: ``stages`` loads in flight) and the
TMA unit's own ``tma.max_inflight_bytes`` (:meth:`TMA.rate_cap`). This is what keeps a skinny GEMM
with few CTAs from reaching HBM bandwidth. Multicast delivers one L2 read to every CTA
of a cluster row/column, dividing that operand's L2 -> SM traffic by the cluster extent.
"""

from __future__ import annotations

from blackwell_sim.config.units import TMAConfig


class TMA:
    def __init__(self, cfg: TMAConfig, clock_hz: float) -> None:
        self.cfg = cfg
        self.latency_s = cfg.latency_cycles / clock_hz

    def rate_cap(self, latency_s: float) -> float:
        """Largest bytes/s one SM's TMA loads can sustain at ``latency_s`` round trip."""
        return self.cfg.max_inflight_bytes / max(latency_s, 1e-12)
