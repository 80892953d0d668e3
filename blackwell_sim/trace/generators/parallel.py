"""Map one rank's op lists onto a TP x PP x DP (x EP) layout and weave the collectives.

Layout: rank = (dp_index * pp + stage) * tp + tp_index, so a tensor-parallel group is ``tp``
consecutive ranks (one NVLink domain first). Expert parallelism splits the experts over ``ep``
data-parallel replicas (``ep`` divides ``dp``, as in Megatron-Core); expert weights are then
data-parallel over the remaining ``dp / ep`` replicas. Pipeline stages hold consecutive blocks
(split as evenly as possible), stage 0 the embedding and the last stage the LM head; micro-batches
run GPipe-style (all forwards, then all backwards), activations and their gradients moving by
send/recv between neighbouring stages.

Collectives (bytes in the nccl-tests convention, per rank): TP all-reduce of the activations
(``tokens x hidden x 2`` bytes), EP all-to-all of the routed token copies, DP all-reduce of each
block's bf16 weight gradients after that block's last backward (on its own stream ``comm_dp``, so
it overlaps the next block's backward); the optimizer step waits for all of them. Options:
sequence parallelism (TP all-reduces become all-gather + reduce-scatter, see :mod:`.transformer`)
and the distributed optimizer (ZeRO stage 1, Rajbhandari et al., arXiv 1910.02054: gradients
reduce-scattered, each rank's Adam updates 1 / dp of the weights, the updated bf16 weights
all-gathered after the step).

Streams: ``compute`` for kernels, ``comm`` for TP / EP collectives, ``comm_dp`` for gradient
reductions, ``comm_pp`` for pipeline send/recv. A communication op depends on the last kernel its
rank issued before it; a kernel that needs a blocking communication lists it in ``deps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.generators import transformer as tf
from blackwell_sim.trace.generators.models import ModelSpec, load_model
from blackwell_sim.trace.generators.recipes import get_format_recipe

MODES = ("train", "prefill", "decode")
STREAM_OF_GROUP = {"tp": "comm", "ep": "comm", "dp": "comm_dp", "edp": "comm_dp", "pp": "comm_pp"}


@dataclass(frozen=True)
class Layout:
    tp: int
    pp: int
    dp: int
    ep: int

    @property
    def ranks(self) -> int:
        return self.tp * self.pp * self.dp

    def rank(self, dp_i: int, stage: int, tp_i: int) -> int:
        return (dp_i * self.pp + stage) * self.tp + tp_i

    def coords(self, rank: int) -> tuple[int, int, int]:
        tp_i = rank % self.tp
        stage = rank // self.tp % self.pp
        return rank // (self.tp * self.pp), stage, tp_i

    def group(self, kind: str, rank: int) -> tuple[str, list[int]]:
        """(group id, member ranks) of ``rank``'s group of ``kind`` (tp | dp | ep | edp)."""
        dp_i, stage, tp_i = self.coords(rank)
        if kind == "tp":
            return f"tp{dp_i * self.pp + stage}", [self.rank(dp_i, stage, t) for t in range(self.tp)]
        if kind == "dp":
            return f"dp{stage * self.tp + tp_i}", [self.rank(d, stage, tp_i) for d in range(self.dp)]
        if kind == "ep":
            first = dp_i // self.ep * self.ep
            return (f"ep{(first // self.ep * self.pp + stage) * self.tp + tp_i}",
                    [self.rank(d, stage, tp_i) for d in range(first, first + self.ep)])
        if kind == "edp":
            off = dp_i % self.ep
            return (f"edp{(off * self.pp + stage) * self.tp + tp_i}",
                    [self.rank(d, stage, tp_i) for d in range(off, self.dp, self.ep)])
        raise ValueError(kind)


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BlackwellSimError(f"generate: argument '{name}': expected an integer >= {minimum}, got {value!r}")
    return value


