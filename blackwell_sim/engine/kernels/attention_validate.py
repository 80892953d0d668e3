"""``validate``'s ``attention`` rows: predict what shared/tools/measure_hopper.py timed.

For every row the harness timed ``F.scaled_dot_product_attention`` under one SDPA backend
(``flash`` -> ``fa2``, ``cudnn`` -> ``fa3``, ``efficient`` -> ``efficient``) twice with ``bench()``:
the forward call (5 warm-up + 30 timed calls) and forward + ``out.backward(g)`` through autograd
(5 + 20). Each timed call sits between two CUDA events with a synchronize after it, so a median is

    GPU time of the call's kernels + host dispatch exposed before the first kernel

(blackwell_sim/harness.py's method). The forward+backward call's kernels are: the forward, the
backward pass (preprocessing, main kernel, dQ conversion, [GQA reduction], [fa2 layout copies]),
and three gradient-accumulation adds: q, k and v keep their ``.grad`` between calls, so autograd's
AccumulateGrad adds each new gradient into it (``grad += new``: read 2, write 1; seen as three
``CUDAFunctor_add`` kernels in our profiles, benchmarks/data/h100_sxm_attention.jsonl).

The calls run back to back with the GPU loaded from the first warm-up on, so calls inside the
power controller's response window run at the burst clock and later ones at the sustained clock;
the median is the middle timed call's (harness.median_call_s).
"""

from __future__ import annotations

import math

from blackwell_sim.config import SystemConfig, get_dtype
from blackwell_sim.engine.kernels.attention_run import (
    memory_kernel_s,
    simulate_attention,
)
from blackwell_sim.engine.kernels.attention_variants import BACKEND_VARIANTS
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.harness import TimedCall, load_duration_s, median_call_s

#: bench() call counts in measure_hopper.py's attention section
CALLS = {"fwd": (5, 30), "fwdbwd": (5, 20)}


def _call(backend: str, quantity: str, preceding_s: float = 0.0) -> TimedCall:
    """The harness call; host dispatch per SDPA backend from blackwell_sim.harness (efficient: as flash)."""
    api = f"sdpa_{backend if backend in ('flash', 'cudnn') else 'flash'}_{quantity}"
    warmup, timed = CALLS[quantity]
    return TimedCall(api, warmup_calls=warmup, timed_calls=timed, preceding_load_s=preceding_s)


def _state_of(gpu_s: float, burst_s: float, sustained_s: float, states: tuple[str, str]) -> str:
    """The power state whose GPU time the median is (the result reported beside the prediction)."""
    return states[0] if abs(gpu_s - burst_s) <= abs(gpu_s - sustained_s) else states[1]


def _field(row: dict, name: str, default=None) -> int:
    value = row.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BlackwellSimError(f"line {row.get('_line', '?')}: field '{name}' must be a positive integer, "
                                f"got {value!r}")
    return value


def _positive_time(row: dict, name: str) -> float:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BlackwellSimError(f"line {row.get('_line', '?')}: field '{name}' must be a positive number, "
                                f"got {value!r}")
    return float(value)


def grad_accumulate_s(gpu, b: int, h: int, hkv: int, s: int, skv: int, d: int, eb: float) -> float:
    """The three AccumulateGrad adds (q.grad, k.grad, v.grad += new): read 2, write 1 each."""
    total = 0.0
    for elems in (b * h * s * d, b * hkv * skv * d, b * hkv * skv * d):
        total += memory_kernel_s(gpu, 2 * elems * eb, elems * eb)
    return total


def predict_row(config, row: dict) -> list[tuple[str, float, float, object]]:
    gpu = config.gpu if isinstance(config, SystemConfig) else config
    backend = row.get("backend")
    if backend not in BACKEND_VARIANTS:
        raise BlackwellSimError(f"line {row.get('_line', '?')}: attention backend must be one of "
                                f"{', '.join(BACKEND_VARIANTS)}, got {backend!r}")
    b, h, s, d = (_field(row, f) for f in ("b", "h", "s", "d"))
    hkv, skv = _field(row, "h_kv", h), _field(row, "s_kv", s)
    causal = row.get("causal", False)
    if not isinstance(causal, bool):
        raise BlackwellSimError(f"line {row.get('_line', '?')}: field 'causal' must be true or false, got {causal!r}")
    dtype = row.get("dtype", "bf16")
    kernel = BACKEND_VARIANTS[backend]
    args = {"kv_heads": hkv, "seq_kv": skv, "causal": causal, "dtype": dtype, "kernel": kernel}
    response_s = gpu.power.response_ms * 1e-3 if hasattr(gpu.power, "response_ms") else 0.0
    states = ("burst", "sustained") if response_s > 0 else ("sustained", "sustained")
    fwd = {st: simulate_attention(gpu, b, h, s, d, power_state=st, **args) for st in set(states)}
    out = []
    call = _call(backend, "fwd")
    f_burst, f_sus = fwd[states[0]].time_s, fwd[states[1]].time_s
    fwd_pred = median_call_s(call, f_burst, f_sus, response_s)
    if "fwd_median_s" in row:
        out.append(("fwd_median_s", _positive_time(row, "fwd_median_s"), fwd_pred,
                    fwd[_state_of(fwd_pred - call.host_dispatch_s, f_burst, f_sus, states)]))
    if "fwdbwd_median_s" in row:
        bwd = {st: simulate_attention(gpu, b, h, s, d, backward=True, power_state=st, **args) for st in set(states)}
        acc = grad_accumulate_s(gpu, b, h, hkv, s, skv, d, get_dtype(dtype).bits / 8)
        fb = {st: fwd[st].time_s + bwd[st].time_s + acc for st in set(states)}
        fb_call = _call(backend, "fwdbwd", load_duration_s(call, f_burst))
        pred = median_call_s(fb_call, fb[states[0]], fb[states[1]], response_s)
        state = _state_of(pred - fb_call.host_dispatch_s, fb[states[0]], fb[states[1]], states)
        out.append(("fwdbwd_median_s", _positive_time(row, "fwdbwd_median_s"), pred, bwd[state]))
    if not out:
        raise BlackwellSimError(f"line {row.get('_line', '?')}: attention row has neither fwd_median_s nor "
                                f"fwdbwd_median_s")
    return out


VALIDATORS = {"attention": predict_row}
