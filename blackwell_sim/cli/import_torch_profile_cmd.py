"""``blackwell-sim import-torch-profile TRACE.json -o OUT.yaml``: a torch.profiler trace as a
blackwell-sim trace (GEMM, attention and NCCL ops with shapes and measured GPU time)."""

from __future__ import annotations

import argparse

from blackwell_sim.cli.common import add_common, fail


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-torch-profile", help="convert a torch.profiler Chrome trace into a trace file",
                       description="Read the Chrome-trace JSON (optionally gzipped) that torch.profiler exports "
                                   "with record_shapes=True and write a blackwell-sim trace: GEMM-family ops, "
                                   "scaled_dot_product_attention variants and NCCL collectives with their shapes "
                                   "and measured GPU kernel time (measured_s). Run it with `blackwell-sim run OUT`.")
    add_common(p, config=False)
    next(a for a in p._actions if a.dest == "overrides").help = "accepted for uniformity; import-torch-profile has no configuration to override"
    p.add_argument("profiles", nargs="+", metavar="TRACE.json",
                   help="torch.profiler Chrome trace (.json or .json.gz); several files (one per rank of a "
                        "distributed run) import into one multi-GPU trace")
    p.add_argument("-o", "--output", required=True, metavar="OUT.yaml",
                   help="trace file to write (.yaml, .json or .jsonl)")
    p.add_argument("--all-kernels", action="store_true",
                   help="also import every other op that ran GPU kernels (norms, activations, optimizer...) as an "
                        "elementwise op with bytes estimated from its input shapes")
    p.add_argument("--rank", type=int, default=None,
                   help="rank a single file's ops run on (default: the file's distributedInfo.rank, else 0)")
    p.add_argument("--config", "-c", default=None, metavar="C",
                   help="GPU or system preset to record in the trace (default: from the profile's GPU name)")
    p.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> dict:
    from blackwell_sim.trace.io import write_trace
    from blackwell_sim.trace.torch_profile import import_torch_profile

    if args.overrides:
        fail(f"--set {args.overrides[0]}: import-torch-profile has no configuration to override")
    if args.rank is not None and (args.rank < 0 or len(args.profiles) > 1):
        fail(f"--rank {args.rank}: must be >= 0 and only with one file (several files use their own ranks)")
    doc = import_torch_profile(args.profiles if len(args.profiles) > 1 else args.profiles[0], rank=args.rank,
                               config=args.config, all_kernels=args.all_kernels)
    out = write_trace(doc, args.output)
    counts = {kind: sum(op["op"] == kind for op in doc["ops"]) for kind in ("gemm", "attention", "elementwise")}
    counts["collectives"] = len(doc["ops"]) - sum(counts.values())
    measured = sum(op.get("measured_s", 0.0) for op in doc["ops"])
    platform = doc.get("config") or doc.get("system")
    data = {"output": str(out), "ops": len(doc["ops"]), **counts, "measured_s": measured, "platform": platform}
    others = f", {counts['elementwise']} other kernels" if args.all_kernels else ""
    text = (f"wrote {out}: {len(doc['ops'])} ops ({counts['gemm']} GEMM, {counts['attention']} attention, "
            f"{counts['collectives']} collectives{others}), {measured * 1e3:.3f} ms measured GPU kernel time"
            + (f", platform {platform}" if platform else ""))
    return {"json": data, "text": text}