def _select_layers(spec: ModelSpec, layers) -> list[int]:
    if layers is None:
        return list(range(spec.layers))
    if isinstance(layers, int) and not isinstance(layers, bool):
        _positive("layers", layers)
        if layers > spec.layers:
            raise BlackwellSimError(f"generate: argument 'layers': {layers} > the model's {spec.layers} layers")
        return list(range(layers))
    if isinstance(layers, Sequence) and not isinstance(layers, str) and layers:
        out = []
        for value in layers:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < spec.layers:
                raise BlackwellSimError(f"generate: argument 'layers': block index {value!r} outside "
                                        f"0..{spec.layers - 1}")
            out.append(value)
        if len(set(out)) != len(out):
            raise BlackwellSimError(f"generate: argument 'layers': repeated block index in {list(layers)}")
        return sorted(out)
    raise BlackwellSimError(f"generate: argument 'layers': expected a count or a list of block indices, "
                            f"got {layers!r}")


def _check_divides(what: str, part: int, whole: int, whole_name: str) -> None:
    if whole % part:
        raise BlackwellSimError(f"generate: argument '{what}': {part} does not divide {whole_name} ({whole})")


def _default_platform(ranks: int) -> dict:
    if ranks == 1:
        return {"config": "b200"}
    if ranks <= 8:
        return {"system": "hgx-b200-8"}
    if ranks <= 72:
        return {"system": "gb200-nvl72"}
    raise BlackwellSimError(f"generate: {ranks} ranks need a system preset with that many GPUs; "
                            f"pass system=... (the largest bundled one, gb200-nvl72, has 72)")


