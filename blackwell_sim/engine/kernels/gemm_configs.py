"""GEMM problems, candidate kernel configurations and the library-like heuristic that picks one.

Candidates mirror what cuBLAS / CUTLASS ship for each architecture: Hopper warp-specialised
``wgmma`` kernels (cooperative: one tile over two consumer warpgroups, epilogue not overlapped;
ping-pong: two warpgroups alternate tiles, epilogue overlapped), Blackwell ``tcgen05`` kernels
with 1-SM (M=128, or M=64 at half rate) and 2-SM (M=256, ``cta_group::2``) MMAs whose epilogue
overlaps the next tile when TMEM holds two accumulators. Clusters of 2 along M multicast B.
Split-K is offered when the output has too few tiles to fill the GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from blackwell_sim.config.dtypes import DType
from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.engine.smem import pipeline_stages
from blackwell_sim.engine.tensor_core import TensorCore
from blackwell_sim.engine.tmem import TMEM
from blackwell_sim.errors import BlackwellSimError

K_BLOCK_BYTES = 128       # bytes of K per SMEM stage row (CUTLASS: 64 bf16, 128 fp8, 32 tf32, 256 fp4)
EPILOGUE_TILE_N = 64      # columns staged per epilogue sub-tile in SMEM (CUTLASS epilogue tile)
MIN_STAGES = 2            # double buffering is the least a TMA pipeline can run with
SPLIT_K_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16)
#: Hopper tile widths: wgmma takes any N that is a multiple of 8 up to 256 [PTX]; cuBLAS's nvjet
#: kernels use such in-between widths to fit the tile grid to the SM count (our H100 profiles
#: show 64x8, 64x16, 64x48, 128x232, 144x128, 192x192, 320x128: benchmarks/data kernels field).
WGMMA_TILE_N = (8, 16, 32, 48, 64, 80, 96, 128, 160, 192, 208, 232, 256)
#: Blackwell tile widths: CUTLASS's SM100 tcgen05 shape list (python/cutlass_library/sm100_shapes.py)
#: allows N in steps of 32 (16 for 1-SM) up to 256, and tags each shape with the emission level at
#: which its library kernels are built; those emitted up to level 3 (the rest only at level 5) have
#: N = 64, 128, 192, 256, which is also the whole list for the block-scaled (MX, NVFP4) kinds.
TCGEN05_TILE_N = (64, 128, 192, 256)
#: fp32 accumulators live in registers on Hopper, at most 255 per thread [PTX]; what is left holds
#: addresses and fragments. Per-thread accumulator limits (estimates bounded by our H100 profiles:
#: the largest cooperative tiles seen are 320x128 and 256x128/192x192 (160 and 144 registers per
#: thread over two warpgroups), the largest ping-pong tile 128x128 (128 per thread)).
WARPGROUP_THREADS = 128
COOPERATIVE_ACCUMULATOR_REGS = 192
PINGPONG_ACCUMULATOR_REGS = 128


@dataclass(frozen=True)
class GemmProblem:
    """C[m,n] = A[m,k] B[k,n], ``batch`` times; A may be 2:4 sparse (dense-equivalent FLOPs)."""

    m: int
    n: int
    k: int
    dtype: DType
    batch: int = 1
    sparse: bool = False
    out_bits: int = 16
    a_bytes_factor: float = 1.0   #: L2-compression factor on A's DRAM/L2 bytes (1 = off)
    b_bytes_factor: float = 1.0
    capacity_gain: float = 1.0    #: effective L2 capacity gain from compression
    vector_bytes: int = 16        #: widest load every leading dimension allows (16 = TMA-capable)

    def __post_init__(self) -> None:
        for name in ("m", "n", "k", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BlackwellSimError(f"gemm: {name} must be a positive integer, got {value!r}")

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k * self.batch

    def operand_bytes_per_element(self, operand: str) -> float:
        """Bytes per logical element of A or B in memory, block scales included; sparse A stores
        half the values plus 2-bit indices per kept value."""
        d = self.dtype
        per = d.bits / 8 + (d.scale_bits / 8 / d.block_size if d.block_size else 0)
        if operand == "a" and self.sparse:
            per = per / 2 + 2 / 8 / 2
        return per


@dataclass(frozen=True)
class TileConfig:
    """One kernel configuration. ``tile_m`` is the whole work unit's M (256 for a 2-SM pair)."""

    tile_m: int
    tile_n: int
    tile_k: int
    sms_per_unit: int = 1
    cluster_m: int = 1
    cluster_n: int = 1
    epilogue_overlap: bool = False
    split_k: int = 1
    raster: str = "n"            #: walk N fastest ("n") or M fastest ("m") within a swizzle band
    swizzle: int = 8             #: band width in tiles (1 = plain row/column-major order)
    stages: int = 0
    variant: str = ""
    swap_ab: bool = False        #: MMA computes C^T = B^T A^T: the instruction's M runs along N

    def kblock_cycles(self, tc: TensorCore) -> float:
        """MMA pipe cycles of one k-block on one SM (the instruction's M runs along N when swapped)."""
        rows = self.tile_m // self.sms_per_unit
        if self.swap_ab:
            return tc.kblock_cycles(self.tile_n, rows, self.tile_k)
        return tc.kblock_cycles(rows, self.tile_n, self.tile_k)

    @property
    def name(self) -> str:
        parts = [f"{self.tile_m}x{self.tile_n}x{self.tile_k}", self.variant + ("-swapab" if self.swap_ab else ""),
                 f"cluster{self.cluster_m}x{self.cluster_n}", f"stages{self.stages}"]
        if self.split_k > 1:
            parts.append(f"splitk{self.split_k}")
        return " ".join(p for p in parts if p)


