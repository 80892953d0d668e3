"""The discrete-event simulation of one fused-attention kernel (forward or backward) on one GPU.

Work units are CTAs: a Q tile (forward: all its KV blocks, or one KV split of them in decode) or a
K/V tile (backward: all the Q blocks that see it). Workers, ``ctas_per_sm`` per SM, pull units in
grid order (``fa2``) or longest first (persistent schedulers of ``fa3`` / ``fa4``). Per unit:
a CTA start (launch, Q load issue) and a first-load latency, then the KV-block loop, then the
epilogue (normalise O / write dK, dV). Per block the SM does two (forward) or five (backward)
MMAs and the softmax work on the MUFU and FP32 pipes (``engine/sfu.py``); the variant's
``overlap`` hides that share of the shorter of the two behind the longer (warp specialization,
ping-pong, or only what the warp schedulers find). The K/V (or Q/dO) stream comes through L2,
first touch of a head's K/V from HBM (the L2 panel cache), contended on shared links.

``fast`` has one event per unit (closed-form block loop at the link shares of its start);
``detailed`` one per KV block (link shares re-evaluated each block).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from blackwell_sim.engine.hbm import HBM
from blackwell_sim.engine.l2 import L2
from blackwell_sim.engine.tma import TMA

SEGMENT_BLOCKS = 16  #: L2 cache-model granularity along the streamed panel (blocks per segment)


@dataclass(frozen=True)
class Unit:
    """One CTA's work. ``blocks``/``diag_blocks``: KV (forward) or Q (backward) blocks it loops
    over, of which ``diag_blocks`` straddle the causal diagonal (computed, partly masked)."""

    key: tuple
    blocks: int
    diag_blocks: int
    panel_key: tuple          #: L2 cache key prefix of the streamed operand panel (K/V or Q/dO)
    own_read_bytes: float     #: HBM bytes read once by this unit (its Q tile, or K/V tile)
    write_bytes: float        #: bytes it writes (O + LSE, or dK + dV; fp32 partials in split-KV)


@dataclass(frozen=True)
class BlockCost:
    """Per-block costs in seconds at the simulated clock, for one CTA owning its SM share."""

    compute_s: float          #: overlapped MMA + softmax + sync (already x ctas_per_sm)
    diag_extra_s: float       #: extra of a diagonal block (masking)
    mma_s: float
    softmax_s: float
    smem_s: float
    l2_bytes: float           #: bytes streamed from L2 per block
    atomic_bytes: float = 0.0 #: L2 reduction traffic per block (backward dQ)
    fill_s: float = 0.0       #: once per tile: the pipeline fill/drain (one block's hidden work, exposed)


@dataclass
class AttnStats:
    elapsed_s: float = 0.0
    busy_s: float = 0.0
    mma_s: float = 0.0
    softmax_s: float = 0.0
    smem_s: float = 0.0
    mem_stall_s: float = 0.0
    compute_s: float = 0.0    #: summed main-loop compute time of all units
    memory_s: float = 0.0     #: summed main-loop memory time of all units (overlapped with compute)
    latency_s: float = 0.0
    l2_bytes: float = 0.0
    hbm_bytes: float = 0.0
    units: int = 0
    workers: int = 0
    events: int = 0
    timeline: list = field(default_factory=list)


class AttentionSimulation:
    def __init__(self, gpu, units: list[Unit], cost: BlockCost, *, clock_mhz: float, workers: int,
                 unit_setup_s: float, epilogue_s: float, inflight_bytes: float, fidelity: str = "fast",
                 record: bool = False, persistent: bool = False, window_bytes: float = 0.0) -> None:
        self.persistent = persistent
        self.window_bytes = window_bytes
        self.gpu, self.units, self.cost, self.fidelity, self.record = gpu, units, cost, fidelity, record
        self.clock_hz = clock_mhz * 1e6
        self.env = simpy.Environment()
        self.hbm = HBM(gpu.hbm)
        self.l2 = L2(gpu.l2, self.clock_hz)
        self.tma = TMA(gpu.tma, self.clock_hz)
        self.workers = max(1, min(workers, len(units)))
        self.unit_setup_s = unit_setup_s
        self.epilogue_s = epilogue_s
        self.cap_l2 = inflight_bytes / (self.tma.latency_s + self.l2.hit_latency_s)
        self.cap_hbm = inflight_bytes / (self.tma.latency_s + self.hbm.latency_s)
        self.next = 0
        self.stats = AttnStats()

    def _take(self):
        if self.next >= len(self.units):
            return None
        u = self.units[self.next]
        self.next += 1
        return u

    def _mem_s(self, l2_bytes: float, hbm_bytes: float) -> float:
        st = self.stats
        st.l2_bytes += l2_bytes
        st.hbm_bytes += hbm_bytes
        if self.window_bytes:
            # thread-issued copies (cp.async) one block ahead: every window of bytes waits a round
            # trip before it streams, so latency adds to the transfer (Little's law, window W:
            # rate = W / (latency + W / share))
            t_l2 = self.l2.seconds_for(l2_bytes) + l2_bytes / self.window_bytes * self.l2.hit_latency_s
            t_hbm = (self.hbm.seconds_for(hbm_bytes) + hbm_bytes / self.window_bytes * self.hbm.latency_s
                     if hbm_bytes else 0.0)
            return max(t_l2, t_hbm)
        t_l2 = self.l2.seconds_for(l2_bytes, self.cap_l2)
        t_hbm = self.hbm.seconds_for(hbm_bytes, self.cap_hbm) if hbm_bytes else 0.0
        return max(t_l2, t_hbm)

    def _segments(self, u: Unit):
        """Yield (blocks, HBM bytes) per segment of the streamed panel, consulting the L2 cache as
        the loop reaches each segment, so CTAs that stream the same K/V together share it."""
        seg_bytes = SEGMENT_BLOCKS * self.cost.l2_bytes
        for seg in range(ceil_div(u.blocks, SEGMENT_BLOCKS)):
            blocks = min(SEGMENT_BLOCKS, u.blocks - seg * SEGMENT_BLOCKS)
            hit = self.l2.cache.access(u.panel_key + (seg,), seg_bytes)
            yield blocks, seg, (0.0 if hit else blocks * self.cost.l2_bytes)

    def _loop_fast(self, u: Unit):
        """One event per segment: max(compute, memory) at the link shares of its start."""
        c, st = self.cost, self.stats
        n_diag_from = u.blocks - u.diag_blocks
        for blocks, seg, hbm in self._segments(u):
            first = seg * SEGMENT_BLOCKS
            diag = max(0, first + blocks - max(first, n_diag_from))
            self.l2.join()
            if hbm:
                self.hbm.join()
            t_mem = self._mem_s(blocks * (c.l2_bytes + c.atomic_bytes), hbm)
            t_compute = blocks * c.compute_s + diag * c.diag_extra_s
            t = max(t_compute, t_mem)
            st.compute_s += t_compute
            st.memory_s += t_mem
            st.mem_stall_s += t - t_compute
            st.events += 1
            yield self.env.timeout(t)
            self.l2.leave()
            if hbm:
                self.hbm.leave()

    def _loop_detailed(self, u: Unit):
        """One event per block, link shares re-evaluated each block."""
        c, st = self.cost, self.stats
        i = 0
        for blocks, _seg, hbm in self._segments(u):
            for _ in range(blocks):
                per_block_hbm = hbm / blocks
                self.l2.join()
                if per_block_hbm:
                    self.hbm.join()
                t_mem = self._mem_s(c.l2_bytes + c.atomic_bytes, per_block_hbm)
                t_compute = c.compute_s + (c.diag_extra_s if i >= u.blocks - u.diag_blocks else 0.0)
                t = max(t_compute, t_mem)
                st.compute_s += t_compute
                st.memory_s += t_mem
                st.mem_stall_s += t - t_compute
                st.events += 1
                i += 1
                yield self.env.timeout(t)
                self.l2.leave()
                if per_block_hbm:
                    self.hbm.leave()

    def _worker(self, wid: int):
        env, st, c = self.env, self.stats, self.cost
        loop = self._loop_fast if self.fidelity == "fast" else self._loop_detailed
        first = True
        while (u := self._take()) is not None:
            start = env.now
            # the Q (or K/V) tile comes from HBM; a persistent CTA's producer warp prefetches the
            # next tile during the current one, so only its first tile waits for the setup and load
            exposed = first or not self.persistent
            first = False
            latency = (self.tma.latency_s + self.hbm.latency_s) if exposed else 0.0
            setup = self.unit_setup_s if exposed else 0.0
            st.latency_s += latency + setup
            # the unit's own tile (Q, or K/V) comes from HBM while the setup runs
            self.hbm.join()
            t_own = self.hbm.seconds_for(u.own_read_bytes, self.cap_hbm)
            self.hbm.leave()
            st.hbm_bytes += u.own_read_bytes
            yield env.timeout(setup + latency + (t_own if exposed else 0.0))
            if u.blocks:
                st.latency_s += c.fill_s
                yield env.timeout(c.fill_s)
                yield from loop(u)
            self.hbm.join()
            t_store = self.hbm.seconds_for(u.write_bytes, self.cap_hbm)
            self.hbm.leave()
            st.hbm_bytes += u.write_bytes
            yield env.timeout(self.epilogue_s + t_store)
            st.mma_s += u.blocks * c.mma_s
            st.softmax_s += u.blocks * c.softmax_s
            st.smem_s += u.blocks * c.smem_s
            st.units += 1
            st.busy_s += env.now - start
            if self.record:
                st.timeline.append((wid, u.key, start, env.now))

    def run(self) -> AttnStats:
        self.stats.workers = self.workers
        procs = [self.env.process(self._worker(w)) for w in range(self.workers)]
        self.env.run(simpy.AllOf(self.env, procs))
        self.stats.elapsed_s = self.env.now
        return self.stats


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def causal_blocks(q_start: int, q_rows: int, kv_len: int, kv_block: int) -> tuple[int, int]:
    """(blocks, diagonal blocks) a Q tile [q_start, q_start+q_rows) needs under a top-left causal
    mask (query i sees keys <= i, PyTorch ``is_causal``)."""
    last_key = min(kv_len, q_start + q_rows)          # keys [0, last_key) are seen by some row
    blocks = ceil_div(last_key, kv_block) if last_key > 0 else 0
    full = min(blocks, (q_start + 1) // kv_block)      # every row sees the whole block
    return blocks, blocks - full
