"""Tensor memory (Blackwell): per-SM accumulator storage, allocated in power-of-two columns.

An M=128 fp32 accumulator tile of N columns needs N TMEM columns (one 32-bit cell per lane and
column, PTX ISA tcgen05 "Tensor Memory"); ``tcgen05.alloc`` hands out powers of two >= 32 columns.
Two accumulators (double buffering) let the epilogue of one tile overlap the next tile's MMAs.
"""

from __future__ import annotations

from blackwell_sim.config.units import TMEMConfig

ACCUMULATOR_CELL_BYTES = 4  # fp32 accumulators


def alloc_columns(n_columns: int, min_columns: int) -> int:
    """Columns ``tcgen05.alloc`` reserves for ``n_columns`` (next power of two, at least the minimum)."""
    cols = max(min_columns, 1)
    while cols < n_columns:
        cols *= 2
    return cols


class TMEM:
    def __init__(self, cfg: TMEMConfig) -> None:
        self.cfg = cfg

    def accumulator_buffers(self, tile_n: int) -> int:
        """How many fp32 accumulators of ``tile_n`` columns fit (0: the tile does not fit)."""
        need = alloc_columns(tile_n, self.cfg.alloc_min_columns)
        return self.cfg.usable_columns // need

    def drain_cycles(self, rows: int, cols: int) -> float:
        """Cycles to read an accumulator tile into registers (tcgen05.ld) for the epilogue."""
        return rows * cols * ACCUMULATOR_CELL_BYTES / self.cfg.read_bytes_per_clock
