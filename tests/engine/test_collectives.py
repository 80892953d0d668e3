"""Collective kernel models: conventions, the time terms by mechanism, the tuner, NVLS, bad input."""

from __future__ import annotations

import math

import pytest

from blackwell_sim import BlackwellSimError, load_config
from blackwell_sim.engine.fabric import Fabric
from blackwell_sim.engine.kernels.collectives import (ALGOS, MAX_EVENTS, OPS, choose, estimate_s,
                                                       plan_collective, simulate_collective)

H200X2 = load_config("h200x2-nvlink")
HGX = load_config("hgx-h100-8")
GIB = 2**30


@pytest.mark.parametrize("op,factor", [("all_reduce", lambda w: 2 * (w - 1) / w),
                                       ("all_gather", lambda w: (w - 1) / w),
                                       ("reduce_scatter", lambda w: (w - 1) / w),
                                       ("all_to_all", lambda w: (w - 1) / w),
                                       ("broadcast", lambda w: 1.0)])
def test_algbw_and_busbw_follow_nccl_tests(op, factor):
    r = simulate_collective(HGX, op, 64 << 20, ranks=range(6))
    assert r.world == 6 and r.ranks == list(range(6))
    assert r.algbw_gbps == pytest.approx(r.bytes / r.time_s / 1e9)
    assert r.busbw_gbps == pytest.approx(r.algbw_gbps * factor(6))


def test_send_recv_moves_bytes_one_way():
    r = simulate_collective(HGX, "send_recv", 256 << 20, ranks=(2, 5))
    assert r.busbw_gbps == r.algbw_gbps and r.algo == "direct"
    assert r.link_bytes == pytest.approx({"gpu_to_switch": 256 << 20, "switch_to_gpu": 256 << 20})


@pytest.mark.parametrize("cfg,op,nbytes", [(H200X2, "all_reduce", 3 << 20), (HGX, "all_gather", GIB),
                                           (HGX, "all_reduce", 5 << 20), (HGX, "all_to_all", 1 << 20)])
def test_a_lone_collective_simulates_to_the_tuners_estimate(cfg, op, nbytes):
    r = simulate_collective(cfg, op, nbytes)
    plan, table = choose(cfg, Fabric(cfg), op, nbytes, tuple(range(cfg.gpu_count)))
    assert (r.algo, r.protocol) == (plan.algo, plan.protocol)
    assert r.time_s == pytest.approx(estimate_s(plan, Fabric(cfg))[0], rel=1e-9)
    assert r.time_s == pytest.approx(min(table.values()), rel=1e-9)   # the tuner picked the fastest
    quick_plan, quick_s = plan_collective(cfg, op, nbytes)
    assert quick_s == pytest.approx(r.time_s, rel=1e-9) and quick_plan.algo == r.algo
    assert r.kernel_s == pytest.approx(r.latency_s + r.transfer_s, rel=1e-12)
    assert r.time_s == pytest.approx(r.host_overhead_s + r.kernel_s, rel=1e-12)


def test_a_call_lasts_host_issue_plus_the_longer_of_kernel_and_host_return():
    coll = H200X2.fabric.collective
    small = simulate_collective(H200X2, "all_reduce", 1024)
    assert small.kernel_s < coll.host_return_us * 1e-6
    assert small.time_s == pytest.approx((coll.host_issue_us + coll.host_return_us) * 1e-6)
    assert small.bound == "host"
    big = simulate_collective(H200X2, "all_reduce", GIB)
    assert big.time_s == pytest.approx(coll.host_issue_us * 1e-6 + big.kernel_s)


def test_ring_latency_is_launch_plus_base_plus_steps_times_per_step():
    coll = HGX.fabric.collective
    ll = coll.ll
    r = simulate_collective(HGX, "all_reduce", 1024, algo="ring", protocol="ll")
    assert r.latency_s == pytest.approx((coll.launch_overhead_us + ll.ring_base_latency_us
                                         + 14 * ll.ring_step_latency_us) * 1e-6)
    g = simulate_collective(HGX, "all_gather", 1024, algo="ring", protocol="ll")
    assert g.latency_s == pytest.approx((coll.launch_overhead_us + ll.ring_base_latency_us
                                         + 7 * ll.ring_step_latency_us) * 1e-6)


