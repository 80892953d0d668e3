"""Tensor-core timing: cycles per k-block of a CTA tile.

Blackwell ``tcgen05.mma`` (one thread issues, D in TMEM; M=128 per SM, or M=256 across an SM pair
with ``cta_group::2``, each SM computing half) and Hopper ``wgmma`` (a warpgroup issues M=64
slices, accumulators in registers) share one model: an MMA instruction of M x N x K occupies the
pipe ``max(mma_min_cycles, 2*M*N*K / FLOP-per-clock)`` cycles (DESIGN.md: B300 microbenchmark
"max(44, N/2) for M=128"; an M=64 tcgen05 MMA reaches half rate because it occupies the pipe as
long as an M=128 one), and each k-block adds ``kblock_overhead_cycles`` the pipe cannot hide.
"""

from __future__ import annotations

import math

from blackwell_sim.config.dtypes import DType
from blackwell_sim.config.gpu import GPUConfig

TCGEN05_FULL_RATE_M = 128  # rows per SM at which tcgen05 runs at full rate (PTX ISA tcgen05.mma shapes)
WGMMA_M = 64               # rows of one wgmma instruction (PTX ISA wgmma.mma_async m64nNk*)


class TensorCore:
    """Per-SM MMA pipe for one data type."""

    def __init__(self, gpu: GPUConfig, dtype: DType, sparse: bool = False,
                 flops_per_clock: float | None = None) -> None:
        self.cfg = gpu.tensor_core
        self.dtype = dtype
        self.sparse = sparse
        self.flops_per_clock = (gpu.flops_per_clock_per_sm(dtype.name, sparse) if flops_per_clock is None
                                else flops_per_clock)
        # K elements per instruction: 32 bytes of K (dense); 2:4 sparse instructions cover 2x K.
        self.k_per_instr = max(1, int(self.cfg.mma_k_bytes * 8 / dtype.bits)) * (2 if sparse else 1)
        if dtype.math_class == "fp4" and "fp4_k96" in self.cfg.dense_flops_per_clock and not sparse:
            self.k_per_instr = 96  # B300 dense-only K=96 FP4 path

    def instr_cycles(self, m_rows: int, n: int) -> float:
        """Pipe occupancy of one MMA instruction with ``m_rows`` rows on this SM."""
        if self.cfg.instruction == "tcgen05":
            m_eff = max(m_rows, TCGEN05_FULL_RATE_M)  # M=64 occupies the pipe like M=128
        else:
            m_eff = m_rows
        flops = 2 * m_eff * n * self.k_per_instr
        return max(float(self.cfg.mma_min_cycles), flops / self.flops_per_clock)

    def kblock_cycles(self, m_rows_per_sm: int, n: int, k_block: int) -> float:
        """Cycles of the MMAs of one k-block of an (m_rows_per_sm x n) tile on one SM."""
        m_instr = TCGEN05_FULL_RATE_M if self.cfg.instruction == "tcgen05" else WGMMA_M
        instrs_m = max(1, math.ceil(m_rows_per_sm / m_instr))
        m_rows = min(m_rows_per_sm, m_instr)
        instrs_k = max(1, math.ceil(k_block / self.k_per_instr))
        return instrs_m * instrs_k * self.instr_cycles(m_rows, n) + self.cfg.kblock_overhead_cycles
