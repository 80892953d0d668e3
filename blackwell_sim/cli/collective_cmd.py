"""``blackwell-sim collective``: simulate one NCCL-like collective on a multi-GPU system."""

from __future__ import annotations

import argparse
import re

from blackwell_sim.cli.common import add_common, config_of, positive_int

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def size_bytes(text: str) -> int:
    """A byte count: a positive integer, optionally with a binary suffix (64K, 256M, 1G, 1GiB)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid byte count: {text!r} (e.g. 1048576, 256M, 1G)")
    value = int(match.group(1)) * _SCALE[match.group(2).lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive byte count, got {text}")
    return value


def rank_list(text: str) -> list[int]:
    try:
        ranks = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated GPU indices, got {text!r}") from None
    return ranks


def register(sub: argparse._SubParsersAction) -> None:
    from blackwell_sim.engine.kernels.collectives import ALGOS, ELEMENT_BYTES, OPS, PROTOCOLS

    p = sub.add_parser("collective", help="simulate one collective (all-reduce, all-gather, ...)",
                       description="Simulate one collective on a system preset: NCCL-like algorithm "
                                   "and protocol choice, contended NVLink ports and switches. Reports "
                                   "time, algbw and busbw (nccl-tests conventions) and the bound.")
    add_common(p, default_config="gb200-nvl72")
    p.add_argument("--op", required=True, choices=OPS)
    p.add_argument("--bytes", required=True, type=size_bytes, dest="nbytes", metavar="N",
                   help="bytes as nccl-tests counts them (per-rank buffer; all-gather: the gathered "
                        "output; reduce-scatter: the input); suffixes K, M, G (binary) accepted")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--gpus", type=positive_int, metavar="G", help="use GPUs 0..G-1 (default: all)")
    group.add_argument("--ranks", type=rank_list, metavar="I,J,...", help="use these GPUs")
    algos = sorted({a for names in ALGOS.values() for a in names})
    p.add_argument("--algo", choices=algos, help="force an algorithm (default: the tuner's pick)")
    p.add_argument("--protocol", choices=PROTOCOLS, help="force a protocol (default: the tuner's pick)")
    p.add_argument("--dtype", default="bf16", choices=sorted(ELEMENT_BYTES),
                   help="element type (sets the in-switch reduction work; default bf16)")
    p.set_defaults(handler=run)


def _text(r) -> str:
    lines = [r.summary_line(),
             f"time: host {r.host_overhead_s * 1e6:.1f} us + latency {r.latency_s * 1e6:.1f} us + "
             f"transfer {r.transfer_s * 1e6:.1f} us ({r.events} pipeline events)",
             "link bytes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in r.link_bytes.items()),
             "tuner estimates: " + ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in
                                             sorted(r.candidates.items(), key=lambda kv: kv[1]))]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    from blackwell_sim.engine.kernels.collectives import simulate_collective

    cfg = config_of(args)
    ranks = args.ranks if args.ranks is not None else (range(args.gpus) if args.gpus else None)
    r = simulate_collective(cfg, args.op, args.nbytes, ranks=ranks, algo=args.algo,
                            protocol=args.protocol, dtype=args.dtype)
    return {"json": {"config": args.config, **r.to_dict()}, "text": _text(r)}
