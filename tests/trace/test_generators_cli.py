"""``blackwell-sim generate``: writes a loadable trace, --json, --set on the model description, errors."""

from __future__ import annotations

from blackwell_sim.trace.io import load_trace


def test_generate_writes_yaml_and_json_summary(cli, tmp_path):
    out = tmp_path / "t.yaml"
    r = cli("generate", "--model", "llama3-8b", "--layers", "2", "--tp", "2", "--batch", "2", "--seq", "256",
            "--recipe", "nvfp4", "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    data = r.json()
    trace = load_trace(out)
    assert data["ops"] == len(trace.ops) and data["ranks"] == 2 and data["platform"] == "hgx-b200-8"
    assert data["collectives"] == 8 and trace.system == "hgx-b200-8"
    assert data["gemm_tflop"] == sum(op.flops for op in trace.ops if op.op == "gemm") / 1e12


def test_generate_jsonl_and_layer_list(cli, tmp_path):
    out = tmp_path / "t.jsonl"
    r = cli("generate", "--model", "deepseek-v3-like", "--mode", "decode", "--kv-len", "1024", "--batch", "4",
            "--layers", "2,3", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out}: ")
    assert {op.layer for op in load_trace(out).ops} == {"2", "3"}


def test_set_overrides_model_keys(cli, tmp_path):
    out = tmp_path / "t.json"
    r = cli("generate", "--set", "layers=2", "--set", "vocab=1000", "--seq", "64", "-o", str(out))
    assert r.returncode == 0, r.stderr
    trace = load_trace(out)
    assert {op.layer for op in trace.ops if op.op == "gemm"} == {"0", "1", "head"}
    (head,) = [op for op in trace.ops if op.name == "r0.head.fwd.lm_head"]
    assert head.n == 1000


def test_bad_input_is_one_line_exit_2(cli_subprocess, tmp_path):
    for args in (["--set", "hiddn=3"], ["--model", "nope"], ["--tp", "3"], ["--mode", "decode"],
                 ["--layers", "x"], ["--set", "moe.top_k=2"]):
        r = cli_subprocess("generate", *args, "-o", str(tmp_path / "o.yaml"))
        assert r.returncode == 2, args
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert not (tmp_path / "o.yaml").exists()


def test_parallelism_options(cli, tmp_path):
    out = tmp_path / "t.json"
    r = cli("generate", "--layers", "1", "--tp", "2", "--dp", "2", "--batch", "2", "--seq", "128",
            "--sequence-parallel", "--distributed-optimizer", "-o", str(out))
    assert r.returncode == 0, r.stderr
    kinds = {op.op for op in load_trace(out).ops}
    assert {"all_gather", "reduce_scatter"} <= kinds and "all_reduce" not in kinds
