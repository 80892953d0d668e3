"""Functional execution during replay: error of each GEMM / attention in its format vs fp32."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import blackwell_sim as bs
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace import parse_op
from blackwell_sim.trace.functional import run_functional


def gemm(**kw):
    return parse_op({"op": "gemm", "m": 256, "n": 256, "k": 1024, **kw}, 0)


def test_sample_covering_every_tile_equals_full_for_block_local_scales():
    # 256 x 256 = 4 tiles of 128 x 128 = SAMPLE_TILES: sample computes every tile
    op = gemm(dtype="mxfp8")
    s = run_functional(op, "sample", 0)
    f = run_functional(op, "full", 0)
    assert s[0] == pytest.approx(f[0], rel=1e-9) and s[1] == pytest.approx(f[1], rel=1e-9)
    # NVFP4's per-tensor scale comes from the tile's rows in sample mode: close, not equal
    s, f = run_functional(gemm(dtype="nvfp4"), "sample", 0), run_functional(gemm(dtype="nvfp4"), "full", 0)
    assert s[0] != f[0] and abs(s[0] - f[0]) < 0.3


def test_product_sqnr_matches_the_operand_quantization_references():
    # DESIGN.md: quantizing N(0,1) costs NVFP4 20.4 dB and MXFP8 (floor) 30.7 dB per operand;
    # two independently quantized operands double the noise power: 3.0 dB less.
    big = {"m": 512, "n": 512, "k": 2048}
    nv = run_functional(gemm(dtype="nvfp4", **big), "full", 0)[0]
    mx = run_functional(gemm(dtype="mxfp8", **big), "full", 0)[0]
    assert nv == pytest.approx(20.4 - 3.0, abs=0.3)
    assert mx == pytest.approx(30.7 - 3.0, abs=0.3)
    fp4 = run_functional(gemm(dtype="fp4", **big), "sample", 0)[0]
    bf16 = run_functional(gemm(dtype="bf16", **big), "sample", 0)[0]
    assert bf16 > 45 > mx > nv > fp4


def test_recipe_decides_the_numerics_and_the_role_comes_from_the_name():
    plain = run_functional(gemm(dtype="nvfp4"), "full", 0)
    as_bf16 = run_functional(gemm(dtype="nvfp4", recipe="bf16"), "full", 0)
    assert as_bf16[0] > 45 > plain[0]
    fprop = run_functional(gemm(dtype="nvfp4", recipe="nvfp4_te", name="l.fprop"), "full", 0)
    wgrad = run_functional(gemm(dtype="nvfp4", recipe="nvfp4_te", name="l.wgrad"), "full", 0)
    assert fprop[0] != wgrad[0]  # wgrad: Hadamard transform and stochastic rounding
    assert abs(fprop[0] - wgrad[0]) < 2.0


def test_seeded_and_deterministic():
    op = gemm(dtype="nvfp4")
    assert run_functional(op, "sample", 1)[:2] == run_functional(op, "sample", 1)[:2]
    assert run_functional(op, "sample", 1)[:2] != run_functional(op, "sample", 2)[:2]


def test_npy_operands_are_used(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(-8, 8, size=(64, 96)).astype(np.float32)   # exact in bf16, products exact in fp32
    b = rng.integers(-8, 8, size=(96, 32)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    op = parse_op({"op": "gemm", "m": 64, "n": 32, "k": 96, "operands": {"a": "a.npy", "b": "b.npy"}}, 0)
    sqnr, rel, wall = run_functional(op, "full", 0, tmp_path)
    assert sqnr == math.inf and rel == 0.0 and wall > 0
    bad = parse_op({"op": "gemm", "m": 64, "n": 33, "k": 96, "operands": {"b": "b.npy"}}, 3)
    with pytest.raises(BlackwellSimError, match=r"op 3 \('gemm_3'\): operands.b: .*b.npy has shape \(96, 32\), "
                                                r"the op needs \(96, 33\)"):
        run_functional(bad, "full", 0, tmp_path, "t.yaml")
    missing = parse_op({"op": "gemm", "m": 1, "n": 1, "k": 1, "operands": {"a": "none.npy"}}, 0)
    with pytest.raises(BlackwellSimError, match="operands.a: cannot load"):
        run_functional(missing, "full", 0, tmp_path)


def test_attention_in_bf16_and_fp8_and_what_is_not_executed():
    att = {"op": "attention", "batch": 1, "heads": 4, "kv_heads": 2, "seq_q": 256, "head_dim": 64,
           "causal": True}
    bf16 = run_functional(parse_op({**att, "dtype": "bf16"}, 0), "sample", 0)
    fp8 = run_functional(parse_op({**att, "dtype": "fp8"}, 0), "sample", 0)
    assert bf16[0] > 40 > fp8[0] > 15
    assert all(math.isnan(v) for v in run_functional(parse_op({**att, "backward": True}, 0), "full", 0))
    assert all(math.isnan(v) for v in run_functional(gemm(dtype="int8"), "full", 0))
    assert all(math.isnan(v) for v in run_functional(parse_op({"op": "memcpy", "bytes": 4}, 0), "full", 0))


def test_replay_fills_the_functional_columns_and_shares_identical_ops():
    doc = {"ops": [{"op": "gemm", "name": "a", "m": 256, "n": 256, "k": 512, "dtype": "nvfp4"},
                   {"op": "elementwise", "name": "e", "bytes_read": 1024},
                   {"op": "gemm", "name": "b", "m": 256, "n": 256, "k": 512, "dtype": "nvfp4"}]}
    frame = bs.simulate(doc, "b200", functional="sample").ops
    a, e, b = frame.iloc[0], frame.iloc[1], frame.iloc[2]
    assert 15 < a.sqnr_db < 20 and a.rel_error > 0 and a.functional_s > 0
    assert (b.sqnr_db, b.rel_error) == (a.sqnr_db, a.rel_error)
    assert math.isnan(e.sqnr_db) and math.isnan(e.functional_s)
    plain = bs.simulate(doc, "b200").ops
    assert plain.sqnr_db.isna().all() and plain.time_s.equals(frame.time_s)


def test_functional_run_from_the_cli(cli, tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"ops": [{"op": "gemm", "m": 256, "n": 256, "k": 512, "dtype": "mxfp8"}]}')
    result = cli("run", str(path), "-o", str(tmp_path / "o"), "--no-plots", "--functional", "sample", "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["functional"] is not None

    frame = pd.read_csv(tmp_path / "o" / "results.csv")
    assert 25 < frame.sqnr_db[0] < 30


def test_attention_with_a_separate_v_head_dim_executes():
    att = {"op": "attention", "batch": 1, "heads": 2, "seq_q": 128, "head_dim": 192, "head_dim_v": 128,
           "dtype": "bf16"}
    sqnr, rel, _ = run_functional(parse_op(att, 0), "full", 0)
    assert sqnr > 40 and 0 < rel < 0.01
