"""The replay scheduler: stream order, SM sharing, collectives gating on the slowest rank,
send/recv pairing, launch gaps, the per-op memo, rank and cycle errors."""

from __future__ import annotations

import pytest

import blackwell_sim as bs
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.report import COLUMN_NAMES, validate_frame
from blackwell_sim.trace import parse_document
from blackwell_sim.trace.replay import FRAME_COLUMNS, plan, replay, schedule


@pytest.fixture(scope="module")
def hgx():
    return bs.load_config("hgx-b200-8")


def _times(doc, config, durations: dict, gaps: dict | None = None):
    """Schedule with hand-set durations per op name: {name: (start, end)}."""
    instances = plan(parse_document(doc), config)
    gaps = gaps or {}
    start, end = schedule(instances, [durations[i.ops[0].name] for i in instances],
                          [gaps.get(i.ops[0].name, 0.0) for i in instances])
    return {op.name: (start[k], end[k]) for k, inst in enumerate(instances) for op in inst.ops}


def M(name, **kw):
    return {"op": "memcpy", "name": name, "bytes": 1, **kw}


def test_one_stream_runs_in_trace_order_with_launch_gaps(b200):
    t = _times({"ops": [M("a"), M("b"), M("c")]}, b200, {"a": 1.0, "b": 2.0, "c": 3.0},
               {"a": 0.5, "b": 0.5, "c": 0.5})
    assert t == {"a": (0.5, 1.5), "b": (2.0, 4.0), "c": (4.5, 7.5)}


def test_kernels_on_two_streams_of_one_gpu_share_the_sms(b200):
    doc = {"ops": [M("a"), M("b", stream="s2"), M("c")]}
    t = _times(doc, b200, {"a": 1.0, "b": 2.0, "c": 3.0})
    # b is ready at 0 but a holds the SMs; after a, the lowest ready index (b) goes first
    assert t == {"a": (0.0, 1.0), "b": (1.0, 3.0), "c": (3.0, 6.0)}


def test_deps_cross_streams_and_ranks(hgx):
    doc = {"ops": [M("a", rank=0), M("b", rank=1, deps=["a"]), M("c", rank=1)]}
    t = _times(doc, hgx, {"a": 5.0, "b": 1.0, "c": 1.0})
    # c is after b on rank 1's stream, b waits for a on rank 0
    assert t == {"a": (0.0, 5.0), "b": (5.0, 6.0), "c": (6.0, 7.0)}


def test_collective_waits_for_its_slowest_rank_and_overlaps_compute(hgx):
    doc = {"ops": [M("a", rank=0), M("b", rank=1),
                   {"op": "all_reduce", "name": "ar", "bytes": 8, "group": [0, 1], "deps": ["a", "b"]},
                   M("c", rank=0), M("d", rank=0, deps=["ar"])]}
    t = _times(doc, hgx, {"a": 1.0, "b": 4.0, "ar": 2.0, "c": 3.0, "d": 1.0})
    assert t["ar"] == (4.0, 6.0)          # gated by b on rank 1
    assert t["c"] == (1.0, 4.0)           # compute on rank 0 overlaps the wait and the collective
    assert t["d"] == (6.0, 7.0)


def test_collectives_on_one_stream_keep_their_order(hgx):
    ar = {"op": "all_gather", "bytes": 8, "group": [0, 1]}
    t = _times({"ops": [{**ar, "name": "x"}, {**ar, "name": "y"}]}, hgx, {"x": 1.0, "y": 1.0})
    assert t == {"x": (0.0, 1.0), "y": (1.0, 2.0)}


def test_send_pairs_with_the_matching_recv(hgx):
    doc = {"ops": [M("a", rank=0), {"op": "send", "name": "s", "bytes": 4, "rank": 0, "peer": 1, "deps": ["a"]},
                   {"op": "recv", "name": "r", "bytes": 4, "rank": 1, "peer": 0}, M("b", rank=1, deps=["r"])]}
    t = _times(doc, hgx, {"a": 2.0, "s": 1.0, "b": 1.0})
    assert t["s"] == t["r"] == (2.0, 3.0)
    assert t["b"] == (3.0, 4.0)


