"""Parallel layouts of generated traces: TP / DP / PP / EP collectives, rank mapping, dependencies."""

from __future__ import annotations

from collections import Counter

import pytest

from blackwell_sim.config import load_config
from blackwell_sim.trace.generators import Layout, generate, load_model
from blackwell_sim.trace.generators.transformer import layer_params
from blackwell_sim.trace.io import load_trace, parse_document
from blackwell_sim.trace.replay import plan


def ops_of(doc, kind):
    return [o for o in doc["ops"] if o["op"] == kind]


def gemm_flops(doc, rank):
    return sum(2 * o["m"] * o["n"] * o["k"] * o.get("batch", 1) for o in ops_of(doc, "gemm") if o["rank"] == rank)


def assert_well_formed(doc):
    """Unique names; every dep names an op earlier in the document (the weaver's guarantee)."""
    seen = set()
    for op in doc["ops"]:
        assert op["name"] not in seen
        assert all(d in seen for d in op.get("deps", ())), op["name"]
        seen.add(op["name"])
    parse_document(doc)


def test_layout_rank_mapping_and_groups():
    lay = Layout(tp=4, pp=2, dp=4, ep=2)
    assert lay.ranks == 32 and lay.rank(1, 1, 2) == 14 and lay.coords(14) == (1, 1, 2)
    assert lay.group("tp", 14) == ("tp3", [12, 13, 14, 15])
    assert lay.group("dp", 14)[1] == [6, 14, 22, 30]
    assert lay.group("ep", 14)[1] == [6, 14] and lay.group("ep", 22)[1] == [22, 30]
    assert lay.group("edp", 14)[1] == [14, 30]


def test_tensor_parallel_splits_gemms_and_adds_all_reduces():
    t, h = 2 * 512, 4096
    one = generate("llama3-8b", batch=2, seq=512, layers=2)
    tp = generate("llama3-8b", batch=2, seq=512, layers=2, tp=8)
    assert all(gemm_flops(tp, r) * 8 == gemm_flops(one, 0) for r in range(8))
    ar = ops_of(tp, "all_reduce")
    assert len(ar) == 2 * 4  # per block: after o_proj and down (fwd), before both norms' backward
    assert {(o["bytes"], tuple(o["group"]), o["stream"]) for o in ar} == {(t * h * 2, tuple(range(8)), "comm")}
    first = ar[0]
    assert first["name"] == "L0.fwd.attn_ar.tp0" and first["deps"] == [f"r{r}.L0.fwd.o_proj" for r in range(8)]
    after = [o for o in tp["ops"] if o.get("deps") == [first["name"]]]
    assert sorted(o["name"] for o in after) == sorted(f"r{r}.L0.fwd.attn_residual" for r in range(8))
    assert tp["system"] == "hgx-b200-8"
    assert_well_formed(tp)


def test_data_parallel_gradient_all_reduce_overlaps_and_gates_the_optimizer():
    spec = load_model("llama3-8b")
    doc = generate(spec, batch=8, seq=256, layers=2, dp=4)
    assert {o["batch"] for o in ops_of(doc, "attention")} == {2}
    grads = ops_of(doc, "all_reduce")
    dense, _ = layer_params(spec, 0, 1, 1)
    assert [(o["name"], o["bytes"], o["group"], o["stream"]) for o in grads] == [
        ("L1.grad_ar.dp0", dense * 2, [0, 1, 2, 3], "comm_dp"), ("L0.grad_ar.dp0", dense * 2, [0, 1, 2, 3], "comm_dp")]
    assert grads[0]["deps"] == [f"r{r}.L1.bwd.residual_grad2" for r in range(4)]
    for r in range(4):
        adam = next(o for o in doc["ops"] if o["name"] == f"r{r}.optim.adam")
        assert adam["deps"] == ["L1.grad_ar.dp0", "L0.grad_ar.dp0"]
        # block 0's backward does not wait for block 1's gradient reduction (it overlaps)
        l0 = next(o for o in doc["ops"] if o["name"] == f"r{r}.L0.bwd.down.dgrad")
        assert "deps" not in l0
    assert_well_formed(doc)


