"""GEMM kernel model: pick a configuration like a library heuristic, simulate it, explain it.

``simulate_gemm`` ranks the feasible configurations with a closed-form estimate, simulates the
best few in ``fast`` fidelity at the maximum boost clock, keeps the fastest, then finds the clock
of the requested power state (engine/power.py: sustained or burst), a fixed point solved on an
activity extrapolated from the latest simulation and confirmed by re-simulating (memoized), and
finally simulates in the requested fidelity. Split-K adds a reduction kernel; every kernel pays
the launch overhead.
"""

from __future__ import annotations

import math
from dataclasses import replace

from blackwell_sim.config import GPUConfig, get_dtype, gpu_of
from blackwell_sim.engine.kernels.gemm_configs import (GemmProblem, TileConfig, candidates, fallback_key,
                                                      tensor_core_for, vector_bytes)
from blackwell_sim.engine.kernels.gemm_sim import GemmSimulation, SimStats
from blackwell_sim.engine.power import POWER_STATES, Activity, boost_clock_mhz, clock_mhz
from blackwell_sim.engine.result import KernelResult
from blackwell_sim.engine.tma import TMA
from blackwell_sim.errors import BlackwellSimError

SIMULATED_CANDIDATES = 3   # at most this many configurations are simulated after the ranking,
CANDIDATE_MARGIN = 0.10    # those whose closed-form estimate is within 10% of the best one
FIDELITIES = ("fast", "detailed")
CLOCK_TOLERANCE_MHZ = 1.0
BATCH_UNIT_BUDGET = 6000   # work units simulated event by event before a batch is extrapolated
EXTENSIVE_STATS = ("elapsed_s", "math_s", "l2_s", "hbm_s", "die_s", "latency_s", "epilogue_exposed_s",
                   "tmem_s", "smem_s", "hbm_bytes", "l2_bytes", "smem_bytes", "busy_s", "events")
POWER_ITERATIONS = 4       # power/clock fixed-point steps (converges in 2-3)
POWER_CLOCK_TOLERANCE_MHZ = 5.0  # fixed point reached: 0.3% of the clock, below the model's resolution
SURROGATE_ITERATIONS = 20  # fixed-point steps on the extrapolated activity (no simulation; 1-3 suffice)
SURROGATE_TOLERANCE_MHZ = 0.5


def make_problem(gpu: GPUConfig, m: int, n: int, k: int, dtype: str = "bf16", *, batch: int = 1,
                 sparse: bool = False, compressible: tuple[bool, bool] = (False, False),
                 density: tuple[float | None, float | None] = (None, None)) -> GemmProblem:
    try:
        dt = get_dtype(dtype)
    except KeyError as exc:
        raise BlackwellSimError(f"gemm: dtype: {exc.args[0]}") from None
    gpu.flops_per_clock_per_sm(dt.name, sparse)  # raises ConfigError if the GPU has no path
    from blackwell_sim.engine.l2_compression import CompressionUnit

    unit = CompressionUnit(gpu.l2_compression, gpu.sm.clock_mhz * 1e6)
    fa = unit.bytes_factor(compressible[0], density[0])
    fb = unit.bytes_factor(compressible[1], density[1])
    gain = max(unit.capacity_gain(compressible[0], density[0]), unit.capacity_gain(compressible[1], density[1]))
    out_bits = 32 if dt.math_class == "tf32" else 16
    vec = vector_bytes(m, n, k, dt.bits / 8, out_bits / 8) if dt.bits >= 8 else 16
    return GemmProblem(m, n, k, dt, batch, sparse, out_bits, fa, fb, gain, vec)


