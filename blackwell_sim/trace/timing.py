"""One op's simulated timing: dispatch to the kernel models of :mod:`blackwell_sim.engine.kernels`.

gemm -> ``gemm.simulate_gemm``; attention -> ``attention.simulate_attention``; memcpy and
elementwise -> ``memcpy.simulate_memory_kernel``; collectives and send/recv ->
``collectives.simulate_collective``. A model module this build lacks gives one clear error
before anything is simulated (:func:`require_models`).

Kernel models include the launch gap (``launch.overhead_us``) in ``time_s`` and report it as
``details["launch_s"]`` (collectives: ``host_overhead_s``); the replay separates it out (the
row's ``time_s`` is the body). send/recv pairs run as the collective model's ``send_recv``.
Energy comes from the power model through :func:`blackwell_sim.report.energy.kernel_energy_j`.
Host dispatch (:func:`issue_times`): when each rank's host thread has issued each op.
"""

from __future__ import annotations

import importlib
import math

from blackwell_sim.config import get_dtype, gpu_of
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.ops import COLLECTIVE_OPS, P2P_OPS, Op, op_error

MODEL_MODULES = {"gemm": "gemm", "attention": "attention", "memcpy": "memcpy",
                 "elementwise": "memcpy", **{k: "collectives" for k in COLLECTIVE_OPS + P2P_OPS}}
MODEL_FUNCTIONS = {"gemm": "simulate_gemm", "attention": "simulate_attention",
                   "memcpy": "simulate_memory_kernel", "collectives": "simulate_collective"}


