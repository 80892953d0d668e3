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
    return {"json": data, "text": _text(r)}


def run_memcpy(args: argparse.Namespace) -> dict:
    from blackwell_sim.engine.kernels.memcpy import simulate_memcpy

    r = simulate_memcpy(config_of(args), args.nbytes)
    return {"json": r.to_dict(),
            "text": f"{r.kernel}: {r.time_s * 1e6:.1f} us, {r.bandwidth_gbps['hbm']:.0f} GB/s "
                    f"(read + write; {r.percent_of_peak:.1f}% of HBM peak)"}