def _plan_error(doc, config) -> str:
    with pytest.raises(BlackwellSimError) as info:
        plan(parse_document(doc, "t.yaml"), config)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_rank_outside_the_system(b200, hgx):
    assert "op 0 ('a'): rank: rank 1 is outside the system: config 'NVIDIA B200' is one GPU" in _plan_error(
        {"ops": [M("a", rank=1)]}, b200)
    assert "group: rank 8 is outside the system: system 'HGX B200 8-GPU' has 8 GPUs (ranks 0..7)" in _plan_error(
        {"ops": [{"op": "all_reduce", "bytes": 8, "group": [0, 8]}]}, hgx)
    assert "peer: rank 9 is outside" in _plan_error(
        {"ops": [{"op": "send", "bytes": 8, "rank": 0, "peer": 9}]}, hgx)
    assert "all_reduce needs a multi-GPU system" in _plan_error({"ops": [{"op": "all_reduce", "bytes": 8}]}, b200)


def test_unmatched_or_mismatched_send_recv(hgx):
    assert "send to/from rank 1 has no matching recv on rank 1" in _plan_error(
        {"ops": [{"op": "send", "bytes": 8, "rank": 0, "peer": 1}]}, hgx)
    assert "bytes: 9 does not match its partner 'send_0' (8)" in _plan_error(
        {"ops": [{"op": "send", "bytes": 8, "rank": 0, "peer": 1},
                 {"op": "recv", "bytes": 9, "rank": 1, "peer": 0}]}, hgx)


def test_cycles_through_stream_order_are_rejected(b200, hgx):
    # b waits for c, but c is after b on the same stream
    assert "dependency cycle through stream order and deps 'b' -> 'c' -> 'b'" in _plan_error(
        {"ops": [M("a"), M("b", deps=["c"]), M("c")]}, b200)
    # two ranks meet their collectives in opposite orders (a deadlock in NCCL too)
    ag = {"op": "all_gather", "bytes": 8}
    doc = {"ops": [{**ag, "name": "x", "group": [0, 1], "stream": "s0"},
                   {**ag, "name": "y", "group": [0, 1], "stream": "s1"},
                   M("p", rank=0, stream="s0", deps=["y"])]}
    assert plan(parse_document(doc), hgx)  # no cycle: different streams
    doc = {"ops": [{**ag, "name": "x", "group": [0, 1], "deps": ["q"]}, M("q", rank=1, stream="comm")]}
    assert "dependency cycle" in _plan_error(doc, hgx)


SMALL = {"ops": [
    {"op": "gemm", "name": "g1", "m": 1024, "n": 1024, "k": 1024, "dtype": "bf16", "layer": "0", "phase": "fwd"},
    {"op": "elementwise", "name": "e", "bytes_read": 1 << 20, "bytes_written": 1 << 20},
    {"op": "gemm", "name": "g2", "m": 1024, "n": 1024, "k": 1024, "dtype": "bf16", "measured_s": 1.5e-5},
]}


def test_replay_frame_follows_the_contract(b200):
    frame = replay(parse_document(SMALL), b200)
    assert tuple(frame.columns) == FRAME_COLUMNS == COLUMN_NAMES
    validate_frame(frame)
    assert list(frame["name"]) == ["g1", "e", "g2"]
    assert list(frame["cached"]) == [False, False, True]
    g1, g2 = frame.iloc[0], frame.iloc[2]
    assert g1.time_s == g2.time_s and g1.flops == 2 * 1024**3
    assert (g1["layer"], g1["phase"], g1["dtype"], g1["sparse"]) == ("0", "fwd", "bf16", False)
    assert g1.peak_tflops == pytest.approx(b200.peak_tflops("bf16"))
    assert g1.tflops == pytest.approx(g1.flops / g1.time_s / 1e12)
    assert g2.measured_s == 1.5e-5 and frame.iloc[0].measured_s != frame.iloc[0].measured_s  # NaN
    assert frame.iloc[1]["dtype"] == "" and frame.iloc[1].peak_tflops != frame.iloc[1].peak_tflops


def test_launch_gap_is_the_configs_launch_overhead(b200):
    from blackwell_sim.engine.kernels.gemm import simulate_gemm

    doc = {"ops": SMALL["ops"][:1] + [{**SMALL["ops"][0], "name": "again"}]}
    for overhead_us in (3.0, 10.0):
        cfg = bs.load_config("b200", overrides={"launch.overhead_us": overhead_us})
        frame = replay(parse_document(doc), cfg, host_dispatch="none")
        whole = simulate_gemm(cfg, 1024, 1024, 1024, "bf16").time_s
        assert frame.start_s[0] == pytest.approx(overhead_us * 1e-6)
        assert frame.time_s[0] == pytest.approx(whole - overhead_us * 1e-6)
        assert frame.start_s[1] - frame.end_s[0] == pytest.approx(overhead_us * 1e-6)


