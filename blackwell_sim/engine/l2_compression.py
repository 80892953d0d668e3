"""The L2 compression unit ("compute data compression", Ampere and later).

Opt-in per allocation (a tensor marked compressible): sectors that compress (runs of zeros, as in
a 2:4-pruned weight stored uncompressed) travel and sit in L2 in fewer bytes. The ratio comes from
the data when its values are known (:func:`density_of`: fraction of non-zero 32-byte sectors'
worth of bytes) or from ``l2_compression.default_density`` otherwise, bounded by the unit's best
bandwidth and capacity gains (NVIDIA A100 whitepaper: up to 4x DRAM/L2 bandwidth, 2x capacity).
Off unless ``l2_compression.enabled``: a what-if switch.
"""

from __future__ import annotations

import numpy as np

from blackwell_sim.config.units import L2CompressionConfig

SECTOR_BYTES = 32  # L2 sector (NVIDIA GPUs since Volta move 32-byte sectors)


def density_of(values: np.ndarray) -> float:
    """Fraction of 32-byte sectors that hold a non-zero byte (what the compressor cannot remove)."""
    raw = np.ascontiguousarray(values).view(np.uint8).ravel()
    if raw.size == 0:
        return 1.0
    pad = (-raw.size) % SECTOR_BYTES
    sectors = np.pad(raw, (0, pad)).reshape(-1, SECTOR_BYTES)
    return float(np.count_nonzero(sectors.any(axis=1))) / sectors.shape[0]


class CompressionUnit:
    """Byte and capacity factors for one tensor, and the unit's own throughput and latency."""

    def __init__(self, cfg: L2CompressionConfig, clock_hz: float) -> None:
        self.cfg = cfg
        self.bytes_per_s = cfg.bandwidth_gbps * 1e9
        self.latency_s = cfg.latency_cycles / clock_hz

    def bytes_factor(self, compressible: bool, density: float | None = None) -> float:
        """Multiplier (<= 1) on DRAM/L2 bytes of a tensor; 1.0 when off or not compressible."""
        if not (self.cfg.enabled and compressible):
            return 1.0
        d = self.cfg.default_density if density is None else min(max(density, 0.0), 1.0)
        return max(d, 1.0 / self.cfg.max_bandwidth_ratio)

    def capacity_gain(self, compressible: bool, density: float | None = None) -> float:
        """Effective L2 capacity multiplier for data of this tensor."""
        if not (self.cfg.enabled and compressible):
            return 1.0
        return min(1.0 / self.bytes_factor(True, density), self.cfg.max_capacity_ratio)
