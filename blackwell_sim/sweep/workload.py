"""The workload of a sweep: a trace file, a generated transformer step, or a single op.

A workload is written as (CLI ``--trace`` or the spec's ``trace:``):

- a trace file path (YAML, JSON, JSON-lines), or a mapping ``{file: PATH}``;
- ``gen:MODEL:MODE[:key=value,...]`` or ``{generate: {model, mode, ...}}``: one step of a model from
  :func:`blackwell_sim.trace.generators.generate` (its keyword arguments);
- ``KIND:key=value,...`` or ``{op: {op: KIND, ...}}``: one op of the trace format (``gemm``,
  ``attention``, ``memcpy``, ``all_reduce``, ...), e.g. ``gemm:m=8192,n=8192,k=8192,dtype=nvfp4``;
- a trace document mapping ``{ops: [...]}``.

The parameters of a generated or single-op workload can be varied like config keys
(:meth:`Workload.parameters`); ``sequence`` and ``format`` are aliases of ``seq`` and ``recipe`` (generated)
or ``dtype`` (single op).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from blackwell_sim.errors import BlackwellSimError

#: keyword arguments of :func:`blackwell_sim.trace.generators.generate` a sweep may set or vary
GENERATE_KEYS = ("model", "mode", "batch", "seq", "kv_len", "tp", "dp", "ep", "pp", "recipe", "layers",
                 "microbatches", "sequence_parallel", "distributed_optimizer", "recompute")
#: single-op fields that are not workload parameters (identity and scheduling)
_OP_FIXED = ("op", "name", "stream", "deps", "measured_s", "layer", "phase", "operands")
ALIASES = {"generate": {"sequence": "seq", "format": "recipe"}, "op": {"format": "dtype"}}


@dataclass(frozen=True)
class Workload:
    """``kind`` is ``file``, ``document``, ``generate`` or ``op``; ``args`` the base parameters."""

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def parameters(self) -> tuple[str, ...]:
        """The parameter names this workload lets a sweep vary (aliases included)."""
        if self.kind == "generate":
            return GENERATE_KEYS + tuple(ALIASES["generate"])
        if self.kind == "op":
            from blackwell_sim.trace.ops import op_fields

            own = tuple(f for f in op_fields(self.args["op"]) if f not in _OP_FIXED)
            return own + (("format",) if "dtype" in own else ())
        return ()

    def canonical(self, key: str) -> str:
        return ALIASES.get(self.kind, {}).get(key, key)

    def build(self, params: Mapping[str, Any] | None = None):
        """The :class:`~blackwell_sim.trace.io.Trace` with ``params`` (workload keys) applied."""
        from blackwell_sim.trace.io import load_trace

        args = dict(self.args)
        for key, value in (params or {}).items():
            args[self.canonical(key)] = value
        if self.kind == "file":
            return load_trace(args["path"])
        if self.kind == "document":
            return load_trace(args["document"])
        if self.kind == "generate":
            from blackwell_sim.trace.generators import generate

            return load_trace(generate(**args))
        op = {"name": args["op"], **args}
        return load_trace({"name": f"single {args['op']}", "ops": [op]})

    def tokens_per_step(self, params: Mapping[str, Any] | None = None) -> int | None:
        """Tokens one generated step processes (decode: one per sequence; prefill and train: ``seq``
        per sequence), over the global batch; None for other workloads."""
        if self.kind != "generate":
            return None
        args = dict(self.args)
        for key, value in (params or {}).items():
            args[self.canonical(key)] = value
        per_sequence = 1 if args.get("mode", "train") == "decode" else args.get("seq", 2048)
        return int(args.get("batch", 1)) * int(per_sequence)

    def describe(self) -> Any:
        """A JSON-safe echo of the workload (for the sweep's record of its spec)."""
        if self.kind == "file":
            return str(self.args["path"])
        if self.kind == "document":
            return {"ops": f"{len(self.args['document'].get('ops', []))} ops"}
        return {self.kind: dict(self.args)}


def _kv_list(text: str, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BlackwellSimError(f"{label}: expected key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _check_args(kind: str, args: Mapping, label: str, known) -> dict:
    from blackwell_sim.trace.ops import did_you_mean

    out = {}
    for key, value in args.items():
        canon = ALIASES.get(kind, {}).get(key, key)
        if canon not in known:
            raise BlackwellSimError(f"{label}: unknown {kind} argument {key!r}"
                                    f"{did_you_mean(str(key), list(known))}")
        out[canon] = value
    return out


def parse_workload(value: Any, label: str = "trace", base_dir: Path | None = None) -> Workload:
    """A :class:`Workload` from a ``--trace`` string or a spec's ``trace:`` value (see the module
    docstring). Relative file paths are taken from ``base_dir`` when the file exists there, and
    kept absolute (worker processes may run elsewhere)."""
    from blackwell_sim.trace.ops import COLLECTIVE_OPS, P2P_OPS

    op_kinds = ("gemm", "attention", "memcpy", "elementwise", *COLLECTIVE_OPS, *P2P_OPS)
    if isinstance(value, str):
        head, sep, rest = value.partition(":")
        if sep and head == "gen":
            model, _, rest = rest.partition(":")
            mode, _, extra = rest.partition(":")
            if not model or not mode:
                raise BlackwellSimError(f"{label}: expected gen:MODEL:MODE[:key=value,...], got {value!r}")
            args = {"model": model, "mode": mode, **_kv_list(extra, label)}
            return parse_workload({"generate": args}, label)
        if sep and head in op_kinds:
            return parse_workload({"op": {"op": head, **_kv_list(rest, label)}}, label)
        return parse_workload({"file": value}, label, base_dir)
    if not isinstance(value, Mapping) or not value:
        raise BlackwellSimError(f"{label}: expected a trace file, gen:MODEL:MODE, KIND:key=value,... or a "
                                f"mapping, got {value!r}")
    if "ops" in value:
        return Workload("document", {"document": dict(value)}, "<document>")
    if len(value) != 1 or next(iter(value)) not in ("file", "generate", "op"):
        raise BlackwellSimError(f"{label}: expected one of the keys file, generate, op (or a trace "
                                f"document with ops), got {sorted(map(str, value))}")
    kind, args = next(iter(value.items()))
    if kind == "file":
        path = Path(str(args))
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        if not path.is_file():
            raise BlackwellSimError(f"{label}: no trace file {str(args)!r}")
        return Workload("file", {"path": str(path.resolve())}, str(path))
    if not isinstance(args, Mapping):
        raise BlackwellSimError(f"{label}: {kind}: expected a mapping of arguments, got {args!r}")
    if kind == "generate":
        args = _check_args("generate", args, label, GENERATE_KEYS)
        if "model" not in args:
            raise BlackwellSimError(f"{label}: generate: needs a 'model'")
        return Workload("generate", args, f"generate {args['model']}")
    from blackwell_sim.trace.ops import op_fields

    if args.get("op") not in op_kinds:
        raise BlackwellSimError(f"{label}: op: 'op' must be one of {', '.join(op_kinds)}, got {args.get('op')!r}")
    known = [f for f in op_fields(args["op"]) if f not in ("name", "deps")]
    return Workload("op", _check_args("op", args, label, known), f"single {args['op']}")
