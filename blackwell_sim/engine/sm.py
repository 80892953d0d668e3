"""Streaming multiprocessors: how many work units run at once and how busy they were.

A GEMM's work unit is a CTA (1-SM MMA) or a CTA pair (2-SM MMA); a cluster must be co-resident,
so SMs left over after whole clusters are idle. One CTA per SM when it uses most of SMEM.
(How busy the SMs were is counted per kernel, in the kernel's own statistics.)
"""

from __future__ import annotations

from blackwell_sim.config.units import SMConfig


class SMArray:
    def __init__(self, cfg: SMConfig) -> None:
        self.cfg = cfg

    def workers(self, sms_per_unit: int, cluster_units: int = 1) -> int:
        """Concurrent work units when each takes ``sms_per_unit`` SMs, in clusters of ``cluster_units``."""
        per_cluster = sms_per_unit * cluster_units
        return (self.cfg.count // per_cluster) * cluster_units
