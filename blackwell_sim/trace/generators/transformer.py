"""Op lists of one transformer rank: layers forward and backward, embedding, LM head, optimizer.

Everything here is for ONE rank and one micro-batch; :mod:`.parallel` maps the lists onto ranks,
names the ops and turns the communication markers into collective ops with dependencies.
An item is either a local op (a trace-op mapping, optionally with ``_wait``: the labels of earlier
communication items it must wait for) or a communication marker ``{"_comm": {...}}`` with
``op``, ``bytes``, ``group`` (tp | dp | ep | edp), ``label`` and ``block`` (the next local op waits
for it). Linear layers are Megatron-style tensor parallel (Shoeybi et al., arXiv 1909.08053, Sec. 3):
column-parallel QKV / gate-up, row-parallel output / down, an all-reduce after each row-parallel
layer's forward and after each column-parallel layer's dgrad (overlapping that layer's wgrad). With
sequence parallelism (Korthikanti et al., arXiv 2205.05198, Sec. 4.2.2) norms, residuals and
embedding work on T / tp tokens and each all-reduce becomes an all-gather on entering and a
reduce-scatter on leaving the tensor-parallel region; the backward re-gathers the column-parallel
layers' inputs for their wgrad.

GEMM shapes (T tokens on this rank; a linear layer maps ``in`` to ``out`` features):
forward C[T, out] = X[T, in] W^T (m=T, n=out, k=in); dgrad dX = dY W (m=T, n=in, k=out); wgrad
dW = dY^T X (m=out, n=in, k=T). MoE experts run as one batched GEMM over the experts a rank holds
that receive tokens, routing balanced (every expert gets the same number of tokens).

Elementwise kernels (norms, RoPE, SwiGLU, residual adds, embedding, loss, optimizer) are memory
traffic: bytes read / written and flops per element are estimates from the kernels' definitions
(one read of each input, one write of each output, bf16 activations), not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

from blackwell_sim.trace.generators.models import ModelSpec, ceil_div
from blackwell_sim.trace.generators.recipes import FormatRecipe

ACT_BYTES = 2          #: bf16 activations and gradients
GRAD_BYTES = 2         #: bf16 gradients all-reduced over data parallel ranks
# Mixed-precision Adam per parameter (ZeRO, Rajbhandari et al., arXiv 1910.02054, Sec. 3.1: 2 B bf16
# weight + 2 B bf16 grad + 12 B fp32 master/momentum/variance): reads grad, master, m, v; writes
# master, m, v and the bf16 weight.
ADAM_READ_BYTES_PER_PARAM = 2 + 4 + 4 + 4
ADAM_WRITE_BYTES_PER_PARAM = 4 + 4 + 4 + 2
ADAM_FLOPS_PER_PARAM = 12  # estimate: moments, bias correction, sqrt, divide, weight decay


@dataclass(frozen=True)
class Linear:
    """One linear layer as this rank holds it: ``count`` weights of [out_features, in_features]."""

    name: str
    in_features: int
    out_features: int
    count: int = 1
    kind: str = "dense"   #: attn | mlp | router | expert | shared


@dataclass(frozen=True)
class RankShape:
    """What one rank computes per micro-batch: ``batch`` sequences of ``seq`` new tokens attending
    to ``seq_kv`` keys; ``tp`` / ``ep`` group sizes; ``n_layers`` of the whole model (for recipes)."""

    mode: str
    batch: int
    seq: int
    seq_kv: int
    tp: int
    ep: int
    recipe: FormatRecipe
    n_layers: int
    sp: bool = False   #: sequence parallelism

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def seq_parallel(self) -> bool:
        return self.sp and self.tp > 1

    @property
    def norm_tokens(self) -> int:
        """Tokens of the norms / residuals / embedding (a sequence shard with SP)."""
        return ceil_div(self.tokens, self.tp) if self.seq_parallel else self.tokens


def attention_linears(spec: ModelSpec, tp: int) -> list[Linear]:
    h, hd = spec.hidden, spec.dim_per_head
    heads_l = spec.heads // tp
    if spec.mla is not None:
        mla = spec.mla
        return [Linear("q_down", h, mla.q_lora_rank, kind="attn"),
                Linear("q_up", mla.q_lora_rank, heads_l * (mla.qk_nope_head_dim + mla.qk_rope_head_dim), kind="attn"),
                Linear("kv_down", h, mla.kv_lora_rank + mla.qk_rope_head_dim, kind="attn"),
                Linear("kv_up", mla.kv_lora_rank, heads_l * (mla.qk_nope_head_dim + mla.v_head_dim), kind="attn"),
                Linear("o_proj", heads_l * mla.v_head_dim, h, kind="attn")]
    kv_l = max(1, spec.n_kv_heads // tp)
    return [Linear("qkv", h, (heads_l + 2 * kv_l) * hd, kind="attn"), Linear("o_proj", heads_l * hd, h, kind="attn")]


def layer_linears(spec: ModelSpec, layer: int, tp: int = 1, ep: int = 1,
                  local_experts_only: bool = True) -> list[Linear]:
    """The linear layers of block ``layer`` as one rank of a TP x EP layout holds them."""
    out = attention_linears(spec, tp)
    up = 2 if spec.gated_mlp else 1
    if spec.is_moe_layer(layer):
        moe = spec.moe
        experts = moe.experts // ep if local_experts_only else moe.experts
        out.append(Linear("router", spec.hidden, moe.experts, kind="router"))
        out += [Linear("expert_gate_up", spec.hidden, up * moe.expert_ffn, experts, "expert"),
                Linear("expert_down", moe.expert_ffn, spec.hidden, experts, "expert")]
        if moe.shared_experts:
            width = moe.shared_experts * moe.expert_ffn // tp
            out += [Linear("shared_gate_up", spec.hidden, up * width, kind="shared"),
                    Linear("shared_down", width, spec.hidden, kind="shared")]
    else:
        out += [Linear("gate_up", spec.hidden, up * spec.ffn // tp, kind="mlp"),
                Linear("down", spec.ffn // tp, spec.hidden, kind="mlp")]
    return out


def layer_params(spec: ModelSpec, layer: int, tp: int, ep: int) -> tuple[int, int]:
    """(dense, expert) parameters of block ``layer`` on one rank (norm weights included in dense)."""
    dense = expert = 0
    for lin in layer_linears(spec, layer, tp, ep):
        n = lin.in_features * lin.out_features * lin.count
        if lin.kind == "expert":
            expert += n
        else:
            dense += n
    return dense + 2 * spec.hidden, expert


def gemm_op(name, m, n, k, dtype, numerics, batch=1):
    op = {"op": "gemm", "name": name, "m": int(m), "n": int(n), "k": int(k), "dtype": dtype}
    if batch != 1:
        op["batch"] = int(batch)
    if numerics:
        op["recipe"] = numerics
    return op


def elementwise_op(name, read, written, flops):
    return {"op": "elementwise", "name": name, "bytes_read": int(read), "bytes_written": int(written),
            "flops": float(flops)}


def comm_item(op, nbytes, group, label, block):
    return {"_comm": {"op": op, "bytes": int(nbytes), "group": group, "label": label, "block": block}}


def linear_fwd(lin: Linear, rows: int, count: int, dtype, numerics, tag: str):
    return gemm_op(f"{tag}.{lin.name}", rows, lin.out_features, lin.in_features, dtype, numerics, count)


def linear_bwd(lin: Linear, rows: int, count: int, dtype, numerics, tag: str, dgrad: bool = True):
    ops = []
    if dgrad:
        ops.append(gemm_op(f"{tag}.{lin.name}.dgrad", rows, lin.in_features, lin.out_features, dtype, numerics, count))
    ops.append(gemm_op(f"{tag}.{lin.name}.wgrad", lin.out_features, lin.in_features, rows, dtype, numerics, count))
    return ops


def _attention(spec: ModelSpec, sh: RankShape, name: str, backward: bool):
    op = {"op": "attention", "name": name, "batch": sh.batch, "heads": spec.heads // sh.tp,
          "seq_q": sh.seq, "head_dim": spec.dim_per_head, "kv_heads": max(1, spec.n_kv_heads // sh.tp),
          "seq_kv": sh.seq_kv, "causal": sh.mode != "decode", "backward": backward,
          "dtype": sh.recipe.attention}
    if spec.mla is not None:  # MLA: Q/K heads of nope + rope dims, V heads of v_head_dim
        op["head_dim"] = spec.mla.qk_nope_head_dim + spec.mla.qk_rope_head_dim
        op["head_dim_v"] = spec.mla.v_head_dim
    return op


def swiglu(name, rows, width, backward=False):
    """SwiGLU (silu(gate) * up) over ``rows`` x ``width``: reads 2, writes 1 (backward 3 / 2)."""
    gated = rows * width * ACT_BYTES
    if backward:
        return elementwise_op(name, 3 * gated, 2 * gated, 8 * rows * width)
    return elementwise_op(name, 2 * gated, gated, 5 * rows * width)


def tp_enter(sh: RankShape, nbytes: int, label: str) -> list[dict]:
    """Forward into a column-parallel layer: the SP all-gather of its input (blocking)."""
    return [comm_item("all_gather", nbytes, "tp", label + "_ag", True)] if sh.seq_parallel else []


def tp_exit(sh: RankShape, nbytes: int, label: str, block: bool = True) -> tuple[list[dict], str | None]:
    """Leaving the TP region (row-parallel forward, column-parallel dgrad): all-reduce, or
    reduce-scatter with SP. Returns the items and the label to wait for (None without TP)."""
    if sh.tp == 1:
        return [], None
    kind, suffix = ("reduce_scatter", "_rs") if sh.seq_parallel else ("all_reduce", "_ar")
    return [comm_item(kind, nbytes, "tp", label + suffix, block)], label + suffix


def column_parallel_backward(sh: RankShape, lins: list[Linear], rows: int, dtype, numerics, tag: str,
                             label: str, nbytes: int) -> tuple[list[dict], str | None]:
    """dgrads of ``lins`` (in reverse), the TP reduction of dX (not blocking), then the wgrads
    (waiting for the SP re-gather of the input). Returns the items and the reduction's label."""
    items = []
    if sh.seq_parallel:
        items.append(comm_item("all_gather", nbytes, "tp", label + "_x_ag", False))
    wgrads = []
    for lin in reversed(lins):
        dgrad, wgrad = linear_bwd(lin, rows, 1, dtype, numerics, tag)
        items.append(dgrad)
        if sh.seq_parallel:
            wgrad["_wait"] = [label + "_x_ag"]
        wgrads.append(wgrad)
    exit_items, wait = tp_exit(sh, nbytes, label, block=False)
    return items + exit_items + wgrads, wait


