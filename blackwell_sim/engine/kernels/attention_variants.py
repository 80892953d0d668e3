"""Fused-attention kernel variants as data: tiles, MMA path, overlap, scheduling, budgets.

Each variant is one row of :data:`VARIANTS`; the kernel model (``attention.py``) reads nothing
else about a library. Sources of the structure:

- ``fa2``: FlashAttention-2 as PyTorch's SDPA flash backend runs it on Hopper (Dao, arXiv
  2307.08691): Ampere ``mma.sync`` from registers, ``cp.async`` double buffering, no TMA, no warp
  specialization; the grid is one CTA per (Q tile, head, batch), launched in grid order. Tiles are
  the kernel traits in the kernel names of our H100 measurements
  (benchmarks/data/h100_sxm_attention.jsonl): forward ``Flash_fwd_kernel_traits<d, Br, Bc, 4 warps>``
  = 128x128 (d 64), 128x64 (d 128), 64x64 (d 256); backward 128x128 (d 64, 8 warps), 64x128
  (d 128), 64x64 (d 256). Decode uses the split-KV kernel (``Flash_fwd_kernel_traits<d, 64, 128>``)
  plus a combine kernel.
- ``fa3``: the Hopper wgmma + TMA + warp-specialized class (FlashAttention-3, Shah et al., arXiv
  2407.08608; cuDNN's ``sm90_flash_fprop_wgmma`` kernels in the same measurements): a producer
  warp issues TMA loads, two consumer warpgroups of 64 rows each ping-pong softmax against the
  other's GEMMs, a persistent scheduler hands out tiles in groups of heads whose K/V fit L2. In a
  group it keeps the grid's order (Q tile 0 first): our cuDNN timings fit that order better than
  FlashAttention-3's longest-first one (``--fit`` mean errors 3.7% / 3.3% at head dim 64 / 128,
  against 6.3% / 5.3% longest-first).
  Decode runs one 64-row warpgroup tile (the wgmma minimum M).
- ``fa4``: Blackwell ``tcgen05`` with S and O accumulators in TMEM, two Q tiles per CTA in
  ping-pong, a longest-first persistent scheduler, a fraction of the exponentials emulated on the
  FMA pipe, conditional O rescaling (FlashAttention-4 blog, Together AI 2025; Tri Dao et al.). TMEM must hold S and O of both
  tiles: 2 x (Bc + d_v) fp32 columns <= 512, which is why head dim 256 does not fit. Decode runs one
  128-row tile (the full-rate tcgen05 M). Separate value head dims (DeepSeek MLA, Q/K 192, V 128)
  follow FlashAttention-4's ``flash_attn/cute/flash_fwd_sm100.py`` (Dao-AILab/flash-attention,
  "hdim 64, 96, 128, (192, 128)"): TMEM S0, S1, O0, O1 at column offsets 0, 128, 256, 384
  (2 x 128 + 2 x 128 = 512); SMEM: the 192 tile's O staging shares Q's buffer (``overlap_sO_sQ``,
  which also turns persistence off) and K/V blocks alternate through 3 uneven slots (128x192,
  128x128, 128x192): 96 + 128 = 224 KB. Its backward (``flash_bwd_sm100.py``) packs P into S's
  columns for (192, 128): dV 128 + dK 192 + P 64 + dP 128 = 512 columns. The 192 bucket's tile,
  overlap and bwd_overlap are estimates, as for the other fa4 buckets.
- ``efficient``: the CUTLASS memory-efficient kernel (xformers, PyTorch's ``efficient``
  backend): ``mma.sync``, ``fmha_cutlassF_*_64x64 / 64x128 / 32x128`` forward tiles, one K/V stage
  (each block waits for its load), no overlap engineering, no split-KV.

Calibrated fields: ``overlap`` and ``bwd_overlap`` per head-dim kernel of ``fa2``, ``fa3`` and
``efficient``, fitted to the main kernels' GPU time in our H100 profiles
(benchmarks/data/h100_sxm_attention.jsonl; ``python benchmarks/bench_attention.py --fit``) with the
rest of the model fixed (docs/validation.md, "Attention"). ``cta_launch_cycles`` and
``block_sync_cycles`` are estimates; everything of ``fa4`` is taken from the FlashAttention-4
write-up or estimated (no Blackwell measurements here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from blackwell_sim.errors import BlackwellSimError


@dataclass(frozen=True)
class AttentionVariant:
    name: str
    description: str
    archs: tuple[str, ...]                          #: GPU architectures it runs on
    mma: str                                        #: "legacy" (mma.sync) or "native" (wgmma / tcgen05)
    fwd_tile: Mapping[int, tuple[int, int]]         #: head-dim bucket -> (Q rows, KV rows) per CTA
    bwd_tile: Mapping[int, tuple[int, int]]         #: head-dim bucket -> (Q rows, KV rows) per CTA
    ctas_per_sm: int                                #: resident CTAs per SM, forward
    bwd_ctas_per_sm: int                            #: resident CTAs per SM, backward
    overlap: Mapping[int, float]                    #: head-dim bucket -> share of the non-limiting work hidden
    bwd_overlap: Mapping[int, float]                #: same, backward
    kv_smem_readers: int                            #: times each K/V block is read from SMEM (forward)
    bwd_smem_readers: int                           #: times each Q/dO block is read from SMEM (backward)
    persistent: bool                                #: persistent scheduler, longest tiles first (forward)
    bwd_persistent: bool                            #: same, backward
    cta_launch_cycles: int                          #: per-CTA start: launch, Q load issue, barriers
    block_sync_cycles: int                          #: per KV block: barrier / pipeline hand-off
    emulated_exp_fraction: float = 0.0              #: exps computed by polynomial on the FMA pipe
    longest_first: bool = False                     #: persistent order: longest causal tiles first (LPT)
    rescale_fraction: float = 1.0                   #: KV blocks whose O accumulator is rescaled
    q_tiles_per_cta: int = 1                        #: Q tiles sharing one K/V stream (fa4 ping-pong)
    tmem: bool = False                              #: accumulators in TMEM (budget checked)
    split_kv_decode: bool = True                    #: flash-decoding split over the KV length
    pack_gqa_decode: bool = True                    #: GQA group's query heads share one Q tile
    dtypes: tuple[str, ...] = ("bf16", "fp16")
    layout_copies_bwd: int = 0                      #: strided [b,h,s,d] copies its backward makes
    stages: int = 2                                 #: K/V SMEM stages
    tma: bool = True                                #: TMA bulk loads (else thread-issued cp.async)
    decode_tile: tuple[int, int] = (64, 128)        #: (Q rows, KV rows) when all queries fit one tile
    #: forward K and V blocks alternate through one SMEM ring of this many slots, O staged in
    #: SMEM (0: ``stages`` separate K and V buffers, O from registers)
    kv_ring_slots: int = 0
    #: head-dim buckets whose O staging reuses Q's SMEM buffer: the next tile's Q cannot be
    #: prefetched during this one, so its load is exposed per tile (FA4 turns persistence off)
    o_reuses_q_buckets: tuple[int, ...] = ()
    #: backward may pack P (16-bit) into half of S's TMEM columns and give dP / dS the rest
    bwd_p_packed_in_s: bool = False


VARIANTS: dict[str, AttentionVariant] = {
    "fa2": AttentionVariant(
        name="fa2", description="FlashAttention-2 (mma.sync, cp.async, grid order)",
        archs=("hopper", "blackwell"), mma="legacy",
        fwd_tile={64: (128, 128), 128: (128, 64), 256: (64, 64)},
        bwd_tile={64: (128, 128), 128: (64, 128), 256: (64, 64)},
        ctas_per_sm=2, bwd_ctas_per_sm=1, overlap={64: 0.4, 128: 0.5, 256: 0.7},
        bwd_overlap={64: 0.15, 128: 0.15, 256: 0.2}, kv_smem_readers=4, bwd_smem_readers=8,
        persistent=False, bwd_persistent=False, cta_launch_cycles=1000, block_sync_cycles=100, layout_copies_bwd=2,
        tma=False),
    "fa3": AttentionVariant(
        name="fa3", description="FlashAttention-3 / cuDNN class (wgmma, TMA, warp specialization)",
        archs=("hopper",), mma="native",
        fwd_tile={64: (128, 128), 128: (128, 128), 256: (128, 64)},
        bwd_tile={64: (64, 128), 128: (64, 128), 256: (64, 64)},
        ctas_per_sm=1, bwd_ctas_per_sm=1, overlap={64: 0.5, 128: 0.75, 256: 0.85},
        bwd_overlap={64: 0.35, 128: 0.45, 256: 0.0}, kv_smem_readers=2, bwd_smem_readers=2,
        persistent=True, bwd_persistent=False, cta_launch_cycles=1000, block_sync_cycles=100, dtypes=("bf16", "fp16", "fp8")),
    "fa4": AttentionVariant(
        name="fa4", description="FlashAttention-4 (tcgen05, TMEM, 2-tile ping-pong, software exp)",
        archs=("blackwell",), mma="native",
        fwd_tile={64: (128, 128), 128: (128, 128), 192: (128, 128), 256: (128, 128)},
        bwd_tile={64: (128, 128), 128: (128, 128), 192: (128, 128), 256: (128, 128)},
        ctas_per_sm=1, bwd_ctas_per_sm=1, overlap={64: 0.9, 128: 0.9, 192: 0.9, 256: 0.9},
        bwd_overlap={64: 0.7, 128: 0.7, 192: 0.7, 256: 0.7},
        kv_smem_readers=1, bwd_smem_readers=1,
        persistent=True, bwd_persistent=True, cta_launch_cycles=1000, block_sync_cycles=100, emulated_exp_fraction=0.25,
        longest_first=True,
        rescale_fraction=0.1, q_tiles_per_cta=2, tmem=True, dtypes=("bf16", "fp16", "fp8"),
        decode_tile=(128, 128), kv_ring_slots=3, o_reuses_q_buckets=(192,), bwd_p_packed_in_s=True),
    "efficient": AttentionVariant(
        name="efficient", description="memory-efficient attention (CUTLASS/xformers, mma.sync)",
        archs=("hopper", "blackwell"), mma="legacy",
        fwd_tile={64: (64, 64), 128: (64, 128), 256: (32, 128)},
        bwd_tile={64: (64, 64), 128: (128, 128), 256: (128, 64)},
        ctas_per_sm=2, bwd_ctas_per_sm=1, overlap={64: 0.0, 128: 0.0, 256: 0.55}, bwd_overlap={64: 0.0, 128: 0.0, 256: 0.0},
        kv_smem_readers=4, bwd_smem_readers=8,
        persistent=False, bwd_persistent=False, cta_launch_cycles=1000, block_sync_cycles=100, split_kv_decode=False,
        pack_gqa_decode=False, stages=1, decode_tile=(64, 64), tma=False),
}

#: What ``validate`` maps the measurement file's SDPA ``backend`` names to.
BACKEND_VARIANTS = {"flash": "fa2", "cudnn": "fa3", "efficient": "efficient"}
#: Fastest available variant per architecture (the default when none is named).
DEFAULT_VARIANT = {"hopper": "fa3", "blackwell": "fa4"}


def variant_for(arch: str, name: str | None) -> AttentionVariant:
    """The named variant (checked against the architecture), or the architecture's default."""
    if name is None:
        name = DEFAULT_VARIANT.get(arch)
        if name is None:
            raise BlackwellSimError(f"attention: no attention kernel is modelled for arch {arch!r}")
    v = VARIANTS.get(name)
    if v is None:
        raise BlackwellSimError(f"attention: --kernel must be one of {', '.join(VARIANTS)}, got {name!r}")
    if arch not in v.archs:
        raise BlackwellSimError(f"attention: kernel {name!r} does not run on {arch} GPUs "
                                f"(it runs on: {', '.join(v.archs)})")
    return v


def tile_for(v: AttentionVariant, head_dim: int, backward: bool) -> tuple[int, tuple[int, int]]:
    """(head-dim bucket, (Q rows, KV rows)): the smallest bucket that holds ``head_dim``."""
    tiles = v.bwd_tile if backward else v.fwd_tile
    for bucket in sorted(tiles):
        if head_dim <= bucket:
            return bucket, tiles[bucket]
    raise BlackwellSimError(f"attention: head dim {head_dim} is larger than kernel {v.name!r} supports "
                            f"(largest: {max(tiles)})")
