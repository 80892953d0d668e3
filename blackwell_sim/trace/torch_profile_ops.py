"""Event-level rules of the torch.profiler importer: which ops are recognised, and their shapes.

Shapes come from a ``cpu_op`` event's ``Input Dims`` / ``Input type`` / ``Concrete Inputs`` (present
when the profile was recorded with ``record_shapes=True``); the argument positions are those of the
ATen operator schemas (``native_functions.yaml``) of PyTorch 2.x. See :mod:`.torch_profile` for the
whole import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from blackwell_sim.errors import BlackwellSimError

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
            "aten::_scaled_mm", "aten::_grouped_mm")
#: attention op -> (index of q in the inputs, index of is_causal, backward, kernel, layout of q/k/v):
#: ATen ``_scaled_dot_product_*`` schemas take [batch, heads, seq, head_dim] ("bhsd"); the
#: flash-attn 2.6+ custom ops (``flash_attn::_flash_attn_forward(q, k, v, dropout_p, softmax_scale,
#: causal, ...)``, ``_flash_attn_backward(dout, q, k, v, out, softmax_lse, dq, dk, dv, dropout_p,
#: softmax_scale, causal, ...)``) take [batch, seq, heads, head_dim] ("bshd").
ATTENTION_OPS: dict[str, tuple[int, int | None, bool, str | None, str]] = {
    "aten::scaled_dot_product_attention": (0, 5, False, None, "bhsd"),
    "aten::_scaled_dot_product_flash_attention": (0, 4, False, "fa2", "bhsd"),
    "aten::_scaled_dot_product_cudnn_attention": (0, 6, False, None, "bhsd"),
    "aten::_scaled_dot_product_efficient_attention": (0, 6, False, None, "bhsd"),
    "aten::_scaled_dot_product_flash_attention_backward": (1, 11, True, "fa2", "bhsd"),
    "aten::_scaled_dot_product_cudnn_attention_backward": (1, 14, True, None, "bhsd"),
    "aten::_scaled_dot_product_efficient_attention_backward": (1, 11, True, None, "bhsd"),
    "flash_attn::_flash_attn_forward": (0, 5, False, "fa2", "bshd"),
    "flash_attn::_flash_attn_backward": (1, 11, True, "fa2", "bshd"),
}
LAYOUT_WORDS = {"b": "batch", "h": "heads", "s": "seq", "d": "head_dim"}
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


class Event:
    """One Chrome-trace event: its index in ``traceEvents``, name, [ts, end] in us, thread, args."""

    __slots__ = ("args", "end", "index", "name", "thread", "ts")

    def __init__(self, index: int, raw: Mapping):
        self.index = index
        self.name = raw.get("name", "")
        self.ts = float(raw["ts"])
        self.end = self.ts + float(raw.get("dur", 0.0))
        self.thread = (raw.get("pid"), raw.get("tid"))
        self.args = raw.get("args") or {}


def _arg_list(ev: Event, key: str) -> list:
    """A list-valued argument of the event ([] when absent or not a list)."""
    value = ev.args.get(key)
    return value if isinstance(value, list) else []


def bad(source: str, ev: Event, why: str) -> BlackwellSimError:
    return BlackwellSimError(f"{source}: event {ev.index} '{ev.name}' (ts {ev.ts:.3f} us): {why}")


def _dims(source: str, ev: Event, count: int, ranks: tuple[tuple[int, ...], ...] | None = None) -> list[list[int]]:
    """The first ``count`` input shapes of ``ev``, each of an allowed rank, checked."""
    dims = ev.args.get("Input Dims")
    if dims is None:
        raise bad(source, ev, "no 'Input Dims' (export the profile with record_shapes=True)")
    if not isinstance(dims, list) or len(dims) < count:
        raise bad(source, ev, f"'Input Dims' needs {count} inputs, got {str(dims)[:80]}")
    out = []
    for i in range(count):
        d = dims[i]
        if not isinstance(d, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in d):
            raise bad(source, ev, f"input {i}: expected a shape (list of sizes >= 0), got {str(d)[:80]}")
        if ranks is not None and len(d) not in ranks[i]:
            raise bad(source, ev, f"input {i}: expected a {' or '.join(map(str, ranks[i]))}-D tensor, got shape {d}")
        out.append(d)
    return out


def input_dtype(source: str, ev: Event, index: int = 0) -> str:
    types = _arg_list(ev, "Input type")
    name = types[index] if index < len(types) else ""
    if not isinstance(name, str) or name not in TORCH_DTYPES:
        raise bad(source, ev, f"input {index}: unsupported element type {name!r}; known: "
                               f"{', '.join(sorted(k for k in TORCH_DTYPES if k.startswith('c10') or k[0].islower()))}")
    return TORCH_DTYPES[name][0]


def _prod(xs) -> int:
    return int(math.prod(xs)) if xs else 1


def gemm_shape(source: str, ev: Event) -> dict[str, int]:
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
            raise bad(source, ev, f"expected [b, m, k] x [b, k, n], got {a} x {b}")
        batch, m, k, n, kb = a[0], a[1], a[2], b[2], b[1]
    elif name == "aten::_grouped_mm":  # MoE experts: A [tokens, k] split by offsets over B [groups, k, n]
        a, b = _dims(source, ev, 2, ((2, 3), (3,)))
        batch, k, n, kb = b[0], a[-1], b[2], b[1]
        m = a[1] if len(a) == 3 else -(-a[0] // max(1, batch))  # 2-D A: balanced groups (offsets unknown)
        if len(a) == 3 and a[0] != batch:
            raise bad(source, ev, f"expected [g, m, k] x [g, k, n], got {a} x {b}")
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
                raise bad(source, ev, f"batch dims do not broadcast: {a} x {b}")
            batch = _prod([max(x, y) for x, y in zip(ba, bb)])
            m, k, n, kb = a[-2], a[-1], b[-1], b[-2]
    else:  # pragma: no cover - callers pass GEMM_OPS only
        raise bad(source, ev, "not a GEMM op")
    if k != kb:
        raise bad(source, ev, f"inner dimensions differ ({k} vs {kb})")
    if min(m, n, k, batch) <= 0:
        raise bad(source, ev, f"empty GEMM (m={m}, n={n}, k={k}, batch={batch})")
    return {"m": int(m), "n": int(n), "k": int(k), "batch": int(batch)}


def scaled_mm_dtype(source: str, ev: Event) -> tuple[str, int]:
    """(dtype, k multiplier) of ``_scaled_mm``: packed FP4 holds 2 elements a byte; block scales
    (E8M0 -> MX, E4M3 -> NVFP4; a scale tensor with more than one element) mark block scaling."""
    base = input_dtype(source, ev, 0)
    types = _arg_list(ev, "Input type")
    dims = _arg_list(ev, "Input Dims")
    scale_type = types[2] if len(types) > 2 and isinstance(types[2], str) else ""
    scale_elems = int(_tensor_bytes(dims[2], 1)) if len(dims) > 2 else 1
    blocked = scale_elems > 1 and "e8m0" in scale_type.lower() or (base == "nvfp4" and scale_elems > 1)
    if base == "nvfp4":
        return ("mxfp4" if "e8m0" in scale_type.lower() else "nvfp4"), 2
    if blocked and "e8m0" in scale_type.lower():
        return ("mxfp8" if base == "fp8_e4m3" else "mxfp8_e5m2"), 1
    return base, 1


def _causal(ev: Event, index: int | None) -> bool:
    concrete = _arg_list(ev, "Concrete Inputs")
    if index is None or index >= len(concrete):
        return False
    return str(concrete[index]).strip().lower() in ("true", "1")


def attention_fields(source: str, ev: Event) -> dict[str, Any]:
    q_index, causal_index, backward, kernel, layout = ATTENTION_OPS[ev.name]
    shapes = _dims(source, ev, q_index + 3)
    q, k = shapes[q_index], shapes[q_index + 1]
    if len(q) == 3 and len(k) == 3 and layout == "bhsd":  # unbatched [heads, seq, head_dim]
        q, k = [1] + q, [1] + k
    if len(q) != 4 or len(k) != 4:
        raise bad(source, ev, f"expected q, k of shape [{', '.join(LAYOUT_WORDS[c] for c in layout)}], "
                              f"got {q} and {k}")
    if layout == "bshd":
        q, k = [q[0], q[2], q[1], q[3]], [k[0], k[2], k[1], k[3]]
    if min(q) <= 0 or min(k) <= 0:
        raise bad(source, ev, f"empty attention (q {q}, k {k})")
    out = {"batch": q[0], "heads": q[1], "seq_q": q[2], "head_dim": q[3], "kv_heads": k[1], "seq_kv": k[2],
           "causal": _causal(ev, causal_index), "backward": backward, "dtype": input_dtype(source, ev, q_index)}
    v = shapes[q_index + 2] if len(shapes) > q_index + 2 else []
    if len(v) == len(shapes[q_index + 1]) and v and v[-1] > 0 and v[-1] != q[3]:
        out["head_dim_v"] = v[-1]   # MLA-style attention: V narrower (or wider) than Q/K
    if kernel:
        out["kernel"] = kernel
    return out


def _group(ev: Event, size: int) -> list[int]:
    """The process group's global ranks ("Process Group Ranks", a list or its text) or 0..size-1."""
    ranks = ev.args.get("Process Group Ranks")
    if isinstance(ranks, str):
        try:
            ranks = json.loads(ranks)
        except ValueError:
            ranks = None
    if isinstance(ranks, list) and len(ranks) == size and len(set(ranks)) == size and all(
            isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in ranks):
        return sorted(ranks)
    return list(range(size))


