"""The trace op schema: one frozen dataclass per op kind, and strict validation of raw mappings.

A trace is a list of ops (gemm, attention, memcpy, elementwise, the NCCL collectives, send/recv).
Every op has ``op``, ``name``, ``stream``, ``deps``, ``measured_s``, ``layer`` and ``phase``;
compute and memory ops (and send/recv) run on one ``rank``; collectives run on a ``group`` of
ranks (default: every rank of the system). Field names, defaults and ranges are the contract of
the trace format (docs in :mod:`blackwell_sim.trace`). :func:`parse_op` turns one raw mapping into
an op or raises :class:`~blackwell_sim.errors.BlackwellSimError` naming the source, the op
index, the op's name, the field and the bad value, in one line.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from blackwell_sim.errors import BlackwellSimError

COMPUTE_OPS = ("gemm", "attention")
MEMORY_OPS = ("memcpy", "elementwise")
COLLECTIVE_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast")
P2P_OPS = ("send", "recv")
OP_KINDS = COMPUTE_OPS + MEMORY_OPS + COLLECTIVE_OPS + P2P_OPS
SPARSITY_PATTERNS = ("2:4",)
ATTENTION_KERNELS = ("fa2", "fa3", "fa4")


@dataclass(frozen=True, kw_only=True)
class Op:
    """Fields every op has. ``index`` is the op's position in its trace (0-based)."""

    op: str
    name: str
    index: int
    stream: str
    deps: tuple[str, ...] = ()
    measured_s: float | None = None
    layer: str | None = None
    phase: str | None = None

    @property
    def is_collective(self) -> bool:
        return self.op in COLLECTIVE_OPS or self.op in P2P_OPS

    def timing_key(self) -> tuple:
        """The fields that decide this op's simulated time (the memo key, with the config)."""
        names = _TIMING_FIELDS.get(type(self))
        if names is None:
            names = _TIMING_FIELDS[type(self)] = tuple(
                f.name for f in fields(self) if f.name not in _NOT_TIMING)
        return (self.op,) + tuple(getattr(self, name) for name in names)


_NOT_TIMING = frozenset({"op", "name", "index", "stream", "deps", "measured_s", "layer", "phase",
                         "rank", "operands", "recipe", "peer"})
_TIMING_FIELDS: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, kw_only=True)
class GemmOp(Op):
    """C[m, n] = A[m, k] @ B[k, n], ``batch`` times. ``operands`` name .npy files (A [m, k] or
    [batch, m, k]; B [k, n] or [batch, k, n]) relative to the trace file."""

    rank: int = 0
    m: int
    n: int
    k: int
    batch: int = 1
    dtype: str = "bf16"
    sparsity: str | None = None
    recipe: str | None = None
    operands: tuple[tuple[str, str], ...] | None = None

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k * self.batch


@dataclass(frozen=True, kw_only=True)
class AttentionOp(Op):
    """softmax(Q K^T / sqrt(head_dim)) V over ``batch`` x ``heads`` (grouped-query when
    ``kv_heads`` < ``heads``); ``backward`` is the backward pass of the same shape. ``head_dim`` is
    the Q/K head dim, ``head_dim_v`` the V/O head dim (None: ``head_dim``; DeepSeek MLA: 192 / 128)."""

    rank: int = 0
    batch: int
    heads: int
    seq_q: int
    head_dim: int
    kv_heads: int | None = None
    seq_kv: int | None = None
    causal: bool = False
    backward: bool = False
    dtype: str = "bf16"
    kernel: str | None = None
    head_dim_v: int | None = None


@dataclass(frozen=True, kw_only=True)
class MemcpyOp(Op):
    """Device-to-device copy of ``bytes`` (read and written once each)."""

    rank: int = 0
    bytes: int


@dataclass(frozen=True, kw_only=True)
class ElementwiseOp(Op):
    """A memory-bound kernel: reads ``bytes_read``, writes ``bytes_written``, does ``flops``."""

    rank: int = 0
    bytes_read: int
    bytes_written: int = 0
    flops: float = 0.0


@dataclass(frozen=True, kw_only=True)
class CollectiveOp(Op):
    """An NCCL collective over ``group`` (None = every rank of the system); ``bytes`` per rank
    in the nccl-tests convention."""

    bytes: int
    group: tuple[int, ...] | None = None
    dtype: str = "bf16"
    algo: str | None = None


