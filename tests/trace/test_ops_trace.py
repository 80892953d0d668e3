"""The op schema: defaults, canonical names, and one clear error line per bad field."""

from __future__ import annotations

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace import GemmOp, op_fields, parse_op


def test_minimal_gemm_is_a_whole_op():
    op = parse_op({"op": "gemm", "m": 8192, "n": 8192, "k": 8192, "dtype": "nvfp4"}, 3)
    assert isinstance(op, GemmOp)
    assert (op.name, op.rank, op.stream, op.deps, op.batch, op.sparsity) == ("gemm_3", 0, "compute", (), 1, None)
    assert op.flops == 2.0 * 8192**3
    assert op.measured_s is None and op.layer is None and op.phase is None


def test_defaults_of_collectives_and_memory_ops():
    ar = parse_op({"op": "all_reduce", "bytes": 1 << 20}, 0)
    assert (ar.stream, ar.group, ar.dtype, ar.algo) == ("comm", None, "bf16", None)
    send = parse_op({"op": "send", "bytes": 10, "rank": 1, "peer": 0}, 1)
    assert send.stream == "comm"
    ew = parse_op({"op": "elementwise", "bytes_read": 100}, 2)
    assert (ew.bytes_written, ew.flops, ew.stream) == (0, 0.0, "compute")
    att = parse_op({"op": "attention", "batch": 1, "heads": 32, "seq_q": 128, "head_dim": 128}, 4)
    assert (att.kv_heads, att.seq_kv, att.causal, att.backward, att.kernel) == (None, None, False, False, None)


def test_dtype_aliases_become_canonical_and_numeric_strings_are_numbers():
    op = parse_op({"op": "gemm", "m": "1e3", "n": 8.0, "k": 16, "dtype": "fp8"}, 0)
    assert (op.m, op.n, op.dtype) == (1000, 8, "fp8_e4m3")
    assert parse_op({"op": "memcpy", "bytes": "1e9"}, 0).bytes == 10**9


def test_deps_accept_one_name_and_drop_repeats():
    assert parse_op({"op": "memcpy", "bytes": 1, "deps": "a"}, 0).deps == ("a",)
    assert parse_op({"op": "memcpy", "bytes": 1, "deps": ["a", "b", "a"]}, 0).deps == ("a", "b")


def test_timing_key_ignores_names_and_tags_but_not_shape():
    a = parse_op({"op": "gemm", "m": 64, "n": 64, "k": 64, "name": "x", "layer": "3", "rank": 2}, 0)
    b = parse_op({"op": "gemm", "m": 64, "n": 64, "k": 64, "name": "y", "phase": "bwd"}, 1)
    c = parse_op({"op": "gemm", "m": 64, "n": 64, "k": 128}, 2)
    assert a.timing_key() == b.timing_key() != c.timing_key()


def test_every_contract_field_is_accepted():
    assert set(op_fields("gemm")) >= {"op", "name", "rank", "stream", "deps", "measured_s", "layer",
                                      "phase", "m", "n", "k", "batch", "dtype", "sparsity", "recipe",
                                      "operands"}
    assert set(op_fields("attention")) >= {"batch", "heads", "kv_heads", "seq_q", "seq_kv", "head_dim",
                                           "causal", "backward", "dtype", "kernel"}
    assert set(op_fields("reduce_scatter")) >= {"bytes", "group", "dtype", "algo"}
    assert "rank" not in op_fields("all_gather")
    assert set(op_fields("recv")) >= {"bytes", "rank", "peer"}
    assert set(op_fields("elementwise")) >= {"bytes_read", "bytes_written", "flops"}


G = {"op": "gemm", "m": 64, "n": 64, "k": 64}


@pytest.mark.parametrize("raw, expected", [
    ({"op": "gemn", "m": 1}, "op 5: op: unknown op 'gemn' (did you mean 'gemm'?)"),
    ({"m": 1}, "op 5: missing field 'op'"),
    ({"op": "gemm", "m": 1, "n": 1}, "op 5: missing field 'k' (required for gemm)"),
    ({**G, "m": -4}, "op 5: m: must be >= 1 (got -4)"),
    ({**G, "k": 0}, "op 5: k: must be >= 1 (got 0)"),
    ({**G, "n": 1.5}, "op 5: n: expected an integer (got 1.5)"),
    ({**G, "m": True}, "op 5: m: expected an integer, got a boolean (got True)"),
    ({**G, "dtyp": "bf16"}, "op 5: unknown field 'dtyp' for gemm (did you mean 'dtype'?)"),
    ({**G, "dtype": "fp5"}, "op 5: dtype: unknown dtype; known:"),
    ({**G, "sparsity": "1:4"}, "op 5: sparsity: expected one of 2:4 (got '1:4')"),
    ({**G, "recipe": "nvfp5"}, "op 5: recipe: unknown recipe; known: nvfp4_te"),
    ({**G, "rank": -1}, "op 5: rank: must be >= 0 (got -1)"),
    ({**G, "name": "g", "deps": ["g"]}, "op 5 ('g'): deps: an op cannot depend on itself"),
    ({**G, "measured_s": -1.0}, "op 5: measured_s: must be a finite number >= 0 (got -1.0)"),
    ({**G, "operands": {"c": "c.npy"}}, "op 5: operands: expected a mapping {a: A.npy, b: B.npy}"),
    ({"op": "all_reduce", "bytes": 8, "rank": 1}, "unknown field 'rank' for all_reduce (a collective runs on 'group'"),
    ({"op": "all_reduce", "bytes": 8, "group": [0, 0]}, "op 5: group: lists a rank twice"),
    ({"op": "all_reduce", "bytes": 8, "group": []}, "op 5: group: expected a non-empty list of ranks"),
    ({"op": "send", "bytes": 8, "rank": 1, "peer": 1}, "op 5 ('send_5'): peer: must differ from rank"),
    ({"op": "attention", "batch": 1, "heads": 32, "kv_heads": 5, "seq_q": 8, "head_dim": 64},
     "op 5 ('attention_5'): kv_heads: must divide heads (32), got 5"),
    ({"op": "attention", "batch": 1, "heads": 2, "seq_q": 8, "head_dim": 64, "causal": "yes"},
     "op 5: causal: expected true or false (got 'yes')"),
    ([1, 2], "op 5: expected a mapping with an 'op' field"),
])
def test_bad_fields_give_one_line_naming_source_op_field_and_value(raw, expected):
    with pytest.raises(BlackwellSimError) as info:
        parse_op(raw, 5, "t.yaml")
    message = str(info.value)
    assert message.startswith("t.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_named_op_errors_carry_the_name():
    with pytest.raises(BlackwellSimError, match=r"op 2 \('qkv'\): m: must be >= 1"):
        parse_op({**G, "name": "qkv", "m": 0}, 2)
