"""``blackwell-sim generate --model llama3-8b --mode train ... -o OUT.yaml``: a transformer workload
trace from a model description (see :mod:`blackwell_sim.trace.generators`)."""

from __future__ import annotations

import argparse

from blackwell_sim.cli.common import add_common, fail, positive_int


def _layers(text: str):
    try:
        if "," in text or text.startswith("["):
            return [int(x) for x in text.strip("[]").split(",") if x.strip()]
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated block indices, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    from blackwell_sim.trace.generators import FORMAT_RECIPES, MODES, model_names

    p = sub.add_parser("generate", help="generate a transformer training / inference trace",
                       description="Generate one training step (forward, backward, optimizer) or one inference "
                                   "step (prefill or decode) of a transformer as a trace, over tensor (--tp), "
                                   "pipeline (--pp), data (--dp) and expert (--ep) parallel ranks. "
                                   f"Bundled models: {', '.join(model_names())}.")
    add_common(p, config=False)
    next(a for a in p._actions if a.dest == "overrides").help = "override a model-description key, e.g. --set layers=4 --set ffn=16384 (repeatable)"
    p.add_argument("--model", "-m", default="llama3-8b", metavar="M",
                   help="bundled model name or model-description YAML (default llama3-8b)")
    p.add_argument("--mode", choices=MODES, default="train")
    p.add_argument("--batch", type=positive_int, default=1, help="global batch in sequences (default 1)")
    p.add_argument("--seq", type=positive_int, default=2048, help="tokens per sequence (default 2048)")
    p.add_argument("--kv-len", type=int, default=None, help="KV-cache length (decode: required)")
    for flag in ("tp", "dp", "ep", "pp"):
        p.add_argument(f"--{flag}", type=positive_int, default=1, help=f"{flag.upper()} size (default 1)")
    p.add_argument("--microbatches", type=positive_int, default=None, help="micro-batches per step (default --pp)")
    p.add_argument("--sequence-parallel", action="store_true",
                   help="Megatron sequence parallelism (TP all-gather / reduce-scatter instead of all-reduce)")
    p.add_argument("--distributed-optimizer", action="store_true",
                   help="ZeRO-1: reduce-scatter gradients, shard Adam over DP, all-gather the weights")
    p.add_argument("--recompute", action="store_true",
                   help="full activation recomputation (each block's forward re-runs before its backward)")
    p.add_argument("--recipe", default="bf16", choices=sorted(FORMAT_RECIPES), metavar="R",
                   help=f"GEMM format recipe: {', '.join(FORMAT_RECIPES)} (default bf16)")
    p.add_argument("--layers", type=_layers, default=None, metavar="N|i,j",
                   help="only N blocks (or these block indices), without embedding / LM head")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--system", default=None, help="system preset for the trace (default by rank count)")
    where.add_argument("--config", "-c", default=None, metavar="C", help="GPU preset (one-rank traces)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.yaml",
                   help="trace file (.yaml, .json, .jsonl); use .json for whole-model traces (a YAML file of "
                        "100K+ ops takes about a minute to write and to read, JSON seconds)")
    p.set_defaults(handler=run_generate)


def _model_with_overrides(args):
    from blackwell_sim.config import parse_set_option
    from blackwell_sim.trace.generators import load_model

    spec = load_model(args.model)
    if not args.overrides:
        return spec
    import dataclasses

    raw = dataclasses.asdict(spec)
    for text in args.overrides:
        key, value = parse_set_option(text)
        node, parts = raw, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                fail(f"--set {text}: '{part}' is not a section of the model description")
            node = node[part]
        if parts[-1] not in node:
            fail(f"--set {text}: unknown model key '{key}'; known: {', '.join(raw)}")
        node[parts[-1]] = value
    return load_model(raw)


def run_generate(args: argparse.Namespace) -> dict:
    from blackwell_sim.trace.generators import generate
    from blackwell_sim.trace.io import write_trace

    if args.kv_len is not None and args.kv_len < 0:
        fail(f"--kv-len: must be >= 0, got {args.kv_len}")
    spec = _model_with_overrides(args)
    doc = generate(spec, mode=args.mode, batch=args.batch, seq=args.seq, kv_len=args.kv_len, tp=args.tp,
                   dp=args.dp, ep=args.ep, pp=args.pp, recipe=args.recipe, layers=args.layers,
                   microbatches=args.microbatches, sequence_parallel=args.sequence_parallel,
                   distributed_optimizer=args.distributed_optimizer, recompute=args.recompute, system=args.system, config=args.config)
    out = write_trace(doc, args.output)
    ops = doc["ops"]
    counts = {kind: sum(op["op"] == kind for op in ops) for kind in ("gemm", "attention", "elementwise")}
    counts["collectives"] = len(ops) - sum(counts.values())
    ranks = args.tp * args.dp * args.pp
    gemm_tflop = sum(2.0 * op["m"] * op["n"] * op["k"] * op.get("batch", 1) for op in ops if op["op"] == "gemm") / 1e12
    platform = doc.get("system") or doc.get("config")
    data = {"output": str(out), "ops": len(ops), "ranks": ranks, **counts, "gemm_tflop": gemm_tflop,
            "platform": platform, "description": doc["description"]}
    text = (f"wrote {out}: {len(ops)} ops on {ranks} rank(s) ({counts['gemm']} GEMM, {counts['attention']} attention, "
            f"{counts['elementwise']} elementwise, {counts['collectives']} communication), "
            f"{gemm_tflop:.1f} GEMM TFLOP, platform {platform}")
    return {"json": data, "text": text}