def test_simple_protocol_pays_two_slices_of_pipeline_fill_and_drain():
    coll = H200X2.fabric.collective
    simple = coll.simple
    protocol_us = coll.launch_overhead_us + simple.ring_base_latency_us + 2 * simple.ring_step_latency_us
    big = simulate_collective(H200X2, "all_reduce", GIB, protocol="simple")
    slice_s = simple.slice_bytes * 4 / (coll.channel_bandwidth_gbps * 1e9)  # 4 loads+stores a byte
    assert big.latency_s == pytest.approx(protocol_us * 1e-6 + 2 * slice_s)
    # smaller messages cut smaller slices: a channel's share of a step, halved
    mid = simulate_collective(H200X2, "all_reduce", 48 << 20, protocol="simple")
    small_slice = (48 << 20) / (coll.channels * 2) / 2
    assert mid.latency_s == pytest.approx(protocol_us * 1e-6 + 2 * small_slice * 4 / (coll.channel_bandwidth_gbps * 1e9))
    ll128 = simulate_collective(H200X2, "all_reduce", GIB, protocol="ll128")
    assert ll128.latency_s == pytest.approx((coll.launch_overhead_us + coll.ll128.ring_base_latency_us
                                             + 2 * coll.ll128.ring_step_latency_us) * 1e-6)


def test_tree_is_a_chain_and_only_runs_when_asked_for():
    assert not any(k.startswith("tree") for k in simulate_collective(HGX, "all_reduce", 1 << 20).candidates)
    chain = simulate_collective(HGX, "all_reduce", GIB, algo="tree", protocol="ll")
    ll = HGX.fabric.collective.ll
    assert chain.latency_s == pytest.approx((HGX.fabric.collective.launch_overhead_us
                                             + ll.tree_base_latency_us + 14 * ll.tree_step_latency_us) * 1e-6)
    # middle ranks forward the buffer up and down: 2 S out of each, S out of each end
    assert chain.link_bytes["gpu_to_switch"] == pytest.approx((6 * 2 + 2) * GIB / HGX.fabric.collective.ll.data_fraction)


def test_large_two_gpu_all_reduce_is_bound_by_the_channels_sms():
    coll = H200X2.fabric.collective
    r = simulate_collective(H200X2, "all_reduce", GIB, protocol="simple")
    assert r.bound == "sm" and r.algo == "ring"
    # ring, w = 2: (6w - 4)/w = 4 bytes loaded + stored per buffer byte, over channels x rate
    assert r.transfer_s == pytest.approx(4 * GIB / (coll.channels * coll.channel_bandwidth_gbps * 1e9))
    fast_sms = load_config("h200x2-nvlink", overrides={"fabric.collective.channel_bandwidth_gbps": 1000})
    link = simulate_collective(fast_sms, "all_reduce", GIB, protocol="simple")
    assert link.bound == "link"
    assert link.transfer_s == pytest.approx(GIB / Fabric(fast_sms).gpu_bytes_per_s)


def test_all_gather_does_more_memory_work_per_link_byte_than_all_reduce():
    """The mechanism behind the measured plateaus (2x H200: ~340 vs ~280 GB/s per link)."""
    ar = simulate_collective(H200X2, "all_reduce", 2 * GIB)
    ag = simulate_collective(H200X2, "all_gather", 2 * GIB)
    per_link_ar = ar.link_bytes["direct"] / 2 / ar.transfer_s
    per_link_ag = ag.link_bytes["direct"] / 2 / ag.transfer_s
    assert per_link_ar / per_link_ag == pytest.approx(5 / 4)


def test_protocol_data_fraction_and_channel_efficiency():
    coll = H200X2.fabric.collective
    ll = simulate_collective(H200X2, "all_reduce", 1 << 20, algo="ring", protocol="ll")
    simple = simulate_collective(H200X2, "all_reduce", 1 << 20, algo="ring", protocol="simple")
    assert ll.link_bytes["direct"] == pytest.approx(2 * simple.link_bytes["direct"])
    assert ll.transfer_s == pytest.approx(simple.transfer_s / (coll.ll.data_fraction * coll.ll.channel_efficiency))


def test_tuner_picks_low_latency_protocols_for_small_and_simple_for_large():
    assert simulate_collective(H200X2, "all_reduce", 4096).protocol == "ll"
    assert simulate_collective(H200X2, "all_reduce", GIB).protocol == "simple"
    assert simulate_collective(HGX, "all_reduce", GIB).algo == "nvls"
    forced = simulate_collective(HGX, "all_reduce", GIB, algo="ring")
    assert forced.algo == "ring" and set(forced.candidates) == {"ring/ll", "ring/ll128", "ring/simple"}


