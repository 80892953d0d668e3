"""HBM device memory: a shared link plus a miss latency.

Its sustainable bandwidth is the datasheet peak less refresh and read/write turnarounds for the
kernel's read/write mix (:meth:`HBMConfig.effective_bytes_per_s`).
"""

from __future__ import annotations

from blackwell_sim.config.units import HBMConfig
from blackwell_sim.engine.bandwidth import SharedLink


class HBM(SharedLink):
    def __init__(self, cfg: HBMConfig, read_bytes: float = 1.0, write_bytes: float = 0.0) -> None:
        super().__init__("hbm", cfg.effective_bytes_per_s(read_bytes, write_bytes))
        self.latency_s = cfg.latency_ns * 1e-9
