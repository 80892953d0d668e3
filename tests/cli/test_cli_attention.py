"""attention subcommand: JSON contract, text, bad input."""

from __future__ import annotations

import pytest


def test_attention_json_has_the_promised_fields(cli):
    result = cli("attention", "--config", "b200", "--batch", "2", "--heads", "16", "--seq", "4096",
                 "--head-dim", "128", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    for key in ("time_s", "tflops", "peak_tflops", "bound", "cycles", "tile"):
        assert key in data
    assert data["peak_tflops"] == pytest.approx(2250, rel=0.01) and 0 < data["tflops"] < data["peak_tflops"]
    assert data["flops"] == pytest.approx(4 * 2 * 16 * 4096 * 4096 * 128)
    assert data["details"]["variant"] == "fa4"


def test_attention_options_reach_the_model(cli):
    base = ("attention", "-c", "h100-sxm", "--batch", "2", "--heads", "32", "--seq", "2048", "--head-dim", "128", "--json")
    fwd = cli(*base).json()
    causal = cli(*base, "--causal").json()
    bwd = cli(*base, "--backward").json()
    fa2 = cli(*base, "--kernel", "fa2").json()
    gqa = cli(*base, "--kv-heads", "8").json()
    assert causal["flops"] == pytest.approx(fwd["flops"] / 2) and bwd["flops"] == pytest.approx(2.5 * fwd["flops"])
    assert fa2["details"]["variant"] == "fa2" and fa2["time_s"] > fwd["time_s"]
    assert gqa["bytes"]["hbm"] < fwd["bytes"]["hbm"]
    decode = cli("attention", "-c", "h100-sxm", "--batch", "4", "--heads", "32", "--kv-heads", "8", "--seq", "1",
                 "--seq-kv", "32768", "--head-dim", "128", "--json").json()
    assert decode["bound"] == "hbm"
    slower = cli(*base, "--set", "sm.sfu_ops_per_clock=4").json()
    assert slower["time_s"] > fwd["time_s"]


def test_attention_text_explains_the_block(cli):
    out = cli("attention", "-c", "b200", "--batch", "1", "--heads", "16", "--seq", "8192", "--head-dim", "64").stdout
    assert "bound: exp" in out and "softmax" in out and "kernels:" in out and "efficiency by mechanism" in out


@pytest.mark.parametrize("args,needle", [
    (("--head-dim", "256"), "TMEM budget"),
    (("--head-dim", "128", "--kernel", "fa3"), "does not run on blackwell"),
    (("--head-dim", "128", "--kv-heads", "3"), "multiple of kv_heads"),
    (("--head-dim", "100"), "multiple of 8"),
    (("--head-dim", "128", "--kernel", "fa2", "--no-exp-emulation"), "applies to --kernel fa4 only"),
    (("--head-dim", "x"), "invalid integer value"),
])
def test_bad_input_is_one_line_exit_2(cli_subprocess, args, needle):
    result = cli_subprocess("attention", "-c", "b200", "--batch", "1", "--heads", "8", "--seq", "1024", *args)
    assert result.returncode == 2 and needle in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_head_dim_v_reaches_the_model(cli):
    base = ("attention", "-c", "b200", "--batch", "1", "--heads", "16", "--seq", "2048", "--json")
    mla = cli(*base, "--head-dim", "192", "--head-dim-v", "128").json()
    assert mla["flops"] == 2 * 16 * 2048 * 2048 * (192 + 128)
    assert mla["details"]["variant"] == "fa4" and mla["details"]["head_dim_v_padded"] == 128
    same = cli(*base, "--head-dim", "128", "--head-dim-v", "128").json()
    assert same["flops"] == cli(*base, "--head-dim", "128").json()["flops"]


@pytest.mark.parametrize("args,needle", [
    (("--head-dim", "192"), "TMEM budget: 640 columns needed"),
    (("--head-dim", "192", "--head-dim-v", "100"), "head_dim_v must be a multiple of 8"),
    (("--head-dim", "192", "--head-dim-v", "0"), "--head-dim-v"),
])
def test_bad_head_dim_v_is_one_line_exit_2(cli_subprocess, args, needle):
    result = cli_subprocess("attention", "-c", "b200", "--batch", "1", "--heads", "8", "--seq", "1024", *args)
    assert result.returncode == 2 and needle in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