def collective_fields(source: str, ev: Event) -> dict[str, Any] | None:
    """Trace fields of a ``record_param_comms`` event, or None for non-collectives (barrier...)."""
    name = str(ev.args.get("Collective name", ""))
    if name not in COLLECTIVES:
        return None
    op, from_output = COLLECTIVES[name]
    key = "Out msg nelems" if from_output else "In msg nelems"
    nelems = ev.args.get(key, ev.args.get("In msg nelems"))
    dtype_name = str(ev.args.get("dtype", ""))
    if not isinstance(nelems, int) or isinstance(nelems, bool) or nelems < 0:
        raise bad(source, ev, f"'{key}': expected an element count, got {nelems!r}")
    if dtype_name not in TORCH_DTYPES:
        raise bad(source, ev, f"'dtype': unsupported element type {dtype_name!r}")
    dtype, size = TORCH_DTYPES[dtype_name]
    group_size = ev.args.get("Group size", 1)
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise bad(source, ev, f"'Group size': expected a positive integer, got {group_size!r}")
    return {"op": op, "bytes": max(1, int(nelems * size)), "group": _group(ev, group_size),
            "dtype": dtype if dtype in ("bf16", "fp16", "fp32", "fp8_e4m3", "fp8_e5m2") else "bf16"}


