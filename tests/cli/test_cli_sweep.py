"""``blackwell-sim sweep``: --json, the text table, plots, bad input as one line, the shipped studies."""

from __future__ import annotations

import json

import pytest

from blackwell_sim.sweep import load_spec, plan

GEMM = "gemm:m=512,n=512,k=256,dtype=bf16"


def test_json_is_one_object_with_the_rows_in_point_order(cli, tmp_path):
    result = cli("sweep", "--trace", GEMM, "--vary", "sm.count=64,148", "--workers", "0", "--json",
                 "--out", str(tmp_path / "o"), "--plot", "total_time_s")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"out", "results", "points", "ok", "failed", "resumed", "plot", "rows"}
    assert (data["points"], data["ok"], data["failed"], data["resumed"]) == (2, 2, 0, 0)
    assert [r["params"] for r in data["rows"]] == [{"sm.count": 64}, {"sm.count": 148}]
    assert data["plot"].endswith("plot-total_time_s.png")
    assert (tmp_path / "o" / "results.jsonl").read_text().splitlines() == [
        json.dumps(r, separators=(",", ":")) for r in data["rows"]]


def test_text_table_has_a_row_per_point_and_set_applies_to_every_point(cli, tmp_path):
    result = cli("sweep", "--trace", GEMM, "--vary", "m=256,512", "--set", "sm.count=32", "--workers", "0",
                 "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sweep: 2 points, 2 ok, 0 failed")
    assert lines[1].split() == ["m", "total_time_s", "achieved_tflops", "status"]
    assert [line.split()[0] for line in lines[2:]] == ["256", "512"]
    spec = json.loads((tmp_path / "o" / "spec.json").read_text())
    assert spec["set"] == {"sm.count": 32}


@pytest.mark.parametrize("args, message", [
    (["--vary", "sm.cout=1"], "vary sm.cout=1: override: key 'sm.cout': unknown key (did you mean 'sm.count'?)"),
    (["--vary", "sm.count=x"], "vary sm.count='x': override: key 'sm.count': expected an integer"),
    (["--vary", "sm.count=9:1"], "--vary sm.count: empty range (start 9, stop 1, step 1)"),
    (["--vary", "sm.count=1", "--vary", "m=1", "--vary", "n=1", "--plot", "total_time_s"],
     "--plot: needs one varied key (line) or two (heatmap); this sweep varies 3"),
    (["--vary", "sm.count=1", "--scheduler", "nowhere"], "--scheduler: expected an address"),
    (["--vary", "sm.count=1", "--plot", "acheived_tflops"],
     "--plot: unknown metric 'acheived_tflops'; did you mean 'achieved_tflops'?"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_runs(cli, tmp_path, args, message):
    out = tmp_path / "o"
    result = cli("sweep", "--trace", GEMM, *args, "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith(f"blackwell-sim: error: {message}") and result.stderr.count("\n") == 1
    assert result.stdout == "" and not out.exists()


def test_bad_input_as_a_user_sees_it(cli_subprocess, tmp_path):
    result = cli_subprocess("sweep", "--trace", GEMM, "--vary", "sm.count=", "--out", str(tmp_path / "o"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "blackwell-sim: error: --vary sm.count: no values (empty list)\n"


def test_argument_errors_and_an_existing_sweep(cli, tmp_path):
    assert cli("sweep", "--trace", GEMM, "--vary", "m=1", "--workers", "-1").returncode == 2
    bad = cli("sweep", "--vary", "m=1")
    assert bad.returncode == 2 and "no workload: give --trace" in bad.stderr
    args = ["sweep", "--trace", GEMM, "--vary", "m=256", "--workers", "0", "--out", str(tmp_path / "o")]
    assert cli(*args).returncode == 0
    again = cli(*args)
    assert again.returncode == 2 and "results.jsonl exists; pass --resume" in again.stderr
    resumed = cli(*args, "--resume", "--json")
    assert resumed.returncode == 0 and resumed.json()["resumed"] == 1


@pytest.mark.parametrize("name, points, keys", [
    ("tmem-sms-nvfp4-gemm", 16, ("tmem.size_bytes", "sm.count")),
    ("hbm-bandwidth-llama3-70b-decode", 20, ("hbm.bandwidth_gbps", "batch")),
    ("nvl72-nvl36x2-hgx8-tp-layer", 12, ("system", "tp")),
])
def test_shipped_studies_are_valid_specs(repo_root, name, points, keys):
    spec = load_spec(repo_root / "configs" / "studies" / f"{name}.yaml")
    assert spec.keys == keys and spec.plot
    checked = plan(spec)
    assert len(checked) == points and len({p.hash for p in checked}) == points