@dataclass(frozen=True, kw_only=True)
class P2POp(Op):
    """One side of a point-to-point transfer: ``send`` on ``rank`` to ``peer`` (or ``recv`` on
    ``rank`` from ``peer``). The k-th send r->p pairs with the k-th recv on p from r."""

    rank: int = 0
    bytes: int
    peer: int


# -- field parsers: each takes the raw value and returns the parsed one or raises _Bad --------

class _Bad(Exception):
    """A field's value is wrong; the message says how."""


def _int(value: Any, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise _Bad("expected an integer, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise _Bad("expected an integer") from None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _Bad("expected an integer")
        value = int(value)
    if not isinstance(value, int):
        raise _Bad(f"expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise _Bad(f"must be >= {minimum}")
    return value


def _positive_int(value: Any) -> int:
    return _int(value, minimum=1)


def _nonneg_int(value: Any) -> int:
    return _int(value, minimum=0)


def _nonneg_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Bad("expected a number, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _Bad("expected a number") from None
    if not isinstance(value, (int, float)):
        raise _Bad(f"expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise _Bad("must be a finite number >= 0")
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Bad(f"expected a string, got {type(value).__name__}")
    text = str(value)
    if not text:
        raise _Bad("must not be empty")
    return text


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("expected true or false")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            raise _Bad(f"expected one of {', '.join(options)}")
        return value
    return parse


def _dtype(value: Any) -> str:
    from blackwell_sim.config.dtypes import ALIASES, dtype_names, get_dtype

    if not isinstance(value, str) or ALIASES.get(value, value) not in dtype_names():
        raise _Bad(f"unknown dtype; known: {', '.join(dtype_names())}")
    return get_dtype(value).name


def _recipe(value: Any) -> str:
    from blackwell_sim.numerics.recipes import RECIPES

    if not isinstance(value, str) or value not in RECIPES:
        raise _Bad(f"unknown recipe; known: {', '.join(RECIPES)}")
    return value


def _deps(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _Bad("expected a list of op names")
    out = []
    for item in value:
        name = _text(item)
        if name not in out:
            out.append(name)
    return tuple(out)


def _group(value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _Bad("expected a non-empty list of ranks")
    ranks = tuple(_nonneg_int(v) for v in value)
    if len(set(ranks)) != len(ranks):
        raise _Bad("lists a rank twice")
    return ranks


def _operands(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or set(value) - {"a", "b"} or not value:
        raise _Bad("expected a mapping {a: A.npy, b: B.npy} (either or both)")
    return tuple(sorted((str(k), _text(v)) for k, v in value.items()))


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else parse(value)


REQUIRED = object()
_COMMON: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "name": (_text, None), "stream": (_text, None), "deps": (_deps, ()),
    "measured_s": (_optional(_nonneg_float), None), "layer": (_optional(_text), None),
    "phase": (_optional(_text), None),
}
_RANK = {"rank": (_nonneg_int, 0)}
_KIND_FIELDS: dict[str, tuple[type, dict[str, tuple[Callable[[Any], Any], Any]]]] = {
    "gemm": (GemmOp, {**_RANK, "m": (_positive_int, REQUIRED), "n": (_positive_int, REQUIRED),
                      "k": (_positive_int, REQUIRED), "batch": (_positive_int, 1),
                      "dtype": (_dtype, "bf16"),
                      "sparsity": (_optional(_choice(SPARSITY_PATTERNS)), None),
                      "recipe": (_optional(_recipe), None), "operands": (_optional(_operands), None)}),
    "attention": (AttentionOp, {**_RANK, "batch": (_positive_int, REQUIRED),
                                "heads": (_positive_int, REQUIRED), "seq_q": (_positive_int, REQUIRED),
                                "head_dim": (_positive_int, REQUIRED),
                                "kv_heads": (_optional(_positive_int), None),
                                "seq_kv": (_optional(_positive_int), None), "causal": (_bool, False),
                                "backward": (_bool, False), "dtype": (_dtype, "bf16"),
                                "kernel": (_optional(_choice(ATTENTION_KERNELS)), None),
                                "head_dim_v": (_optional(_positive_int), None)}),
    "memcpy": (MemcpyOp, {**_RANK, "bytes": (_positive_int, REQUIRED)}),
    "elementwise": (ElementwiseOp, {**_RANK, "bytes_read": (_nonneg_int, REQUIRED),
                                    "bytes_written": (_nonneg_int, 0), "flops": (_nonneg_float, 0.0)}),
    **{kind: (CollectiveOp, {"bytes": (_positive_int, REQUIRED), "group": (_optional(_group), None),
                             "dtype": (_dtype, "bf16"), "algo": (_optional(_text), None)})
       for kind in COLLECTIVE_OPS},
    **{kind: (P2POp, {**_RANK, "bytes": (_positive_int, REQUIRED), "peer": (_nonneg_int, REQUIRED)})
       for kind in P2P_OPS},
}


def op_fields(kind: str) -> list[str]:
    """Every field an op of ``kind`` accepts (``op`` first)."""
    return ["op", *_COMMON, *_KIND_FIELDS[kind][1]]


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def op_error(source: str, index: int, name: str | None, message: str) -> BlackwellSimError:
    who = f"op {index}" + (f" ('{name}')" if name else "")
    return BlackwellSimError(f"{source}: {who}: {message}")


def parse_op(raw: Any, index: int, source: str = "<trace>") -> Op:
    """Validate one raw op mapping (``index`` = its position) and build its dataclass."""
    if not isinstance(raw, Mapping):
        raise op_error(source, index, None, f"expected a mapping with an 'op' field, got "
                                            f"{short_repr(raw)}")
    name = raw.get("name")
    name = name if isinstance(name, str) and name else None
    kind = raw.get("op")
    if kind is None:
        raise op_error(source, index, name, f"missing field 'op' (one of {', '.join(OP_KINDS)})")
    if not isinstance(kind, str) or kind not in _KIND_FIELDS:
        hint = did_you_mean(kind, OP_KINDS) if isinstance(kind, str) else ""
        raise op_error(source, index, name, f"op: unknown op {short_repr(kind)}{hint}; "
                                            f"known: {', '.join(OP_KINDS)}")
    cls, specific = _KIND_FIELDS[kind]
    spec = {**_COMMON, **specific}
    for key in raw:
        if key != "op" and key not in spec:
            hint = did_you_mean(key, spec)
            if key == "rank" and kind in COLLECTIVE_OPS:
                hint = " (a collective runs on 'group', a list of ranks)"
            raise op_error(source, index, name, f"unknown field {short_repr(key)} for {kind}{hint}")
    values: dict[str, Any] = {"op": kind, "index": index}
    for key, (parse, default) in spec.items():
        if key not in raw:
            if default is REQUIRED:
                raise op_error(source, index, name, f"missing field '{key}' (required for {kind})")
            values[key] = default
            continue
        try:
            values[key] = parse(raw[key])
        except _Bad as exc:
            raise op_error(source, index, name, f"{key}: {exc} (got {short_repr(raw[key])})") from None
    if values["name"] is None:
        values["name"] = f"{kind}_{index}"
    if values["stream"] is None:
        values["stream"] = "comm" if kind in COLLECTIVE_OPS or kind in P2P_OPS else "compute"
    if kind in P2P_OPS and values["peer"] == values["rank"]:
        raise op_error(source, index, values["name"], f"peer: must differ from rank "
                                                      f"(got {values['peer']})")
    if values["name"] in values["deps"]:
        raise op_error(source, index, values["name"], "deps: an op cannot depend on itself")
    if kind == "attention" and values["kv_heads"] is not None and values["heads"] % values["kv_heads"]:
        raise op_error(source, index, values["name"], f"kv_heads: must divide heads "
                                                      f"({values['heads']}), got {values['kv_heads']}")
    return cls(**values)


def op_to_dict(op: Op) -> dict[str, Any]:
    """The op as a plain mapping with only the fields that differ from their defaults."""
    kind = op.op
    out: dict[str, Any] = {"op": kind, "name": op.name}
    spec = {**_COMMON, **_KIND_FIELDS[kind][1]}
    for key, (_, default) in spec.items():
        if key == "name":
            continue
        value = getattr(op, key)
        if key == "stream":
            default = "comm" if op.is_collective else "compute"
        if default is not REQUIRED and value == default:
            continue
        if key == "operands":
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


__all__ = [
    "COLLECTIVE_OPS",
    "COMPUTE_OPS",
    "MEMORY_OPS",
    "OP_KINDS",
    "P2P_OPS",
    "AttentionOp",
    "CollectiveOp",
    "ElementwiseOp",
    "GemmOp",
    "MemcpyOp",
    "Op",
    "P2POp",
    "op_fields",
    "op_to_dict",
    "parse_op",
]
