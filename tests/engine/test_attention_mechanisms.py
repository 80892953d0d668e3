"""Attention kernel model: each test pins one mechanism (work, exp rate, traffic, budgets, scheduling)."""

from __future__ import annotations

import pytest

from blackwell_sim import load_config
from blackwell_sim.engine.kernels.attention import simulate_attention
from blackwell_sim.engine.kernels.attention_run import split_count
from blackwell_sim.engine.kernels.attention_sim import causal_blocks
from blackwell_sim.engine.sfu import SFU, SoftmaxMix
from blackwell_sim.errors import BlackwellSimError

FIXED_CLOCK = {"power.limit_w": 5000}  # lift the power limit so a mechanism is seen at one clock


def test_causal_is_about_half_the_work_at_long_sequence(h100):
    full = simulate_attention(h100, 1, 8, 16384, 128)
    causal = simulate_attention(h100, 1, 8, 16384, 128, causal=True)
    assert causal.flops == pytest.approx(full.flops / 2)
    # masked blocks are skipped, the diagonal blocks computed whole; the longest-first scheduler
    # packs the uneven causal tiles into the waves a little better than the even ones
    assert 0.47 < causal.time_s / full.time_s < 0.55
    assert causal.details["computed_blocks"] == pytest.approx(full.details["computed_blocks"] * (128 + 1) / (2 * 128))
    assert causal.efficiency["padding_and_masking"] < 1.0 == full.efficiency["padding_and_masking"]


def test_causal_block_counts_top_left_mask():
    # Q rows [0, 128) against 128-key blocks: one block, on the diagonal
    assert causal_blocks(0, 128, 1024, 128) == (1, 1)
    # Q rows [256, 384): keys [0, 384) -> 3 blocks, the last straddles the diagonal
    assert causal_blocks(256, 128, 1024, 128) == (3, 1)
    # 64-key blocks: rows [128, 256) see blocks 0..3; blocks 2 and 3 are partly masked
    assert causal_blocks(128, 128, 1024, 64) == (4, 2)


def test_doubling_the_exp_rate_helps_fa4_where_exp_bound(b200):
    base = load_config("b200", overrides=FIXED_CLOCK)
    fast_exp = load_config("b200", overrides={**FIXED_CLOCK, "sm.sfu_ops_per_clock": 32})
    r = simulate_attention(base, 1, 16, 8192, 64, kernel="fa4")
    assert r.bound == "exp"  # head dim 64: half the MMA per score element, the same exp per element
    faster = simulate_attention(fast_exp, 1, 16, 8192, 64, kernel="fa4")
    assert r.time_s / faster.time_s > 1.15
    # without the FMA-pipe emulation the MUFU carries every exp and the gain is larger
    plain = simulate_attention(base, 1, 16, 8192, 64, kernel="fa4", exp_emulation=False)
    plain_fast = simulate_attention(fast_exp, 1, 16, 8192, 64, kernel="fa4", exp_emulation=False)
    assert plain.time_s > r.time_s and plain.time_s / plain_fast.time_s > r.time_s / faster.time_s


def test_doubling_the_exp_rate_barely_moves_fa2(h100):
    base = load_config("h100-sxm", overrides=FIXED_CLOCK)
    fast_exp = load_config("h100-sxm", overrides={**FIXED_CLOCK, "sm.sfu_ops_per_clock": 32})
    r = simulate_attention(base, 1, 16, 8192, 128, kernel="fa2")
    assert r.bound == "mma"  # the legacy mma.sync path is the limit
    assert r.time_s / simulate_attention(fast_exp, 1, 16, 8192, 128, kernel="fa2").time_s < 1.05


def test_fa4_emulates_only_enough_exps_to_balance_the_pipes(b200):
    r = simulate_attention(b200, 1, 16, 8192, 128, kernel="fa4")
    assert 0 < r.details["emulated_exp_fraction"] <= 0.25
    sfu = SFU(b200.sm)
    f = r.details["emulated_exp_fraction"]
    mix = SoftmaxMix(3.5 + 0.1 * 128 / 128)
    assert sfu.exp_cycles(1000, f) == pytest.approx(sfu.fp32_cycles(1000, mix, f), rel=0.02) or f == 0.25


