"""The GEMM model's mechanisms, each pinned by a behaviour that could fail (not by tuned numbers)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from blackwell_sim import BlackwellSimError, load_config
from blackwell_sim.engine.kernels.gemm import make_problem, simulate_gemm
from blackwell_sim.engine.kernels.gemm_configs import candidates
from blackwell_sim.engine.kernels.gemm_sim import GemmSimulation


def test_more_hbm_bandwidth_speeds_skinny_but_not_square(h100):
    fast_hbm = load_config("h100-sxm", overrides={"hbm.bandwidth_gbps": 6700})
    skinny = simulate_gemm(h100, 16, 8192, 8192).time_s / simulate_gemm(fast_hbm, 16, 8192, 8192).time_s
    square = simulate_gemm(h100, 8192, 8192, 8192).time_s / simulate_gemm(fast_hbm, 8192, 8192, 8192).time_s
    assert skinny > 1.3
    assert square == pytest.approx(1.0, abs=0.03)


def test_halving_tmem_removes_double_buffered_wide_tiles(b200):
    half = load_config("b200", overrides={"tmem.size_bytes": 128 * 1024})
    p_full = make_problem(b200, 8192, 8192, 8192, "bf16")
    p_half = make_problem(half, 8192, 8192, 8192, "bf16")
    wide_full = {c.epilogue_overlap for c in candidates(b200, p_full) if c.tile_n == 256}
    wide_half = {c.epilogue_overlap for c in candidates(half, p_half) if c.tile_n == 256}
    assert wide_full == {True} and wide_half == {False}
    assert simulate_gemm(half, 8192, 8192, 8192).time_s >= simulate_gemm(b200, 8192, 8192, 8192).time_s


def test_too_little_tmem_is_rejected_not_missimulated(b200):
    tiny = load_config("b200", overrides={"tmem.size_bytes": 8 * 1024, "tmem.alloc_min_columns": 16})
    with pytest.raises(BlackwellSimError, match="no kernel configuration fits"):
        simulate_gemm(tiny, 4096, 4096, 4096)


def test_more_sms_than_tiles_leaves_sms_idle(b200):
    base = simulate_gemm(b200, 512, 512, 16384)
    doubled = simulate_gemm(load_config("b200", overrides={"sm.count": 296}), 512, 512, 16384)
    assert base.details["units"] < b200.sm.count
    assert doubled.utilization["sms"] <= base.utilization["sms"] + 1e-9
    assert doubled.time_s == pytest.approx(base.time_s, rel=0.05)


def test_wave_quantization_is_reported(h100):
    r = simulate_gemm(h100, 128 * 133, 256, 4096, tile="128x256")  # 133 tiles on 132 SMs: 2 waves
    assert r.details["waves"] == 2 and r.efficiency["wave_quantization"] == pytest.approx(133 / 264)


def test_swizzled_raster_order_raises_l2_hit_rate(h100):
    p = make_problem(h100, 16384, 16384, 4096, "bf16")
    cfg = next(c for c in candidates(h100, p) if c.tile_m == 128 and c.tile_n == 256 and c.cluster_m == 1)
    plain = GemmSimulation(h100, p, dataclasses.replace(cfg, swizzle=1, raster="n"), 1500).run()
    swizzled = GemmSimulation(h100, p, dataclasses.replace(cfg, swizzle=8, raster="n"), 1500).run()
    assert swizzled.l2_hit_rate > plain.l2_hit_rate
    assert swizzled.hbm_bytes < plain.hbm_bytes


@pytest.mark.parametrize("shape,dtype", [((4096, 4096, 4096), "bf16"), ((2048, 8192, 1024), "fp8"),
                                         ((8192, 2048, 8192), "tf32"), ((64, 8192, 8192), "bf16")])
def test_fast_and_detailed_agree(h100, shape, dtype):
    fast = simulate_gemm(h100, *shape, dtype, fidelity="fast")
    detailed = simulate_gemm(h100, *shape, dtype, fidelity="detailed")
    assert detailed.tile == fast.tile
    assert detailed.time_s == pytest.approx(fast.time_s, rel=0.03)
    assert detailed.details["events"] > fast.details["events"]


def test_ceilings_match_preset_peaks(h100, b200):
    for cfg, fmt in ((h100, "bf16"), (b200, "bf16"), (b200, "nvfp4"), (h100, "fp8")):
        r = simulate_gemm(cfg, 8192, 8192, 8192, fmt)
        assert r.peak_tflops == pytest.approx(cfg.peak_tflops(fmt))
        assert 0 < r.tflops < r.peak_tflops * cfg.sm.max_boost_clock_mhz / cfg.sm.clock_mhz


def test_b200_square_bf16_is_below_peak_for_named_reasons(b200):
    r = simulate_gemm(b200, 8192, 8192, 8192, "bf16")
    assert r.percent_of_peak < 85
    assert r.bound == "power" and r.efficiency["clock"] < 1.0
    product = 1.0
    for value in r.efficiency.values():
        product *= value
    assert product == pytest.approx(r.percent_of_peak / 100, rel=0.02)


def test_random_data_runs_slower_than_zeros(h100):
    zeros = load_config("h100-sxm", overrides={"power.data_activity": 0.5})
    rnd, zer = simulate_gemm(h100, 8192, 8192, 8192), simulate_gemm(zeros, 8192, 8192, 8192)
    assert zer.clock_mhz > rnd.clock_mhz and zer.time_s < rnd.time_s


def test_power_limit_sets_the_clock(h100):
    generous = load_config("h100-sxm", overrides={"power.limit_w": 5000})
    cap = h100.power.activity_clock_cap_mhz["bf16"]
    assert simulate_gemm(generous, 8192, 8192, 8192).clock_mhz == cap
    uncapped = load_config("h100-sxm", overrides={"power.limit_w": 5000, "power.activity_clock_cap_mhz": {}})
    assert simulate_gemm(uncapped, 8192, 8192, 8192).clock_mhz == h100.sm.max_boost_clock_mhz
    assert simulate_gemm(h100, 8192, 8192, 8192).clock_mhz < cap


def test_burst_runs_faster_than_sustained_only_through_the_short_term_limit(h100):
    burst = simulate_gemm(h100, 8192, 8192, 8192, power_state="burst")
    sustained = simulate_gemm(h100, 8192, 8192, 8192, power_state="sustained")
    assert sustained.clock_mhz < burst.clock_mhz <= h100.power.activity_clock_cap_mhz["bf16"]
    assert burst.time_s < sustained.time_s
    same = load_config("h100-sxm", overrides={"power.burst_limit_w": h100.power.limit_w})
    assert simulate_gemm(same, 8192, 8192, 8192, power_state="burst").clock_mhz == sustained.clock_mhz


def test_misaligned_leading_dimension_falls_back_to_the_slower_sm80_kernel(h100):
    aligned = simulate_gemm(h100, 4096, 4096, 4096, power_state="burst")
    odd_k = simulate_gemm(h100, 4096, 4096, 4095, power_state="burst")   # 8190-byte rows: 2-byte vectors
    assert "fallback-vec2b" in odd_k.tile and "fallback" not in aligned.tile
    assert odd_k.time_s > 3 * aligned.time_s
    # the wgmma activity cap does not bind the mma.sync fallback kernels (1980 MHz alone, NVML)
    assert aligned.clock_mhz <= h100.power.activity_clock_cap_mhz["bf16"] < odd_k.clock_mhz
    four_byte = simulate_gemm(h100, 2500, 4500, 3500, power_state="burst")  # 7000/9000-byte rows
    assert "fallback-vec4b" in four_byte.tile
    odd_m = simulate_gemm(h100, 4095, 4096, 4096, power_state="burst")   # M is no leading dimension
    assert "fallback" not in odd_m.tile


def test_hopper_tile_menu_avoids_wave_quantization(h100):
    r = simulate_gemm(h100, 3072, 3072, 3072, power_state="burst")
    forced = simulate_gemm(h100, 3072, 3072, 3072, power_state="burst", tile="128x256")
    assert forced.efficiency["wave_quantization"] < 0.75   # 288 tiles on 132 SMs: 3 waves
    assert r.efficiency["wave_quantization"] > 0.9 and r.time_s < forced.time_s


def test_sparse_potential_is_at_most_2x(h100):
    dense = simulate_gemm(h100, 8192, 8192, 8192, "bf16")
    sparse = simulate_gemm(h100, 8192, 8192, 8192, "bf16", sparse=True)
    assert dense.time_s / sparse.time_s < 2.0
    assert sparse.peak_tflops == pytest.approx(2 * dense.peak_tflops)


def test_blackwell_fp4_faster_than_fp8_faster_than_bf16(b200):
    times = [simulate_gemm(b200, 8192, 8192, 8192, dt).time_s for dt in ("bf16", "fp8", "nvfp4")]
    assert times[0] > times[1] > times[2]


def test_batched_gemm_counts_flops(h100):
    one = simulate_gemm(h100, 1024, 1024, 1024)
    eight = simulate_gemm(h100, 1024, 1024, 1024, batch=8)
    assert eight.flops == 8 * one.flops and eight.time_s > one.time_s


def test_deterministic(h100):
    a = simulate_gemm(h100, 3000, 5000, 700, "fp8").to_dict()
    b = simulate_gemm(h100, 3000, 5000, 700, "fp8").to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("kwargs,message", [
    (dict(m=0, n=1, k=1), "m must be a positive integer"),
    (dict(m=1, n=1, k=1, dtype="fp5"), "unknown dtype 'fp5'"),
    (dict(m=1, n=1, k=1, fidelity="slow"), "fidelity must be one of"),
    (dict(m=64, n=64, k=64, tile="999x999"), "not a feasible configuration"),
])
def test_bad_gemm_input(h100, kwargs, message):
    with pytest.raises(BlackwellSimError, match=message):
        simulate_gemm(h100, **kwargs)


def test_hopper_rejects_fp4(h100):
    with pytest.raises(BlackwellSimError, match="no tensor-core path for nvfp4"):
        simulate_gemm(h100, 128, 128, 128, "nvfp4")


def test_hopper_tf32_runs_on_the_non_persistent_xmma_kernels(h100):
    r = simulate_gemm(h100, 8192, 8192, 8192, "tf32")
    assert "xmma" in r.tile and not r.details["epilogue_overlap"]


def test_more_energy_per_flop_means_a_lower_sustained_clock(h100):
    bf16 = simulate_gemm(h100, 8192, 8192, 8192, "bf16")
    fp16 = simulate_gemm(h100, 8192, 8192, 8192, "fp16")   # 11-bit mantissas: more pJ per FLOP
    assert h100.power.tensor_pj_per_flop["fp16"] > h100.power.tensor_pj_per_flop["bf16"]
    assert fp16.clock_mhz < bf16.clock_mhz and fp16.time_s > bf16.time_s


@pytest.mark.parametrize("preset,dtype", [("b200", "nvfp4"), ("b200", "bf16"), ("h100-sxm", "bf16")])
def test_power_limited_clock_is_a_fixed_point_within_the_limit(preset, dtype):
    from blackwell_sim.engine.kernels.gemm import _activity, _simulate, make_problem
    from blackwell_sim.engine.kernels.gemm_configs import candidates
    from blackwell_sim.engine.power import power_w

    gpu = load_config(preset)
    r = simulate_gemm(gpu, 8192, 8192, 8192, dtype)
    assert r.bound == "power"
    p = make_problem(gpu, 8192, 8192, 8192, dtype)
    cfg = next(c for c in candidates(gpu, p) if c.name == r.tile)
    stats = _simulate(gpu, p, cfg, r.clock_mhz, "fast")
    # the power of the activity simulated at the chosen clock fits the limit (to 1 MHz of clock)
    assert power_w(gpu, _activity(p, stats, r.clock_mhz, r.clock_mhz, 0.0), r.clock_mhz) <= gpu.power.limit_w * 1.005
    assert power_w(gpu, _activity(p, stats, r.clock_mhz, r.clock_mhz, 0.0), r.clock_mhz + 20) > gpu.power.limit_w


def test_large_batches_extend_two_simulated_batches_linearly(h100, monkeypatch):
    from blackwell_sim.engine.kernels import gemm as gemm_module

    monkeypatch.setattr(gemm_module, "BATCH_UNIT_BUDGET", 2000)
    gemm_module.clear_caches()
    extended = simulate_gemm(h100, 2048, 2048, 256, batch=24, tile="128x128")
    assert extended.details["batch_extrapolated_from"] is not None
    monkeypatch.setattr(gemm_module, "BATCH_UNIT_BUDGET", 10**9)
    gemm_module.clear_caches()
    exact = simulate_gemm(h100, 2048, 2048, 256, batch=24, tile="128x128")
    assert exact.details["batch_extrapolated_from"] is None
    assert extended.time_s == pytest.approx(exact.time_s, rel=0.01)
    assert extended.bytes["hbm"] == pytest.approx(exact.bytes["hbm"], rel=0.01)


def test_secant_share_recovers_the_clock_scaling_part_of_a_run():
    from blackwell_sim.engine.kernels.gemm import _secant_share

    def elapsed(f):  # 2 us fixed (memory) + 3000 cycles-worth scaling with the clock
        return 2e-6 + 3000 / f
    share = _secant_share(1980.0, elapsed(1980.0), 1400.0, elapsed(1400.0), fallback=0.5)
    assert share == pytest.approx((3000 / 1400.0) / elapsed(1400.0))
    assert _secant_share(1400.0, 1.0, 1400.0, 1.0, fallback=0.25) == 0.25   # one clock: no slope


def test_memoized_simulations_do_not_change_answers(h100):
    from blackwell_sim.engine.kernels import gemm as gemm_module

    first = simulate_gemm(h100, 3000, 5000, 1024, "fp16")
    burst = simulate_gemm(h100, 3000, 5000, 1024, "fp16", power_state="burst")
    gemm_module.clear_caches()
    assert simulate_gemm(h100, 3000, 5000, 1024, "fp16", power_state="burst").time_s == burst.time_s
    assert simulate_gemm(h100, 3000, 5000, 1024, "fp16").time_s == first.time_s


def test_swap_ab_tiles_spare_skinny_m_the_64_row_padding(h100):
    from blackwell_sim.config import get_dtype
    from blackwell_sim.engine.kernels.gemm_configs import TileConfig
    from blackwell_sim.engine.tensor_core import TensorCore

    tc = TensorCore(h100, get_dtype("bf16"))
    padded = TileConfig(64, 128, 64, variant="pingpong")            # 32 of its 64 rows are padding
    swapped = TileConfig(32, 128, 64, variant="pingpong", swap_ab=True)  # m64n32 along N instead
    assert swapped.kblock_cycles(tc) < padded.kblock_cycles(tc)
    r = simulate_gemm(h100, 32, 4096, 14336, power_state="burst")
    assert "swapab" in r.tile and r.efficiency["tile_padding"] == 1.0


def test_recorded_lanes_show_each_k_block_loaded_before_its_mma(h100):
    plain = simulate_gemm(h100, 2048, 2048, 1024, fidelity="detailed", tile="128x256")
    r = simulate_gemm(h100, 2048, 2048, 1024, fidelity="detailed", tile="128x256", record_timeline=True)
    assert r.time_s == plain.time_s                       # recording does not change the run
    lanes = [e for e in r.details["lanes"] if e[0] == 0]
    by_lane = {name: [(s, e) for _, lane, s, e in lanes if lane == name]
               for name in ("setup", "load", "mma", "epilogue", "store")}
    tiles = [t for t in r.details["timeline"] if t[0] == 0]
    k_blocks = 1024 // 64
    assert len(by_lane["setup"]) == 1 and len(by_lane["store"]) == len(tiles)
    assert len(by_lane["mma"]) == len(by_lane["load"]) == len(tiles) * k_blocks
    for (_, load_end), (mma_start, mma_end) in zip(by_lane["load"], by_lane["mma"]):
        assert load_end <= mma_start + 1e-15 and mma_end > mma_start


def test_blackwell_tile_widths_are_cutlass_default_emission_shapes():
    from blackwell_sim.engine.kernels.gemm import make_problem
    from blackwell_sim.engine.kernels.gemm_configs import candidates

    b200 = load_config("b200")
    widths = {dt: {c.tile_n for c in candidates(b200, make_problem(b200, 8192, 8192, 8192, dt))
                   if c.variant == "2sm"} for dt in ("bf16", "nvfp4")}
    assert widths["bf16"] == widths["nvfp4"] == {64, 128, 192, 256}
    assert simulate_gemm(b200, 8192, 8192, 8192).details["lanes"] is None   # nothing recorded


def test_tf32_short_k_prefers_the_pingpong_xmma_kernel_that_hides_its_epilogue(h100):
    short_k = simulate_gemm(h100, 16384, 4096, 256, "tf32", power_state="burst")  # C is 8x A and B together
    shared = simulate_gemm(h100, 16384, 4096, 256, "tf32", power_state="burst", tile="128x256")
    assert "xmma-pingpong" in short_k.tile and short_k.details["epilogue_overlap"]    # cuBLAS's pick too
    waiting = [r.details["time_components_s"]["latency"] for r in (short_k, shared)]
    assert short_k.details["units"] == 2 * shared.details["units"]
    assert waiting[0] < 0.7 * waiting[1]   # twice the tiles, yet less waiting on epilogues and fills
    long_k = simulate_gemm(h100, 8192, 8192, 8192, "tf32", power_state="burst")   # cuBLAS: 128x256 (profiles)
    assert long_k.tile.startswith("128x256x32 xmma ")


def test_multicast_halves_the_shared_operand_only_where_the_cluster_has_a_partner(h100):
    # 3 tile rows in clusters of 2 along M: rows 0 and 1 share each B panel (half each), row 2's
    # cluster is cut by the problem's edge, so its one CTA loads the whole B panel itself
    from blackwell_sim.engine.kernels.gemm_configs import TileConfig

    m, n, k = 3 * 128, 128 * 8, 1024
    p = make_problem(h100, m, n, k, "bf16")
    cfg = TileConfig(128, 128, 64, cluster_m=2, stages=4, variant="cooperative")
    st = GemmSimulation(h100, p, cfg, 1500).run()
    a_panel, b_panel = 128 * k * 2, 128 * k * 2       # bytes of one tile's A and B strips
    n_tiles = n // 128
    expected = n_tiles * (3 * a_panel + (0.5 + 0.5 + 1.0) * b_panel)
    assert st.l2_bytes == pytest.approx(expected)
    unclustered = GemmSimulation(h100, p, dataclasses.replace(cfg, cluster_m=1), 1500).run()
    assert unclustered.l2_bytes == pytest.approx(n_tiles * 3 * (a_panel + b_panel))


def test_an_outside_clock_cap_bounds_the_clock_and_bad_caps_are_rejected(h100):
    free = simulate_gemm(h100, 2500, 4500, 3500)          # misaligned: the fallback runs at max boost
    capped = simulate_gemm(h100, 2500, 4500, 3500, clock_cap_mhz=1500)
    assert free.clock_mhz == h100.sm.max_boost_clock_mhz and capped.clock_mhz == 1500
    assert capped.time_s > free.time_s
    for bad in (0, -5, "fast", True):
        with pytest.raises(BlackwellSimError, match="clock_cap_mhz"):
            simulate_gemm(h100, 256, 256, 256, clock_cap_mhz=bad)