def gemm_fields(source: str, ev: Event) -> dict[str, Any]:
    """Trace fields (op, m, n, k, batch when > 1, dtype) of a GEMM-family event."""
    shape = gemm_shape(source, ev)
    if ev.name == "aten::_scaled_mm":
        dtype, k_mult = scaled_mm_dtype(source, ev)
        shape["k"] *= k_mult
    else:
        dtype = input_dtype(source, ev, 1 if ev.name in ("aten::addmm", "aten::baddbmm") else 0)
    fields = {"op": "gemm", **shape, "dtype": dtype}
    if fields["batch"] == 1:
        del fields["batch"]
    return fields


#: bytes per element assumed where the profile does not say (TensorList inputs)
DEFAULT_ELEMENT_BYTES = 2


def _tensor_bytes(dims: Any, element_bytes: float) -> float:
    """Bytes of one tensor input: a shape (list of sizes; [] is a 0-dim tensor of one element) or a
    TensorList (list of shapes); anything else 0."""
    if isinstance(dims, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        return math.prod(dims) * element_bytes
    if isinstance(dims, list) and all(isinstance(d, list) for d in dims):
        return sum(_tensor_bytes(d, element_bytes) for d in dims)
    return 0.0


def elementwise_fields(ev: Event) -> dict[str, Any]:
    """An ``elementwise`` op estimated from any other ``aten::`` op's inputs (``--all-kernels``).

    Estimate (the profile records input shapes, not outputs, and no arithmetic): bytes read =
    every tensor input once; bytes written = the largest input (the output of an elementwise,
    normalization or in-place op has an input's shape); flops = 0 (memory-bound). Element sizes
    from ``Input type``; TensorLists count :data:`DEFAULT_ELEMENT_BYTES`. Inputs that are not
    tensors (scalars, None, int lists) count nothing, so an op without tensor inputs (``zeros``,
    ``full``) comes out with no bytes: the importer leaves those out.
    """
    dims, types = _arg_list(ev, "Input Dims"), _arg_list(ev, "Input type")
    sizes = []
    for i, d in enumerate(dims):
        name = types[i] if i < len(types) and isinstance(types[i], str) else ""
        if name == "TensorList":
            sizes.append(_tensor_bytes(d, DEFAULT_ELEMENT_BYTES) if d and isinstance(d, list) else 0.0)
        elif name in TORCH_DTYPES:
            sizes.append(_tensor_bytes(d, TORCH_DTYPES[name][1]))
    return {"op": "elementwise", "bytes_read": int(sum(sizes)), "bytes_written": int(max(sizes, default=0)),
            "flops": 0.0}