def test_gqa_cuts_kv_traffic_in_decode(h100):
    mha = simulate_attention(h100, 16, 32, 1, 128, kv_heads=32, seq_kv=8192)
    gqa = simulate_attention(h100, 16, 32, 1, 128, kv_heads=8, seq_kv=8192)
    kv_bytes_mha = 16 * 32 * 8192 * 128 * 2 * 2
    assert mha.bytes["hbm"] == pytest.approx(kv_bytes_mha, rel=0.05)
    assert gqa.bytes["hbm"] == pytest.approx(kv_bytes_mha / 4, rel=0.05)
    assert gqa.time_s < mha.time_s / 3
    assert mha.bound == gqa.bound == "hbm"


def test_gqa_prefill_reads_each_kv_head_once_from_hbm(h100):
    mha = simulate_attention(h100, 1, 32, 4096, 128)
    gqa = simulate_attention(h100, 1, 32, 4096, 128, kv_heads=4)
    q_o_bytes = 2 * 32 * 4096 * 128 * 2
    assert mha.bytes["hbm"] - q_o_bytes > 7 * (gqa.bytes["hbm"] - q_o_bytes)


def test_decode_splits_the_kv_length_when_heads_do_not_fill_the_gpu(h100):
    r = simulate_attention(h100, 1, 8, 1, 128, seq_kv=32768)
    assert r.details["splits"] > 1 and r.bound == "hbm"
    assert [k for k, _ in r.details["kernels"]] == ["attention_fwd", "splitkv_combine"]
    many = simulate_attention(h100, 64, 32, 1, 128, seq_kv=2048)
    assert many.details["splits"] == 1


def test_split_heuristic_fills_the_machine():
    assert split_count(8, 132, 256) >= 8          # 8 units on 132 SMs: split
    assert split_count(132, 132, 256) == 1        # already full
    s = split_count(16, 132, 64)
    assert 16 * s / (-(-16 * s // 132) * 132) >= 0.85 * max(16 * k / (-(-16 * k // 132) * 132) for k in range(1, 65))


def test_head_dim_outside_the_tmem_budget_is_rejected(b200):
    with pytest.raises(BlackwellSimError, match="TMEM budget: 512 columns needed"):
        simulate_attention(load_config("b200", overrides={"tmem.size_bytes": 131072}), 1, 8, 1024, 128)
    with pytest.raises(BlackwellSimError, match=r"head dim 256 does not fit kernel 'fa4'.*TMEM budget"):
        simulate_attention(b200, 1, 8, 1024, 256, kernel="fa4")


def test_head_dim_outside_the_smem_budget_is_rejected(h100):
    small = load_config("h100-sxm", overrides={"smem.max_per_cta_bytes": 100_000})
    with pytest.raises(BlackwellSimError, match="SMEM budget: 192 KB needed"):
        simulate_attention(small, 1, 8, 1024, 256, kernel="fa3")
    with pytest.raises(BlackwellSimError, match="larger than kernel 'fa3' supports"):
        simulate_attention(h100, 1, 8, 1024, 512)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(kernel="fa4"), "does not run on hopper"),
    (dict(kernel="fa9"), "must be one of"),
    (dict(kv_heads=5), "multiple of kv_heads"),
    (dict(dtype="fp8_e4m3", kernel="fa2"), "does not support dtype"),
    (dict(dtype="fp8_e4m3", backward=True), "16-bit dtypes only"),
    (dict(exp_emulation=True, kernel="fa3"), "no software exp emulation"),
    (dict(fidelity="exact"), "fidelity must be one of"),
])
def test_bad_arguments_raise_one_clear_error(h100, kwargs, needle):
    with pytest.raises(BlackwellSimError, match=needle):
        simulate_attention(h100, 1, 8, 1024, 128, **kwargs)


def test_default_kernel_is_the_fastest_per_architecture(h100, b200):
    assert simulate_attention(h100, 1, 8, 2048, 128).details["variant"] == "fa3"
    assert simulate_attention(b200, 1, 8, 2048, 128).details["variant"] == "fa4"
    fa2 = simulate_attention(h100, 1, 8, 2048, 128, kernel="fa2")
    fa3 = simulate_attention(h100, 1, 8, 2048, 128, kernel="fa3")
    assert fa3.time_s < fa2.time_s


