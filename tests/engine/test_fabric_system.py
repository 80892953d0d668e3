"""Multi-GPU execution: streams, overlap of compute and communication, shared links, SM occupancy."""

from __future__ import annotations

import pytest

from blackwell_sim import BlackwellSimError, load_config
from blackwell_sim.engine.kernels.collectives import simulate_collective
from blackwell_sim.engine.system_run import System

HGX = load_config("hgx-h100-8")
GIB = 2**30


def _no_host(name="hgx-h100-8"):
    return load_config(name, overrides={"fabric.collective.host_issue_us": 0,
                                        "fabric.collective.host_return_us": 0})


def test_concurrent_collectives_on_the_same_gpus_share_the_links():
    cfg = _no_host()
    alone = simulate_collective(cfg, "all_gather", GIB)
    assert alone.bound == "link"
    sim = System(cfg)
    a = sim.collective("all_gather", GIB, stream="a")
    b = sim.collective("all_gather", GIB, stream="b")
    sim.run()
    for p in (a, b):
        assert p.value.transfer_s == pytest.approx(2 * alone.transfer_s, rel=1e-6)


def test_collectives_on_disjoint_gpus_do_not_interfere():
    cfg = _no_host()
    alone = simulate_collective(cfg, "all_reduce", GIB, ranks=range(4), algo="ring")
    sim = System(cfg)
    a = sim.collective("all_reduce", GIB, ranks=range(4), algo="ring")
    b = sim.collective("all_reduce", GIB, ranks=range(4, 8), algo="ring")
    sim.run()
    assert a.value.time_s == pytest.approx(alone.time_s) and b.value.time_s == pytest.approx(alone.time_s)


def test_a_copy_slows_a_collective_that_shares_its_links():
    cfg = _no_host()
    alone = simulate_collective(cfg, "all_gather", GIB)
    sim = System(cfg)
    ag = sim.collective("all_gather", GIB)
    cp = sim.copy(0, 1, GIB, stream="copy")
    sim.run()
    assert ag.value.time_s > 1.3 * alone.time_s
    assert cp.value.time_s > simulate_collective(cfg, "send_recv", GIB, ranks=(0, 1)).time_s


def test_one_stream_serialises_and_two_streams_overlap():
    cfg = _no_host()
    comm_s = simulate_collective(cfg, "all_reduce", 256 << 20).time_s
    serial = System(cfg)
    serial.collective("all_reduce", 256 << 20, stream="s")
    serial.compute(0, 1e-3, stream="s")
    assert serial.run() == pytest.approx(comm_s + 1e-3)
    overlap = System(cfg)
    overlap.collective("all_reduce", 256 << 20)
    started = overlap.env.timeout(1e-6)             # the collective kernel holds its SMs by then
    overlap.compute(3, 10e-3, after=[started])      # compute stream, on the GPU's free SMs
    assert overlap.run() == pytest.approx(1e-6 + 10e-3 * 132 / (132 - cfg.fabric.collective.nvls_channels))


def test_compute_gets_all_sms_when_no_collective_runs():
    sim = System(HGX)
    done = sim.compute(0, 2e-3)
    later = sim.compute(0, lambda: 1e-3, after=[done], stream="other")
    sim.run()
    assert done.value == pytest.approx((0.0, 2e-3)) and later.value == pytest.approx((2e-3, 3e-3))


def test_dependencies_order_ops_and_the_timeline_records_them():
    cfg = _no_host("h200x2-nvlink")
    sim = System(cfg)
    mm = sim.compute(0, 1e-3, name="gemm")
    ar = sim.collective("all_reduce", 64 << 20, after=[mm], name="grad all-reduce")
    sim.run()
    tl = sim.timeline()
    assert list(tl["name"]) == ["gemm", "grad all-reduce"]
    row = tl.set_index("name").loc["grad all-reduce"]
    assert row["start_s"] == pytest.approx(1e-3) and row["end_s"] == pytest.approx(1e-3 + ar.value.time_s)
    assert row["algo"] == "ring" and row["ranks"] == [0, 1]


def test_system_accepts_a_preset_name_and_rejects_bad_ops():
    sim = System("h200x2-nvlink")
    with pytest.raises(BlackwellSimError, match="rank must be a GPU index"):
        sim.compute(5, 1.0)
    sim.compute(0, -1.0)
    with pytest.raises(BlackwellSimError, match="seconds must be a non-negative number"):
        sim.run()


def test_async_host_leaves_only_kernels_on_the_streams():
    per_call = System("h200x2-nvlink")
    a = per_call.collective("all_reduce", 4096)
    per_call.collective("all_reduce", 4096, after=[a])
    quiet = System("h200x2-nvlink", host="async")
    b = quiet.collective("all_reduce", 4096)
    quiet.collective("all_reduce", 4096, after=[b])
    coll = per_call.config.fabric.collective
    assert per_call.run() == pytest.approx(2 * (coll.host_issue_us + coll.host_return_us) * 1e-6)
    assert quiet.run() == pytest.approx(2 * b.value.kernel_s)
    assert b.value.time_s == pytest.approx(b.value.kernel_s) and b.value.bound != "host"
    with pytest.raises(BlackwellSimError, match="host must be"):
        System("h200x2-nvlink", host="sometimes")