def test_memo_simulates_identical_ops_once_and_is_shared(b200, monkeypatch):
    from blackwell_sim.trace import timing

    calls = []
    real = timing.evaluate
    monkeypatch.setattr(timing, "evaluate", lambda *a, **k: calls.append(a[0].key) or real(*a, **k))
    memo: dict = {}
    replay(parse_document(SMALL), b200, memo=memo)
    assert len(calls) == 2 and len(memo) == 2
    frame = replay(parse_document(SMALL), b200, memo=memo)
    assert len(calls) == 2 and frame["cached"].all()
    other = bs.load_config("b200", overrides={"sm.count": 100})
    replay(parse_document(SMALL), other, memo=memo)  # a different config is not a memo hit
    assert len(calls) == 4


def test_simulate_is_deterministic_and_reports_a_summary():
    a = bs.simulate(SMALL, "b200")
    b = bs.simulate(SMALL, "b200")
    assert a.ops.equals(b.ops)
    assert a.summary["total_time_s"] == pytest.approx(a.ops.end_s.max())
    assert a.summary["config"] == "NVIDIA B200" and a.summary["ops"] == 3


def test_simulate_takes_the_traces_config_unless_given(tmp_path):
    doc = {"config": "h100-sxm", "ops": SMALL["ops"][:1]}
    assert bs.simulate(doc).config.name .startswith("NVIDIA H100")
    assert bs.simulate(doc, "b200").config.name == "NVIDIA B200"
    assert bs.simulate({"ops": SMALL["ops"][:1]}).config.name == "NVIDIA B200"
    assert bs.simulate(doc, overrides={"sm.count": 100}).config.sm.count == 100


def test_missing_kernel_model_is_one_clear_error(b200, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "blackwell_sim.engine.kernels.attention", None)  # import fails
    doc = {"ops": [{"op": "attention", "name": "att", "batch": 1, "heads": 8, "seq_q": 128, "head_dim": 64}]}
    with pytest.raises(BlackwellSimError, match=r"op 0 \('att'\): attention ops need the attention kernel "
                                                r"model \(blackwell_sim.engine.kernels.attention.simulate_attention\)"):
        replay(parse_document(doc), b200)


def test_attention_replays_through_its_kernel_model(b200):
    from blackwell_sim.engine.kernels.attention import simulate_attention

    att = {"op": "attention", "batch": 2, "heads": 16, "kv_heads": 4, "seq_q": 2048, "head_dim": 128,
           "causal": True}
    doc = {"ops": [{**att, "name": "fwd"}, {**att, "name": "bwd", "backward": True}]}
    frame = replay(parse_document(doc), b200, host_dispatch="none")
    validate_frame(frame)
    for row, backward in zip(frame.itertuples(), (False, True), strict=True):
        model = simulate_attention(b200, 2, 16, 2048, 128, kv_heads=4, causal=True, backward=backward)
        assert row.time_s == pytest.approx(model.time_s - model.details["launch_s"])
        assert (row.flops, row.tile, row.bound) == (model.flops, model.tile, model.bound)
        assert row.peak_tflops == pytest.approx(b200.peak_tflops("bf16"))
    assert frame.flops[1] > frame.flops[0]


def test_bad_fidelity_and_functional_mode(b200):
    with pytest.raises(BlackwellSimError, match="fidelity: expected one of fast, detailed, got 'slow'"):
        replay(parse_document(SMALL), b200, "slow")
    with pytest.raises(BlackwellSimError, match="functional: expected sample or full"):
        replay(parse_document(SMALL), b200, functional="some")


def test_collectives_of_one_size_share_a_memo_entry(hgx):
    ar = {"op": "all_reduce", "bytes": 1 << 20}
    doc = {"ops": [{**ar, "group": [0, 1]}, {**ar, "group": [6, 7]}, {**ar, "group": [0, 1, 2]},
                   {"op": "send", "bytes": 8, "rank": 0, "peer": 1}, {"op": "recv", "bytes": 8, "rank": 1, "peer": 0},
                   {"op": "send", "bytes": 8, "rank": 5, "peer": 3}, {"op": "recv", "bytes": 8, "rank": 3, "peer": 5}]}
    keys = [inst.key for inst in plan(parse_document(doc), hgx)]
    assert keys[0] == keys[1] != keys[2]
    assert keys[3] == keys[4]


