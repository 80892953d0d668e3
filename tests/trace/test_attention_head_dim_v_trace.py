"""The attention op's ``head_dim_v`` (V/O head dim): schema, round trip, bad values, the generator's
DeepSeek (MLA) attention and its replay on HGX B200."""

from __future__ import annotations

import pytest

import blackwell_sim
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace import dumps_trace, load_trace, op_fields, parse_op
from blackwell_sim.trace.generators import generate
from blackwell_sim.trace.ops import op_to_dict

MLA = {"op": "attention", "name": "mla", "batch": 1, "heads": 16, "seq_q": 1024, "head_dim": 192,
       "head_dim_v": 128, "causal": True}


def test_head_dim_v_is_a_field_with_a_default():
    assert "head_dim_v" in op_fields("attention")
    op = parse_op(MLA, 0)
    assert (op.head_dim, op.head_dim_v) == (192, 128)
    plain = parse_op({k: v for k, v in MLA.items() if k != "head_dim_v"}, 0)
    assert plain.head_dim_v is None and "head_dim_v" not in op_to_dict(plain)
    # the memo key tells the two shapes apart
    assert op.timing_key() != plain.timing_key()


@pytest.mark.parametrize("fmt", ["yaml", "json", "jsonl"])
def test_head_dim_v_round_trips(fmt, tmp_path):
    path = tmp_path / f"t.{fmt}"
    path.write_text(dumps_trace({"config": "b200", "ops": [MLA]}, fmt))
    (op,) = load_trace(path).ops
    assert op.head_dim_v == 128 and op_to_dict(op)["head_dim_v"] == 128


@pytest.mark.parametrize("value,needle", [
    (0, "head_dim_v: must be >= 1 (got 0)"),
    ("x", "head_dim_v: expected an integer (got 'x')"),
    (True, "head_dim_v: expected an integer, got a boolean (got True)"),
])
def test_bad_head_dim_v_names_op_and_field(value, needle):
    with pytest.raises(BlackwellSimError) as err:
        parse_op({**MLA, "head_dim_v": value}, 4, "t.yaml")
    assert str(err.value) == f"t.yaml: op 4 ('mla'): {needle}"


def test_bad_head_dim_v_is_one_line_from_the_cli(cli_subprocess, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("config: b200\nops:\n- {op: attention, name: mla, batch: 1, heads: 16, seq_q: 1024, "
                    "head_dim: 192, head_dim_v: -8}\n")
    result = cli_subprocess("run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "op 0 ('mla'): head_dim_v: must be >= 1 (got -8)" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_a_shape_that_does_not_fit_names_the_op(tmp_path):
    doc = {"config": "b200", "ops": [{**MLA, "head_dim_v": 192}]}
    with pytest.raises(BlackwellSimError, match=r"op 0 \('mla'\): attention: head dim 192 does not fit kernel 'fa4'"):
        blackwell_sim.simulate(doc, "b200")


def test_generator_gives_deepseek_mla_its_value_dim_and_llama_none():
    doc = generate("deepseek-v3-like", mode="prefill", batch=1, seq=256, layers=[0])
    (att,) = [op for op in doc["ops"] if op["op"] == "attention"]
    assert (att["head_dim"], att["head_dim_v"]) == (128 + 64, 128)  # qk_nope + qk_rope, v_head_dim
    llama = generate("llama3-8b", mode="prefill", batch=1, seq=256, layers=1)
    assert all("head_dim_v" not in op for op in llama["ops"] if op["op"] == "attention")


def test_deepseek_layer_replays_on_hgx_b200():
    """One dense DeepSeek-V3-like block, TP 8, training: forward and backward MLA attention
    (192 / 128, 16 heads per rank) run on fa4 on every rank."""
    doc = generate("deepseek-v3-like", mode="train", batch=2, seq=512, tp=8, layers=[0], system="hgx-b200-8")
    result = blackwell_sim.simulate(doc, "hgx-b200-8")
    rows = result.ops[result.ops["op"] == "attention"]
    assert len(rows) == 2 * 8 and set(rows["rank"]) == set(range(8))
    fwd_flops = 2 * 2 * 16 * 512 * 512 * (192 + 128) / 2  # causal
    fwd = rows[~rows["name"].str.contains(".bwd.", regex=False)]
    bwd = rows[rows["name"].str.contains(".bwd.", regex=False)]
    assert len(fwd) == len(bwd) == 8
    assert (fwd["flops"] == fwd_flops).all() and (bwd["flops"] == 2.5 * fwd_flops).all()
    assert (rows["time_s"] > 0).all() and rows["tile"].str.startswith("fa4").all()
