"""The CLI skeleton: configs listing, show, and exit status 2 with one line for bad input."""

from __future__ import annotations

import pytest


def test_configs_lists_every_preset_with_peaks(cli):
    result = cli("configs", "--json")
    assert result.returncode == 0
    rows = {r["name"]: r for r in result.json()["presets"]}
    assert rows["b200"]["peak_tflops_per_gpu"]["bf16"] == pytest.approx(2250, rel=0.01)
    assert rows["h100-sxm"]["peak_tflops_per_gpu"]["nvfp4"] is None
    assert rows["gb200-nvl72"]["fabric_tbps_bidirectional"] == pytest.approx(130, rel=0.01)


def test_configs_text_table(cli):
    result = cli("configs")
    assert result.returncode == 0 and "gb200-nvl72" in result.stdout and "BF16" in result.stdout


def test_configs_set_applies_to_presets(cli):
    rows = {r["name"]: r for r in cli("configs", "--json", "--set", "sm.count=74").json()["presets"]}
    assert rows["b200"]["peak_tflops_per_gpu"]["bf16"] == pytest.approx(1125, rel=0.01)


def test_configs_show(cli):
    result = cli("configs", "show", "b200", "--json")
    data = result.json()
    assert data["config"]["tmem"]["size_bytes"] == 262144 and data["peak_bandwidth_gbps"]["hbm"] == 7700
    assert "tensor_core" in cli("configs", "show", "b200").stdout


def test_json_output_is_exactly_one_object(cli):
    out = cli("configs", "show", "gb200-nvl72", "--json").stdout
    assert out.count("\n") == 1 and out.startswith("{")


@pytest.mark.parametrize("args,needle", [
    (("configs", "show", "b200", "--set", "sm.cout=3"), "did you mean 'sm.count'"),
    (("configs", "show", "b200", "--set", "sm.count=-3"), "must be >= 1"),
    (("configs", "show", "b200", "--set", "nonsense"), "--set expects key.path=value"),
    (("configs", "show", "b2000"), "unknown preset"),
    (("configs", "show"), "needs a preset name"),
    (("configs", "frobnicate"), "invalid choice"),
    (("nosuchcommand",), "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(cli_subprocess, args, needle):
    result = cli_subprocess(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_help_works(cli):
    result = cli("--help")
    assert result.returncode == 0 and "configs" in result.stdout
