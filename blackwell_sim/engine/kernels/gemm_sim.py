"""The discrete-event simulation of one GEMM kernel configuration on one GPU.

Workers (an SM, or an SM pair for 2-SM MMA) pull work units (output tiles, or K-splits of them)
in raster order, like a persistent tile scheduler. Per unit: the A and B panels are looked up in
the L2 panel cache (hits come from L2, misses from HBM), the main loop overlaps TMA loads with
MMAs, then the epilogue drains the accumulator (TMEM or registers) and stores C. The epilogue
overlaps the next unit's main loop when the kernel double-buffers its accumulator.

``fast`` fidelity times a unit's main loop in closed form (pipelined: fill latency, then the slower
of math and memory per k-block, then drain); ``detailed`` runs one event per k-block with a
producer (TMA) and a consumer (MMA) sharing ``stages`` SMEM slots. Link shares are evaluated at
each event, so contention is resolved at unit or k-block granularity respectively.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import simpy

from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.engine.die_link import CROSS_DIE_FRACTION, DieLink
from blackwell_sim.engine.hbm import HBM
from blackwell_sim.engine.kernels.gemm_configs import GemmProblem, TileConfig, tensor_core_for, tile_order
from blackwell_sim.engine.l2 import L2
from blackwell_sim.engine.sm import SMArray
from blackwell_sim.engine.smem import smem_cycles
from blackwell_sim.engine.tma import TMA
from blackwell_sim.engine.tmem import TMEM

ACCUMULATOR_BITS = 32  # fp32 partial sums (split-K workspace)
L2_SEGMENT_KBLOCKS = 16  # cache-model granularity along K: k-blocks per panel segment
#: A simulation with more segment events than this uses bigger segments (down to this many per
#: unit, as long as the running units' segments fit in L2 together), bounding its cost.
SEGMENT_EVENT_BUDGET = 20_000
MIN_SEGMENTS_PER_UNIT = 4
#: Segments per unit below which a K loop is cut finer than L2_SEGMENT_KBLOCKS (budget allowing).
MIN_PRICED_SEGMENTS_PER_UNIT = 8


@dataclass
class SimStats:
    """Raw outcome of one simulated configuration (times in seconds)."""

    elapsed_s: float = 0.0
    math_s: float = 0.0          #: summed over units
    l2_s: float = 0.0
    hbm_s: float = 0.0
    die_s: float = 0.0
    latency_s: float = 0.0
    epilogue_exposed_s: float = 0.0
    tmem_s: float = 0.0
    smem_s: float = 0.0
    units: int = 0
    workers: int = 0
    hbm_bytes: float = 0.0
    l2_bytes: float = 0.0
    smem_bytes: float = 0.0
    l2_hit_rate: float = 0.0
    busy_s: float = 0.0          #: worker-seconds with a unit in flight
    events: int = 0
    timeline: list = field(default_factory=list)  #: (worker, unit, start_s, end_s) per unit, if recorded
    #: (worker, lane, start_s, end_s) per timed step, if recorded; lanes: "setup", "load" (a TMA
    #: load from the start of its transfer to its arrival in SMEM), "mma" (one k-block, detailed),
    #: "mainloop" (one K segment, fast), "epilogue" (accumulator -> SMEM), "store" (C -> memory)
    lanes: list = field(default_factory=list)
    extrapolated_from: tuple[int, int] | None = None  #: batches simulated when a batch was extended


class GemmSimulation:
    """One configuration of one problem on one GPU at one clock."""

    def __init__(self, gpu: GPUConfig, problem: GemmProblem, cfg: TileConfig, clock_mhz: float,
                 fidelity: str = "fast", record: bool = False) -> None:
        self.gpu, self.p, self.cfg, self.fidelity, self.record = gpu, problem, cfg, fidelity, record
        self.clock_hz = clock_mhz * 1e6
        self.env = simpy.Environment()
        self.hbm = HBM(gpu.hbm)
        self.l2 = L2(gpu.l2, self.clock_hz, capacity_gain=problem.capacity_gain)
        self.die = DieLink(gpu.die_link) if gpu.die_link is not None else None
        self.sms = SMArray(gpu.sm)
        self.tc = tensor_core_for(gpu, problem)
        self.tma = TMA(gpu.tma, self.clock_hz)
        self.tmem = TMEM(gpu.tmem) if gpu.tmem is not None else None
        self.stats = SimStats()
        self.order = tile_order(problem, cfg)
        self.next_unit = 0
        self.rows_per_sm = cfg.tile_m // cfg.sms_per_unit
        self.m_tiles, self.n_tiles = math.ceil(problem.m / cfg.tile_m), math.ceil(problem.n / cfg.tile_n)
        self.k_len = math.ceil(problem.k / cfg.split_k)
        self.k_iters = math.ceil(self.k_len / cfg.tile_k)
        self.kblock_s = cfg.kblock_cycles(self.tc) / self.clock_hz
        inflight_latency_l2 = self.tma.latency_s
        inflight_latency_hbm = self.tma.latency_s + self.hbm.latency_s
        #: a k-block's load latency: TMA issue plus the L2 hit or the HBM round trip
        self.latency_l2_s = self.tma.latency_s + self.l2.hit_latency_s
        self.latency_hbm_s = self.tma.latency_s + self.hbm.latency_s
        self.cap_l2 = self.tma.rate_cap(inflight_latency_l2) * cfg.sms_per_unit
        self.cap_hbm = self.tma.rate_cap(inflight_latency_hbm) * cfg.sms_per_unit
        self.out_bits = ACCUMULATOR_BITS if cfg.split_k > 1 else problem.out_bits

    # -- per-unit quantities ------------------------------------------------------------------
    def _unit_shape(self, b: int, i: int, j: int, s: int) -> tuple[int, int, int]:
        p, cfg = self.p, self.cfg
        rows = min(cfg.tile_m, p.m - i * cfg.tile_m)
        cols = min(cfg.tile_n, p.n - j * cfg.tile_n)
        k_len = max(0, min(self.k_len, p.k - s * self.k_len))
        return rows, cols, k_len

    def _segments(self, unit, rows: int, cols: int, k_len: int):
        """Yield (k-blocks, L2->SM bytes, HBM bytes) per K segment, consulting the panel cache.

        The cache works on segments of ``L2_SEGMENT_KBLOCKS`` k-blocks of a panel, looked up as the
        main loop reaches them, so CTAs that walk K together share what they read."""
        p, cfg = self.p, self.cfg
        b, i, j, s = unit
        eb_a = p.operand_bytes_per_element("a") * p.a_bytes_factor
        eb_b = p.operand_bytes_per_element("b") * p.b_bytes_factor
        kblocks_total = max(1, math.ceil(k_len / cfg.tile_k))
        segments_per_unit = SEGMENT_EVENT_BUDGET // max(1, len(self.order))
        # a segment's transfer is priced at the link shares when it starts: with few, long
        # segments the price goes stale as other units come and go, so cut short loops finer
        seg_kblocks = min(L2_SEGMENT_KBLOCKS, max(1, math.ceil(
            kblocks_total / min(MIN_PRICED_SEGMENTS_PER_UNIT, max(1, segments_per_unit)))))
        if math.ceil(kblocks_total / L2_SEGMENT_KBLOCKS) > segments_per_unit:
            # too many events: bigger segments, as long as the running units' segments fit in L2
            fit = self.l2.cache.capacity_bytes / max(1, self.stats.workers) / (
                (rows * eb_a + cols * eb_b) * cfg.tile_k)
            wanted = math.ceil(kblocks_total / max(MIN_SEGMENTS_PER_UNIT, segments_per_unit))
            seg_kblocks = max(L2_SEGMENT_KBLOCKS, min(wanted, int(fit)))
        seg_k = seg_kblocks * cfg.tile_k
        # a multicast operand is loaded in equal shares by the cluster's CTAs that have a tile
        # (a cluster over the problem's edge has fewer)
        a_peers = min(cfg.cluster_n, self.n_tiles - j // cfg.cluster_n * cfg.cluster_n)
        b_peers = min(cfg.cluster_m, self.m_tiles - i // cfg.cluster_m * cfg.cluster_m)
        for seg in range(max(1, math.ceil(k_len / seg_k))):
            kk = min(seg_k, k_len - seg * seg_k)
            a_bytes, b_bytes = rows * kk * eb_a, cols * kk * eb_b
            hbm = 0.0
            if not self.l2.cache.access(("A", b, i, s, seg), a_bytes):
                hbm += a_bytes
            if not self.l2.cache.access(("B", b, j, s, seg), b_bytes):
                hbm += b_bytes
            self.stats.smem_bytes += a_bytes + b_bytes
            yield (math.ceil(kk / cfg.tile_k), a_bytes / a_peers + b_bytes / b_peers, hbm)

    def _epilogue_local_s(self) -> float:
        """Accumulator drain + SMEM staging of one tile on one SM (before the TMA store)."""
        rows, cols = self.rows_per_sm, self.cfg.tile_n
        smem = smem_cycles(self.gpu.smem, rows * cols * self.out_bits / 8)
        drain = self.tmem.drain_cycles(rows, cols) if self.tmem is not None else 0.0
        self.stats.tmem_s += drain / self.clock_hz
        self.stats.smem_s += smem / self.clock_hz
        return (drain + smem) / self.clock_hz

    # -- processes ----------------------------------------------------------------------------
    def _take(self):
        if self.next_unit >= len(self.order):
            return None
        unit = self.order[self.next_unit]
        self.next_unit += 1
        return unit

    def _join(self, hbm_bytes: float) -> None:
        """A segment's loads start sharing the links (SharedLink.join, per segment: hot path)."""
        self.l2.active += 1
        if hbm_bytes:
            self.hbm.active += 1
        if self.die is not None:
            self.die.active += 1

    def _leave(self, hbm_bytes: float) -> None:
        """... and stop (SharedLink.leave without its misuse check: every leave follows a join)."""
        self.l2.active -= 1
        if hbm_bytes:
            self.hbm.active -= 1
        if self.die is not None:
            self.die.active -= 1

    def _transfer_s(self, l2_bytes: float, hbm_bytes: float) -> float:
        """Time to move one segment's bytes at the current link shares (accounts the bytes).

        The engine's hot path: SharedLink.seconds_for's arithmetic (share = bandwidth / active
        users, capped by the TMA in-flight rate), written out to spare its nested calls."""
        st, l2, hbm, die = self.stats, self.l2, self.hbm, self.die
        t_l2 = t_hbm = t_die = 0.0
        if l2_bytes > 0:
            l2.bytes_moved += l2_bytes
            t_l2 = l2_bytes / min(self.cap_l2, l2.bytes_per_s / max(l2.active, 1))
        if hbm_bytes > 0:
            hbm.bytes_moved += hbm_bytes
            t_hbm = hbm_bytes / min(self.cap_hbm, hbm.bytes_per_s / max(hbm.active, 1))
        if die is not None and l2_bytes > 0:
            cross = l2_bytes * CROSS_DIE_FRACTION
            die.bytes_moved += cross
            t_die = cross / (die.bytes_per_s / max(die.active, 1))
        st.l2_s += t_l2
        st.hbm_s += t_hbm
        st.die_s += t_die
        st.l2_bytes += l2_bytes
        st.hbm_bytes += hbm_bytes
        return max(t_l2, t_hbm, t_die)

    def _lane(self, wid: int, lane: str, start_s: float, end_s: float) -> None:
        if self.record:
            self.stats.lanes.append((wid, lane, start_s, end_s))

    def _mainloop_fast(self, wid, unit, rows, cols, k_len):
        """Closed form per segment: fill latency once, then max(math, memory), then drain."""
        env, st = self.env, self.stats
        first = True
        last_kblock = 0.0
        for kblocks, l2_bytes, hbm_bytes in self._segments(unit, rows, cols, k_len):
            self._join(hbm_bytes)
            t_mem = self._transfer_s(l2_bytes, hbm_bytes)
            latency = self.latency_hbm_s if hbm_bytes else self.latency_l2_s
            # ``stages`` loads in flight, each taking latency + its transfer: the pipeline's own limit.
            t_mem = max(t_mem, kblocks * (latency + t_mem / kblocks) / self.cfg.stages)
            t_math = kblocks * self.kblock_s
            st.math_s += t_math
            t = max(t_math, t_mem)
            if first:
                st.latency_s += latency
                t += latency
                first = False
            last_kblock = min(t_math, t_mem) / kblocks
            st.events += 1
            if self.record:
                st.lanes.append((wid, "mainloop", env.now, env.now + t))
            yield env.timeout(t)
            self._leave(hbm_bytes)
        st.latency_s += last_kblock
        yield env.timeout(last_kblock)

    def _mainloop_detailed(self, wid, unit, rows, cols, k_len):
        """One event per k-block: a TMA producer and an MMA consumer sharing ``stages`` slots."""
        env, st = self.env, self.stats
        empty = simpy.Container(env, capacity=self.cfg.stages, init=self.cfg.stages)
        full = simpy.Container(env, capacity=self.cfg.stages, init=0)
        n = max(1, math.ceil(k_len / self.cfg.tile_k))

        def deliver(at):
            yield env.timeout(at - env.now)
            yield full.put(1)

        def producer():
            # Segments are looked up in the L2 cache as the producer reaches them, as in fast mode.
            # A unit's TMA loads move one after another; each is priced at the link shares of the
            # moment it starts (not when it was queued), and lands ``latency`` after it has moved.
            for kblocks, l2_bytes, hbm_bytes in self._segments(unit, rows, cols, k_len):
                latency = self.latency_hbm_s if hbm_bytes else self.latency_l2_s
                self._join(hbm_bytes)
                for _ in range(kblocks):
                    yield empty.get(1)
                    issued = env.now
                    yield env.timeout(self._transfer_s(l2_bytes / kblocks, hbm_bytes / kblocks))
                    if self.record:
                        st.lanes.append((wid, "load", issued, env.now + latency))
                    env.process(deliver(env.now + latency))
                    st.events += 3
                self._leave(hbm_bytes)

        def consumer():
            for _ in range(n):
                yield full.get(1)
                if self.record:
                    st.lanes.append((wid, "mma", env.now, env.now + self.kblock_s))
                yield env.timeout(self.kblock_s)
                st.math_s += self.kblock_s
                yield empty.put(1)
                st.events += 2

        start = env.now
        env.process(producer())
        yield env.process(consumer())
        st.latency_s += max(0.0, (env.now - start) - n * self.kblock_s)

    def _store(self, wid: int, out_bytes: float):
        self.hbm.join()
        t = self.hbm.seconds_for(out_bytes)
        self._lane(wid, "store", self.env.now, self.env.now + t)
        yield self.env.timeout(t)
        self.hbm.leave()

    def _worker(self, wid: int):
        env, st, cfg = self.env, self.stats, self.cfg
        setup_s = self.gpu.launch.cta_setup_cycles / self.clock_hz
        self._lane(wid, "setup", env.now, env.now + setup_s)
        yield env.timeout(setup_s)
        main = self._mainloop_fast if self.fidelity == "fast" else self._mainloop_detailed
        pending_epilogue = None
        while (unit := self._take()) is not None:
            start = env.now
            rows, cols, k_len = self._unit_shape(*unit)
            yield from main(wid, unit, rows, cols, k_len)
            out_bytes = rows * cols * self.out_bits / 8
            st.hbm_bytes += out_bytes
            local = self._epilogue_local_s()
            if cfg.epilogue_overlap:
                if pending_epilogue is not None and not pending_epilogue.triggered:
                    wait_start = env.now
                    yield pending_epilogue
                    st.epilogue_exposed_s += env.now - wait_start
                pending_epilogue = env.process(self._epilogue_async(wid, local, out_bytes))
            else:
                t0 = env.now
                self._lane(wid, "epilogue", env.now, env.now + local)
                yield env.timeout(local)
                yield from self._store(wid, out_bytes)
                st.epilogue_exposed_s += env.now - t0
            st.units += 1
            st.busy_s += env.now - start
            if self.record:
                st.timeline.append((wid, unit, start, env.now))
        if pending_epilogue is not None and not pending_epilogue.triggered:
            yield pending_epilogue

    def _epilogue_async(self, wid: int, local_s: float, out_bytes: float):
        self._lane(wid, "epilogue", self.env.now, self.env.now + local_s)
        yield self.env.timeout(local_s)
        yield self.env.process(self._store(wid, out_bytes))

    def run(self) -> SimStats:
        workers = self.sms.workers(self.cfg.sms_per_unit, self.cfg.cluster_m * self.cfg.cluster_n)
        workers = max(1, min(workers, len(self.order)))
        self.stats.workers = workers
        procs = [self.env.process(self._worker(w)) for w in range(workers)]
        self.env.run(simpy.AllOf(self.env, procs))
        self.stats.elapsed_s = self.env.now
        self.stats.l2_hit_rate = self.l2.cache.hit_rate
        return self.stats
