"""Fused attention: the problem, the variant's SMEM / TMEM budgets and the cost of one block.

One block is one KV block of a Q tile (forward: S = Q K^T, O += P V) or one Q block of a K/V tile
(backward: S and dP recomputed, dV += P^T dO, dK += dS^T Q, dQ += dS K). Its cost on one SM: the
MMAs (tensor core, or the legacy ``mma.sync`` path of ``fa2`` / ``efficient``), the softmax work
on the MUFU and FP32 pipes (``engine/sfu.py``) and the SMEM operand reads; the variant's pipelining
hides ``overlap`` of everything but the longest of the three (1: perfect warp specialization,
0: fully serial), plus a per-block barrier / hand-off. See attention.py for the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass

from blackwell_sim.config import GPUConfig, get_dtype
from blackwell_sim.config.dtypes import DType
from blackwell_sim.engine.kernels import attention_sim as asim
from blackwell_sim.engine.kernels.attention_variants import (
    AttentionVariant,
    tile_for,
)
from blackwell_sim.engine.kernels.memcpy import LSU_INFLIGHT_BYTES_PER_SM  # noqa: F401 (re-exported)
from blackwell_sim.engine.sfu import EMULATED_EXP_OPS, SFU, SoftmaxMix
from blackwell_sim.engine.smem import BARRIER_RESERVE_BYTES
from blackwell_sim.engine.tensor_core import TensorCore
from blackwell_sim.engine.tmem import alloc_columns
from blackwell_sim.errors import BlackwellSimError

FIDELITIES = ("fast", "detailed")
CLOCK_TOLERANCE_MHZ = 1.0
#: Softmax instruction mix per score element on the FP32 pipe (forward): row max (FMNMX), the
#: scale-and-subtract FFMA feeding ex2, the row-sum FADD, half a packed bf16 convert (F2FP):
#: FlashAttention-2 paper section 3.1 (non-matmul FLOPs), FA4 blog (per-element softmax work).
FWD_FP32_OPS = 3.5
#: Backward per score element: the FFMA feeding ex2 (recomputing P), dS = P * (dP - D) (FADD +
#: FMUL), two half converts (P and dS to 16-bit) (FlashAttention-2 paper, Algorithm 2).
BWD_FP32_OPS = 4.0
#: Causal masking on a diagonal block: index compare + select per element (ISETP + FSEL).
MASK_OPS = 2.0
#: Blocks' worth of hidden work a tile's software pipeline exposes when it fills and drains.
PIPELINE_FILL_BLOCKS = 1.0
LSE_BYTES = 4                 #: fp32 log-sum-exp (forward output) and D = rowsum(dO*O) per row
ACC_BYTES = 4                 #: fp32 accumulators: dQ (backward), split-KV partial O (decode)
MAX_SPLITS = 128              #: FlashAttention-2 split-KV heuristic: at most 128 splits
SPLIT_EFFICIENCY = 0.85       #: ... the fewest splits within 85% of the best wave efficiency
VECTOR_BYTES = 16             #: vectorised elementwise kernels (16-byte accesses)


@dataclass(frozen=True)
class AttentionProblem:
    batch: int
    heads: int
    kv_heads: int
    seq_q: int
    seq_kv: int
    head_dim: int             #: Q/K head dim (d_qk)
    causal: bool
    dtype: DType
    head_dim_v: int = 0       #: V/O head dim (d_v); make_problem sets it (default: head_dim)

    @property
    def dv(self) -> int:
        return self.head_dim_v or self.head_dim

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def eb(self) -> float:
        return self.dtype.bits / 8

    @property
    def fwd_flops(self) -> float:
        """S = Q K^T: 2*B*H*Sq*Skv*d_qk, O = P V: 2*B*H*Sq*Skv*d_v (4*B*H*Sq*Skv*D when equal),
        halved for causal."""
        scale = 0.5 if self.causal else 1.0
        if self.dv == self.head_dim:
            return 4.0 * self.batch * self.heads * self.seq_q * self.seq_kv * self.head_dim * scale
        return 2.0 * self.batch * self.heads * self.seq_q * self.seq_kv * (self.head_dim + self.dv) * scale

    def describe(self) -> str:
        kv = f" kv_heads {self.kv_heads}" if self.kv_heads != self.heads else ""
        skv = f" seq_kv {self.seq_kv}" if self.seq_kv != self.seq_q else ""
        dv = f" dv{self.dv}" if self.dv != self.head_dim else ""
        return (f"b{self.batch} h{self.heads}{kv} s{self.seq_q}{skv} d{self.head_dim}{dv}"
                + (" causal" if self.causal else "") + f" {self.dtype.name}")




def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BlackwellSimError(f"attention: {name} must be a positive integer, got {value!r}")
    return value


def make_problem(batch, heads, seq_q, head_dim, kv_heads=None, seq_kv=None, causal=False,
                 dtype="bf16", head_dim_v=None) -> AttentionProblem:
    kv_heads = heads if kv_heads is None else kv_heads
    seq_kv = seq_q if seq_kv is None else seq_kv
    head_dim_v = head_dim if head_dim_v is None else head_dim_v
    for name, value in (("batch", batch), ("heads", heads), ("kv_heads", kv_heads), ("seq_q", seq_q),
                        ("seq_kv", seq_kv), ("head_dim", head_dim), ("head_dim_v", head_dim_v)):
        _positive(name, value)
    if heads % kv_heads:
        raise BlackwellSimError(f"attention: heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
    for name, value in (("head_dim", head_dim), ("head_dim_v", head_dim_v)):
        if value % 8:
            raise BlackwellSimError(f"attention: {name} must be a multiple of 8 (16-byte rows), got {value}")
    try:
        dt = get_dtype(dtype)
    except KeyError as exc:
        raise BlackwellSimError(f"attention: dtype: {exc.args[0]}") from None
    return AttentionProblem(batch, heads, kv_heads, seq_q, seq_kv, head_dim, bool(causal), dt, head_dim_v)


# -- budgets ------------------------------------------------------------------------------------
#: O is staged in SMEM for its TMA store in 16 bits (bf16 / fp16 output, also for fp8 inputs)
O_STAGE_BYTES = 2


@dataclass(frozen=True)
class Tiling:
    """A pass's tiles after the budget check. ``d``: the kernel's head-dim bucket (its tile, overlap
    and instantiation), the bucket of the larger of the two dims; ``dqk`` / ``dv``: the Q/K and V/O
    dims as the kernel pads them (each to its own bucket); ``bq`` / ``bkv``: Q and KV rows per tile;
    ``o_reuses_q``: the forward stages O in Q's SMEM buffer (no prefetch of the next tile's Q)."""

    d: int
    dqk: int
    dv: int
    bq: int
    bkv: int
    o_reuses_q: bool = False


def _kv_ring_bytes(slots: int, k_bytes: float, v_bytes: float) -> float:
    """SMEM of a ring of ``slots`` K/V slots through which K and V blocks alternate (K, V, K, ...),
    each slot sized for its block: FA4 ``uneven_kv_smem`` (flash_attn/cute/flash_fwd_sm100.py,
    hdim (192, 128): slots of 128x192, 128x128, 128x192); with equal dims it is ``slots`` equal slots."""
    return -(-slots // 2) * k_bytes + (slots // 2) * v_bytes


def forward_smem_bytes(v: AttentionVariant, t: Tiling, eb: float) -> float:
    """SMEM one forward CTA needs for tiles ``t``.

    Variants with a K/V ring (``kv_ring_slots``, fa4): the Q tiles, O staging (16-bit) in its own
    buffer or in Q's (``o_reuses_q``) and the ring: FA4 ``_setup_attributes`` (Q + O or max(Q, O)
    with ``overlap_sO_sQ``, then K/V stages in 224 KB; 128/128: 64 + 64 + 3 x 32 = 224 KB;
    192/128: max(96, 64) + 48 + 32 + 48 = 224 KB). Others: the Q tiles and ``stages`` K and V
    buffers each (O written from registers)."""
    q = v.q_tiles_per_cta * t.bq * t.dqk * eb
    if v.kv_ring_slots:
        o = v.q_tiles_per_cta * t.bq * t.dv * O_STAGE_BYTES
        q_o = max(q, o) if t.o_reuses_q else q + o
        return q_o + _kv_ring_bytes(v.kv_ring_slots, t.bkv * t.dqk * eb, t.bkv * t.dv * eb)
    return q + v.stages * t.bkv * (t.dqk + t.dv) * eb


def backward_tmem_columns(v: AttentionVariant, t: Tiling, usable: int) -> tuple[int, str]:
    """TMEM columns of a backward CTA (one allocation, the pieces at column offsets): the dK (d_qk)
    and dV (d_v) accumulators plus S and dP (``bq`` each): FA4 flash_bwd_sm100.py's 1-CTA layout,
    128/128: 128 + 128 + 128 + 128 = 512. When that does not fit and the variant allows it
    (``bwd_p_packed_in_s``), P is written 16-bit packed into half of S's columns and dP / dS reuse
    the other half once S is consumed: FA4's hdim (192, 128) backward layout, 128 + 192 + 64 + 128
    = 512 (FA4 runs that shape as a 2-CTA kernel; the model times its per-SM work as 1-CTA)."""
    cols = t.dqk + t.dv + 2 * t.bq
    packed = t.dqk + t.dv + t.bq // 2 + t.bq
    if cols > usable and v.bwd_p_packed_in_s and packed <= usable:
        return packed, "dK+dV+P(packed in S)+dP"
    return cols, "dK+dV+S+dP"


def check_budget(gpu: GPUConfig, v: AttentionVariant, p: AttentionProblem, backward: bool) -> Tiling:
    """The pass's :class:`Tiling` after checking the dtype, SMEM and TMEM budgets (a shape that does
    not fit is an error naming each budget it exceeds, never a silent mis-simulation)."""
    if p.dtype.name not in v.dtypes and p.dtype.math_class not in v.dtypes:
        raise BlackwellSimError(f"attention: kernel {v.name!r} does not support dtype {p.dtype.name!r} "
                                f"(supported: {', '.join(v.dtypes)})")
    if backward and p.dtype.math_class == "fp8":
        raise BlackwellSimError("attention: the backward pass is modelled for 16-bit dtypes only (bf16, fp16)")
    gpu.flops_per_clock_per_sm(p.dtype.name, False)  # raises if the GPU has no path for the dtype
    d, (bq, bkv) = tile_for(v, max(p.head_dim, p.dv), backward)
    dqk, _ = tile_for(v, p.head_dim, backward)
    dv, _ = tile_for(v, p.dv, backward)
    t = Tiling(d, dqk, dv, bq, bkv, o_reuses_q=not backward and d in v.o_reuses_q_buckets)
    eb = p.eb
    if backward:  # Q, dO, K, V tiles and the staged P / dS (dQ is added to its fp32 buffer by atomics)
        smem = (bq * (dqk + dv) + bkv * (dqk + dv) + 2 * bq * bkv) * eb
    else:
        smem = forward_smem_bytes(v, t, eb)
    smem_limit = gpu.smem.usable_per_cta_bytes - BARRIER_RESERVE_BYTES
    problems = []
    if smem > smem_limit:
        problems.append(f"SMEM budget: {smem / 1024:.0f} KB needed, {smem_limit / 1024:.0f} KB per CTA")
    if v.tmem:
        if gpu.tmem is None:
            raise BlackwellSimError(f"attention: kernel {v.name!r} needs tensor memory, which {gpu.name} lacks")
        usable = gpu.tmem.usable_columns
        if backward:
            cols, what = backward_tmem_columns(v, t, usable)
        else:  # per Q tile: S (Bc fp32 columns, P aliased as 16-bit) and O (d_v columns)
            cols, what = v.q_tiles_per_cta * (bkv + dv), "S+O per Q tile"
        # one tcgen05.alloc for the whole CTA (a power of two of columns), the pieces at offsets
        if alloc_columns(cols, gpu.tmem.alloc_min_columns) > usable:
            problems.append(f"TMEM budget: {cols} columns needed ({what}), {usable} available")
    if problems:
        dims = f"{p.head_dim}" if p.dv == p.head_dim else f"{p.head_dim} (Q/K) / {p.dv} (V)"
        raise BlackwellSimError(f"attention: head dim {dims} does not fit kernel {v.name!r} "
                                f"({'backward' if backward else 'forward'}): " + "; ".join(problems))
    return t


# -- per-block cost -----------------------------------------------------------------------------
def _mma_cycles(gpu, v, p, gemms: list[tuple[int, int, int]]) -> float:
    if v.mma == "legacy":
        rate = gpu.tensor_core.legacy_mma_flops_per_clock.get(
            p.dtype.math_class, gpu.flops_per_clock_per_sm(p.dtype.name, False))
        return sum(2 * m * n * k for m, n, k in gemms) / rate
    tc = TensorCore(gpu, p.dtype)
    return sum(tc.kblock_cycles(m, n, k) for m, n, k in gemms)


def block_cost(gpu: GPUConfig, v: AttentionVariant, p: AttentionProblem, t: Tiling,
               backward: bool, clock_mhz_: float) -> tuple[asim.BlockCost, dict]:
    """Cost of one KV block (forward) or one Q block (backward) for one CTA. The Q/K products
    (S = Q K^T; backward also dK = dS^T Q, dQ = dS K) run over ``t.dqk``, the V/O ones (O += P V;
    backward dP = dO V^T, dV = P^T dO) over ``t.dv``."""
    eb, clock_hz = p.eb, clock_mhz_ * 1e6
    dqk, dv, bq, bkv = t.dqk, t.dv, t.bq, t.bkv
    sfu = SFU(gpu.sm)
    rows = bq * (1 if backward else v.q_tiles_per_cta)
    elements = rows * bkv
    if backward:
        gemms = [(bq, bkv, dqk), (bq, bkv, dv), (bkv, dv, bq), (bkv, dqk, bq), (bq, dqk, bkv)]
        mix = SoftmaxMix(BWD_FP32_OPS)
        smem_bytes = v.bwd_smem_readers * bq * (dqk + dv) * eb + 4 * bq * bkv * eb + bq * dqk * ACC_BYTES
        l2_bytes = bq * (dqk + dv) * eb + 2 * bq * LSE_BYTES
        atomic = bq * dqk * ACC_BYTES
        overlap = v.bwd_overlap[t.d]
        ctas = v.bwd_ctas_per_sm
    else:
        gemms = [(rows, bkv, dqk), (rows, dv, bkv)]
        mix = SoftmaxMix(FWD_FP32_OPS + v.rescale_fraction * dv / bkv)
        smem_bytes = v.kv_smem_readers * bkv * (dqk + dv) * eb
        l2_bytes = bkv * (dqk + dv) * eb
        atomic = 0.0
        overlap = v.overlap[t.d]
        ctas = v.ctas_per_sm
    mma = _mma_cycles(gpu, v, p, gemms)
    emulated = best_emulated_fraction(sfu, mix, v.emulated_exp_fraction)
    soft, soft_pipe = sfu.softmax_cycles(elements, mix, emulated)
    smem = smem_bytes / gpu.smem.bandwidth_bytes_per_clock
    parts = (mma, soft, smem)
    block = max(parts) + (1 - overlap) * (sum(parts) - max(parts)) + v.block_sync_cycles
    if v.stages == 1:  # no second K/V buffer: each block waits for its own load's L2 round trip
        near = 1.0 / gpu.l2.partitions
        block += near * gpu.l2.near_latency_cycles + (1 - near) * gpu.l2.far_latency_cycles
    diag = elements * MASK_OPS / sfu.fp32_lanes
    # a tile's software pipeline fills and drains once: the first block's MMA has no softmax of
    # an earlier block to overlap, the last block's softmax / PV no next MMA, so the work that
    # overlap hides in the steady state is exposed once per tile (unless another resident CTA's
    # warps fill the bubble)
    fill = overlap * (sum(parts) - max(parts)) * PIPELINE_FILL_BLOCKS if ctas == 1 else 0.0
    cost = asim.BlockCost(compute_s=block * ctas / clock_hz, diag_extra_s=diag * ctas / clock_hz,
                          mma_s=mma / clock_hz, softmax_s=soft / clock_hz, smem_s=smem / clock_hz,
                          l2_bytes=l2_bytes, atomic_bytes=atomic, fill_s=fill * ctas / clock_hz)
    limit = max((("mma", mma), ("softmax_" + soft_pipe, soft), ("smem", smem)), key=lambda x: x[1])[0]
    return cost, {"mma_cycles": mma, "softmax_cycles": soft, "smem_cycles": smem, "block_cycles": block,
                  "emulated_exp_fraction": emulated, "block_limit": limit, "overlap": overlap}


def best_emulated_fraction(sfu: SFU, mix: SoftmaxMix, max_fraction: float) -> float:
    """Share of exps to emulate, up to ``max_fraction``: the one that balances MUFU and FP32 pipes
    (FA4 emulates only as many as keep the FMA pipe from becoming the new limit)."""
    if max_fraction <= 0:
        return 0.0
    exp_rate, lanes = sfu.sfu_ops_per_clock, sfu.fp32_lanes
    # (1-f)/exp_rate = (ops + f*E)/lanes  ->  f = (lanes/exp_rate - ops) / (lanes/exp_rate + E)
    f = (lanes / exp_rate - mix.fp32_ops_per_element) / (lanes / exp_rate + EMULATED_EXP_OPS)
    return min(max_fraction, max(0.0, f))


