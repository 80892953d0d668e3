"""Trace documents: load and validate YAML / JSON / JSON-lines, write them back atomically.

A document is one mapping ``{name?, description?, system?, config?, ops: [op, ...]}`` (YAML or
JSON), or JSON-lines with one op per line and an optional first line
``{"document": {name?, description?, system?, config?}}``. ``system`` names a system preset (or
is a mapping); ``config`` names a GPU preset (or is a mapping); give at most one of them.
Every problem is one :class:`~blackwell_sim.errors.BlackwellSimError` line naming the file,
the op index and name, the field and the value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.ops import (
    Op,
    did_you_mean,
    op_error,
    op_to_dict,
    parse_op,
    short_repr,
)

DOCUMENT_KEYS = ("name", "description", "system", "config", "ops")
YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Trace:
    """A validated trace: ops in trace order with unique names and resolvable deps.

    ``source`` names where it came from (a path or ``"<document>"``); ``base_dir`` is where
    relative operand files are looked up (the trace file's folder).
    """

    ops: tuple[Op, ...]
    name: str | None = None
    description: str | None = None
    system: str | Mapping | None = None
    config: str | Mapping | None = None
    source: str = "<document>"
    base_dir: Path | None = None

    def by_name(self) -> dict[str, Op]:
        return {op.name: op for op in self.ops}

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for key in ("name", "description", "system", "config"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = dict(value) if isinstance(value, Mapping) else value
        doc["ops"] = [op_to_dict(op) for op in self.ops]
        return doc


def find_cycle(successors: list[list[int]]) -> list[int] | None:
    """A cycle of the directed graph (node ids, first node repeated at the end), or None."""
    n = len(successors)
    indegree = [0] * n
    for outs in successors:
        for j in outs:
            indegree[j] += 1
    ready = [i for i in range(n) if indegree[i] == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for j in successors[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
    if seen == n:
        return None
    # every remaining node has a remaining predecessor: walk successors inside the remainder
    remaining = {i for i in range(n) if indegree[i] > 0}
    node, path, position = min(remaining), [], {}
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(j for j in successors[node] if j in remaining)
    return path[position[node]:] + [node]


def cycle_text(ops, cycle: list[int]) -> str:
    return " -> ".join(f"'{ops[i].name}'" for i in cycle)


def check_deps(ops: tuple[Op, ...], source: str) -> None:
    """Unique names, deps that exist, and no cycle through the deps alone."""
    index: dict[str, int] = {}
    for op in ops:
        if op.name in index:
            raise op_error(source, op.index, op.name, f"name: duplicate name (op {index[op.name]} "
                                                      f"has it too)")
        index[op.name] = op.index
    successors: list[list[int]] = [[] for _ in ops]
    for op in ops:
        for dep in op.deps:
            if dep not in index:
                raise op_error(source, op.index, op.name, f"deps: no op named {short_repr(dep)}"
                               f"{did_you_mean(dep, [n for n in index if n != op.name])}")
            successors[index[dep]].append(op.index)
    cycle = find_cycle(successors)
    if cycle:
        first = ops[cycle[0]]
        raise op_error(source, first.index, first.name, f"deps: dependency cycle "
                                                        f"{cycle_text(ops, cycle)}")


def _preset_ref(value: Any, key: str, source: str) -> str | Mapping | None:
    if value is None or isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value:
        return value
    raise BlackwellSimError(f"{source}: {key}: expected a preset name, a YAML path or a mapping, "
                            f"got {short_repr(value)}")


def parse_document(doc: Any, source: str = "<document>", base_dir: Path | None = None) -> Trace:
    """Validate a whole document (a mapping with ``ops``) into a :class:`Trace`."""
    if not isinstance(doc, Mapping):
        raise BlackwellSimError(f"{source}: expected a mapping with an 'ops' list at the top, got "
                                f"{short_repr(doc)}")
    for key in doc:
        if key not in DOCUMENT_KEYS:
            raise BlackwellSimError(f"{source}: unknown top-level key {short_repr(key)}"
                                    f"{did_you_mean(key, DOCUMENT_KEYS)}; known: {', '.join(DOCUMENT_KEYS)}")
    raw_ops = doc.get("ops")
    if not isinstance(raw_ops, list):
        raise BlackwellSimError(f"{source}: ops: expected a list of ops, got {short_repr(raw_ops)}")
    if not raw_ops:
        raise BlackwellSimError(f"{source}: ops: the trace has no ops")
    if doc.get("system") is not None and doc.get("config") is not None:
        raise BlackwellSimError(f"{source}: give either 'system' (a multi-GPU system) or 'config' "
                                f"(one GPU), not both")
    for key in ("name", "description"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise BlackwellSimError(f"{source}: {key}: expected a string, got {short_repr(doc[key])}")
    ops = tuple(parse_op(raw, i, source) for i, raw in enumerate(raw_ops))
    check_deps(ops, source)
    return Trace(ops=ops, name=doc.get("name"), description=doc.get("description"),
                 system=_preset_ref(doc.get("system"), "system", source),
                 config=_preset_ref(doc.get("config"), "config", source), source=source,
                 base_dir=base_dir)


def _yaml_load(text: str, source: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BlackwellSimError(f"{source}:{where}: not valid YAML: {problem}") from None


def _json_load(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BlackwellSimError(f"{source}: line {exc.lineno}: not valid JSON: {exc.msg}") from None


def _jsonl_document(text: str, source: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"ops": []}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BlackwellSimError(f"{source}: line {lineno}: not valid JSON: {exc.msg}") from None
        if isinstance(item, Mapping) and "document" in item and not doc["ops"] and len(doc) == 1:
            header = item["document"]
            if len(item) != 1 or not isinstance(header, Mapping) or "ops" in header:
                raise BlackwellSimError(f"{source}: line {lineno}: the header line must be "
                                        f'{{"document": {{name/description/system/config}}}}')
            doc.update(header)
            continue
        doc["ops"].append(item)
    return doc


def load_trace(trace: str | os.PathLike | Mapping | Trace) -> Trace:
    """A :class:`Trace` from a file (by suffix: .yaml/.yml, .json, .jsonl/.ndjson), a document
    mapping, or an existing Trace (returned as is)."""
    if isinstance(trace, Trace):
        return trace
    if isinstance(trace, Mapping):
        return parse_document(trace)
    path = Path(trace)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + JSON_SUFFIXES + JSONL_SUFFIXES:
        raise BlackwellSimError(f"{source}: unknown trace file type {suffix or '(none)'!r}; use "
                                f"{', '.join(YAML_SUFFIXES + JSON_SUFFIXES + JSONL_SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BlackwellSimError(f"{source}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BlackwellSimError(f"{source}: cannot read: {exc}") from None
    if suffix in YAML_SUFFIXES:
        doc = _yaml_load(text, source)
    elif suffix in JSON_SUFFIXES:
        doc = _json_load(text, source)
    else:
        doc = _jsonl_document(text, source)
    return parse_document(doc, source, path.resolve().parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def dumps_trace(trace: Trace | Mapping, fmt: str) -> str:
    """The trace as text in ``fmt`` (``yaml``, ``json`` or ``jsonl``)."""
    doc = (trace if isinstance(trace, Trace) else parse_document(trace)).to_document()
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    if fmt == "json":
        return json.dumps(doc, indent=1) + "\n"
    if fmt == "jsonl":
        header = {k: v for k, v in doc.items() if k != "ops"}
        lines = [json.dumps({"document": header})] if header else []
        lines += [json.dumps(op) for op in doc["ops"]]
        return "\n".join(lines) + "\n"
    raise BlackwellSimError(f"trace format: expected yaml, json or jsonl, got {fmt!r}")


def write_trace(trace: Trace | Mapping, path: str | os.PathLike) -> Path:
    """Validate and write a trace; the format follows the suffix. Written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in YAML_SUFFIXES:
        fmt = "yaml"
    elif suffix in JSON_SUFFIXES:
        fmt = "json"
    elif suffix in JSONL_SUFFIXES:
        fmt = "jsonl"
    else:
        raise BlackwellSimError(f"{path}: unknown trace file type {suffix or '(none)'!r}; use "
                                f"{', '.join(YAML_SUFFIXES + JSON_SUFFIXES + JSONL_SUFFIXES)}")
    return atomic_write_text(path, dumps_trace(trace, fmt))
