"""Copies, the shared-link model, the L2 panel cache, HBM mix and the power solver."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blackwell_sim import BlackwellSimError, load_config
from blackwell_sim.engine.bandwidth import SharedLink
from blackwell_sim.engine.kernels.memcpy import simulate_memcpy
from blackwell_sim.engine.l2 import PanelCache
from blackwell_sim.engine.l2_compression import CompressionUnit, density_of
from blackwell_sim.engine.power import Activity, power_w, sustained_clock_mhz


def test_copy_bandwidth_rises_with_size_toward_sustainable_peak():
    h100 = load_config("h100-sxm")
    gbps = [simulate_memcpy(h100, mib * 2**20).bandwidth_gbps["hbm"] for mib in (1, 8, 128, 2048)]
    assert gbps == sorted(gbps)
    sustainable = h100.hbm.effective_bytes_per_s(1, 1) / 1e9
    assert gbps[-1] == pytest.approx(sustainable, rel=0.03) and gbps[-1] < h100.hbm.bandwidth_gbps


def test_l2_absorbs_the_writes_of_a_small_copy():
    h100 = load_config("h100-sxm")
    no_dirty = load_config("h100-sxm", overrides={"l2.dirty_fraction": 0.0})
    small = simulate_memcpy(h100, 4 * 2**20)
    assert small.details["writes_absorbed_by_l2_bytes"] == 4 * 2**20
    assert small.bytes["hbm"] == 4 * 2**20 and small.time_s < simulate_memcpy(no_dirty, 4 * 2**20).time_s
    big = simulate_memcpy(h100, 2048 * 2**20)
    assert big.details["writes_absorbed_by_l2_bytes"] == h100.l2.dirty_fraction * h100.l2.size_bytes


def test_copy_rejects_nonsense():
    with pytest.raises(BlackwellSimError, match="read_bytes must be a non-negative number"):
        simulate_memcpy(load_config("h100-sxm"), -5)


def test_shared_link_divides_bandwidth_and_respects_caps():
    link = SharedLink("x", 100.0)
    link.join()
    assert link.rate() == 100.0 and link.rate(cap_bytes_per_s=30.0) == 30.0
    link.join()
    assert link.rate() == 50.0
    assert link.seconds_for(100.0) == pytest.approx(2.0) and link.bytes_moved == 100.0
    link.leave(), link.leave()
    with pytest.raises(RuntimeError):
        link.leave()
    with pytest.raises(ValueError, match="bytes_per_s"):
        SharedLink("bad", 0.0)


def test_panel_cache_lru_by_bytes():
    cache = PanelCache(100)
    assert not cache.access("a", 60) and cache.access("a", 60)
    assert not cache.access("b", 60)   # evicts a
    assert not cache.access("a", 60)
    assert cache.hit_rate == pytest.approx(60 / 240)
    assert not cache.access("huge", 1000) and not cache.access("huge", 1000)  # streams through


def test_hbm_turnarounds_cost_only_mixed_traffic():
    hbm = load_config("h100-sxm").hbm
    reads = hbm.effective_bytes_per_s(1, 0)
    mixed = hbm.effective_bytes_per_s(1, 1)
    assert reads == pytest.approx(hbm.bandwidth_gbps * 1e9 * (1 - hbm.refresh_overhead))
    assert mixed == pytest.approx(reads * (1 - hbm.turnaround_overhead))


def test_compression_unit_is_off_unless_enabled_and_uses_data_density():
    cfg = load_config("b200")
    off = CompressionUnit(cfg.l2_compression, 1e9)
    assert off.bytes_factor(True, 0.5) == 1.0
    on = CompressionUnit(load_config("b200", overrides={"l2_compression.enabled": True}).l2_compression, 1e9)
    weight = np.ones((64, 64), dtype=np.float16)
    weight[:, ::2] = 0.0  # half the values zero but no all-zero sector: incompressible
    assert density_of(weight) == 1.0
    sparse_rows = np.ones((64, 64), dtype=np.float16)
    sparse_rows[::2] = 0.0  # every other 128-byte row zero: half the sectors compress away
    assert density_of(sparse_rows) == pytest.approx(0.5)
    assert on.bytes_factor(True, 0.5) == 0.5 and on.bytes_factor(False, 0.5) == 1.0
    assert on.bytes_factor(True, 0.01) == pytest.approx(1 / on.cfg.max_bandwidth_ratio)
    assert on.capacity_gain(True, 0.5) == 2.0


def test_power_model_is_monotone_and_solver_hits_the_limit():
    h100 = load_config("h100-sxm")
    act = Activity(1980, 1e-3, 1.0e12, "bf16", 1.0, 1e8, 1e9)
    clocks = [1000, 1300, 1600, 1980]
    powers = [power_w(h100, act, f) for f in clocks]
    assert powers == sorted(powers)
    f = sustained_clock_mhz(h100, act)
    assert h100.power.min_clock_mhz <= f < 1980
    assert power_w(h100, act, f) == pytest.approx(h100.power.limit_w, rel=1e-3)
    idle = Activity(1980, 1e-3, 0.0, "bf16", 0.0, 0.0, 0.0)
    assert sustained_clock_mhz(h100, idle) == 1980 and math.isclose(power_w(h100, idle, 1980), h100.power.idle_w)