def test_eager_host_dispatch_gates_short_kernels(b200):
    from blackwell_sim.harness import HOST_DISPATCH_US

    doc = {"ops": [{"op": "elementwise", "name": f"e{i}", "bytes_read": 4096, "rank": 0} for i in range(3)]
           + [{"op": "gemm", "name": "g", "m": 1024, "n": 1024, "k": 1024, "dtype": "fp8"}]}
    gap = b200.launch.overhead_us * 1e-6
    frame = replay(parse_document(doc), b200, host_dispatch="eager")
    ew = HOST_DISPATCH_US["elementwise"] * 1e-6
    # tiny kernels: each starts a launch gap after the host issued it, not after its predecessor
    assert list(frame.start_s[:3]) == pytest.approx([ew + gap, 2 * ew + gap, 3 * ew + gap])
    assert frame.start_s[3] == pytest.approx(3 * ew + HOST_DISPATCH_US["scaled_mm"] * 1e-6 + gap)
    free = replay(parse_document(doc), b200, host_dispatch="none")
    assert free.start_s[1] == pytest.approx(free.end_s[0] + gap)
    assert free.end_s.max() < frame.end_s.max()
    with pytest.raises(BlackwellSimError, match="host_dispatch: expected eager or none, got 'lazy'"):
        replay(parse_document(doc), b200, host_dispatch="lazy")


def test_a_collective_is_issued_when_every_rank_reached_it(hgx):
    doc = {"ops": [M("a", rank=0), M("b", rank=0), M("c", rank=1),
                   {"op": "all_reduce", "name": "ar", "bytes": 8, "group": [0, 1]}]}
    from blackwell_sim.trace.timing import host_dispatch_s, issue_times

    instances = plan(parse_document(doc), hgx)
    copy = host_dispatch_s(parse_document(doc).ops[0])
    assert issue_times(instances, "eager") == pytest.approx([copy, 2 * copy, copy, 2 * copy])
    assert issue_times(instances, "none") is None


def test_result_writes_a_chrome_trace_per_gpu_and_stream(tmp_path):
    import json

    doc = {"ops": [M("a"), M("b", stream="aux"), M("c", rank=1)]}
    result = bs.simulate(doc, "hgx-b200-8")
    path = result.to_chrome_trace(tmp_path / "t.json")
    events = [e for e in json.loads(path.read_text())["traceEvents"] if e.get("ph") == "X"]
    assert sorted((e["name"], e["pid"]) for e in events) == [("a", 0), ("b", 0), ("c", 1)]
    by_name = {e["name"]: e for e in events}
    assert by_name["a"]["tid"] != by_name["b"]["tid"]
    row = result.ops.set_index("name").loc["b"]
    assert by_name["b"]["ts"] == pytest.approx(row.start_s * 1e6, abs=1e-3)


def test_collectives_hold_sms_and_stretch_the_kernel_they_overlap(hgx):
    doc = {"ops": [M("a", rank=0), M("p", rank=1), M("b", rank=1),
                   {"op": "all_reduce", "name": "ar", "bytes": 8, "group": [0, 1], "deps": ["p"]}]}
    instances = plan(parse_document(doc), hgx)
    durations = {"a": 10.0, "p": 2.0, "b": 4.0, "ar": 4.0}
    held = {"ar": 50}
    names = [inst.ops[0].name for inst in instances]
    start, end = schedule(instances, [durations[n] for n in names], [0.0] * len(names),
                          comm_sms=[held.get(n, 0) for n in names], sm_count=100)
    t = {n: (start[k], end[k]) for k, n in enumerate(names)}
    assert t["ar"] == (2.0, 6.0)
    assert t["a"] == pytest.approx((0.0, 12.0))  # 2 + 4 x 0.5 + 6 of work: half rate during ar
    assert t["b"] == pytest.approx((2.0, 8.0))   # 4 x 0.5 during ar, the other 2 after it
    free = schedule(instances, [durations[n] for n in names], [0.0] * len(names))
    assert free[1][names.index("a")] == 10.0


