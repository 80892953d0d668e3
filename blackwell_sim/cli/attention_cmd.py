"""``blackwell-sim attention``: simulate one fused-attention pass and explain it."""

from __future__ import annotations

import argparse

from blackwell_sim.cli.common import add_common, config_of, fail, positive_int
from blackwell_sim.config import dtype_names
from blackwell_sim.engine.kernels.attention_variants import VARIANTS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="simulate one fused attention pass (FlashAttention-style)",
                       description="Simulate softmax(Q K^T / sqrt(d)) V for Q [batch, heads, seq, head_dim], "
                                   "K [batch, kv_heads, seq_kv, head_dim] and V [batch, kv_heads, seq_kv, "
                                   "head_dim_v]: time, TFLOPS vs peak (FLOPs: 2*B*H*S*Skv*(D + Dv) forward, "
                                   "= 4*B*H*S*Skv*D when Dv = D, halved for causal; backward 2.5x), "
                                   "what bounds it, and the kernels it runs.")
    add_common(p)
    p.add_argument("--batch", type=positive_int, required=True)
    p.add_argument("--heads", type=positive_int, required=True, help="query heads")
    p.add_argument("--kv-heads", type=positive_int, default=None,
                   help="key/value heads (GQA/MQA; default: --heads)")
    p.add_argument("--seq", type=positive_int, required=True, help="query length (1 for a decode step)")
    p.add_argument("--seq-kv", type=positive_int, default=None, help="key/value length (default: --seq)")
    p.add_argument("--head-dim", type=positive_int, required=True, help="Q/K head dim")
    p.add_argument("--head-dim-v", type=positive_int, default=None,
                   help="V/O head dim (default: --head-dim; DeepSeek MLA: --head-dim 192 --head-dim-v 128)")
    p.add_argument("--causal", action="store_true", help="causal mask (top-left aligned, as PyTorch)")
    p.add_argument("--backward", action="store_true", help="simulate the backward pass instead of the forward")
    p.add_argument("--dtype", default="bf16", choices=dtype_names(), metavar="DT",
                   help="operand type (default bf16; fa3/fa4 also take fp8 forward)")
    p.add_argument("--kernel", choices=tuple(VARIANTS), default=None,
                   help="kernel variant (default: the fastest for the GPU: fa3 on Hopper, fa4 on Blackwell)")
    p.add_argument("--no-exp-emulation", action="store_true",
                   help="fa4: compute every exponential on the MUFU (no polynomial emulation on the FMA pipe)")
    p.add_argument("--power-state", choices=("sustained", "burst"), default="sustained",
                   help="clock: sustained under the power limit, or the burst of an isolated call")
    p.add_argument("--fidelity", choices=("fast", "detailed"), default="fast")
    p.set_defaults(handler=run_attention)


def _text(r) -> str:
    d = r.details
    kernels = ", ".join(f"{name} {t * 1e6:.1f} us" for name, t in d["kernels"])
    return "\n".join([
        r.summary_line(),
        f"block ({d['block_limit']}-limited): MMA {d['mma_cycles']:.0f}, softmax {d['softmax_cycles']:.0f}, "
        f"SMEM {d['smem_cycles']:.0f} -> {d['block_cycles']:.0f} cycles (overlap {d['overlap']:.2f}, "
        f"emulated exp {d['emulated_exp_fraction']:.2f})",
        f"kernels: {kernels}",
        "efficiency by mechanism: " + ", ".join(f"{k} {v:.3f}" for k, v in r.efficiency.items()),
        f"bytes: HBM {r.bytes['hbm'] / 1e6:.1f} MB, L2->SM {r.bytes['l2'] / 1e6:.1f} MB; "
        f"CTAs {d['units']} on {d['workers']} slots" + (f", {d['splits']} KV splits" if d.get("splits", 1) > 1 else ""),
    ])


def run_attention(args: argparse.Namespace) -> dict:
    from blackwell_sim.engine.kernels.attention import simulate_attention

    if args.no_exp_emulation and args.kernel not in (None, "fa4"):
        fail(f"attention: --no-exp-emulation applies to --kernel fa4 only, got --kernel {args.kernel}")
    cfg = config_of(args)
    r = simulate_attention(cfg, args.batch, args.heads, args.seq, args.head_dim, kv_heads=args.kv_heads,
                           seq_kv=args.seq_kv, causal=args.causal, backward=args.backward, dtype=args.dtype,
                           kernel=args.kernel, fidelity=args.fidelity, power_state=args.power_state,
                           exp_emulation=False if args.no_exp_emulation else None, head_dim_v=args.head_dim_v)
    data = r.to_dict()
    data["details"].pop("timeline", None)
    return {"json": data, "text": _text(r)}
