"""Import a PyTorch profiler trace (Chrome-trace JSON from ``torch.profiler`` with
``record_shapes=True``) as a blackwell-sim trace document.

What becomes an op (CPU events of category ``cpu_op``, the outermost one on its thread when they
nest, e.g. ``aten::linear`` -> ``aten::matmul`` -> ``aten::mm`` gives one GEMM):

- GEMMs: ``aten::mm``, ``addmm``, ``bmm``, ``baddbmm``, ``matmul``, ``linear``, ``_scaled_mm``.
  Shapes come from the event's ``Input Dims``: ``linear(x[..., in], W[out, in])`` is m = prod of
  x's leading dims, n = out, k = in; ``matmul`` follows numpy broadcasting (a 2-D right operand
  folds the left operand's batch dims into m; two >= 3-D operands give a batched GEMM).
- Attention: ``aten::scaled_dot_product_attention`` and ``_scaled_dot_product_{flash,cudnn,
  efficient}_attention`` (and their ``_backward``): q is [batch, heads, seq_q, head_dim], k gives
  kv_heads and seq_kv; ``is_causal`` is read from the event's ``Concrete Inputs`` when present.
- NCCL collectives: ``record_param_comms`` events (emitted by c10d for every collective) with
  ``Collective name``, ``In msg nelems`` / ``Out msg nelems``, ``dtype`` and ``Group size``; bytes
  follow the nccl-tests convention (all_gather: the gathered output; reduce_scatter and the others:
  the input).

Measured time: each op's GPU kernels (category ``kernel``) are found through the launch events
(``cuda_runtime`` / ``cuda_driver``) that share their ``correlation`` id and lie inside the op's
CPU interval on the op's thread (the ``ac2g`` flow events of the Chrome trace encode the same link);
when a trace has no launch events, through the kernel's ``External id``. Their durations are summed
into ``measured_s`` (kernels only; memsets and copies are not counted). Ops issued from the autograd
engine's thread inside ``autograd::engine::evaluate_function`` get ``phase: bwd``, others ``fwd``.

Every op goes on ``rank`` (0 by default: one profiler file is one process), compute ops in CPU issue
order on stream ``compute``; a collective runs on stream ``comm`` after the compute op issued before
it, and the compute op issued after it waits for it (synchronous c10d semantics). Collectives of a
one-rank process group are dropped (nothing moves between GPUs). The document's ``config`` is the
GPU preset matching ``deviceProperties`` (H100 -> h100-sxm, ...), or its 8-GPU / NVL72 system
(``system``) when the trace has collectives over several ranks; an explicit ``config`` wins.
Malformed input raises :class:`~blackwell_sim.errors.BlackwellSimError` naming the file and event.
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blackwell_sim.errors import BlackwellSimError

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
            "aten::_scaled_mm")
#: attention op -> (index of q in the inputs, index of is_causal in the inputs, backward, kernel)
ATTENTION_OPS: dict[str, tuple[int, int | None, bool, str | None]] = {
    "aten::scaled_dot_product_attention": (0, 5, False, None),
    "aten::_scaled_dot_product_flash_attention": (0, 4, False, "fa2"),
    "aten::_scaled_dot_product_cudnn_attention": (0, 6, False, None),
    "aten::_scaled_dot_product_efficient_attention": (0, 6, False, None),
    "aten::_scaled_dot_product_flash_attention_backward": (1, 11, True, "fa2"),
    "aten::_scaled_dot_product_cudnn_attention_backward": (1, 14, True, None),
    "aten::_scaled_dot_product_efficient_attention_backward": (1, 11, True, None),
}
COMMS_EVENT = "record_param_comms"
#: c10d "Collective name" -> (trace op, bytes taken from the output (True) or the input)
COLLECTIVES: dict[str, tuple[str, bool]] = {
    "allreduce": ("all_reduce", False), "all_reduce": ("all_reduce", False),
    "allreduce_coalesced": ("all_reduce", False),
    "allgather": ("all_gather", True), "all_gather": ("all_gather", True), "_allgather_base": ("all_gather", True),
    "allgather_into_tensor_coalesced": ("all_gather", True), "all_gather_into_tensor": ("all_gather", True),
    "reduce_scatter": ("reduce_scatter", False), "_reduce_scatter_base": ("reduce_scatter", False),
    "reduce_scatter_tensor": ("reduce_scatter", False),
    "reduce_scatter_tensor_coalesced": ("reduce_scatter", False),
    "all_to_all": ("all_to_all", False), "alltoall": ("all_to_all", False), "alltoall_base": ("all_to_all", False),
    "all_to_allv": ("all_to_all", False),
    "broadcast": ("broadcast", False),
}
#: profiler "Input type" / comms "dtype" -> blackwell-sim dtype, element bytes
TORCH_DTYPES: dict[str, tuple[str, float]] = {
    "c10::BFloat16": ("bf16", 2), "BFloat16": ("bf16", 2), "c10::Half": ("fp16", 2), "Half": ("fp16", 2),
    "float": ("fp32", 4), "Float": ("fp32", 4), "double": ("fp32", 8), "Double": ("fp32", 8),
    "c10::Float8_e4m3fn": ("fp8_e4m3", 1), "Float8_e4m3fn": ("fp8_e4m3", 1),
    "c10::Float8_e5m2": ("fp8_e5m2", 1), "Float8_e5m2": ("fp8_e5m2", 1),
    "c10::Float4_e2m1fn_x2": ("nvfp4", 1), "Float4_e2m1fn_x2": ("nvfp4", 1),
    "signed char": ("int8", 1), "Char": ("int8", 1), "int": ("fp32", 4), "Int": ("fp32", 4),
    "long int": ("fp32", 8), "Long": ("fp32", 8), "unsigned char": ("int8", 1), "Byte": ("int8", 1),
}
#: GPU name (deviceProperties) fragment -> config preset
DEVICE_PRESETS = (("H100", "h100-sxm"), ("H200", "h200"), ("B300", "b300"), ("GB200", "gb200"), ("B200", "b200"))
#: GPU preset -> (system preset of that GPU, its GPU count) for traces with multi-rank collectives
SYSTEM_PRESETS = {"h100-sxm": ("hgx-h100-8", 8), "h200": ("hgx-h200-8", 8), "b200": ("hgx-b200-8", 8),
                  "b300": ("hgx-b300-8", 8), "gb200": ("gb200-nvl72", 72)}
_BACKWARD_SCOPE = "autograd::engine::evaluate_function"


class _Event:
    __slots__ = ("index", "name", "ts", "end", "thread", "args")

    def __init__(self, index: int, raw: Mapping):
        self.index = index
        self.name = raw.get("name", "")
        self.ts = float(raw["ts"])
        self.end = self.ts + float(raw.get("dur", 0.0))
        self.thread = (raw.get("pid"), raw.get("tid"))
        self.args = raw.get("args") or {}


def _read(path: Path) -> Any:
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BlackwellSimError(f"{source}: no such profiler trace file") from None
    except OSError as exc:
        raise BlackwellSimError(f"{source}: cannot read: {exc}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BlackwellSimError(f"{source}: not a valid gzip file: {exc}") from None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BlackwellSimError(f"{source}: not a Chrome-trace JSON file: {exc}") from None


def _bad(source: str, ev: _Event, why: str) -> BlackwellSimError:
    return BlackwellSimError(f"{source}: event {ev.index} '{ev.name}' (ts {ev.ts:.3f} us): {why}")


def _dims(source: str, ev: _Event, count: int, ranks: tuple[tuple[int, ...], ...] | None = None) -> list[list[int]]:
    """The first ``count`` input shapes of ``ev``, each of an allowed rank, checked."""
    dims = ev.args.get("Input Dims")
    if dims is None:
        raise _bad(source, ev, "no 'Input Dims' (export the profile with record_shapes=True)")
    if not isinstance(dims, list) or len(dims) < count:
        raise _bad(source, ev, f"'Input Dims' needs {count} inputs, got {str(dims)[:80]}")
    out = []
    for i in range(count):
        d = dims[i]
        if not isinstance(d, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in d):
            raise _bad(source, ev, f"input {i}: expected a shape (list of sizes >= 0), got {str(d)[:80]}")
        if ranks is not None and len(d) not in ranks[i]:
            raise _bad(source, ev, f"input {i}: expected a {' or '.join(map(str, ranks[i]))}-D tensor, got shape {d}")
        out.append(d)
    return out


def _dtype(source: str, ev: _Event, index: int = 0) -> str:
    types = ev.args.get("Input type") or []
    name = types[index] if index < len(types) else ""
    if name not in TORCH_DTYPES:
        raise _bad(source, ev, f"input {index}: unsupported element type {name!r}; known: "
                               f"{', '.join(sorted(k for k in TORCH_DTYPES if k.startswith('c10') or k[0].islower()))}")
    return TORCH_DTYPES[name][0]


def _prod(xs) -> int:
    return int(math.prod(xs)) if xs else 1


def gemm_shape(source: str, ev: _Event) -> dict[str, int]:
    """{m, n, k, batch} of a GEMM-family event from its input shapes."""
    name = ev.name
    if name in ("aten::mm", "aten::_scaled_mm"):
        a, b = _dims(source, ev, 2, ((2,), (2,)))
        m, k, n, batch = a[0], a[1], b[1], 1
        kb = b[0]
    elif name == "aten::addmm":
        _, a, b = _dims(source, ev, 3, ((0, 1, 2), (2,), (2,)))
        m, k, n, batch, kb = a[0], a[1], b[1], 1, b[0]
    elif name in ("aten::bmm", "aten::baddbmm"):
        shapes = _dims(source, ev, 3 if name == "aten::baddbmm" else 2)
        a, b = shapes[-2:]
        if len(a) != 3 or len(b) != 3 or a[0] != b[0]:
            raise _bad(source, ev, f"expected [b, m, k] x [b, k, n], got {a} x {b}")
        batch, m, k, n, kb = a[0], a[1], a[2], b[2], b[1]
    elif name == "aten::linear":
        x, w = _dims(source, ev, 2, (tuple(range(1, 9)), (1, 2)))
        if len(w) == 1:
            w = [1, w[0]]
        m, k, n, batch, kb = _prod(x[:-1]), x[-1], w[0], 1, w[1]
    elif name == "aten::matmul":
        a, b = _dims(source, ev, 2, (tuple(range(1, 9)), tuple(range(1, 9))))
        if len(a) == 1:
            a = [1, a[0]]
        if len(b) == 1:
            b = [b[0], 1]
        if len(b) == 2:
            m, k, n, batch, kb = _prod(a[:-1]), a[-1], b[1], 1, b[0]
        else:
            ba, bb = a[:-2], b[:-2]
            width = max(len(ba), len(bb))
            ba, bb = [1] * (width - len(ba)) + ba, [1] * (width - len(bb)) + bb
            if any(x != y and 1 not in (x, y) for x, y in zip(ba, bb)):
                raise _bad(source, ev, f"batch dims do not broadcast: {a} x {b}")
            batch = _prod([max(x, y) for x, y in zip(ba, bb)])
            m, k, n, kb = a[-2], a[-1], b[-1], b[-2]
    else:  # pragma: no cover - callers pass GEMM_OPS only
        raise _bad(source, ev, "not a GEMM op")
    if k != kb:
        raise _bad(source, ev, f"inner dimensions differ ({k} vs {kb})")
    if min(m, n, k, batch) <= 0:
        raise _bad(source, ev, f"empty GEMM (m={m}, n={n}, k={k}, batch={batch})")
    return {"m": int(m), "n": int(n), "k": int(k), "batch": int(batch)}


def _scaled_mm_dtype(source: str, ev: _Event) -> tuple[str, int]:
    """(dtype, k multiplier) of ``_scaled_mm``: packed FP4 holds 2 elements a byte; block scales
    (E8M0 -> MX, E4M3 -> NVFP4; a scale tensor with more than one element) mark block scaling."""
    base = _dtype(source, ev, 0)
    types = ev.args.get("Input type") or []
    dims = ev.args.get("Input Dims") or []
    scale_type = types[2] if len(types) > 2 else ""
    scale_elems = _prod(dims[2]) if len(dims) > 2 and isinstance(dims[2], list) else 1
    blocked = scale_elems > 1 and "e8m0" in scale_type.lower() or (base == "nvfp4" and scale_elems > 1)
    if base == "nvfp4":
        return ("mxfp4" if "e8m0" in scale_type.lower() else "nvfp4"), 2
    if blocked and "e8m0" in scale_type.lower():
        return ("mxfp8" if base == "fp8_e4m3" else "mxfp8_e5m2"), 1
    return base, 1


def _causal(ev: _Event, index: int | None) -> bool:
    concrete = ev.args.get("Concrete Inputs") or []
    if index is None or index >= len(concrete):
        return False
    return str(concrete[index]).strip().lower() in ("true", "1")


def attention_fields(source: str, ev: _Event) -> dict[str, Any]:
    q_index, causal_index, backward, kernel = ATTENTION_OPS[ev.name]
    shapes = _dims(source, ev, q_index + 3)
    q, k = shapes[q_index], shapes[q_index + 1]
    if len(q) == 3:
        q, k = [1] + q, [1] + k if len(k) == 3 else k
    if len(q) != 4 or len(k) != 4:
        raise _bad(source, ev, f"expected q, k of shape [batch, heads, seq, head_dim], got {q} and {k}")
    if min(q) <= 0 or min(k) <= 0:
        raise _bad(source, ev, f"empty attention (q {q}, k {k})")
    out = {"batch": q[0], "heads": q[1], "seq_q": q[2], "head_dim": q[3], "kv_heads": k[1], "seq_kv": k[2],
           "causal": _causal(ev, causal_index), "backward": backward, "dtype": _dtype(source, ev, q_index)}
    if kernel:
        out["kernel"] = kernel
    return out


def collective_fields(source: str, ev: _Event, group_rank0: bool = True) -> dict[str, Any] | None:
    """Trace fields of a ``record_param_comms`` event, or None for non-collectives (barrier...)."""
    name = str(ev.args.get("Collective name", ""))
    if name not in COLLECTIVES:
        return None
    op, from_output = COLLECTIVES[name]
    key = "Out msg nelems" if from_output else "In msg nelems"
    nelems = ev.args.get(key, ev.args.get("In msg nelems"))
    dtype_name = str(ev.args.get("dtype", ""))
    if not isinstance(nelems, int) or isinstance(nelems, bool) or nelems < 0:
        raise _bad(source, ev, f"'{key}': expected an element count, got {nelems!r}")
    if dtype_name not in TORCH_DTYPES:
        raise _bad(source, ev, f"'dtype': unsupported element type {dtype_name!r}")
    dtype, size = TORCH_DTYPES[dtype_name]
    group_size = ev.args.get("Group size", 1)
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise _bad(source, ev, f"'Group size': expected a positive integer, got {group_size!r}")
    return {"op": op, "bytes": max(1, int(nelems * size)), "group": list(range(group_size)),
            "dtype": dtype if dtype in ("bf16", "fp16", "fp32", "fp8_e4m3", "fp8_e5m2") else "bf16"}


def _launch_index(events: list[Mapping]):
    """Per thread: sorted launch timestamps and their correlation ids; kernels per correlation."""
    kernels_by_corr: dict[Any, list[Mapping]] = defaultdict(list)
    kernels_by_ext: dict[Any, list[Mapping]] = defaultdict(list)
    launches: dict[tuple, list[tuple[float, Any]]] = defaultdict(list)
    for raw in events:
        cat = raw.get("cat")
        args = raw.get("args") or {}
        if cat == "kernel":
            if "correlation" in args:
                kernels_by_corr[args["correlation"]].append(raw)
            if "External id" in args:
                kernels_by_ext[args["External id"]].append(raw)
        elif cat in ("cuda_runtime", "cuda_driver") and "correlation" in args and "ts" in raw:
            launches[(raw.get("pid"), raw.get("tid"))].append((float(raw["ts"]), args["correlation"]))
    for lst in launches.values():
        lst.sort(key=lambda x: x[0])
    return kernels_by_corr, kernels_by_ext, launches


def _device_preset(doc: Mapping) -> str | None:
    for prop in doc.get("deviceProperties") or []:
        name = str(prop.get("name", "")) if isinstance(prop, Mapping) else ""
        for fragment, preset in DEVICE_PRESETS:
            if fragment in name:
                return preset
    return None


def import_torch_profile(path: str | os.PathLike, rank: int = 0, config: str | None = None) -> dict:
    """A trace document (``{name, description, config, ops}``) from a torch.profiler Chrome trace.

    ``config`` (a GPU preset) defaults to the one matching the trace's ``deviceProperties`` GPU
    name (H100 -> h100-sxm, ...), or is left out when unknown. Raises
    :class:`~blackwell_sim.errors.BlackwellSimError` for unreadable or malformed input.
    """
    path = Path(path)
    source = str(path)
    doc = _read(path)
    raw_events = doc.get("traceEvents") if isinstance(doc, Mapping) else doc if isinstance(doc, list) else None
    if not isinstance(raw_events, list):
        raise BlackwellSimError(f"{source}: no 'traceEvents' list (not a torch.profiler Chrome trace)")
    wanted = set(GEMM_OPS) | set(ATTENTION_OPS) | {COMMS_EVENT}
    cpu: list[_Event] = []
    backward_scopes: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for i, raw in enumerate(raw_events):
        if not isinstance(raw, Mapping) or raw.get("cat") != "cpu_op":
            continue
        name = raw.get("name", "")
        if name in wanted or name.startswith(_BACKWARD_SCOPE):
            if not isinstance(raw.get("ts"), (int, float)) or not isinstance(raw.get("dur", 0), (int, float)):
                raise BlackwellSimError(f"{source}: event {i} '{name}': 'ts'/'dur' must be numbers")
            ev = _Event(i, raw)
            if name.startswith(_BACKWARD_SCOPE):
                backward_scopes[ev.thread].append((ev.ts, ev.end))
            else:
                cpu.append(ev)
    cpu.sort(key=lambda e: (e.ts, -e.end, e.index))
    kernels_by_corr, kernels_by_ext, launches = _launch_index(raw_events)
    ext_to_event: dict[Any, tuple[tuple, float]] = {}
    if not launches:
        for raw in raw_events:
            if isinstance(raw, Mapping) and raw.get("cat") == "cpu_op" and "External id" in (raw.get("args") or {}):
                ext_to_event[raw["args"]["External id"]] = ((raw.get("pid"), raw.get("tid")), float(raw["ts"]))
    for scopes in backward_scopes.values():
        scopes.sort()

    outer_end: dict[tuple, float] = {}
    ops: list[dict] = []
    counters: dict[str, int] = defaultdict(int)
    intervals: dict[tuple, list[tuple[float, float, int]]] = defaultdict(list)
    last_compute: str | None = None
    pending: list[str] = []
    skipped = single = widest = 0
    for ev in cpu:
        if ev.ts < outer_end.get(ev.thread, -math.inf):
            continue  # nested inside a recognised op (linear -> matmul -> mm)
        if ev.name == COMMS_EVENT:
            fields = collective_fields(source, ev)
            if fields is None:
                skipped += 1
                continue
            if len(fields["group"]) == 1:  # a one-rank collective moves nothing between GPUs
                single += 1
                continue
            widest = max(widest, len(fields["group"]))
            kind = fields["op"]
        elif ev.name in ATTENTION_OPS:
            fields = {"op": "attention", **attention_fields(source, ev)}
            kind = "sdpa_bwd" if fields["backward"] else "sdpa"
        else:
            shape = gemm_shape(source, ev)
            if ev.name == "aten::_scaled_mm":
                dtype, k_mult = _scaled_mm_dtype(source, ev)
                shape["k"] *= k_mult
            else:
                dtype = _dtype(source, ev, 1 if ev.name in ("aten::addmm", "aten::baddbmm") else 0)
            fields = {"op": "gemm", **shape, "dtype": dtype}
            if fields["batch"] == 1:
                del fields["batch"]
            kind = ev.name.split("::")[-1].lstrip("_")
        outer_end[ev.thread] = ev.end
        name = f"{kind}_{counters[kind]}"
        counters[kind] += 1
        scopes = backward_scopes.get(ev.thread, [])
        j = bisect.bisect_right(scopes, (ev.ts, math.inf)) - 1
        in_bwd = any(s <= ev.ts <= e for s, e in scopes[max(0, j - 8):j + 1])
        op = {**fields, "name": name, "rank": rank}
        if in_bwd or fields["op"] in ("gemm", "attention"):
            op["phase"] = "bwd" if in_bwd else "fwd"
        if fields["op"] == "gemm" or fields["op"] == "attention":
            op["stream"] = "compute"
            if pending:
                op["deps"] = pending
                pending = []
            last_compute = name
        else:
            del op["rank"]
            op["stream"] = "comm"
            if last_compute:
                op["deps"] = [last_compute]
            pending = [name]
        intervals[ev.thread].append((ev.ts, ev.end, len(ops)))
        ops.append(op)
    if not ops:
        raise BlackwellSimError(f"{source}: no GEMM, attention or NCCL collective ops found (was the profile "
                                f"recorded with record_shapes=True?)")

    measured = [0.0] * len(ops)
    found = [False] * len(ops)

    def credit(thread, ts, kernels):
        spans = intervals.get(thread)
        if not spans or not kernels:
            return
        j = bisect.bisect_right(spans, (ts, math.inf, math.inf)) - 1
        if j >= 0 and spans[j][0] <= ts <= spans[j][1]:
            i = spans[j][2]
            measured[i] += sum(float(k.get("dur", 0.0)) for k in kernels)
            found[i] = True

    if launches:
        for thread, lst in launches.items():
            for ts, corr in lst:
                credit(thread, ts, kernels_by_corr.get(corr))
    else:
        for ext, kernels in kernels_by_ext.items():
            if ext in ext_to_event:
                thread, ts = ext_to_event[ext]
                credit(thread, ts, kernels)
    for i, op in enumerate(ops):
        if found[i]:
            op["measured_s"] = round(measured[i] * 1e-6, 12)
    n_gemm = sum(op["op"] == "gemm" for op in ops)
    n_attn = sum(op["op"] == "attention" for op in ops)
    out: dict[str, Any] = {
        "name": path.name.split(".")[0],
        "description": (f"imported from {path.name} (torch.profiler): {n_gemm} GEMMs, {n_attn} attention ops, "
                        f"{len(ops) - n_gemm - n_attn} collectives; measured_s = summed GPU kernel time"
                        + (f"; {single} one-rank collectives dropped" if single else "")
                        + (f"; {skipped} non-collective comms events skipped" if skipped else ""))}
    preset = config or _device_preset(doc)
    if preset and widest > 1 and config is None:
        system = SYSTEM_PRESETS.get(preset)
        if system is None or widest > system[1]:
            raise BlackwellSimError(f"{source}: collectives over {widest} ranks need a system preset; "
                                    f"pass one (--config) explicitly")
        out["system"] = system[0]
    elif preset:
        out["config" if widest <= 1 or config is None else "system"] = preset
    out["ops"] = ops
    return out
