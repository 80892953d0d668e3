"""L2 cache: capacity, two partitions with near/far latency, bandwidth, and a tile-level cache.

The cache model works on *operand panels* (a CTA tile's whole strip of A or B along K, or a chunk
of a copy): a panel another running CTA read recently is resident (a hit, served from L2), a cold
or evicted panel is a miss (served from HBM, then inserted). Replacement is LRU by bytes over the
L2 capacity (times the compression unit's capacity gain for compressible data). This is what makes
raster order matter: CTAs that run together re-use each other's panels.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from blackwell_sim.config.units import L2Config
from blackwell_sim.engine.bandwidth import SharedLink


class PanelCache:
    """LRU set of panels keyed by any hashable id, sized in bytes."""

    def __init__(self, capacity_bytes: float) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be > 0, got {capacity_bytes!r}")
        self.capacity_bytes = capacity_bytes
        self._panels: OrderedDict[Hashable, float] = OrderedDict()
        self.used_bytes = 0.0
        self.hit_bytes = 0.0
        self.miss_bytes = 0.0

    def access(self, key: Hashable, nbytes: float) -> bool:
        """Touch a panel; True on a hit. A miss inserts it, evicting least recently used panels."""
        if key in self._panels:
            self._panels.move_to_end(key)
            self.hit_bytes += nbytes
            return True
        self.miss_bytes += nbytes
        if nbytes > self.capacity_bytes:
            return False  # streams through without staying resident
        self._panels[key] = nbytes
        self.used_bytes += nbytes
        while self.used_bytes > self.capacity_bytes:
            _, size = self._panels.popitem(last=False)
            self.used_bytes -= size
        return False

    @property
    def hit_rate(self) -> float:
        total = self.hit_bytes + self.miss_bytes
        return self.hit_bytes / total if total else 0.0


class L2(SharedLink):
    """Aggregate L2 bandwidth as a shared link, plus the panel cache and latencies."""

    def __init__(self, cfg: L2Config, clock_hz: float, capacity_gain: float = 1.0) -> None:
        super().__init__("l2", cfg.bandwidth_gbps * 1e9)
        self.cfg = cfg
        self.cache = PanelCache(cfg.size_bytes * capacity_gain)
        # Addresses interleave over partitions: 1/partitions of hits are near, the rest far.
        near = 1.0 / cfg.partitions
        self.hit_latency_s = (near * cfg.near_latency_cycles
                              + (1 - near) * cfg.far_latency_cycles) / clock_hz
