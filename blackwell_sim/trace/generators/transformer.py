"""Op lists of one transformer rank: layers forward and backward, embedding, LM head, optimizer.

Everything here is for ONE rank and one micro-batch; :mod:`.parallel` maps the lists onto ranks,
names the ops and turns the communication markers into collective ops with dependencies.
An item is either a local op (a trace-op mapping, optionally with ``_wait``: the labels of earlier
communication items it must wait for) or a communication marker ``{"_comm": {...}}`` with
``op``, ``bytes``, ``group`` (tp | dp | ep | edp), ``label`` and ``block`` (the next local op waits
for it). Linear layers are Megatron-style tensor parallel (column-parallel QKV / gate-up, row-parallel
output / down, one all-reduce after each row-parallel layer forward and after each column-parallel
layer's dgrad backward; Shoeybi et al., arXiv 1909.08053, Sec. 3).

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

    @property
    def tokens(self) -> int:
        return self.batch * self.seq


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


def _gemm(name, m, n, k, dtype, numerics, batch=1):
    op = {"op": "gemm", "name": name, "m": int(m), "n": int(n), "k": int(k), "dtype": dtype}
    if batch != 1:
        op["batch"] = int(batch)
    if numerics:
        op["recipe"] = numerics
    return op


def _elementwise(name, read, written, flops):
    return {"op": "elementwise", "name": name, "bytes_read": int(read), "bytes_written": int(written),
            "flops": float(flops)}


def _comm(op, nbytes, group, label, block):
    return {"_comm": {"op": op, "bytes": int(nbytes), "group": group, "label": label, "block": block}}


def _expert_rows(spec: ModelSpec, sh: RankShape) -> tuple[int, int]:
    """(experts that get tokens on this rank, tokens per such expert) under balanced routing."""
    copies = ceil_div(sh.tokens, sh.tp) * spec.moe.top_k  # token copies this rank receives
    active = min(spec.moe.experts // sh.ep, copies)
    return active, ceil_div(copies, active)


def _linear_fwd(lin: Linear, rows: int, count: int, dtype, numerics, tag: str):
    return _gemm(f"{tag}.{lin.name}", rows, lin.out_features, lin.in_features, dtype, numerics, count)


def _linear_bwd(lin: Linear, rows: int, count: int, dtype, numerics, tag: str, dgrad: bool = True):
    ops = []
    if dgrad:
        ops.append(_gemm(f"{tag}.{lin.name}.dgrad", rows, lin.in_features, lin.out_features, dtype, numerics, count))
    ops.append(_gemm(f"{tag}.{lin.name}.wgrad", lin.out_features, lin.in_features, rows, dtype, numerics, count))
    return ops


def _attention(spec: ModelSpec, sh: RankShape, name: str, backward: bool):
    op = {"op": "attention", "name": name, "batch": sh.batch, "heads": spec.heads // sh.tp,
          "seq_q": sh.seq, "head_dim": spec.dim_per_head, "kv_heads": max(1, spec.n_kv_heads // sh.tp),
          "seq_kv": sh.seq_kv, "causal": sh.mode != "decode", "backward": backward,
          "dtype": sh.recipe.attention}
    return op


def layer_forward(spec: ModelSpec, layer: int, sh: RankShape) -> list[dict]:
    """One block's forward on one rank: norm, attention projections, RoPE, attention, output
    projection (+ TP all-reduce), residual, norm, FFN or MoE (+ all-to-alls), residual."""
    t, h, tag = sh.tokens, spec.hidden, f"L{layer}.fwd"
    dtype, numerics = sh.recipe.linear_format(layer, sh.n_layers)
    lins = {lin.name: lin for lin in layer_linears(spec, layer, sh.tp, sh.ep)}
    act = t * h * ACT_BYTES
    items: list[dict] = [_elementwise(f"{tag}.attn_norm", act, act, 4 * t * h)]
    attn = attention_linears(spec, sh.tp)
    for lin in attn[:-1]:
        items.append(_linear_fwd(lin, t, 1, dtype, numerics, tag))
    qk = t * (spec.heads + spec.n_kv_heads) // sh.tp * spec.dim_per_head * ACT_BYTES
    items.append(_elementwise(f"{tag}.rope", qk, qk, 3 * qk / ACT_BYTES))
    if sh.mode != "train":
        if spec.mla is not None:  # MLA caches the compressed latent and the RoPE key per token
            kv = t * (spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim) * ACT_BYTES
        else:
            kv = t * 2 * max(1, spec.n_kv_heads // sh.tp) * spec.dim_per_head * ACT_BYTES
        items.append(_elementwise(f"{tag}.kv_cache_append", kv, kv, 0))
    items.append(_attention(spec, sh, f"{tag}.attention", False))
    items.append(_linear_fwd(attn[-1], t, 1, dtype, numerics, tag))
    if sh.tp > 1:
        items.append(_comm("all_reduce", act, "tp", f"{tag}.attn_ar", True))
    items.append(_elementwise(f"{tag}.attn_residual", 2 * act, act, t * h))
    items.append(_elementwise(f"{tag}.mlp_norm", act, act, 4 * t * h))
    items += _ffn_forward(spec, layer, sh, lins, dtype, numerics, tag)
    if sh.tp > 1:
        items.append(_comm("all_reduce", act, "tp", f"{tag}.mlp_ar", True))
    items.append(_elementwise(f"{tag}.mlp_residual", 2 * act, act, t * h))
    return items


def _swiglu(name, rows, width, backward=False):
    gated = rows * width * ACT_BYTES  # width = intermediate size per matrix
    if backward:
        return _elementwise(name, 3 * gated, 2 * gated, 8 * rows * width)
    return _elementwise(name, 2 * gated, gated, 5 * rows * width)


def _ffn_forward(spec, layer, sh, lins, dtype, numerics, tag):
    t = sh.tokens
    if not spec.is_moe_layer(layer):
        gu, down = lins["gate_up"], lins["down"]
        return [_linear_fwd(gu, t, 1, dtype, numerics, tag), _swiglu(f"{tag}.act", t, down.in_features),
                _linear_fwd(down, t, 1, dtype, numerics, tag)]
    active, rows = _expert_rows(spec, sh)
    moe, h = spec.moe, spec.hidden
    dispatch = ceil_div(t, sh.tp) * moe.top_k * h * ACT_BYTES
    router = sh.recipe.router
    items = [_gemm(f"{tag}.router", t, moe.experts, h, router, None),
             _elementwise(f"{tag}.topk", t * moe.experts * 4, t * moe.top_k * 8, 2 * t * moe.experts)]
    if sh.ep > 1:
        items.append(_comm("all_to_all", dispatch, "ep", f"{tag}.dispatch", False))
    if moe.shared_experts:
        sgu, sdown = lins["shared_gate_up"], lins["shared_down"]
        items += [_linear_fwd(sgu, t, 1, dtype, numerics, tag), _swiglu(f"{tag}.shared_act", t, sdown.in_features),
                  _linear_fwd(sdown, t, 1, dtype, numerics, tag)]
    egu = _linear_fwd(lins["expert_gate_up"], rows, active, dtype, numerics, tag)
    if sh.ep > 1:
        egu["_wait"] = [f"{tag}.dispatch"]
    items += [egu, _swiglu(f"{tag}.expert_act", rows * active, moe.expert_ffn),
              _linear_fwd(lins["expert_down"], rows, active, dtype, numerics, tag)]
    if sh.ep > 1:
        items.append(_comm("all_to_all", dispatch, "ep", f"{tag}.combine", True))
    items.append(_elementwise(f"{tag}.moe_combine", t * moe.top_k * h * ACT_BYTES, t * h * ACT_BYTES,
                              2 * t * moe.top_k * h))
    return items


def layer_backward(spec: ModelSpec, layer: int, sh: RankShape) -> list[dict]:
    """One block's backward on one rank, in reverse order of :func:`layer_forward`: dgrad and
    wgrad GEMM for every linear layer, attention backward, elementwise backward kernels, the TP
    all-reduces of the input gradients of the column-parallel layers, and (labelled
    ``L<i>.grad_ar``) the data-parallel gradient all-reduce of the block's weights."""
    t, h, tag = sh.tokens, spec.hidden, f"L{layer}.bwd"
    dtype, numerics = sh.recipe.linear_format(layer, sh.n_layers)
    lins = {lin.name: lin for lin in layer_linears(spec, layer, sh.tp, sh.ep)}
    act = t * h * ACT_BYTES
    items: list[dict] = []
    if spec.is_moe_layer(layer):
        moe = spec.moe
        active, rows = _expert_rows(spec, sh)
        dispatch = ceil_div(t, sh.tp) * moe.top_k * h * ACT_BYTES
        items.append(_elementwise(f"{tag}.moe_combine", t * h * ACT_BYTES + t * moe.top_k * h * ACT_BYTES,
                                  t * moe.top_k * h * ACT_BYTES, 2 * t * moe.top_k * h))
        if sh.ep > 1:
            items.append(_comm("all_to_all", dispatch, "ep", f"{tag}.combine", True))
        items += _linear_bwd(lins["expert_down"], rows, active, dtype, numerics, tag)
        items.append(_swiglu(f"{tag}.expert_act", rows * active, moe.expert_ffn, backward=True))
        items += _linear_bwd(lins["expert_gate_up"], rows, active, dtype, numerics, tag)
        if sh.ep > 1:
            items.append(_comm("all_to_all", dispatch, "ep", f"{tag}.dispatch", False))
        if moe.shared_experts:
            sgu, sdown = lins["shared_gate_up"], lins["shared_down"]
            items += _linear_bwd(sdown, t, 1, dtype, numerics, tag)
            items.append(_swiglu(f"{tag}.shared_act", t, sdown.in_features, backward=True))
            items += _linear_bwd(sgu, t, 1, dtype, numerics, tag)
        router = [_gemm(f"{tag}.router.dgrad", t, h, moe.experts, sh.recipe.router, None),
                  _gemm(f"{tag}.router.wgrad", moe.experts, h, t, sh.recipe.router, None)]
        if sh.ep > 1:
            router[0]["_wait"] = [f"{tag}.dispatch"]
        items += router
    else:
        gu, down = lins["gate_up"], lins["down"]
        items += _linear_bwd(down, t, 1, dtype, numerics, tag)
        items.append(_swiglu(f"{tag}.act", t, down.in_features, backward=True))
        items += _linear_bwd(gu, t, 1, dtype, numerics, tag)
    if sh.tp > 1:
        items.append(_comm("all_reduce", act, "tp", f"{tag}.mlp_ar", True))
    items.append(_elementwise(f"{tag}.mlp_norm", 2 * act, act, 6 * t * h))
    items.append(_elementwise(f"{tag}.residual_grad", 2 * act, act, t * h))
    attn = attention_linears(spec, sh.tp)
    items += _linear_bwd(attn[-1], t, 1, dtype, numerics, tag)
    items.append(_attention(spec, sh, f"{tag}.attention", True))
    qk = t * (spec.heads + spec.n_kv_heads) // sh.tp * spec.dim_per_head * ACT_BYTES
    items.append(_elementwise(f"{tag}.rope", qk, qk, 3 * qk / ACT_BYTES))
    for lin in reversed(attn[:-1]):
        items += _linear_bwd(lin, t, 1, dtype, numerics, tag)
    if sh.tp > 1:
        items.append(_comm("all_reduce", act, "tp", f"{tag}.attn_ar", True))
    items.append(_elementwise(f"{tag}.attn_norm", 2 * act, act, 6 * t * h))
    items.append(_elementwise(f"{tag}.residual_grad2", 2 * act, act, t * h))
    return items