def estimate_s(gpu: GPUConfig, p: GemmProblem, cfg: TileConfig, clock_mhz: float) -> float:
    """Closed-form time used only to rank configurations: waves x (fill + max(math, L2 share, TMA
    in-flight cap)) against the HBM floor, plus the exposed epilogue and any split-K reduction."""
    clock_hz = clock_mhz * 1e6
    tc = tensor_core_for(gpu, p)
    units = math.ceil(p.m / cfg.tile_m) * math.ceil(p.n / cfg.tile_n) * p.batch * cfg.split_k
    workers = (gpu.sm.count // (cfg.sms_per_unit * cfg.cluster_m * cfg.cluster_n)) * cfg.cluster_m * cfg.cluster_n
    k_len = math.ceil(p.k / cfg.split_k)
    k_iters = math.ceil(k_len / cfg.tile_k)
    t_math = k_iters * cfg.kblock_cycles(tc) / clock_hz
    l2_unit = (cfg.tile_m / cfg.cluster_n * p.operand_bytes_per_element("a")
               + cfg.tile_n / cfg.cluster_m * p.operand_bytes_per_element("b")) * k_len
    concurrent = min(units, workers)
    t_l2 = l2_unit * concurrent / (gpu.l2.bandwidth_gbps * 1e9)
    waves = math.ceil(units / workers)
    unique = (p.m * p.k * p.operand_bytes_per_element("a") + p.k * p.n * p.operand_bytes_per_element("b")
              + p.m * p.n * p.out_bits / 8) * p.batch
    t_hbm = unique / (gpu.hbm.bandwidth_gbps * 1e9)
    # one SM's loads are capped by its TMA in-flight bytes over the round trip (Little's law), the
    # HBM round trip for the share of bytes that miss in L2 (as in the simulation's main loop)
    tma = TMA(gpu.tma, clock_hz)
    miss = min(1.0, unique / max(l2_unit * units, 1.0))
    t_tma = l2_unit * (miss / tma.rate_cap(tma.latency_s + gpu.hbm.latency_ns * 1e-9)
                       + (1 - miss) / tma.rate_cap(tma.latency_s)) / cfg.sms_per_unit
    # the first k-block of every wave waits a load's latency; the last tile's epilogue is never hidden
    t_fill = tma.latency_s + gpu.hbm.latency_ns * 1e-9
    t_epilogue = cfg.tile_m * cfg.tile_n * p.out_bits / 8 / (gpu.hbm.bandwidth_gbps * 1e9 / concurrent)
    epilogue = (1 if cfg.epilogue_overlap else waves) * t_epilogue
    reduction = 0.0 if cfg.split_k == 1 else (cfg.split_k + 1) * p.m * p.n * 4 * p.batch / (gpu.hbm.bandwidth_gbps * 1e9)
    return max(waves * (t_fill + max(t_math, t_l2, t_tma)), t_hbm) + epilogue + reduction


def _simulate(gpu, p, cfg, clock_mhz, fidelity, record=False) -> SimStats:
    """One simulation; a batch with more work units than ``BATCH_UNIT_BUDGET`` is simulated at two
    smaller batches b and 2b (both several waves deep) and extended linearly: once the GPU is full,
    every further batch entry adds the same steady-state time, bytes and events."""
    per_batch = math.ceil(p.m / cfg.tile_m) * math.ceil(p.n / cfg.tile_n) * cfg.split_k
    b1 = max(1, BATCH_UNIT_BUDGET // (2 * per_batch))
    if record or per_batch * p.batch <= BATCH_UNIT_BUDGET or 2 * b1 >= p.batch:
        return GemmSimulation(gpu, p, cfg, clock_mhz, fidelity, record).run()
    s1 = GemmSimulation(gpu, replace(p, batch=b1), cfg, clock_mhz, fidelity).run()
    s2 = GemmSimulation(gpu, replace(p, batch=2 * b1), cfg, clock_mhz, fidelity).run()
    scale = (p.batch - 2 * b1) / b1
    out = replace(s2)
    for name in EXTENSIVE_STATS:
        setattr(out, name, getattr(s2, name) + scale * (getattr(s2, name) - getattr(s1, name)))
    out.units = per_batch * p.batch
    out.extrapolated_from = (b1, 2 * b1)
    return out


def _reduction_s(gpu: GPUConfig, p: GemmProblem, cfg: TileConfig) -> float:
    """Split-K reduction kernel: read the fp32 partials, write C (memory-bound, plus a launch)."""
    if cfg.split_k == 1:
        return 0.0
    read = cfg.split_k * p.m * p.n * 4 * p.batch
    write = p.m * p.n * p.out_bits / 8 * p.batch
    return gpu.launch.overhead_us * 1e-6 + (read + write) / gpu.hbm.effective_bytes_per_s(read, write)


def choose_config(gpu: GPUConfig, p: GemmProblem, tile: str | None = None) -> list[TileConfig]:
    """Configurations to simulate, best estimate first (or the one named by ``tile``)."""
    cands = candidates(gpu, p)
    if tile is not None:
        named = [c for c in cands if c.name.startswith(tile) or f"{c.tile_m}x{c.tile_n}" == tile]
        if not named:
            names = sorted({f"{c.tile_m}x{c.tile_n}" for c in cands})
            raise BlackwellSimError(f"gemm: --tile {tile!r} is not a feasible configuration here; "
                                    f"feasible tiles: {', '.join(names)}")
        cands = named
    clock = gpu.sm.max_boost_clock_mhz
    ranked = sorted((estimate_s(gpu, p, c, clock), i, c) for i, c in enumerate(cands))
    best = ranked[0][0]
    return [c for est, _, c in ranked[:SIMULATED_CANDIDATES] if est <= best * (1 + CANDIDATE_MARGIN)]


_SELECTION_CACHE: dict = {}
_SELECTION_CACHE_SIZE = 256


def _select(gpu: GPUConfig, p: GemmProblem, tile: str | None) -> tuple[TileConfig, SimStats]:
    """The fastest configuration at max boost and its stats (memoized per GPU object and problem:
    the burst and sustained predictions of one call share it)."""
    key = (id(gpu), p, tile)
    hit = _SELECTION_CACHE.get(key)
    if hit is not None and hit[0] is gpu:
        return hit[1], hit[2]
    fmax = gpu.sm.max_boost_clock_mhz
    best = None
    for cfg in choose_config(gpu, p, tile):
        stats = _simulate_memo(gpu, p, cfg, fmax)
        total = stats.elapsed_s + _reduction_s(gpu, p, cfg)
        if best is None or total < best[0]:
            best = (total, cfg, stats)
    if len(_SELECTION_CACHE) >= _SELECTION_CACHE_SIZE:
        _SELECTION_CACHE.pop(next(iter(_SELECTION_CACHE)))
    _SELECTION_CACHE[key] = (gpu, best[1], best[2])
    return best[1], best[2]


def simulate_gemm(config, m: int, n: int, k: int, dtype: str = "bf16", *, batch: int = 1,
                  sparse: bool = False, fidelity: str = "fast", tile: str | None = None,
                  compressible: tuple[bool, bool] = (False, False),
                  density: tuple[float | None, float | None] = (None, None),
                  record_timeline: bool = False, power_state: str = "sustained",
                  clock_cap_mhz: float | None = None) -> KernelResult:
    """Simulate C[m,n] = A[m,k] @ B[k,n] (``batch`` times) on ``config``'s GPU.

    ``power_state`` picks the clock (engine/power.py): "sustained" under the power limit, or
    "burst", the boost clock of an isolated call before the power controller responds.
    ``clock_cap_mhz`` bounds that clock from outside: a clock the controller still holds from
    earlier work (``power.hold_clock_mhz``; harness.ClockHold).
    ``record_timeline`` fills ``details["timeline"]`` (worker, unit, start_s, end_s per tile) and
    ``details["lanes"]`` (worker, lane, start_s, end_s per step: SimStats.lanes), with times from
    the start of the main kernel (after ``details["launch_s"]``).
    """
    if fidelity not in FIDELITIES:
        raise BlackwellSimError(f"gemm: fidelity must be one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    if power_state not in POWER_STATES:
        raise BlackwellSimError(f"gemm: power_state must be one of {', '.join(POWER_STATES)}, "
                                f"got {power_state!r}")
    if clock_cap_mhz is not None and (isinstance(clock_cap_mhz, bool) or not isinstance(clock_cap_mhz, (int, float))
                                      or not clock_cap_mhz > 0):
        raise BlackwellSimError(f"gemm: clock_cap_mhz must be a positive number of MHz, got {clock_cap_mhz!r}")
    gpu = gpu_of(config)
    p = make_problem(gpu, m, n, k, dtype, batch=batch, sparse=sparse, compressible=compressible,
                     density=density)
    fmax = gpu.sm.max_boost_clock_mhz
    best_cfg, stats = _select(gpu, p, tile)
    clock = fmax
    # The clock that fits the power limit is a fixed point: power depends on the activity, which
    # depends on the clock. Each step solves it on a surrogate extrapolated from the latest
    # simulation (its tensor-busy time scales with 1/clock, the rest stays) and re-simulates at
    # the surrogate's answer, until a simulation confirms its own clock.
    share = _tensor_share(stats)
    for _ in range(POWER_ITERATIONS):
        new_clock = _surrogate_clock(gpu, p, stats, clock, share, power_state)
        if clock_cap_mhz is not None:
            new_clock = min(new_clock, clock_cap_mhz)
        if abs(new_clock - clock) <= POWER_CLOCK_TOLERANCE_MHZ:
            break
        new_stats = _simulate_memo(gpu, p, best_cfg, new_clock)
        share = _secant_share(clock, stats.elapsed_s, new_clock, new_stats.elapsed_s, share)
        clock, stats = new_clock, new_stats
    if fidelity != "fast" or record_timeline:
        stats = _simulate(gpu, p, best_cfg, clock, fidelity, record_timeline)
    result = _result(gpu, p, best_cfg, stats, clock, fidelity)
    result.details["power_state"] = power_state
    return result


def _tensor_share(st: SimStats) -> float:
    """First guess of the share of a run's time that scales with 1/clock: tensor-pipe busy time."""
    return min(1.0, st.math_s / (st.workers * st.elapsed_s)) if st.elapsed_s else 0.0


def _secant_share(clock_a: float, elapsed_a: float, clock_b: float, elapsed_b: float,
                  fallback: float) -> float:
    """The share of ``elapsed_b`` that scales with 1/clock, from runs at two clocks
    (elapsed = fixed + scaling / clock)."""
    if abs(clock_a - clock_b) < SURROGATE_TOLERANCE_MHZ or elapsed_b <= 0:
        return fallback
    scaling = (elapsed_a - elapsed_b) / (1.0 / clock_a - 1.0 / clock_b)
    return min(1.0, max(0.0, scaling / clock_b / elapsed_b))


def _activity(p: GemmProblem, st: SimStats, sim_clock: float, clock: float, share: float,
              capped: bool = True) -> Activity:
    """The activity at ``clock`` extrapolated from a simulation at ``sim_clock``: ``share`` of its
    time scales with 1/clock (tensor pipes, latencies counted in cycles), the rest does not."""
    if not st.elapsed_s:
        return Activity(clock, 0.0, p.flops, p.dtype.math_class, 0.0, st.hbm_bytes, st.l2_bytes, capped)
    busy = st.busy_s / (st.workers * st.elapsed_s)
    elapsed = st.elapsed_s * ((1.0 - share) + share * sim_clock / clock)
    return Activity(clock, elapsed, p.flops, p.dtype.math_class, busy, st.hbm_bytes, st.l2_bytes, capped)


def _activity_capped(gpu: GPUConfig, p: GemmProblem) -> bool:
    """Whether the math class's tensor-activity clock cap binds (wgmma/tcgen05 kernels do; the
    sm80 fallback kernels for misaligned strides do not: engine/power.py)."""
    return fallback_key(p, gpu) is None


def _surrogate_clock(gpu: GPUConfig, p: GemmProblem, st: SimStats, sim_clock: float, share: float,
                     power_state: str) -> float:
    """The power state's clock, solved on the activity extrapolated from one simulation."""
    clock, capped = sim_clock, _activity_capped(gpu, p)
    for _ in range(SURROGATE_ITERATIONS):
        new_clock = clock_mhz(gpu, _activity(p, st, sim_clock, clock, share, capped), power_state)
        if abs(new_clock - clock) <= SURROGATE_TOLERANCE_MHZ:
            return new_clock
        clock = new_clock
    return clock


_SIMULATION_CACHE: dict = {}


def clear_caches() -> None:
    """Forget memoized selections and simulations (for tests that patch module parameters)."""
    _SELECTION_CACHE.clear()
    _SIMULATION_CACHE.clear()


def _simulate_memo(gpu: GPUConfig, p: GemmProblem, cfg: TileConfig, clock: float) -> SimStats:
    """A fast-fidelity simulation, memoized per GPU object (the burst and sustained predictions
    often settle on the same clock, the tensor-activity cap). Callers must not mutate it."""
    key = (id(gpu), p, cfg, round(clock, 6))
    hit = _SIMULATION_CACHE.get(key)
    if hit is not None and hit[0] is gpu:
        return hit[1]
    stats = _simulate(gpu, p, cfg, clock, "fast")
    if len(_SIMULATION_CACHE) >= _SELECTION_CACHE_SIZE:
        _SIMULATION_CACHE.pop(next(iter(_SIMULATION_CACHE)))
    _SIMULATION_CACHE[key] = (gpu, stats)
    return stats


def _result(gpu: GPUConfig, p: GemmProblem, cfg: TileConfig, st: SimStats, clock: float,
            fidelity: str) -> KernelResult:
    launch_s = gpu.launch.overhead_us * 1e-6
    reduction_s = _reduction_s(gpu, p, cfg)
    total = launch_s + st.elapsed_s + reduction_s
    peak = gpu.peak_tflops(p.dtype.name, p.sparse)
    tflops = p.flops / total / 1e12
    tc = tensor_core_for(gpu, p)
    rows = cfg.tile_m // cfg.sms_per_unit
    ideal_kblock = 2 * rows * cfg.tile_n * cfg.tile_k / tc.flops_per_clock
    computed = (math.ceil(p.m / cfg.tile_m) * cfg.tile_m * math.ceil(p.n / cfg.tile_n) * cfg.tile_n
                * math.ceil(math.ceil(p.k / cfg.split_k) / cfg.tile_k) * cfg.tile_k * cfg.split_k * 2 * p.batch)
    waves = math.ceil(st.units / st.workers)
    occupancy = st.math_s / (st.workers * st.elapsed_s) if st.elapsed_s else 0.0
    wave_eff = st.units / (waves * st.workers)
    efficiency = {
        "clock": clock / gpu.sm.clock_mhz,
        "mma_pipe": ideal_kblock / cfg.kblock_cycles(tc),
        "tile_padding": p.flops / computed,
        "idle_sms": st.workers * cfg.sms_per_unit / gpu.sm.count,
        "wave_quantization": wave_eff,
        "stalls": occupancy / wave_eff if wave_eff else 0.0,
        "launch_and_reduction": st.elapsed_s / total,
    }
    components = {"compute": st.math_s, "l2": st.l2_s, "hbm": st.hbm_s, "die_link": st.die_s,
                  "latency": st.latency_s + st.epilogue_exposed_s, "tmem": st.tmem_s, "smem": st.smem_s}
    bound = max(components, key=components.get)
    if (launch_s + reduction_s) > st.elapsed_s:
        bound = "launch"
    elif bound == "compute" and clock < boost_clock_mhz(
            gpu, p.dtype.math_class if _activity_capped(gpu, p) else None) - CLOCK_TOLERANCE_MHZ:
        bound = "power"
    return KernelResult(
        kernel=f"gemm {p.m}x{p.n}x{p.k}" + (f" batch {p.batch}" if p.batch > 1 else "")
        + f" {p.dtype.name}" + (" 2:4-sparse" if p.sparse else ""),
        time_s=total, cycles=total * clock * 1e6, clock_mhz=clock, flops=p.flops, tflops=tflops,
        peak_tflops=peak, percent_of_peak=100 * tflops / peak, bound=bound, tile=cfg.name,
        bytes={"smem": st.smem_bytes, "l2": st.l2_bytes, "hbm": st.hbm_bytes},
        bandwidth_gbps={"l2": st.l2_bytes / total / 1e9, "hbm": st.hbm_bytes / total / 1e9},
        utilization={"tensor": occupancy * st.elapsed_s / total,
                     "sms": st.busy_s / (st.workers * st.elapsed_s) if st.elapsed_s else 0.0,
                     "hbm": st.hbm_bytes / total / (gpu.hbm.bandwidth_gbps * 1e9),
                     "l2": st.l2_bytes / total / (gpu.l2.bandwidth_gbps * 1e9)},
        efficiency=efficiency,
        details={"fidelity": fidelity, "waves": waves, "units": st.units, "workers": st.workers,
                 "stages": cfg.stages, "split_k": cfg.split_k, "raster": cfg.raster,
                 "swizzle": cfg.swizzle, "epilogue_overlap": cfg.epilogue_overlap,
                 "l2_hit_rate": st.l2_hit_rate, "events": round(st.events),
                 "batch_extrapolated_from": st.extrapolated_from, "launch_s": launch_s,
                 "reduction_s": reduction_s, "time_components_s": components,
                 "timeline": st.timeline if st.timeline else None,
                 "lanes": st.lanes if st.lanes else None},
    )
