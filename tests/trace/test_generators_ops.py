"""Generated transformer traces: GEMM shapes and FLOP identities, inference modes, recipes, errors."""

from __future__ import annotations

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.generators import generate, load_model, parameter_count
from blackwell_sim.trace.io import parse_document


def gemms(doc, rank=0):
    return [o for o in doc["ops"] if o["op"] == "gemm" and o.get("rank", 0) == rank]


def flops(ops):
    return sum(2 * o["m"] * o["n"] * o["k"] * o.get("batch", 1) for o in ops)


def test_llama3_8b_layer_gemm_shapes():
    t = 2 * 1024
    doc = generate("llama3-8b", batch=2, seq=1024, layers=[3])
    got = [(o["name"], o["m"], o["n"], o["k"]) for o in gemms(doc)]
    qkv, h, ffn2, ffn = (32 + 2 * 8) * 128, 4096, 2 * 14336, 14336
    assert got == [
        ("r0.L3.fwd.qkv", t, qkv, h), ("r0.L3.fwd.o_proj", t, h, h), ("r0.L3.fwd.gate_up", t, ffn2, h),
        ("r0.L3.fwd.down", t, h, ffn),
        ("r0.L3.bwd.down.dgrad", t, ffn, h), ("r0.L3.bwd.down.wgrad", h, ffn, t),
        ("r0.L3.bwd.gate_up.dgrad", t, h, ffn2), ("r0.L3.bwd.gate_up.wgrad", ffn2, h, t),
        ("r0.L3.bwd.o_proj.dgrad", t, h, h), ("r0.L3.bwd.o_proj.wgrad", h, h, t),
        ("r0.L3.bwd.qkv.dgrad", t, h, qkv), ("r0.L3.bwd.qkv.wgrad", qkv, h, t)]
    attn = [o for o in doc["ops"] if o["op"] == "attention"]
    assert [(o["batch"], o["heads"], o["kv_heads"], o["seq_q"], o["seq_kv"], o["head_dim"], o["causal"],
             o["backward"]) for o in attn] == [(2, 32, 8, 1024, 1024, 128, True, False),
                                              (2, 32, 8, 1024, 1024, 128, True, True)]
    assert doc["config"] == "b200" and "system" not in doc
    parse_document(doc)


def test_whole_model_training_gemm_flops_are_six_t_times_linear_params():
    spec = load_model("llama3-8b")
    t = 1 * 512
    doc = generate(spec, batch=1, seq=t)
    linear_params = parameter_count(spec) - spec.vocab * spec.hidden - (2 * spec.layers + 1) * spec.hidden
    assert flops(gemms(doc)) == 6 * t * linear_params
    names = [o["name"] for o in doc["ops"]]
    assert names[0] == "r0.embed.fwd" and names[-1] == "r0.optim.adam"
    adam = doc["ops"][-1]
    assert adam["bytes_read"] == 14 * parameter_count(spec) and adam["phase"] == "optim"