def test_pipeline_parallel_send_recv_pairs_and_gpipe_order():
    doc = generate("llama3-8b", batch=4, seq=256, layers=4, pp=2, microbatches=2, tp=2)
    sends, recvs = ops_of(doc, "send"), ops_of(doc, "recv")
    pairs = Counter((o["rank"], o["peer"], o["bytes"]) for o in sends)
    assert pairs == Counter((o["peer"], o["rank"], o["bytes"]) for o in recvs)
    assert pairs == Counter({(0, 2, 2 * 256 * 4096 * 2): 2, (1, 3, 2 * 256 * 4096 * 2): 2,
                             (2, 0, 2 * 256 * 4096 * 2): 2, (3, 1, 2 * 256 * 4096 * 2): 2})
    layers_of = {r: {o["layer"] for o in ops_of(doc, "gemm") if o["rank"] == r} for r in range(4)}
    assert layers_of == {0: {"0", "1"}, 1: {"0", "1"}, 2: {"2", "3"}, 3: {"2", "3"}}
    stage1 = [o["name"] for o in doc["ops"] if o.get("rank") == 2 and o["op"] == "gemm"]
    last_fwd = max(i for i, n in enumerate(stage1) if ".fwd." in n)
    first_bwd = min(i for i, n in enumerate(stage1) if ".bwd." in n)
    assert last_fwd < first_bwd and stage1[0].startswith("r2.mb0.") and stage1[last_fwd].startswith("r2.mb1.")
    first = next(o for o in doc["ops"] if o["name"] == "r2.mb0.L2.fwd.attn_norm")
    assert first["deps"] == ["r2.mb0.pp.fwd.recv0"]
    assert_well_formed(doc)
    plan(load_trace(doc), load_config("hgx-b200-8"))  # send/recv pair up in the replayer