def test_backward_flops_and_kernels(h100):
    fwd = simulate_attention(h100, 2, 16, 2048, 128, kernel="fa2")
    bwd = simulate_attention(h100, 2, 16, 2048, 128, kernel="fa2", backward=True)
    assert bwd.flops == pytest.approx(2.5 * fwd.flops)
    names = [k for k, _ in bwd.details["kernels"]]
    assert names == ["attention_bwd", "layout_copy_0", "layout_copy_1", "dot_do_o", "convert_dq"]
    assert bwd.time_s > 2 * fwd.time_s
    gqa = simulate_attention(h100, 2, 16, 2048, 128, kv_heads=4, backward=True)
    assert [k for k, _ in gqa.details["kernels"]][-2:] == ["reduce_dk", "reduce_dv"]


def test_fast_and_detailed_agree(h100):
    args = (h100, 2, 16, 2048, 128)
    fast = simulate_attention(*args, causal=True)
    detailed = simulate_attention(*args, causal=True, fidelity="detailed")
    assert detailed.details["events"] > fast.details["events"]
    assert detailed.time_s == pytest.approx(fast.time_s, rel=0.03)


def test_persistent_schedulers_order_tiles_by_l2_group_then_length(h100, b200):
    # fa4 (LPT): 8 heads x 32 CTAs of 256 Q rows at 8k tokens; a head's K/V is 4 MB, all 8 heads fit
    # half of B200's L2 in one group, so the first 148 CTAs are the 18-19 longest of every head
    fa4 = simulate_attention(b200, 1, 8, 8192, 128, causal=True, kernel="fa4", record_timeline=True)
    first = sorted(fa4.details["timeline"], key=lambda t: t[2])[:148]
    assert {key[1] for _, key, _, _ in first} == set(range(8))
    assert min(key[2] for _, key, _, _ in first) == 32 - 19
    # fa3 (cuDNN's order): the grid's order inside the L2 group, Q tile 0 of head 0 first
    fa3 = simulate_attention(h100, 1, 8, 8192, 128, causal=True, kernel="fa3", record_timeline=True)
    first = sorted(fa3.details["timeline"], key=lambda t: t[2])[:132]
    assert {key[1] for _, key, _, _ in first} == {0, 1, 2} and min(key[2] for _, key, _, _ in first) == 0
    # a 32-head problem does not fit one group: H100 takes 6 heads' K/V (4 MB each) per group
    many = simulate_attention(h100, 1, 32, 8192, 128, causal=True, kernel="fa3", record_timeline=True)
    starts = [(key[1], start) for _, key, start, _ in many.details["timeline"]]
    first_group = [t for head, t in starts if head < 6]
    assert len(first_group) == 6 * 64
    assert max(first_group) <= min(t for head, t in starts if head >= 6)   # taken before any later head


def test_burst_clock_is_not_slower_than_sustained(h100):
    burst = simulate_attention(h100, 1, 32, 4096, 128, power_state="burst")
    sustained = simulate_attention(h100, 1, 32, 4096, 128, power_state="sustained")
    assert burst.clock_mhz >= sustained.clock_mhz and burst.time_s <= sustained.time_s


def test_same_inputs_same_answer():
    # two separately loaded configs, so the second run is simulated again, not memoized
    a = simulate_attention(load_config("h100-sxm"), 4, 8, 1024, 64, causal=True).to_dict()
    b = simulate_attention(load_config("h100-sxm"), 4, 8, 1024, 64, causal=True).to_dict()
    assert a == b


def test_thread_issued_loads_expose_latency_in_decode(h100):
    """fa2's cp.async loads run one block ahead, so each block's round trip adds to its transfer;
    fa3's TMA pipeline keeps enough in flight to hide it. Decode is where it shows."""
    args = (8, 32, 1, 128)
    far = load_config("h100-sxm", overrides={"hbm.latency_ns": 960})
    fa2, fa3 = (simulate_attention(h100, *args, seq_kv=8192, kernel=k) for k in ("fa2", "fa3"))
    fa2_far, fa3_far = (simulate_attention(far, *args, seq_kv=8192, kernel=k) for k in ("fa2", "fa3"))
    assert fa2.bytes["hbm"] == pytest.approx(fa3.bytes["hbm"], rel=0.01)
    assert fa2.time_s > 1.05 * fa3.time_s
    assert fa2_far.time_s / fa2.time_s > 1.05 and fa3_far.time_s / fa3.time_s < 1.02
