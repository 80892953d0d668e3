"""Attention with a separate value head dim (DeepSeek MLA: Q/K 192, V 128): FLOPs, budgets, work.

Each test pins one mechanism: the two products' FLOPs, the V product's MMA shape, the K/V bytes,
FlashAttention-4's SMEM / TMEM layouts for (192, 128), and the per-tile Q load it exposes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from blackwell_sim import load_config
from blackwell_sim.config import get_dtype
from blackwell_sim.engine.kernels.attention import simulate_attention
from blackwell_sim.engine.kernels.attention_model import (
    Tiling,
    backward_tmem_columns,
    forward_smem_bytes,
)
from blackwell_sim.engine.kernels.attention_variants import VARIANTS
from blackwell_sim.engine.tensor_core import TensorCore
from blackwell_sim.errors import BlackwellSimError

KB = 1024


def test_flops_count_each_product_at_its_own_dim(b200):
    b, h, s = 2, 16, 2048
    fwd = simulate_attention(b200, b, h, s, 192, head_dim_v=128)
    # S = Q K^T over 192, O = P V over 128
    assert fwd.flops == 2 * b * h * s * s * 192 + 2 * b * h * s * s * 128
    causal = simulate_attention(b200, b, h, s, 192, head_dim_v=128, causal=True)
    assert causal.flops == fwd.flops / 2
    bwd = simulate_attention(b200, b, h, s, 192, head_dim_v=128, backward=True)
    assert bwd.flops == 2.5 * fwd.flops
    # equal dims keep the 4*B*H*S*Skv*D convention, and head_dim_v=None means head_dim
    same = simulate_attention(b200, b, h, s, 128, head_dim_v=128)
    assert same.flops == 4 * b * h * s * s * 128 == simulate_attention(b200, b, h, s, 128).flops


def test_the_value_product_runs_at_the_value_dim(b200):
    r = simulate_attention(b200, 1, 16, 4096, 192, head_dim_v=128, kernel="fa4")
    tc = TensorCore(b200, get_dtype("bf16"))
    rows = 2 * 128  # two Q tiles per CTA (ping-pong)
    assert r.details["mma_cycles"] == pytest.approx(tc.kblock_cycles(rows, 128, 192) + tc.kblock_cycles(rows, 128, 128))
    d = r.details
    assert (d["head_dim_bucket"], d["head_dim_qk_padded"], d["head_dim_v_padded"]) == (192, 192, 128)
    bwd = simulate_attention(b200, 1, 16, 4096, 192, head_dim_v=128, kernel="fa4", backward=True)
    # S, dK, dQ over d_qk; dP, dV over d_v
    expect = sum(tc.kblock_cycles(m, n, k) for m, n, k in
                 [(128, 128, 192), (128, 128, 128), (128, 128, 128), (128, 192, 128), (128, 192, 128)])
    assert bwd.details["mma_cycles"] == pytest.approx(expect)


def test_decode_streams_k_at_the_qk_dim_and_v_at_the_value_dim(b200):
    r = simulate_attention(b200, 16, 32, 1, 192, head_dim_v=128, seq_kv=8192)
    kv_bytes = 16 * 32 * 8192 * (192 + 128) * 2
    assert r.bytes["hbm"] == pytest.approx(kv_bytes, rel=0.05) and r.bound == "hbm"
    equal = simulate_attention(b200, 16, 32, 1, 192, head_dim_v=192, seq_kv=8192, kernel="fa4")
    assert equal.bytes["hbm"] > r.bytes["hbm"] * 1.15


def test_fa4_budgets_for_192_128_are_flashattention4s():
    fa4 = VARIANTS["fa4"]
    # forward: O staged in Q's buffer (overlap_sO_sQ), K/V ring of slots 128x192, 128x128, 128x192
    mla = Tiling(d=192, dqk=192, dv=128, bq=128, bkv=128, o_reuses_q=True)
    assert forward_smem_bytes(fa4, mla, 2) == max(2 * 128 * 192, 2 * 128 * 128) * 2 + (2 * 128 * 192 + 128 * 128) * 2
    assert forward_smem_bytes(fa4, mla, 2) == 224 * KB
    # hdim 128: separate Q and O, three 128x128 slots: also FA4's 224 KB
    assert forward_smem_bytes(fa4, Tiling(128, 128, 128, 128, 128), 2) == 224 * KB
    # backward: dK 192 + dV 128 + P packed into half of S (64) + dP 128 = 512 columns
    assert backward_tmem_columns(fa4, Tiling(192, 192, 128, 128, 128), 512) == (512, "dK+dV+P(packed in S)+dP")
    assert backward_tmem_columns(fa4, Tiling(128, 128, 128, 128, 128), 512) == (512, "dK+dV+S+dP")


def test_192_128_fits_fa4_where_192_192_and_256_do_not(b200):
    for backward in (False, True):
        r = simulate_attention(b200, 1, 16, 2048, 192, head_dim_v=128, causal=True, backward=backward)
        assert r.details["variant"] == "fa4" and r.time_s > 0 and "d192 dv128" in r.kernel
    with pytest.raises(BlackwellSimError, match=r"head dim 192 does not fit kernel 'fa4' \(forward\).*"
                                                r"TMEM budget: 640 columns needed \(S\+O per Q tile\), 512 available"):
        simulate_attention(b200, 1, 16, 2048, 192)
    with pytest.raises(BlackwellSimError, match=r"head dim 192 \(Q/K\) / 256 \(V\) does not fit kernel 'fa4'"):
        simulate_attention(b200, 1, 16, 2048, 192, head_dim_v=256)
    with pytest.raises(BlackwellSimError, match=r"head dim 256 does not fit kernel 'fa4' \(forward\).*"
                                                r"TMEM budget: 768 columns needed \(S\+O per Q tile\), 512 available"):
        simulate_attention(b200, 1, 16, 2048, 256)
    with pytest.raises(BlackwellSimError, match=r"head dim 256 does not fit kernel 'fa4' \(backward\).*"
                                                r"TMEM budget: 768 columns needed \(dK\+dV\+S\+dP\)"):
        simulate_attention(b200, 1, 16, 2048, 256, backward=True)


def test_o_in_q_smem_exposes_each_tiles_q_load(monkeypatch):
    """FA4 stages O in Q's SMEM at head dim 192, so the next tile's Q cannot be prefetched during
    the current one: every tile waits for its Q load, not only each CTA's first. (The what-if
    with a separate O buffer needs more SMEM than B200 has: 288 KB.)"""
    big = load_config("b200", overrides={"smem.size_bytes": 320 * KB, "smem.max_per_cta_bytes": 320 * KB,
                                         "power.limit_w": 5000})  # one clock for both runs
    args = (big, 4, 16, 4096, 192)
    shared = simulate_attention(*args, head_dim_v=128, kernel="fa4")
    monkeypatch.setitem(VARIANTS, "fa4", replace(VARIANTS["fa4"], o_reuses_q_buckets=()))
    separate = simulate_attention(*args, head_dim_v=128, kernel="fa4")
    assert shared.details["o_reuses_q_smem"] and "o_reuses_q_smem" not in separate.details
    assert shared.clock_mhz == separate.clock_mhz and shared.details["mma_cycles"] == separate.details["mma_cycles"]
    clock_hz = shared.clock_mhz * 1e6
    per_tile_s = (VARIANTS["fa4"].cta_launch_cycles + big.tma.latency_cycles) / clock_hz + big.hbm.latency_ns * 1e-9
    later_tiles = shared.details["units"] - shared.details["workers"]  # every tile after a CTA slot's first
    extra = shared.details["time_components_s"]["latency"] - separate.details["time_components_s"]["latency"]
    assert later_tiles > 0 and extra == pytest.approx(later_tiles * per_tile_s, rel=1e-9)
    assert shared.time_s > separate.time_s


def test_hopper_kernels_take_a_separate_value_dim(h100):
    r = simulate_attention(h100, 1, 16, 2048, 192, head_dim_v=128, causal=True)
    assert r.details["variant"] == "fa3" and r.flops == 2 * 16 * 2048 * 2048 * (192 + 128) / 2
    assert r.details["head_dim_v_padded"] == 128


@pytest.mark.parametrize("value,needle", [
    (100, "head_dim_v must be a multiple of 8"),
    (0, "head_dim_v must be a positive integer"),
    (True, "head_dim_v must be a positive integer"),
])
def test_bad_head_dim_v_is_one_clear_error(b200, value, needle):
    with pytest.raises(BlackwellSimError, match=needle):
        simulate_attention(b200, 1, 8, 1024, 128, head_dim_v=value)