def embedding_forward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    act = sh.tokens * spec.hidden * ACT_BYTES
    return [_elementwise("embed.fwd", act + sh.tokens * 8, act, 0)]


def embedding_backward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    act = sh.tokens * spec.hidden * ACT_BYTES
    return [_elementwise("embed.bwd", act + sh.tokens * 8, act, sh.tokens * spec.hidden)]


def head_forward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    """Final norm, vocabulary-parallel LM head and the loss (training) or logits gather
    (inference). Inference computes logits for the last token of each sequence only."""
    rows = sh.tokens if sh.mode == "train" else sh.batch
    vocab_l = ceil_div(spec.vocab, sh.tp)
    act = sh.tokens * spec.hidden * ACT_BYTES
    items = [_elementwise("head.fwd.final_norm", act, act, 4 * sh.tokens * spec.hidden),
             _gemm("head.fwd.lm_head", rows, vocab_l, spec.hidden, sh.recipe.lm_head, None)]
    logits = rows * vocab_l * ACT_BYTES
    if sh.mode == "train":
        items.append(_elementwise("head.fwd.loss", logits, rows * 4, 4 * rows * vocab_l))
        if sh.tp > 1:  # vocabulary-parallel cross entropy: max and sum of exponentials (fp32)
            items.append(_comm("all_reduce", rows * 8, "tp", "head.fwd.loss_ar", True))
    elif sh.tp > 1:
        items.append(_comm("all_gather", logits * sh.tp, "tp", "head.fwd.logits_gather", True))
    return items


def head_backward(spec: ModelSpec, sh: RankShape) -> list[dict]:
    rows, h = sh.tokens, spec.hidden
    vocab_l = ceil_div(spec.vocab, sh.tp)
    logits = rows * vocab_l * ACT_BYTES
    lm = Linear("lm_head", h, vocab_l)
    items = [_elementwise("head.bwd.loss", logits, logits, 4 * rows * vocab_l)]
    items += _linear_bwd(lm, rows, 1, sh.recipe.lm_head, None, "head.bwd")
    if sh.tp > 1:
        items.append(_comm("all_reduce", rows * h * ACT_BYTES, "tp", "head.bwd.ar", True))
    act = rows * h * ACT_BYTES
    items.append(_elementwise("head.bwd.final_norm", 2 * act, act, 6 * rows * h))
    return items


def optimizer_step(params: int, name: str = "optim.adam") -> dict:
    """Adam on ``params`` parameters as one memory-bound kernel."""
    return _elementwise(name, params * ADAM_READ_BYTES_PER_PARAM, params * ADAM_WRITE_BYTES_PER_PARAM,
                        params * ADAM_FLOPS_PER_PARAM)
