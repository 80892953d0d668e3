"""Imported and generated multi-GPU traces replay end to end through the GEMM, attention and
collective models: the real 2-rank capture (compute and NCCL on both ranks, measured beside
simulated) and generated training layers with every parallelism option."""

from __future__ import annotations

import pytest

import blackwell_sim as bs
from blackwell_sim.trace.generators import generate
from blackwell_sim.trace.torch_profile import import_torch_profile


def test_two_rank_capture_replays_compute_and_collectives(request):
    ranks = request.config.rootpath / "tests" / "fixtures" / "torch_profile" / "ranks"
    doc = import_torch_profile([ranks / f"torch_profile_rank{r}.json.gz" for r in (0, 1)])
    frame = bs.simulate(doc).ops
    n_coll = sum(1 for op in doc["ops"] if "group" in op)
    assert len(frame) == len(doc["ops"]) + n_coll  # a collective has one row per rank
    assert frame["measured_s"].notna().all() and (frame["time_s"] > 0).all()
    assert set(frame["op"]) == {"gemm", "attention", "all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                                "broadcast"}
    assert sorted(set(frame["rank"])) == [0, 1]


@pytest.mark.parametrize("options", [
    {},
    {"sequence_parallel": True, "distributed_optimizer": True, "recompute": True},
])
def test_generated_parallel_layer_replays(options):
    doc = generate("llama3-8b", batch=2, seq=512, layers=[1], tp=2, dp=2, recipe="nvfp4", **options)
    result = bs.simulate(doc)
    frame = result.ops
    n_coll = sum(1 for op in doc["ops"] if "group" in op)
    assert len(frame) == len(doc["ops"]) + n_coll  # every collective here spans 2 ranks
    assert sorted(set(frame["rank"])) == [0, 1, 2, 3]
    assert set(frame.loc[frame["op"] == "gemm", "dtype"]) == {"nvfp4"}
    serial = frame[frame["stream"] == "compute"].groupby("rank")["time_s"].sum()  # one stream runs in order
    assert result.summary["total_time_s"] >= serial.max() * (1 - 1e-9)


def test_generated_pipeline_and_expert_parallel_replay():
    pp = bs.simulate(generate("llama3-8b", batch=2, seq=256, layers=2, pp=2, tp=2)).ops
    assert {"send", "recv"} <= set(pp["op"]) and (pp["time_s"] > 0).all()
    small_moe = {"hidden": 1024, "heads": 8, "layers": 2, "vocab": 1000, "ffn": 2048,
                 "moe": {"experts": 8, "top_k": 2, "expert_ffn": 512, "shared_experts": 1, "first_dense_layers": 1}}
    moe = bs.simulate(generate(small_moe, batch=2, seq=256, layers=[1], dp=2, ep=2, tp=2, system="hgx-h100-8")).ops
    assert "all_to_all" in set(moe["op"]) and (moe["time_s"] > 0).all()
    assert sorted(set(moe["rank"])) == [0, 1, 2, 3]
