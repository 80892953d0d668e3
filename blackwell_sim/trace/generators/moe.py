"""Mixture-of-experts FFN of one rank: router, expert-parallel all-to-alls, routed experts as one
batched GEMM, shared experts (see :mod:`.transformer` for the item format).

Routing is assumed balanced: a rank's token copies (tokens x top_k, its share of the TP group's
tokens) spread evenly over the experts it holds (``experts / ep``), so each active expert gets
``ceil(copies / active)`` rows. Dispatch and combine each move every routed token copy once
(``copies x hidden x 2`` bytes per rank, the nccl-tests all-to-all size). With tensor parallelism
the routed experts are not split: each TP rank routes its own ``1 / tp`` of the tokens (a sequence
shard with SP; without SP the partial outputs are completed by the block's TP all-reduce); shared
experts are split like a dense FFN.
"""

from __future__ import annotations

from blackwell_sim.trace.generators.models import ModelSpec, ceil_div
from blackwell_sim.trace.generators.transformer import (
    ACT_BYTES,
    RankShape,
    column_parallel_backward,
    comm_item,
    elementwise_op,
    gemm_op,
    linear_bwd,
    linear_fwd,
    row_parallel_backward,
    swiglu,
    tp_enter,
    tp_exit,
)


def expert_rows(spec: ModelSpec, sh: RankShape) -> tuple[int, int]:
    """(experts that get tokens on this rank, tokens per such expert) under balanced routing."""
    copies = ceil_div(sh.tokens, sh.tp) * spec.moe.top_k
    active = min(spec.moe.experts // sh.ep, copies)
    return active, ceil_div(copies, active)


def moe_forward(spec: ModelSpec, sh: RankShape, lins: dict, dtype, numerics, tag: str) -> list[dict]:
    moe, h, t = spec.moe, spec.hidden, sh.tokens
    routed = ceil_div(t, sh.tp)              # tokens this rank routes
    rows_router = sh.norm_tokens             # every token without SP (redundantly), a shard with SP
    active, rows = expert_rows(spec, sh)
    dispatch = routed * moe.top_k * h * ACT_BYTES
    items = [gemm_op(f"{tag}.router", rows_router, moe.experts, h, sh.recipe.router, None),
             elementwise_op(f"{tag}.topk", rows_router * moe.experts * 4, rows_router * moe.top_k * 8,
                          2 * rows_router * moe.experts)]
    if sh.ep > 1:
        items.append(comm_item("all_to_all", dispatch, "ep", f"{tag}.dispatch", False))
    if moe.shared_experts:
        sgu, sdown = lins["shared_gate_up"], lins["shared_down"]
        items += tp_enter(sh, t * h * ACT_BYTES, f"{tag}.shared")
        items += [linear_fwd(sgu, t, 1, dtype, numerics, tag), swiglu(f"{tag}.shared_act", t, sdown.in_features),
                  linear_fwd(sdown, t, 1, dtype, numerics, tag)]
        if sh.seq_parallel:
            items += tp_exit(sh, t * h * ACT_BYTES, f"{tag}.shared")[0]
    gate_up = linear_fwd(lins["expert_gate_up"], rows, active, dtype, numerics, tag)
    if sh.ep > 1:
        gate_up["_wait"] = [f"{tag}.dispatch"]
    items += [gate_up, swiglu(f"{tag}.expert_act", rows * active, moe.expert_ffn),
              linear_fwd(lins["expert_down"], rows, active, dtype, numerics, tag)]
    if sh.ep > 1:
        items.append(comm_item("all_to_all", dispatch, "ep", f"{tag}.combine", True))
    items.append(elementwise_op(f"{tag}.moe_combine", routed * moe.top_k * h * ACT_BYTES, routed * h * ACT_BYTES,
                              2 * routed * moe.top_k * h))
    if not sh.seq_parallel:
        items += tp_exit(sh, t * h * ACT_BYTES, f"{tag}.mlp")[0]
    return items


def moe_backward(spec: ModelSpec, sh: RankShape, lins: dict, dtype, numerics, tag: str) -> tuple[list[dict], str | None]:
    """Items and the label the block's next norm must wait for (the TP reduction of dX)."""
    moe, h, t = spec.moe, spec.hidden, sh.tokens
    routed = ceil_div(t, sh.tp)
    active, rows = expert_rows(spec, sh)
    dispatch = routed * moe.top_k * h * ACT_BYTES
    items = [elementwise_op(f"{tag}.moe_combine", routed * h * ACT_BYTES + dispatch, dispatch,
                          2 * routed * moe.top_k * h)]
    if sh.ep > 1:
        items.append(comm_item("all_to_all", dispatch, "ep", f"{tag}.combine", True))
    items += linear_bwd(lins["expert_down"], rows, active, dtype, numerics, tag)
    items.append(swiglu(f"{tag}.expert_act", rows * active, moe.expert_ffn, backward=True))
    items += linear_bwd(lins["expert_gate_up"], rows, active, dtype, numerics, tag)
    if sh.ep > 1:
        items.append(comm_item("all_to_all", dispatch, "ep", f"{tag}.dispatch", False))
    wait = None
    full = t * h * ACT_BYTES
    if moe.shared_experts:
        sgu, sdown = lins["shared_gate_up"], lins["shared_down"]
        items += row_parallel_backward(sh, sdown, t, dtype, numerics, tag, f"{tag}.shared", full)
        items.append(swiglu(f"{tag}.shared_act", t, sdown.in_features, backward=True))
        more, wait = column_parallel_backward(sh, [sgu], t, dtype, numerics, tag,
                                              f"{tag}.shared" if sh.seq_parallel else f"{tag}.mlp", full)
        items += more
    elif not sh.seq_parallel and sh.tp > 1:
        more, wait = tp_exit(sh, full, f"{tag}.mlp", block=False)
        items += more
    rows_router = sh.norm_tokens
    router = [gemm_op(f"{tag}.router.dgrad", rows_router, h, moe.experts, sh.recipe.router, None),
              gemm_op(f"{tag}.router.wgrad", moe.experts, h, rows_router, sh.recipe.router, None)]
    if sh.ep > 1:
        router[0]["_wait"] = [f"{tag}.dispatch"]
    return items + router, wait
