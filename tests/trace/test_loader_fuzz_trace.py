"""Random documents thrown at the trace loader: a Trace or one BlackwellSimError line, never
anything else; valid documents survive a write/load round trip in every format."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace import OP_KINDS, dumps_trace, op_fields, parse_document
from blackwell_sim.trace.io import _jsonl_document

FIELD_NAMES = sorted({f for kind in OP_KINDS for f in op_fields(kind)} | {"dtyp", "ranks", "x"})
SCALARS = (st.none() | st.booleans() | st.integers(-3, 1 << 40) | st.floats(allow_nan=True)
           | st.sampled_from(["", "bf16", "nvfp4", "fp8", "2:4", "fa3", "nvfp4_te", "a", "op_0", "1e3"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=2), max_leaves=4)


@st.composite
def raw_ops(draw):
    op = {"op": draw(st.sampled_from(OP_KINDS) | SCALARS)}
    for key in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=6, unique=True)):
        op[key] = draw(VALUES)
    return op


DOCS = st.fixed_dictionaries({"ops": st.lists(raw_ops(), max_size=5)},
                             optional={"name": SCALARS, "config": SCALARS, "system": SCALARS, "opz": SCALARS})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS | VALUES)
def test_random_documents_load_or_fail_with_one_line(doc):
    try:
        parse_document(doc, "fuzz.yaml")
    except BlackwellSimError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml") and "\n" not in message


@st.composite
def valid_docs(draw):
    n = draw(st.integers(1, 5))
    ops = []
    for i in range(n):
        kind = draw(st.sampled_from(["gemm", "memcpy", "elementwise", "all_reduce", "attention"]))
        op = {"op": kind, "name": f"o{i}"}
        if kind == "gemm":
            op.update(m=draw(st.integers(1, 9000)), n=draw(st.integers(1, 64)), k=draw(st.integers(1, 64)),
                      dtype=draw(st.sampled_from(["bf16", "nvfp4", "fp8", "mxfp8"])))
        elif kind == "attention":
            op.update(batch=1, heads=8, kv_heads=draw(st.sampled_from([1, 2, 8])), seq_q=64, head_dim=64,
                      causal=draw(st.booleans()))
        elif kind == "elementwise":
            op.update(bytes_read=draw(st.integers(0, 1 << 40)), flops=draw(st.floats(0, 1e12)))
        else:
            op["bytes"] = draw(st.integers(1, 1 << 40))
        if i and draw(st.booleans()):
            op["deps"] = [f"o{draw(st.integers(0, i - 1))}"]
        if draw(st.booleans()):
            op["stream"] = draw(st.sampled_from(["compute", "s1", "comm"]))
        ops.append(op)
    return {"ops": ops}


@settings(max_examples=100, deadline=None)
@given(valid_docs())
def test_valid_documents_round_trip_in_every_format(doc):
    import yaml

    trace = parse_document(doc)
    again = parse_document(yaml.safe_load(dumps_trace(trace, "yaml")))
    assert again.ops == trace.ops
    assert parse_document(json.loads(dumps_trace(trace, "json"))).ops == trace.ops
    assert parse_document(_jsonl_document(dumps_trace(trace, "jsonl"), "t.jsonl")).ops == trace.ops