def test_moe_layer_flops_follow_top_k_routing():
    spec = load_model("deepseek-v3-like")
    t = 4096  # 4096 tokens x top-8 / 256 experts = 128 tokens per expert, exactly
    doc = generate(spec, batch=1, seq=t, layers=[5])
    moe, h = spec.moe, spec.hidden
    expert = [o for o in gemms(doc) if "expert_" in o["name"]]
    assert {(o["batch"], o["m"]) for o in expert if o["name"].endswith(("fwd.expert_gate_up", "fwd.expert_down"))} \
        == {(moe.experts, t * moe.top_k // moe.experts)}
    mla = spec.mla
    attn_params = (h * mla.q_lora_rank + mla.q_lora_rank * spec.heads * (mla.qk_nope_head_dim + mla.qk_rope_head_dim)
                   + h * (mla.kv_lora_rank + mla.qk_rope_head_dim)
                   + mla.kv_lora_rank * spec.heads * (mla.qk_nope_head_dim + mla.v_head_dim)
                   + spec.heads * mla.v_head_dim * h)
    dense_params = attn_params + h * moe.experts + 3 * h * moe.expert_ffn * moe.shared_experts
    routed_params_per_token = moe.top_k * 3 * h * moe.expert_ffn
    assert flops(gemms(doc)) == 6 * t * (dense_params + routed_params_per_token)
    assert not [o for o in doc["ops"] if o["op"] == "all_to_all"]  # ep=1: no dispatch


def test_decode_and_prefill_shapes():
    doc = generate("llama3-70b", mode="decode", batch=16, kv_len=8192, layers=[0, 1])
    attn = [o for o in doc["ops"] if o["op"] == "attention"]
    assert {(o["seq_q"], o["seq_kv"], o["causal"], o["backward"], o["batch"]) for o in attn} == {(1, 8192, False, False, 16)}
    assert {o["m"] for o in gemms(doc)} == {16}
    assert not [o for o in doc["ops"] if o.get("phase") in ("bwd", "optim")]
    assert sum("kv_cache_append" in o["name"] for o in doc["ops"]) == 2
    whole = generate("llama3-8b", mode="decode", batch=4, kv_len=100)
    lm = [o for o in gemms(whole) if o["name"].endswith("lm_head")]
    assert [(o["m"], o["n"], o["k"]) for o in lm] == [(4, 128256, 4096)]
    pre = generate("llama3-8b", mode="prefill", batch=2, seq=512, kv_len=1024, layers=1)
    (a,) = [o for o in pre["ops"] if o["op"] == "attention"]
    assert (a["seq_q"], a["seq_kv"], a["causal"]) == (512, 1536, True)


def test_recipe_sets_formats_per_block_and_numerics_recipe():
    doc = generate("llama3-8b", batch=1, seq=256, recipe="nvfp4")
    by_layer = {}
    for o in gemms(doc):
        by_layer.setdefault(o["layer"], set()).add((o["dtype"], o.get("recipe")))
    assert by_layer["0"] == by_layer["31"] == {("bf16", "bf16")}
    assert all(by_layer[str(i)] == {("nvfp4", "nvfp4_te")} for i in range(1, 31))
    assert by_layer["head"] == {("bf16", None)}
    assert {o["dtype"] for o in doc["ops"] if o["op"] == "attention"} == {"bf16"}
    fp8 = generate("llama3-8b", batch=1, seq=256, recipe="fp8", layers=1)
    assert {(o["dtype"], o["recipe"]) for o in gemms(fp8)} == {("fp8_e4m3", "fp8_current")}


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "serve"}, "argument 'mode': expected one of train, prefill, decode"),
    ({"batch": 0}, "argument 'batch': expected an integer >= 1, got 0"),
    ({"batch": 6, "dp": 4}, "argument 'dp': 4 does not divide batch (6)"),
    ({"tp": 3}, "argument 'tp': 3 does not divide the model's heads (32)"),
    ({"ep": 2, "dp": 2, "batch": 2}, "argument 'ep': 2 needs a mixture-of-experts model"),
    ({"mode": "decode"}, "argument 'kv_len': decode needs the KV-cache length"),
    ({"kv_len": 5}, "argument 'kv_len': only for prefill and decode"),
    ({"layers": 40}, "argument 'layers': 40 > the model's 32 layers"),
    ({"layers": [0, 32]}, "block index 32 outside 0..31"),
    ({"layers": [1, 1]}, "repeated block index"),
    ({"pp": 3, "layers": 2, "microbatches": 1}, "argument 'pp': 3 stages for 2 blocks"),
    ({"batch": 4, "microbatches": 3}, "argument 'microbatches': 3 does not divide the per-replica batch (4)"),
    ({"tp": 8, "dp": 16, "batch": 16}, "128 ranks need a system preset"),
    ({"recipe": "int3"}, "unknown recipe 'int3'"),
])
def test_bad_arguments_one_line(kwargs, message):
    with pytest.raises(BlackwellSimError) as err:
        generate("llama3-8b", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_moe_ep_arguments():
    with pytest.raises(BlackwellSimError, match="argument 'ep': 4 does not divide dp \\(2\\)"):
        generate("deepseek-v3-like", batch=2, dp=2, ep=4, layers=[3])


def test_full_recompute_reruns_each_block_forward_before_its_backward():
    plain = generate("llama3-8b", batch=1, seq=256, layers=2)
    rec = generate("llama3-8b", batch=1, seq=256, layers=2, recompute=True)
    fwd = flops([o for o in gemms(plain) if o["phase"] == "fwd"])
    assert flops(gemms(rec)) == flops(gemms(plain)) + fwd
    names = [o["name"] for o in rec["ops"]]
    for layer in (0, 1):
        assert names.index(f"r0.L{layer}.recompute.qkv") < names.index(f"r0.L{layer}.bwd.down.dgrad")
    assert names.index("r0.L1.bwd.qkv.wgrad") < names.index("r0.L0.recompute.attn_norm")
    assert {o["phase"] for o in rec["ops"] if ".recompute." in o["name"]} == {"recompute"}
    with pytest.raises(BlackwellSimError, match="argument 'recompute': expected true or false"):
        generate("llama3-8b", layers=1, recompute="yes")