def test_nvls_traffic_and_its_link_bound():
    coll = HGX.fabric.collective
    r = simulate_collective(HGX, "all_reduce", 4 * GIB, algo="nvls")
    w = 8
    assert r.link_bytes["gpu_to_switch"] == pytest.approx(w * 4 * GIB * (1 + 1 / w))
    assert r.bound == "link" and r.sms_used == coll.nvls_channels
    limit = Fabric(HGX).gpu_bytes_per_s * coll.nvls_link_efficiency / (1 + 1 / w)
    assert r.transfer_s == pytest.approx(4 * GIB / limit)


def test_nvls_on_nvl72_is_bound_by_the_switch_alus():
    nvl = load_config("gb200-nvl72")
    r = simulate_collective(nvl, "all_reduce", GIB, algo="nvls", dtype="fp32")
    assert r.bound == "switch_reduce"
    alu = nvl.fabric.switch.reduction_gflops * 1e9
    # (w - 1) additions per fp32 element, spread evenly over 18 chips
    assert r.transfer_s == pytest.approx(71 * GIB / 4 / (18 * alu))
    half = simulate_collective(nvl, "all_reduce", GIB, algo="nvls", dtype="bf16")
    assert half.transfer_s == pytest.approx(2 * r.transfer_s)


def test_nvls_is_never_chosen_where_unavailable():
    off = load_config("hgx-h100-8", overrides={"fabric.collective.nvls_enabled": False})
    assert "nvls/simple" not in simulate_collective(off, "all_reduce", GIB).candidates
    assert "nvls/simple" not in simulate_collective(H200X2, "all_reduce", GIB).candidates
    with pytest.raises(BlackwellSimError, match="nvls needs NVLink SHARP"):
        simulate_collective(H200X2, "all_reduce", GIB, algo="nvls")


def test_every_op_runs_with_every_algorithm_it_supports():
    for op in OPS:
        ranks = (0, 7) if op == "send_recv" else range(8)
        for algo in ALGOS[op]:
            r = simulate_collective(HGX, op, 1 << 20, ranks=ranks, algo=algo)
            assert r.time_s > r.host_overhead_s and math.isfinite(r.busbw_gbps)


def test_pipeline_events_grow_with_size_and_are_capped():
    nvl = load_config("gb200-nvl72")
    small = simulate_collective(nvl, "all_reduce", 1 << 20, algo="ring")
    big = simulate_collective(nvl, "all_reduce", 64 * GIB, algo="ring", protocol="simple")
    assert small.events == 1 and big.events == MAX_EVENTS


def test_results_are_deterministic():
    a = simulate_collective(HGX, "all_to_all", 96 << 20).to_dict()
    b = simulate_collective(HGX, "all_to_all", 96 << 20).to_dict()
    assert a == b


@pytest.mark.parametrize("kwargs,needle", [
    (dict(op="all_reduce", bytes_=0), "bytes must be a positive whole number"),
    (dict(op="all_reduce", bytes_=1.5), "bytes must be a positive whole number"),
    (dict(op="all_reduce", bytes_=True), "bytes must be a positive whole number"),
    (dict(op="allreduce", bytes_=8), "unknown collective op 'allreduce'"),
    (dict(op="all_reduce", bytes_=8, ranks=[0, 0]), "must be distinct GPU indices"),
    (dict(op="all_reduce", bytes_=8, ranks=[0, 8]), "must be distinct GPU indices in 0..7"),
    (dict(op="all_reduce", bytes_=8, ranks=[3]), "needs at least 2 ranks"),
    (dict(op="send_recv", bytes_=8, ranks=[0, 1, 2]), "exactly 2 ranks"),
    (dict(op="all_gather", bytes_=8, algo="tree"), "does not implement all_gather"),
    (dict(op="all_reduce", bytes_=8, protocol="ll256"), "unknown protocol"),
    (dict(op="all_reduce", bytes_=8, dtype="fp7"), "unknown dtype 'fp7'"),
])
def test_bad_requests_raise_one_line_errors(kwargs, needle):
    with pytest.raises(BlackwellSimError, match=needle) as info:
        simulate_collective(HGX, **kwargs)
    assert "\n" not in str(info.value)


def test_a_gpu_config_is_not_a_system():
    with pytest.raises(BlackwellSimError, match="need a system preset"):
        simulate_collective(load_config("h100-sxm"), "all_reduce", 1024)