def row_parallel_backward(sh: RankShape, lin: Linear, rows: int, dtype, numerics, tag: str, label: str,
                          nbytes: int) -> list[dict]:
    """dgrad and wgrad of a row-parallel layer, after the SP all-gather of dY (blocking)."""
    items = [comm_item("all_gather", nbytes, "tp", label + "_dy_ag", True)] if sh.seq_parallel else []
    return items + linear_bwd(lin, rows, 1, dtype, numerics, tag)


def _norm(name: str, rows: int, h: int, backward: bool = False) -> dict:
    act = rows * h * ACT_BYTES
    return elementwise_op(name, 2 * act, act, 6 * rows * h) if backward else elementwise_op(name, act, act, 4 * rows * h)


def _residual(name: str, rows: int, h: int) -> dict:
    act = rows * h * ACT_BYTES
    return elementwise_op(name, 2 * act, act, rows * h)


def _waiting(item: dict, label: str | None) -> dict:
    if label:
        item["_wait"] = item.get("_wait", []) + [label]
    return item


def layer_forward(spec: ModelSpec, layer: int, sh: RankShape, phase: str = "fwd") -> list[dict]:
    """One block's forward on one rank: norm, attention projections, RoPE, attention, output
    projection, residual, norm, FFN or MoE, residual, with the TP / SP / EP communication.
    ``phase`` names the pass (``recompute``: the forward re-run before the backward)."""
    from blackwell_sim.trace.generators.moe import moe_forward

    t, tn, h, tag = sh.tokens, sh.norm_tokens, spec.hidden, f"L{layer}.{phase}"
    dtype, numerics = sh.recipe.linear_format(layer, sh.n_layers)
    lins = {lin.name: lin for lin in layer_linears(spec, layer, sh.tp, sh.ep)}
    full = t * h * ACT_BYTES
    items: list[dict] = [_norm(f"{tag}.attn_norm", tn, h)] + tp_enter(sh, full, f"{tag}.attn")
    attn = attention_linears(spec, sh.tp)
    items += [linear_fwd(lin, t, 1, dtype, numerics, tag) for lin in attn[:-1]]
    qk = t * (spec.heads + spec.n_kv_heads) // sh.tp * spec.dim_per_head * ACT_BYTES
    items.append(elementwise_op(f"{tag}.rope", qk, qk, 3 * qk / ACT_BYTES))
    if sh.mode != "train":  # inference appends the new tokens' keys and values to the cache
        if spec.mla is not None:  # MLA caches the compressed latent and the RoPE key per token
            kv = t * (spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim) * ACT_BYTES
        else:
            kv = t * 2 * max(1, spec.n_kv_heads // sh.tp) * spec.dim_per_head * ACT_BYTES
        items.append(elementwise_op(f"{tag}.kv_cache_append", kv, kv, 0))
    items.append(_attention(spec, sh, f"{tag}.attention", False))
    items.append(linear_fwd(attn[-1], t, 1, dtype, numerics, tag))
    items += tp_exit(sh, full, f"{tag}.attn")[0]
    items += [_residual(f"{tag}.attn_residual", tn, h), _norm(f"{tag}.mlp_norm", tn, h)]
    if spec.is_moe_layer(layer):
        items += moe_forward(spec, sh, lins, dtype, numerics, tag)
    else:
        gate_up, down = lins["gate_up"], lins["down"]
        items += tp_enter(sh, full, f"{tag}.mlp")
        items += [linear_fwd(gate_up, t, 1, dtype, numerics, tag), swiglu(f"{tag}.act", t, down.in_features),
                  linear_fwd(down, t, 1, dtype, numerics, tag)]
        items += tp_exit(sh, full, f"{tag}.mlp")[0]
    items.append(_residual(f"{tag}.mlp_residual", tn, h))
    return items


def layer_backward(spec: ModelSpec, layer: int, sh: RankShape) -> list[dict]:
    """One block's backward on one rank, in reverse order of :func:`layer_forward`: dgrad and
    wgrad GEMMs of every linear layer, attention backward, elementwise backward kernels and the
    TP / SP / EP communication of the gradients."""
    from blackwell_sim.trace.generators.moe import moe_backward

    t, tn, h, tag = sh.tokens, sh.norm_tokens, spec.hidden, f"L{layer}.bwd"
    dtype, numerics = sh.recipe.linear_format(layer, sh.n_layers)
    lins = {lin.name: lin for lin in layer_linears(spec, layer, sh.tp, sh.ep)}
    full = t * h * ACT_BYTES
    if spec.is_moe_layer(layer):
        items, wait = moe_backward(spec, sh, lins, dtype, numerics, tag)
    else:
        gate_up, down = lins["gate_up"], lins["down"]
        items = row_parallel_backward(sh, down, t, dtype, numerics, tag, f"{tag}.mlp", full)
        items.append(swiglu(f"{tag}.act", t, down.in_features, backward=True))
        more, wait = column_parallel_backward(sh, [gate_up], t, dtype, numerics, tag, f"{tag}.mlp", full)
        items += more
    items.append(_waiting(_norm(f"{tag}.mlp_norm", tn, h, backward=True), wait))
    items.append(_residual(f"{tag}.residual_grad", tn, h))
    attn = attention_linears(spec, sh.tp)
    items += row_parallel_backward(sh, attn[-1], t, dtype, numerics, tag, f"{tag}.attn", full)
    items.append(_attention(spec, sh, f"{tag}.attention", True))
    qk = t * (spec.heads + spec.n_kv_heads) // sh.tp * spec.dim_per_head * ACT_BYTES
    items.append(elementwise_op(f"{tag}.rope", qk, qk, 3 * qk / ACT_BYTES))
    more, wait = column_parallel_backward(sh, attn[:-1], t, dtype, numerics, tag, f"{tag}.attn", full)
    items += more
    items.append(_waiting(_norm(f"{tag}.attn_norm", tn, h, backward=True), wait))
    items.append(_residual(f"{tag}.residual_grad2", tn, h))
    return items


def embedding_forward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    act = sh.norm_tokens * spec.hidden * ACT_BYTES
    return [elementwise_op("embed.fwd", act + sh.norm_tokens * 8, act, 0)]


def embedding_backward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    act = sh.norm_tokens * spec.hidden * ACT_BYTES
    return [elementwise_op("embed.bwd", act + sh.norm_tokens * 8, act, sh.norm_tokens * spec.hidden)]


def head_forward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    """Final norm, vocabulary-parallel LM head and the loss (training) or logits gather
    (inference). Inference computes logits for the last token of each sequence only."""
    rows = sh.tokens if sh.mode == "train" else sh.batch
    vocab_l = ceil_div(spec.vocab, sh.tp)
    items = [_norm("head.fwd.final_norm", sh.norm_tokens, spec.hidden)]
    items += tp_enter(sh, sh.tokens * spec.hidden * ACT_BYTES, "head.fwd")
    items.append(gemm_op("head.fwd.lm_head", rows, vocab_l, spec.hidden, sh.recipe.lm_head, None))
    logits = rows * vocab_l * ACT_BYTES
    if sh.mode == "train":
        items.append(elementwise_op("head.fwd.loss", logits, rows * 4, 4 * rows * vocab_l))
        if sh.tp > 1:  # vocabulary-parallel cross entropy: max and sum of exponentials (fp32)
            items.append(comm_item("all_reduce", rows * 8, "tp", "head.fwd.loss_ar", True))
    elif sh.tp > 1:
        items.append(comm_item("all_gather", logits * sh.tp, "tp", "head.fwd.logits_gather", True))
    return items


def head_backward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    rows, h = sh.tokens, spec.hidden
    vocab_l = ceil_div(spec.vocab, sh.tp)
    logits = rows * vocab_l * ACT_BYTES
    lm = Linear("lm_head", h, vocab_l)
    items = [elementwise_op("head.bwd.loss", logits, logits, 4 * rows * vocab_l)]
    more, wait = column_parallel_backward(sh, [lm], rows, sh.recipe.lm_head, None, "head.bwd", "head.bwd",
                                          rows * h * ACT_BYTES)
    items += more
    items.append(_waiting(_norm("head.bwd.final_norm", sh.norm_tokens, h, backward=True), wait))
    return items


def optimizer_step(params: int, name: str = "optim.adam") -> dict:
    """Adam on ``params`` parameters as one memory-bound kernel."""
    return elementwise_op(name, params * ADAM_READ_BYTES_PER_PARAM, params * ADAM_WRITE_BYTES_PER_PARAM,
                        params * ADAM_FLOPS_PER_PARAM)