def test_collectives_replay_through_the_fabric_model(hgx):
    from blackwell_sim.engine.kernels.collectives import simulate_collective

    doc = {"ops": [{"op": "all_reduce", "name": "ar", "bytes": 1 << 24, "group": [0, 1, 2, 3]},
                   {"op": "all_gather", "name": "ag", "bytes": 1 << 20, "dtype": "fp8"},
                   {"op": "send", "name": "s", "bytes": 1 << 20, "rank": 0, "peer": 5},
                   {"op": "recv", "name": "r", "bytes": 1 << 20, "rank": 5, "peer": 0}]}
    frame = bs.simulate(doc, hgx, host_dispatch="none").ops
    validate_frame(frame)
    assert list(frame.groupby("name", sort=False).size()) == [4, 8, 1, 1]
    ar = frame[frame.name == "ar"]
    model = simulate_collective(hgx, "all_reduce", 1 << 24, ranks=[0, 1, 2, 3])
    assert (ar.start_s == model.host_overhead_s).all()
    assert ar.time_s.iloc[0] == pytest.approx(model.time_s - model.host_overhead_s)
    assert (ar.tile == model.algo).all() and (ar.bound == model.bound).all()
    assert ar.bytes_fabric.iloc[0] == pytest.approx(model.busbw_gbps * 1e9 * model.time_s)
    ag = frame[frame.name == "ag"]
    assert ag.start_s.min() >= ar.end_s.max()  # ranks 0-3: their comm stream is busy until ar ends
    s, r = frame[frame.name == "s"].iloc[0], frame[frame.name == "r"].iloc[0]
    assert (s["rank"], r["rank"], s.start_s, s.end_s) == (0, 5, r.start_s, r.end_s)
    with pytest.raises(BlackwellSimError, match=r"op 0 \('x'\): dtype: NCCL cannot reduce nvfp4"):
        bs.simulate({"ops": [{"op": "all_reduce", "name": "x", "bytes": 8, "dtype": "nvfp4"}]}, hgx)


def test_an_overlapping_collective_slows_the_kernel_on_its_ranks(hgx):
    gemm = {"op": "gemm", "name": "g", "m": 4096, "n": 4096, "k": 4096, "dtype": "bf16", "rank": 0}
    ar = {"op": "all_reduce", "name": "ar", "bytes": 1 << 27}
    alone = bs.simulate({"ops": [gemm, {**ar, "group": [1, 2]}]}, hgx, host_dispatch="none").ops
    shared = bs.simulate({"ops": [gemm, {**ar, "group": [0, 1]}]}, hgx, host_dispatch="none").ops
    g_alone, g_shared = alone.time_s[0], shared.time_s[0]
    a = shared[shared.name == "ar"].iloc[0]
    overlap = min(a.end_s, shared.end_s[0]) - a.start_s
    assert overlap > 0
    from blackwell_sim.engine.kernels.collectives import simulate_collective

    held = simulate_collective(hgx, "all_reduce", 1 << 27, ranks=[0, 1]).sms_used
    # during the overlap the GEMM runs on (SMs - held) / SMs of its rate
    lost = overlap * held / hgx.gpu.sm.count
    assert g_shared == pytest.approx(g_alone + lost, rel=1e-6)


def test_attention_dispatch_cost_is_the_sdpa_measurement():
    from blackwell_sim.harness import HOST_DISPATCH_US
    from blackwell_sim.trace.timing import host_dispatch_s

    att = {"op": "attention", "batch": 1, "heads": 8, "seq_q": 128, "head_dim": 64}
    fwd = host_dispatch_s(parse_document({"ops": [att]}).ops[0])
    bwd = host_dispatch_s(parse_document({"ops": [{**att, "backward": True}]}).ops[0])
    assert fwd == pytest.approx(HOST_DISPATCH_US["sdpa_flash_fwd"] * 1e-6)
    assert fwd + bwd == pytest.approx(HOST_DISPATCH_US["sdpa_flash_fwdbwd"] * 1e-6)


def test_collectives_on_one_gpu_share_its_links(hgx):
    ag = {"op": "all_gather", "bytes": 8}
    doc = {"ops": [{**ag, "name": "tp", "group": [0, 1]},
                   {**ag, "name": "dp", "group": [1, 2], "stream": "comm_dp"},
                   {**ag, "name": "far", "group": [4, 5], "stream": "comm_dp"}]}
    instances = plan(parse_document(doc), hgx)
    names = [inst.ops[0].name for inst in instances]
    durations = {"tp": 4.0, "dp": 2.0, "far": 4.0}
    start, end = schedule(instances, [durations[n] for n in names], [0.0] * 3, share_links=True)
    t = {n: (start[k], end[k]) for k, n in enumerate(names)}
    # tp and dp share GPU 1: both at half rate until dp is done (4 s), then tp alone (2 s left)
    assert t["dp"] == pytest.approx((0.0, 4.0)) and t["tp"] == pytest.approx((0.0, 6.0))
    assert t["far"] == (0.0, 4.0)   # GPUs 4 and 5 share nothing with them
    alone = schedule(instances, [durations[n] for n in names], [0.0] * 3)
    assert alone[1] == [4.0, 2.0, 4.0]