def _stage_programs(spec, stage_layers, stage, layout, sh, microbatches, embed_head, mode, distributed_optimizer,
                    recompute):
    """The item list of one rank of pipeline stage ``stage`` (before rank-specific naming)."""
    last = stage == layout.pp - 1
    act_bytes = sh.norm_tokens * spec.hidden * tf.ACT_BYTES  # a sequence shard with SP
    prog: list[dict] = []

    def mb_items(items, mb):
        prefix = f"mb{mb}." if microbatches > 1 else ""
        out = []
        for item in items:
            item = dict(item)
            if "_comm" in item:
                item["_comm"] = dict(item["_comm"], label=prefix + item["_comm"]["label"])
            elif "_p2p" in item:
                item["_p2p"] = dict(item["_p2p"], label=prefix + item["_p2p"]["label"])
            else:
                item["name"] = prefix + item["name"]
                if "_wait" in item:
                    item["_wait"] = [prefix + w for w in item["_wait"]]
            out.append(item)
        return out

    reduced: list[tuple[int, str, str]] = []  # (params, group, label) of every gradient reduction

    def grad_sync(params: int, group: str, label: str) -> list[dict]:
        """Data-parallel gradient reduction of ``params`` weights (all-reduce, or reduce-scatter
        with the distributed optimizer), not blocking: only the optimizer waits for it."""
        size = layout.dp if group == "dp" else layout.dp // layout.ep
        if not params or size == 1:
            return []
        reduced.append((params, group, label))
        kind, suffix = ("reduce_scatter", "_rs") if distributed_optimizer else ("all_reduce", "_ar")
        return [tf.comm_item(kind, params * tf.GRAD_BYTES, group, label + suffix, False)]

    def p2p(op, peer_stage, label):
        return {"_p2p": {"op": op, "peer_stage": peer_stage, "bytes": act_bytes, "label": label}}

    for mb in range(microbatches):
        items = []
        if stage > 0:
            items.append(p2p("recv", stage - 1, "pp.fwd.recv"))
        if stage == 0 and embed_head:
            items += tf.embedding_forward(spec, sh)
        for layer in stage_layers:
            items += tf.layer_forward(spec, layer, sh)
        if last and embed_head:
            items += tf.head_forward(spec, sh)
        if not last:
            items.append(p2p("send", stage + 1, "pp.fwd.send"))
        prog += mb_items(items, mb)
    if mode != "train":
        return prog
    for mb in range(microbatches):
        final = mb == microbatches - 1
        items = []
        if not last:
            items.append(p2p("recv", stage + 1, "pp.bwd.recv"))
        if last and embed_head:
            items += tf.head_backward(spec, sh)
            if final:
                items += grad_sync(spec.hidden * -(-spec.vocab // layout.tp) + spec.hidden, "dp", "head.grad")
        for layer in reversed(stage_layers):
            if recompute:
                items += tf.layer_forward(spec, layer, sh, phase="recompute")
            items += tf.layer_backward(spec, layer, sh)
            if final:
                dense, expert = tf.layer_params(spec, layer, layout.tp, layout.ep)
                items += grad_sync(dense, "dp", f"L{layer}.grad") + grad_sync(expert, "edp", f"L{layer}.expert_grad")
        if stage == 0 and embed_head:
            items += tf.embedding_backward(spec, sh)
            if final:
                items += grad_sync(spec.hidden * -(-spec.vocab // layout.tp), "dp", "embed.grad")
        if stage > 0:
            items.append(p2p("send", stage - 1, "pp.bwd.send"))
        prog += mb_items(items, mb)
    labels_to_wait = [i["_comm"]["label"] for i in prog if "_comm" in i and i["_comm"]["group"] in ("dp", "edp")]
    dense = sum(tf.layer_params(spec, layer, layout.tp, layout.ep)[0] for layer in stage_layers)
    expert = sum(tf.layer_params(spec, layer, layout.tp, layout.ep)[1] for layer in stage_layers)
    if embed_head and stage == 0:
        dense += spec.hidden * -(-spec.vocab // layout.tp)
    if embed_head and last:
        dense += spec.hidden * -(-spec.vocab // layout.tp) + spec.hidden
    if distributed_optimizer:  # each rank updates its shard of the weights (ZeRO stage 1)
        dense, expert = -(-dense // layout.dp), -(-expert // max(1, layout.dp // layout.ep))
    opt = tf.optimizer_step(dense + expert)
    if labels_to_wait:
        opt["_wait"] = labels_to_wait
    prog.append(opt)
    if distributed_optimizer:  # gather the updated bf16 weights back to every replica
        prog += [tf.comm_item("all_gather", params * tf.GRAD_BYTES, group, label.replace("grad", "param") + "_ag", False)
                 for params, group, label in reduced]
    return prog


def _tags(name: str) -> dict:
    parts = name.split(".")
    if parts[0].startswith("mb") and parts[0][2:].isdigit():
        parts = parts[1:]
    head = parts[0]
    layer = head[1:] if head.startswith("L") and head[1:].isdigit() else head
    second = parts[1] if len(parts) > 1 else ""
    if head == "optim" or second.startswith("param"):
        phase = "optim"
    elif second in ("fwd", "bwd", "recompute"):
        phase = second
    else:
        phase = "bwd" if "grad" in second else None
    tags = {"layer": layer}
    if phase:
        tags["phase"] = phase
    return tags


def weave(programs: dict[int, list[dict]], layout: Layout) -> list[dict]:
    """Turn per-rank item lists into trace ops in an order where every dep comes first."""
    ops: list[dict] = []
    idx = dict.fromkeys(programs, 0)
    last_compute: dict[int, str | None] = dict.fromkeys(programs)
    pending: dict[int, list[str]] = {r: [] for r in programs}
    labels: dict[int, dict[str, str]] = {r: {} for r in programs}
    colls: dict[str, dict] = {}
    p2p_count: dict[tuple, int] = {}
    while True:
        progress, done = False, True
        for r, prog in programs.items():
            while idx[r] < len(prog):
                item = prog[idx[r]]
                if "_comm" in item:
                    c = item["_comm"]
                    gid, members = layout.group(c["group"], r)
                    key = f"{c['label']}.{gid}"
                    coll = colls.get(key)
                    if coll is None:
                        coll = colls[key] = {"arrived": set(), "deps": [], "emitted": False, "members": members}
                    if r not in coll["arrived"]:
                        coll["arrived"].add(r)
                        if last_compute[r]:
                            coll["deps"].append(last_compute[r])
                        if len(coll["arrived"]) == len(members):
                            ops.append({"op": c["op"], "name": key, "bytes": c["bytes"], "group": members,
                                        "stream": STREAM_OF_GROUP[c["group"]], "deps": coll["deps"],
                                        **_tags(c["label"])})
                            coll["emitted"] = True
                    if not coll["emitted"]:
                        break
                    labels[r][c["label"]] = key
                    if c["block"]:
                        pending[r].append(key)
                elif "_p2p" in item:
                    p = item["_p2p"]
                    dp_i, _, tp_i = layout.coords(r)
                    peer = layout.rank(dp_i, p["peer_stage"], tp_i)
                    src, dst = (r, peer) if p["op"] == "send" else (peer, r)
                    n = p2p_count.get((p["op"], src, dst), 0)
                    p2p_count[(p["op"], src, dst)] = n + 1
                    name = f"r{r}.{p['label']}{n}"
                    op = {"op": p["op"], "name": name, "rank": r, "peer": peer, "bytes": p["bytes"],
                          "stream": STREAM_OF_GROUP["pp"], "deps": [last_compute[r]] if last_compute[r] else []}
                    ops.append(op)
                    if p["op"] == "recv":
                        pending[r].append(name)
                else:
                    op = {k: v for k, v in item.items() if k != "_wait"}
                    op["name"] = f"r{r}.{item['name']}"
                    op["rank"] = r
                    deps = pending[r] + [labels[r][w] for w in item.get("_wait", ()) if w in labels[r]]
                    if deps:
                        op["deps"] = deps
                    pending[r] = []
                    op.update(_tags(item["name"]))
                    ops.append(op)
                    last_compute[r] = op["name"]
                idx[r] += 1
                progress = True
            done = done and idx[r] == len(prog)
        if done:
            return ops
        if not progress:
            raise RuntimeError("generator deadlock: ranks wait on collectives that never complete")


def generate(model: str | Mapping | ModelSpec, mode: str = "train", batch: int = 1, seq: int = 2048,
             kv_len: int | None = None, tp: int = 1, dp: int = 1, ep: int = 1, pp: int = 1,
             recipe: str | Mapping = "bf16", layers: int | Sequence[int] | None = None,
             microbatches: int | None = None, embed_head: bool | None = None,
             sequence_parallel: bool = False, distributed_optimizer: bool = False, recompute: bool = False,
             system: str | Mapping | None = None, config: str | Mapping | None = None) -> dict:
    """A trace document (``{name, description, system|config, ops}``) for one step of ``model``.

    ``mode``: ``train`` (forward, backward, optimizer), ``prefill`` (``seq`` new tokens per
    sequence after ``kv_len`` cached ones) or ``decode`` (one new token per sequence, attending to
    ``kv_len`` cached tokens). ``batch``: sequences in the global batch, split over ``dp``
    replicas and then into ``microbatches`` (default ``pp``). ``layers``: None (the whole model,
    with embedding and LM head), a count of blocks from the first, or a list of block indices
    (then ``embed_head`` defaults to False). ``recipe``: a name of
    :data:`~blackwell_sim.trace.generators.recipes.FORMAT_RECIPES` or a mapping.
    ``sequence_parallel``: Megatron sequence parallelism (all-gather / reduce-scatter instead of
    all-reduce; norms on a sequence shard). ``distributed_optimizer``: ZeRO-1 (gradients
    reduce-scattered, each rank updates 1 / dp of the weights, updated weights all-gathered).
    ``recompute``: full activation recomputation (each block's forward runs again right before its
    backward; Chen et al., arXiv 1604.06174; Megatron's ``--recompute-granularity full``).
    ``system`` / ``config``: the platform preset; by default ``b200`` for one rank,
    ``hgx-b200-8`` up to 8 and ``gb200-nvl72`` up to 72.
    """
    spec = load_model(model)
    if mode not in MODES:
        raise BlackwellSimError(f"generate: argument 'mode': expected one of {', '.join(MODES)}, got {mode!r}")
    for name, value in (("batch", batch), ("seq", seq), ("tp", tp), ("dp", dp), ("ep", ep), ("pp", pp)):
        _positive(name, value)
    fmt = get_format_recipe(recipe)
    chosen = _select_layers(spec, layers)
    if embed_head is None:
        embed_head = layers is None
    _check_divides("dp", dp, batch, "batch")
    local_batch = batch // dp
    microbatches = _positive("microbatches", microbatches if microbatches is not None else pp)
    _check_divides("microbatches", microbatches, local_batch, "the per-replica batch")
    _check_divides("tp", tp, spec.heads, "the model's heads")
    if spec.ffn % tp:
        _check_divides("tp", tp, spec.ffn, "the model's ffn")
    if ep > 1 and spec.moe is None:
        raise BlackwellSimError(f"generate: argument 'ep': {ep} needs a mixture-of-experts model; "
                                f"{spec.name} is dense")
    _check_divides("ep", ep, dp, "dp")
    if spec.moe is not None:
        _check_divides("ep", ep, spec.moe.experts, "the model's experts")
        if spec.moe.shared_experts:
            _check_divides("tp", tp, spec.moe.shared_experts * spec.moe.expert_ffn, "the shared experts' width")
    if pp > len(chosen):
        raise BlackwellSimError(f"generate: argument 'pp': {pp} stages for {len(chosen)} blocks")
    if mode == "decode":
        if kv_len is None:
            raise BlackwellSimError("generate: argument 'kv_len': decode needs the KV-cache length")
        _positive("kv_len", kv_len)
        seq_new, seq_kv = 1, kv_len
    elif mode == "prefill":
        seq_new = seq
        seq_kv = seq + (_positive("kv_len", kv_len, 0) if kv_len is not None else 0)
    else:
        if kv_len is not None:
            raise BlackwellSimError("generate: argument 'kv_len': only for prefill and decode")
        seq_new, seq_kv = seq, seq
    layout = Layout(tp, pp, dp, ep)
    platform = {"system": system} if system is not None else {"config": config} if config is not None \
        else _default_platform(layout.ranks)
    for name, flag in (("sequence_parallel", sequence_parallel), ("distributed_optimizer", distributed_optimizer),
                       ("recompute", recompute)):
        if not isinstance(flag, bool):
            raise BlackwellSimError(f"generate: argument '{name}': expected true or false, got {flag!r}")
    sh = tf.RankShape(mode, local_batch // microbatches, seq_new, seq_kv, tp, ep, fmt, spec.layers,
                      sp=sequence_parallel)
    per_stage, extra = divmod(len(chosen), pp)
    stages, start = [], 0
    for s in range(pp):
        n = per_stage + (1 if s < extra else 0)
        stages.append(chosen[start:start + n])
        start += n
    stage_prog = [_stage_programs(spec, stages[s], s, layout, sh, microbatches, embed_head, mode,
                                  distributed_optimizer, recompute) for s in range(pp)]
    programs = {r: stage_prog[layout.coords(r)[1]] for r in range(layout.ranks)}
    ops = weave(programs, layout)
    what = f"{len(chosen)} of {spec.layers} blocks" if layers is not None else "whole model"
    return {"name": f"{spec.name}-{mode}", **platform,
            "description": (f"{spec.name} {mode} ({what}), global batch {batch} x seq {seq_new}"
                            + (f", kv {seq_kv}" if mode != "train" else "")
                            + f", TP{tp}{' (SP)' if sequence_parallel and tp > 1 else ''} PP{pp} DP{dp}"
                              f"{' (distributed optimizer)' if distributed_optimizer and dp > 1 else ''} EP{ep}, "
                              f"{microbatches} micro-batch(es){', full recompute' if recompute else ''}, "
                              f"recipe {fmt.name}; generated by blackwell_sim.trace.generators"),
            "ops": ops}
