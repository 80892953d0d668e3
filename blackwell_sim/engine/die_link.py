"""Die-to-die link (NV-HBI on B200): traffic between an SM on one die and data homed on the other.

Addresses are interleaved across both dies' HBM stacks and L2 partitions, so on average half of a
kernel's L2 and HBM traffic crosses the link (``CROSS_DIE_FRACTION``, uniform interleaving).
"""

from __future__ import annotations

from blackwell_sim.config.units import DieLinkConfig
from blackwell_sim.engine.bandwidth import SharedLink

CROSS_DIE_FRACTION = 0.5  # uniform address interleaving over two dies


class DieLink(SharedLink):
    def __init__(self, cfg: DieLinkConfig) -> None:
        super().__init__("die_link", cfg.bandwidth_gbps * 1e9)
        self.latency_s = cfg.latency_ns * 1e-9
