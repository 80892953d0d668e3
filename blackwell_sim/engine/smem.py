"""Shared memory: its capacity sets how many pipeline stages a GEMM kernel gets."""

from __future__ import annotations

from blackwell_sim.config.units import SMEMConfig

BARRIER_RESERVE_BYTES = 1024  # mbarriers, tile-scheduler state (CUTLASS carve-out is of this order)


def pipeline_stages(cfg: SMEMConfig, stage_bytes: float, epilogue_bytes: float) -> int:
    """Load stages that fit next to the epilogue staging buffer (0 if not even one fits)."""
    free = cfg.usable_per_cta_bytes - epilogue_bytes - BARRIER_RESERVE_BYTES
    return max(0, int(free // stage_bytes))


def smem_cycles(cfg: SMEMConfig, nbytes: float) -> float:
    """Cycles to move ``nbytes`` through the SM's shared-memory port."""
    return nbytes / cfg.bandwidth_bytes_per_clock
