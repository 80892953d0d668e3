"""Trace documents: YAML / JSON / JSON-lines load and write, document-level validation."""

from __future__ import annotations

import json

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace import dumps_trace, load_trace, parse_document, write_trace

DOC = {
    "name": "demo", "description": "two streams", "config": "b200",
    "ops": [
        {"op": "gemm", "name": "a", "m": 128, "n": 256, "k": 64, "dtype": "nvfp4", "layer": "0"},
        {"op": "elementwise", "name": "b", "bytes_read": 4096, "stream": "aux", "deps": ["a"]},
        {"op": "all_reduce", "name": "c", "bytes": 1 << 20, "group": [0, 1], "deps": ["b"]},
        {"op": "send", "name": "d", "bytes": 64, "rank": 0, "peer": 1, "measured_s": 1e-5},
        {"op": "recv", "name": "e", "bytes": 64, "rank": 1, "peer": 0},
    ],
}


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json", ".jsonl", ".ndjson"])
def test_write_then_load_round_trips(tmp_path, suffix):
    path = write_trace(DOC, tmp_path / f"t{suffix}")
    trace = load_trace(path)
    assert trace.to_document() == parse_document(DOC).to_document()
    assert trace.ops == parse_document(DOC).ops
    assert (trace.name, trace.config, trace.source) == ("demo", "b200", str(path))
    assert trace.base_dir == tmp_path.resolve()


def test_written_documents_are_minimal_and_deterministic(tmp_path):
    text = dumps_trace({"ops": [{"op": "gemm", "m": 8, "n": 8, "k": 8}]}, "yaml")
    assert text == "ops:\n- {op: gemm, name: gemm_0, m: 8, n: 8, k: 8}\n"
    first = write_trace(DOC, tmp_path / "a.json").read_bytes()
    assert write_trace(DOC, tmp_path / "a.json").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary files left


def test_jsonl_header_line_and_blank_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"document": {"name": "x", "system": "hgx-b200-8"}}\n\n'
                    '{"op": "memcpy", "bytes": 10}\n{"op": "memcpy", "bytes": 20}\n')
    trace = load_trace(path)
    assert (trace.name, trace.system, [op.name for op in trace.ops]) == ("x", "hgx-b200-8",
                                                                         ["memcpy_0", "memcpy_1"])


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"op": "memcpy", "bytes": 10}\n{"op": "memcpy", bytes: 20}\n')
    with pytest.raises(BlackwellSimError, match=r"t\.jsonl: line 2: not valid JSON"):
        load_trace(path)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("ops:\n  - {op: gemm, m: 1\n")
    with pytest.raises(BlackwellSimError, match=r"t\.yaml: line \d+: not valid YAML"):
        load_trace(path)


def _err(doc) -> str:
    with pytest.raises(BlackwellSimError) as info:
        parse_document(doc, "t.yaml")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_document_level_errors():
    m = {"op": "memcpy", "bytes": 1}
    assert "op 1 ('x'): name: duplicate name (op 0 has it too)" in _err(
        {"ops": [{**m, "name": "x"}, {**m, "name": "x"}]})
    assert "op 1 ('memcpy_1'): deps: no op named 'memcpy_O' (did you mean 'memcpy_0'?)" in _err(
        {"ops": [m, {**m, "deps": ["memcpy_O"]}]})
    assert "deps: dependency cycle 'a' -> 'b' -> 'c' -> 'a'" in _err(
        {"ops": [{**m, "name": "a", "deps": ["c"]}, {**m, "name": "b", "deps": ["a"]},
                 {**m, "name": "c", "deps": ["b"]}]})
    assert "unknown top-level key 'op' (did you mean 'ops'?)" in _err({"op": []})
    assert "ops: the trace has no ops" in _err({"ops": []})
    assert "ops: expected a list of ops" in _err({"ops": {"op": "gemm"}})
    assert "give either 'system'" in _err({"system": "hgx-b200-8", "config": "b200", "ops": [m]})
    assert "system: expected a preset name" in _err({"system": 8, "ops": [m]})
    assert "expected a mapping with an 'ops' list" in _err([m])


def test_file_errors(tmp_path):
    with pytest.raises(BlackwellSimError, match="no such trace file"):
        load_trace(tmp_path / "missing.yaml")
    (tmp_path / "t.txt").write_text("ops: []")
    with pytest.raises(BlackwellSimError, match=r"unknown trace file type '\.txt'"):
        load_trace(tmp_path / "t.txt")
    with pytest.raises(BlackwellSimError, match="unknown trace file type"):
        write_trace(DOC, tmp_path / "t.csv")
    (tmp_path / "bad.json").write_text(json.dumps({"ops": [{"op": "gemm", "m": 1, "n": 1, "k": -1}]}))
    with pytest.raises(BlackwellSimError, match=r"bad\.json: op 0: k: must be >= 1 \(got -1\)"):
        load_trace(tmp_path / "bad.json")