def _base_candidates(gpu: GPUConfig, dtype: DType) -> list[TileConfig]:
    tk = max(8, int(K_BLOCK_BYTES * 8 // dtype.bits))
    tc = gpu.tensor_core
    out: list[TileConfig] = []
    if tc.instruction == "tcgen05":
        tmem = TMEM(gpu.tmem)
        for m_rows in tc.mma_m:
            for n in TCGEN05_TILE_N:
                if n > tc.max_mma_n:
                    continue
                buffers = tmem.accumulator_buffers(n)
                if buffers >= 1:
                    out.append(TileConfig(m_rows, n, tk, 1, epilogue_overlap=buffers >= 2, variant="1sm"))
                    out.append(TileConfig(m_rows, n, tk, 1, cluster_m=2, epilogue_overlap=buffers >= 2,
                                          variant="1sm"))
        for pair_m in tc.pair_mma_m:
            if pair_m < 256:
                continue
            for n in TCGEN05_TILE_N:
                buffers = tmem.accumulator_buffers(n)
                if buffers >= 1 and n <= tc.max_mma_n:
                    out.append(TileConfig(pair_m, n, tk, 2, epilogue_overlap=buffers >= 2, variant="2sm"))
                    out.append(TileConfig(pair_m, n, tk, 2, cluster_m=2, epilogue_overlap=buffers >= 2,
                                          variant="2sm"))
    elif dtype.math_class == "tf32":
        # cuBLAS runs tf32 on Hopper with its sm90_xmma kernels, not nvjet (our H100 profiles):
        # 128x256x32 with two warpgroups sharing a tile, and 128x128x32 / 64x128x32 with one
        # warpgroup per tile; the latter run 384 threads on a persistent grid (132 CTAs, all of
        # SMEM, 168 registers: 128 for the accumulator), i.e. two consumer warpgroups taking
        # tiles in turn, as ping-pong kernels do, so one's epilogue overlaps the other's main loop
        out = [TileConfig(128, 256, tk, variant="xmma"),
               TileConfig(128, 128, tk, epilogue_overlap=True, variant="xmma-pingpong"),
               TileConfig(64, 128, tk, epilogue_overlap=True, variant="xmma-pingpong")]
    else:
        for n in WGMMA_TILE_N:
            for m in (128, 192, 256, 320):       # cooperative: two consumer warpgroups split the tile
                if m * n // (2 * WARPGROUP_THREADS) <= COOPERATIVE_ACCUMULATOR_REGS:
                    for cm in (1, 2):
                        out.append(TileConfig(m, n, tk, cluster_m=cm, variant="cooperative"))
            for m in (64, 128):                  # ping-pong: each consumer warpgroup holds a whole tile
                if m * n // WARPGROUP_THREADS <= PINGPONG_ACCUMULATOR_REGS:
                    for cm in (1, 2):
                        out.append(TileConfig(m, n, tk, cluster_m=cm, epilogue_overlap=True,
                                              variant="pingpong"))
        # swap-AB kernels run the instruction's fixed M=64 slices along N and its free width along M
        # (nvjet's 'v' kernels with 96x64, 112x128, 144x128, 224x64 tiles in our H100 profiles)
        # (only shapes the unswapped menu lacks: a swapped N that is one of its M sizes adds nothing)
        unswapped_m = {c.tile_m for c in out}
        out += [replace(c, tile_m=c.tile_n, tile_n=c.tile_m, swap_ab=True)
                for c in out if c.tile_n not in unswapped_m]
    return out


def vector_bytes(m: int, n: int, k: int, element_bytes: float, out_bytes: float) -> int:
    """Widest of 16/4/2-byte vectors that every row-major leading dimension (A: k, B and C: n) is a
    multiple of (cuBLAS ships sm80 fallbacks for 4-byte 'align2' and 2-byte 'align1' operands)."""
    strides = (k * element_bytes, n * element_bytes, n * out_bytes)
    for width in (16, 4, 2):
        if all(s % width == 0 for s in strides):
            return width
    return 1


def fallback_key(problem: GemmProblem, gpu: GPUConfig) -> str | None:
    """The ``unaligned_flops_per_clock`` key that applies, or None for the aligned TMA path."""
    if problem.vector_bytes >= 16:
        return None
    key = f"vec{max(2, problem.vector_bytes)}b"
    return key if key in gpu.tensor_core.unaligned_flops_per_clock else None


def tensor_core_for(gpu: GPUConfig, problem: GemmProblem) -> TensorCore:
    """The MMA pipe this problem runs on: the fallback kernels' rate when strides are misaligned."""
    key = fallback_key(problem, gpu)
    rate = None if key is None else gpu.tensor_core.unaligned_flops_per_clock[key]
    return TensorCore(gpu, problem.dtype, problem.sparse, rate)


def epilogue_smem_bytes(cfg: TileConfig, out_bits: int) -> float:
    rows = cfg.tile_m // cfg.sms_per_unit
    return rows * EPILOGUE_TILE_N * out_bits / 8


def stage_bytes(problem: GemmProblem, cfg: TileConfig) -> float:
    """SMEM bytes of one k-block stage on one SM (a 2-SM pair splits A and B between its SMs)."""
    a = cfg.tile_m * cfg.tile_k * problem.operand_bytes_per_element("a")
    b = cfg.tile_n * cfg.tile_k * problem.operand_bytes_per_element("b")
    return (a + b) / cfg.sms_per_unit


def candidates(gpu: GPUConfig, problem: GemmProblem) -> list[TileConfig]:
    """Feasible configurations (stages from SMEM capacity), with split-K variants for few tiles."""
    workers_1sm = gpu.sm.count
    out = []
    base = _base_candidates(gpu, problem.dtype)
    if fallback_key(problem, gpu) is not None:
        # CUTLASS 2.x sm80 kernels (cuBLAS picks 128x256x64 'align2', 256x128x32 'align1' on H100)
        tk = 64 if problem.vector_bytes >= 4 else 32
        base = [TileConfig(128, 256, tk, variant=f"sm80-fallback-vec{problem.vector_bytes}b"),
                TileConfig(256, 128, tk, variant=f"sm80-fallback-vec{problem.vector_bytes}b")]
    for cfg in base:
        stages = pipeline_stages(gpu.smem, stage_bytes(problem, cfg), epilogue_smem_bytes(cfg, problem.out_bits))
        if stages < MIN_STAGES:
            continue
        cfg = replace(cfg, stages=stages)
        tiles = math.ceil(problem.m / cfg.tile_m) * math.ceil(problem.n / cfg.tile_n) * problem.batch
        units = workers_1sm // cfg.sms_per_unit
        for split in SPLIT_K_CHOICES:
            if split > 1 and (tiles * split > 2 * units or problem.k / split < 4 * cfg.tile_k):
                break
            raster = "m" if math.ceil(problem.m / cfg.tile_m) > math.ceil(problem.n / cfg.tile_n) else "n"
            out.append(replace(cfg, split_k=split, raster=raster))
    if not out:
        raise BlackwellSimError(
            f"gemm: no kernel configuration fits {gpu.name}'s shared memory "
            f"({gpu.smem.usable_per_cta_bytes} bytes per CTA) and tensor memory for {problem.dtype.name}")
    return out


def tile_order(problem: GemmProblem, cfg: TileConfig) -> list[tuple[int, int, int, int]]:
    """Work units (batch, tile row, tile column, k split) in the kernel's raster order."""
    mt, nt = math.ceil(problem.m / cfg.tile_m), math.ceil(problem.n / cfg.tile_n)
    order = []
    outer, inner = (mt, nt) if cfg.raster == "n" else (nt, mt)
    band = max(1, cfg.swizzle)
    for b in range(problem.batch):
        for band_start in range(0, outer, band):
            band_rows = range(band_start, min(band_start + band, outer))
            for c in range(inner):
                for r in band_rows:
                    i, j = (r, c) if cfg.raster == "n" else (c, r)
                    for s in range(cfg.split_k):
                        order.append((b, i, j, s))
    return order
