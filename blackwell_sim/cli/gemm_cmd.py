"""``blackwell-sim gemm`` and ``blackwell-sim memcpy``: simulate one kernel and explain it."""

from __future__ import annotations

import argparse

from blackwell_sim.cli.common import add_common, config_of, positive_int
from blackwell_sim.config import dtype_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gemm", help="simulate one GEMM C[m,n] = A[m,k] B[k,n]",
                       description="Simulate one GEMM and report time, TFLOPS vs peak, the bound, "
                                   "the chosen tile and the efficiency losses by mechanism.")
    add_common(p)
    p.add_argument("--m", type=positive_int, required=True)
    p.add_argument("--n", type=positive_int, required=True)
    p.add_argument("--k", type=positive_int, required=True)
    p.add_argument("--dtype", default="bf16", choices=dtype_names(), metavar="DT",
                   help=f"operand type: {', '.join(dtype_names())} (default bf16)")
    p.add_argument("--batch", type=positive_int, default=1)
    p.add_argument("--sparse", action="store_true", help="A is 2:4 structured sparse")
    p.add_argument("--fidelity", choices=("fast", "detailed"), default="fast")
    p.add_argument("--tile", help="force a tile, e.g. 128x256 (default: the heuristic's pick)")
    p.add_argument("--functional", choices=("sample", "full"),
                   help="also execute the GEMM numerically in its format (blackwell_sim.numerics) and "
                        "report its error against fp32: 'sample' computes a few output tiles exactly, "
                        "'full' the whole product")
    p.add_argument("--seed", type=int, default=0, help="seed of the random N(0,1) operands (default 0)")
    p.add_argument("--a", metavar="A.npy", help="operand A [m, k] (or [batch, m, k]) instead of random values")
    p.add_argument("--b", metavar="B.npy", help="operand B [k, n] (or [batch, k, n]) instead of random values")
    p.set_defaults(handler=run_gemm)

    c = sub.add_parser("memcpy", help="simulate a device-to-device copy",
                       description="Simulate a device-to-device copy of --bytes bytes.")
    add_common(c)
    c.add_argument("--bytes", type=positive_int, required=True, dest="nbytes")
    c.set_defaults(handler=run_memcpy)


def _text(r) -> str:
    lines = [r.summary_line(),
             "efficiency by mechanism: " + ", ".join(f"{k} {v:.3f}" for k, v in r.efficiency.items()),
             f"bytes: HBM {r.bytes.get('hbm', 0) / 1e6:.1f} MB, L2->SM {r.bytes.get('l2', 0) / 1e6:.1f} MB; "
             f"L2 hit rate {r.details.get('l2_hit_rate', 0):.2f}"]
    return "\n".join(lines)


def run_gemm(args: argparse.Namespace) -> dict:
    from blackwell_sim.engine.kernels.gemm import simulate_gemm

    cfg = config_of(args)
    r = simulate_gemm(cfg, args.m, args.n, args.k, args.dtype, batch=args.batch, sparse=args.sparse,
                      fidelity=args.fidelity, tile=args.tile)
    data = r.to_dict()
    data["details"].pop("timeline", None)
    data["details"].pop("lanes", None)
    text = _text(r)
    if args.functional or args.a or args.b:
        data["functional"] = _functional(args)
        f = data["functional"]
        text += (f"\nfunctional ({f['mode']}, {'operand files' if f['operands'] else f'seed {args.seed}'}): "
                 f"SQNR {f['sqnr_db']:.2f} dB, relative error {f['rel_error']:.3e} vs fp32, "
                 f"{f['functional_s']:.2f} s")
    return {"json": data, "text": text}


def _functional(args: argparse.Namespace) -> dict:
    """The numerical result of the same GEMM (trace.functional: the replay's functional path)."""
    from pathlib import Path

    from blackwell_sim.errors import BlackwellSimError
    from blackwell_sim.trace.functional import run_functional
    from blackwell_sim.trace.ops import parse_op

    if args.sparse:
        raise BlackwellSimError("gemm: --functional does not run 2:4-sparse operands; drop --sparse")
    if bool(args.a) != bool(args.b):
        raise BlackwellSimError("gemm: give both --a and --b operand files, or neither")
    raw = {"op": "gemm", "name": "gemm", "m": args.m, "n": args.n, "k": args.k, "batch": args.batch,
           "dtype": args.dtype}
    if args.a:
        raw["operands"] = {"a": str(Path(args.a).resolve()), "b": str(Path(args.b).resolve())}
    op = parse_op(raw, 0, "gemm")
    mode = args.functional or "full"
    sqnr, rel, seconds = run_functional(op, mode, args.seed, None, "gemm")
    return {"mode": mode, "seed": args.seed, "operands": bool(args.a), "sqnr_db": sqnr,
            "rel_error": rel, "functional_s": seconds}


def run_memcpy(args: argparse.Namespace) -> dict:
    from blackwell_sim.engine.kernels.memcpy import simulate_memcpy

    r = simulate_memcpy(config_of(args), args.nbytes)
    return {"json": r.to_dict(),
            "text": f"{r.kernel}: {r.time_s * 1e6:.1f} us, {r.bandwidth_gbps['hbm']:.0f} GB/s "
                    f"(read + write; {r.percent_of_peak:.1f}% of HBM peak)"}