def test_expert_parallel_all_to_all_and_expert_data_parallel():
    spec = load_model("deepseek-v3-like")
    doc = generate(spec, batch=8, seq=1024, dp=8, ep=4, layers=[3])
    a2a = ops_of(doc, "all_to_all")
    assert len(a2a) == 4 * 2  # dispatch + combine, forward and backward, for 2 EP groups
    tokens = 1 * 1024
    assert {(o["bytes"], len(o["group"])) for o in a2a} == {(tokens * 8 * spec.hidden * 2, 4)}
    assert sorted(tuple(o["group"]) for o in a2a if o["name"].startswith("L3.fwd.dispatch")) == [(0, 1, 2, 3),
                                                                                                  (4, 5, 6, 7)]
    expert = [o for o in ops_of(doc, "gemm") if o["rank"] == 0 and o["name"].endswith("fwd.expert_gate_up")]
    assert [(o["batch"], o["m"]) for o in expert] == [(64, tokens * 8 // 64)]
    dense, experts = layer_params(spec, 3, 1, 4)
    grads = {o["name"].split(".")[1]: o for o in ops_of(doc, "all_reduce") if o["group"][0] == 0}
    assert grads["grad_ar"]["bytes"] == dense * 2 and len(grads["grad_ar"]["group"]) == 8
    assert grads["expert_grad_ar"]["bytes"] == experts * 2 and grads["expert_grad_ar"]["group"] == [0, 4]
    gate_up = next(o for o in doc["ops"] if o["name"] == "r0.L3.fwd.expert_gate_up")
    assert gate_up["deps"] == ["L3.fwd.dispatch.ep0"]
    assert_well_formed(doc)


@pytest.mark.parametrize("kwargs, platform", [
    ({"tp": 8}, ("system", "hgx-b200-8")), ({"tp": 8, "dp": 8, "batch": 8}, ("system", "gb200-nvl72")),
    ({"tp": 2, "system": "hgx-h100-8"}, ("system", "hgx-h100-8")), ({"config": "h100-sxm"}, ("config", "h100-sxm")),
])
def test_platform_defaults_by_rank_count(kwargs, platform):
    doc = generate("llama3-8b", seq=128, layers=1, **kwargs)
    assert doc[platform[0]] == platform[1]


def test_64_rank_70b_layer_fits_nvl72_and_plans():
    doc = generate("llama3-70b", batch=8, seq=512, layers=2, tp=8, dp=8, recipe="nvfp4")
    assert_well_formed(doc)
    instances = plan(load_trace(doc), load_config(doc["system"]))
    assert {r for inst in instances for r in inst.ranks} == set(range(64))


def test_inference_with_tp_gathers_logits():
    doc = generate("llama3-8b", mode="decode", batch=8, kv_len=512, tp=4)
    (gather,) = ops_of(doc, "all_gather")
    assert gather["bytes"] == 8 * (128256 // 4) * 2 * 4 and gather["group"] == [0, 1, 2, 3]
    assert not ops_of(doc, "elementwise") or all(o.get("phase") != "bwd" for o in doc["ops"])
    assert_well_formed(doc)


def test_sequence_parallel_replaces_all_reduce_by_gather_and_scatter():
    t, h, tp = 2 * 512, 4096, 4
    plain = generate("llama3-8b", batch=2, seq=512, layers=1, tp=tp)
    sp = generate("llama3-8b", batch=2, seq=512, layers=1, tp=tp, sequence_parallel=True)
    assert not ops_of(sp, "all_reduce")
    names = [o["name"] for o in sp["ops"] if o["op"] in ("all_gather", "reduce_scatter")]
    assert names == [f"L0.{n}.tp0" for n in ("fwd.attn_ag", "fwd.attn_rs", "fwd.mlp_ag", "fwd.mlp_rs",
                                             "bwd.mlp_dy_ag", "bwd.mlp_x_ag", "bwd.mlp_rs",
                                             "bwd.attn_dy_ag", "bwd.attn_x_ag", "bwd.attn_rs")]
    assert {o["bytes"] for o in sp["ops"] if o["op"] in ("all_gather", "reduce_scatter")} == {t * h * 2}
    # GEMMs are the same; norms and residuals work on a 1/tp sequence shard
    def shapes(doc):
        return [(o["name"], o["m"], o["n"], o["k"]) for o in ops_of(doc, "gemm") if o["rank"] == 1]

    assert shapes(sp) == shapes(plain)
    plain_norm = next(o for o in ops_of(plain, "elementwise") if o["name"] == "r0.L0.fwd.attn_norm")
    sp_norm = next(o for o in ops_of(sp, "elementwise") if o["name"] == "r0.L0.fwd.attn_norm")
    assert sp_norm["bytes_read"] * tp == plain_norm["bytes_read"]
    # the wgrad of a column-parallel layer waits for the re-gathered input; dX's reduce-scatter overlaps it
    wgrad = next(o for o in sp["ops"] if o["name"] == "r0.L0.bwd.gate_up.wgrad")
    assert wgrad["deps"] == ["L0.bwd.mlp_x_ag.tp0"]
    norm_bwd = next(o for o in sp["ops"] if o["name"] == "r0.L0.bwd.mlp_norm")
    assert norm_bwd["deps"] == ["L0.bwd.mlp_rs.tp0"]
    assert_well_formed(sp)


def test_distributed_optimizer_shards_adam_and_gathers_weights():
    spec = load_model("llama3-8b")
    dp = 4
    doc = generate(spec, batch=4, seq=128, layers=2, dp=dp, distributed_optimizer=True)
    dense, _ = layer_params(spec, 0, 1, 1)
    rs, ag = ops_of(doc, "reduce_scatter"), ops_of(doc, "all_gather")
    assert not ops_of(doc, "all_reduce")
    assert [(o["name"], o["bytes"]) for o in rs] == [("L1.grad_rs.dp0", dense * 2), ("L0.grad_rs.dp0", dense * 2)]
    assert [(o["name"], o["bytes"]) for o in ag] == [("L1.param_ag.dp0", dense * 2), ("L0.param_ag.dp0", dense * 2)]
    adam = next(o for o in doc["ops"] if o["name"] == "r0.optim.adam")
    assert adam["bytes_read"] == 14 * (2 * dense // dp)
    assert sorted(ag[0]["deps"]) == [f"r{r}.optim.adam" for r in range(dp)]
    assert {o["phase"] for o in rs} == {"bwd"} and {o["phase"] for o in ag} == {"optim"}
    assert_well_formed(doc)


def test_moe_with_tp_and_sequence_parallel_is_consistent():
    spec = load_model("deepseek-v3-like")
    doc = generate(spec, batch=4, seq=256, layers=[3], tp=2, dp=2, ep=2, sequence_parallel=True,
                   distributed_optimizer=True)
    assert_well_formed(doc)
    plan(load_trace(doc), load_config(doc["system"]))
    router = next(o for o in doc["ops"] if o["name"] == "r0.L3.fwd.router")
    assert router["m"] == (4 // 2) * 256 // 2  # per-replica tokens, a 1/tp sequence shard
    shared = [o["name"] for o in doc["ops"] if ".shared_" in o["name"] and o["op"] != "gemm" and "tp0" in o["name"]]
    assert shared == ["L3.fwd.shared_ag.tp0", "L3.fwd.shared_rs.tp0", "L3.bwd.shared_dy_ag.tp0",
                      "L3.bwd.shared_x_ag.tp0", "L3.bwd.shared_rs.tp0"]


def test_pipeline_sends_a_sequence_shard_with_sequence_parallelism():
    doc = generate("llama3-8b", batch=2, seq=256, layers=2, pp=2, tp=2, sequence_parallel=True)
    assert {o["bytes"] for o in ops_of(doc, "send")} == {1 * 256 // 2 * 4096 * 2}  # 2 micro-batches of 1
    assert_well_formed(doc)