def _model(module: str):
    """The kernel model function, or None when this build has no such module."""
    try:
        mod = importlib.import_module(f"blackwell_sim.engine.kernels.{module}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(f"kernels.{module}"):
            return None
        raise
    return getattr(mod, MODEL_FUNCTIONS[module], None)


def require_models(trace, instances) -> None:
    """Raise naming the first op whose kernel model is missing from this build."""
    seen: set[str] = set()
    for inst in instances:
        op = inst.ops[0]
        module = MODEL_MODULES[op.op]
        if module in seen:
            continue
        if _model(module) is None:
            fn = MODEL_FUNCTIONS[module]
            raise op_error(trace.source, op.index, op.name,
                           f"{op.op} ops need the {module} kernel model "
                           f"(blackwell_sim.engine.kernels.{module}.{fn}), which this build does not have")
        seen.add(module)




def _peak(gpu, dtype: str, sparse: bool) -> float:
    try:
        return gpu.peak_tflops(dtype, sparse)
    except BlackwellSimError:
        return math.nan


def _kernel_timing(config, result, dtype: str, sparse: bool, tensor: bool):
    from blackwell_sim.report.energy import kernel_energy_j
    from blackwell_sim.trace.replay import Timing

    launch_s = float(result.details.get("launch_s", 0.0))
    body_s = max(float(result.time_s) - launch_s, 0.0)
    return Timing(time_s=body_s, launch_s=launch_s, flops=float(result.flops),
                  peak_tflops=_peak(gpu_of(config), dtype, sparse) if tensor else math.nan,
                  bound=str(result.bound), tile=str(result.tile), dtype=dtype if tensor else "",
                  sparse=sparse, bytes_hbm=float(result.bytes.get("hbm", 0.0)),
                  bytes_l2=float(result.bytes.get("l2", 0.0)), bytes_fabric=0.0,
                  energy_j=kernel_energy_j(config, result, dtype if tensor else None))


def evaluate(inst, config, fidelity: str, source: str = "<trace>"):
    """The :class:`~blackwell_sim.trace.replay.Timing` of one scheduled unit."""
    op = inst.ops[0]
    gpu = gpu_of(config)
    module = MODEL_MODULES[op.op]
    fn = _model(module)
    try:
        if op.op == "gemm":
            sparse = op.sparsity == "2:4"
            r = fn(gpu, op.m, op.n, op.k, op.dtype, batch=op.batch, sparse=sparse, fidelity=fidelity)
            return _kernel_timing(config, r, op.dtype, sparse, True)
        if op.op == "attention":
            r = fn(gpu, op.batch, op.heads, op.seq_q, op.head_dim, kv_heads=op.kv_heads,
                   seq_kv=op.seq_kv, causal=op.causal, backward=op.backward, dtype=op.dtype,
                   kernel=op.kernel, fidelity=fidelity, head_dim_v=op.head_dim_v)
            return _kernel_timing(config, r, op.dtype, False, True)
        if op.op == "memcpy":
            r = fn(gpu, op.bytes, op.bytes, name="memcpy")
            return _kernel_timing(config, r, "", False, False)
        if op.op == "elementwise":
            r = fn(gpu, op.bytes_read, op.bytes_written, name="elementwise", flops=op.flops)
            return _kernel_timing(config, r, "", False, False)
        return _collective_timing(fn, inst, config)
    except BlackwellSimError as exc:
        raise op_error(source, op.index, op.name, str(exc)) from None


def collective_dtype(op) -> str:
    """The NCCL element type of a collective's dtype: fp32 / tf32 -> fp32, bf16, fp16, int8,
    8-bit floats -> fp8. Sub-byte formats (fp4, nvfp4, mxfp4, mxfp6) move as opaque bytes (int8)
    in gathers, all-to-all and broadcast; NCCL cannot reduce them."""
    dt = get_dtype(op.dtype)
    if dt.name in ("fp32", "tf32"):
        return "fp32"
    if dt.name in ("bf16", "fp16", "int8"):
        return dt.name
    if dt.bits == 8:
        return "fp8"
    if op.op in ("all_reduce", "reduce_scatter"):
        raise BlackwellSimError(f"dtype: NCCL cannot reduce {dt.name} elements; reduce in bf16 or fp32")
    return "int8"


def _collective_timing(fn, inst, config):
    from blackwell_sim.trace.replay import Timing

    op = inst.ops[0]
    if op.op in P2P_OPS:
        send = op if op.op == "send" else inst.ops[1]
        r = fn(config, "send_recv", send.bytes, ranks=[send.rank, send.peer])
        dtype = ""
    else:
        dtype = get_dtype(op.dtype).name
        r = fn(config, op.op, op.bytes, ranks=list(inst.ranks), algo=op.algo,
               dtype=collective_dtype(op))
    launch_s = float(getattr(r, "host_overhead_s", 0.0))
    time_s = max(float(r.time_s) - launch_s, 0.0)
    busbw = getattr(r, "busbw_gbps", None)
    fabric = float(busbw) * 1e9 * float(r.time_s) if busbw is not None else float(op.bytes)
    return Timing(time_s=time_s, launch_s=launch_s, flops=0.0, peak_tflops=math.nan,
                  bound=str(getattr(r, "bound", "fabric")), tile=str(getattr(r, "algo", "") or ""),
                  dtype=dtype, sparse=False, bytes_hbm=0.0, bytes_l2=0.0, bytes_fabric=fabric,
                  energy_j=math.nan, sms_used=int(getattr(r, "sms_used", 0) or 0))


def issue_times(instances: list, mode: str) -> list[float] | None:
    """When each rank's host has dispatched each op (eager mode: one host thread per rank issues
    its ops in trace order, each taking its API's dispatch time; a collective is issued once
    every rank of its group has reached it). ``none``: no host limit (e.g. CUDA graphs)."""
    if mode == "none":
        return None
    if mode != "eager":
        raise BlackwellSimError(f"host_dispatch: expected eager or none, got {mode!r}")
    host: dict[int, float] = {}
    order = sorted(range(len(instances)), key=lambda i: min(op.index for op in instances[i].ops))
    issue = [0.0] * len(instances)
    for i in order:
        inst = instances[i]
        cost = host_dispatch_s(inst.ops[0])
        for rank in set(inst.ranks):
            host[rank] = host.get(rank, 0.0) + cost
        issue[i] = max(host[rank] for rank in inst.ranks)
    return issue


def host_dispatch_s(op: Op) -> float:
    """Host time to dispatch ``op`` from PyTorch eager mode, from the per-API measurements of
    :data:`blackwell_sim.harness.HOST_DISPATCH_US` (H100 machine). Attention: the flash SDPA
    forward; a backward op, the forward + backward figure less the forward's. Collectives: 0 here,
    their host overhead is part of the collective model's time."""
    from blackwell_sim.harness import HOST_DISPATCH_US

    if op.op == "gemm":
        if op.dtype in ("tf32", "fp32"):
            api = "matmul_tf32"
        elif op.dtype not in ("bf16", "fp16"):
            api = "scaled_mm"
        else:
            api = "bmm" if op.batch > 1 else "matmul"
    elif op.op == "attention":
        if op.backward:
            return (HOST_DISPATCH_US["sdpa_flash_fwdbwd"] - HOST_DISPATCH_US["sdpa_flash_fwd"]) * 1e-6
        api = "sdpa_flash_fwd"
    elif op.op == "memcpy":
        api = "copy"
    elif op.op == "elementwise":
        api = "elementwise"
    else:
        return 0.0
    return HOST_DISPATCH_US[api] * 1e-6
