"""gemm / memcpy / validate subcommands: JSON contract and bad input."""

from __future__ import annotations

import json

import pytest


def test_gemm_json_has_the_promised_fields(cli):
    result = cli("gemm", "--config", "b200", "--m", "4096", "--n", "4096", "--k", "4096", "--dtype", "nvfp4", "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    for key in ("time_s", "cycles", "tflops", "peak_tflops", "bound", "tile"):
        assert key in data
    assert data["peak_tflops"] == pytest.approx(9001, rel=0.01) and 0 < data["tflops"] < data["peak_tflops"]


def test_gemm_set_override_changes_the_answer(cli):
    args = ("gemm", "-c", "h100-sxm", "--m", "16", "--n", "8192", "--k", "8192", "--json")
    slow = cli(*args).json()["time_s"]
    fast = cli(*args, "--set", "hbm.bandwidth_gbps=10000").json()["time_s"]
    assert fast < slow


def test_gemm_text_names_the_mechanisms(cli):
    out = cli("gemm", "-c", "b200", "--m", "8192", "--n", "8192", "--k", "8192").stdout
    assert "bound:" in out and "wave_quantization" in out and "clock" in out


def test_memcpy(cli):
    data = cli("memcpy", "-c", "h100-sxm", "--bytes", str(1 << 30), "--json").json()
    assert 2500 < data["bandwidth_gbps"]["hbm"] < 3350


def test_validate_on_a_small_file(cli, tmp_path):
    rows = [{"kind": "env", "name": "x"},
            {"kind": "gemm", "dtype": "bf16", "m": 4096, "n": 4096, "k": 4096, "median_s": 2.0e-4},
            {"kind": "copy", "mib": 512, "median_s": 3.6e-4},
            {"kind": "attention", "backend": "flash", "b": 1, "h": 8, "s": 1024, "d": 64, "causal": False,
             "dtype": "bf16", "fwd_median_s": 1e-4, "fwdbwd_median_s": 3e-4},
            {"kind": "mystery"}]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = cli("validate", str(path), "--config", "h100-sxm", "--json").json()
    assert {r["kind"] for r in data["rows"]} == {"gemm", "copy", "attention"}
    assert {r["quantity"] for r in data["rows"] if r["kind"] == "attention"} == {"fwd_median_s", "fwdbwd_median_s"}
    gemm = next(r for r in data["rows"] if r["kind"] == "gemm")
    assert gemm["quantity"] == "median_s" and gemm["error"] == pytest.approx(gemm["predicted_s"] / 2.0e-4 - 1)
    reasons = {s["kind"]: s["reason"] for s in data["skipped"]}
    assert set(reasons) == {"env", "mystery"} and "unknown kind" in reasons["mystery"]
    assert any(s["kind"] == "gemm" and s["dtype"] == "bf16" and s["count"] == 1 for s in data["summary"])
    text = cli("validate", str(path), "--config", "h100-sxm").stdout
    assert "MAPE" in text and "skipped" in text


@pytest.mark.parametrize("args,needle", [
    (("gemm", "--m", "x", "--n", "1", "--k", "1"), "invalid integer value"),
    (("gemm", "--m", "1", "--n", "1", "--k", "1", "--dtype", "fp5"), "invalid choice"),
    (("gemm", "-c", "h100-sxm", "--m", "64", "--n", "64", "--k", "64", "--dtype", "nvfp4"), "no tensor-core path"),
    (("gemm", "--m", "1", "--n", "1", "--k", "1", "--set", "sm.count=0"), "must be >= 1"),
    (("validate", "/no/such/file.jsonl"), "cannot read measurement file"),
    (("memcpy",), "required"),
])
def test_bad_input_is_one_line_exit_2(cli_subprocess, args, needle):
    result = cli_subprocess(*args)
    assert result.returncode == 2 and needle in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_validate_reads_published_kernel_times_as_sustained_gpu_time(cli, tmp_path):
    from blackwell_sim.config import load_config
    from blackwell_sim.engine.kernels.gemm import simulate_gemm

    row = {"kind": "gemm", "dtype": "nvfp4", "m": 8192, "n": 8192, "k": 8192, "gpu_s": 1.0e-4,
           "source": "a published benchmark"}
    path = tmp_path / "published.jsonl"
    path.write_text(json.dumps(row) + "\n")
    data = cli("validate", str(path), "--config", "b200", "--json").json()
    (out,) = data["rows"]
    expected = simulate_gemm(load_config("b200"), 8192, 8192, 8192, "nvfp4", power_state="sustained")
    assert out["quantity"] == "gpu_s" and out["source"] == "a published benchmark"
    assert out["predicted_s"] == pytest.approx(expected.time_s)


def test_validate_bad_json_line_names_file_and_line(cli_subprocess, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind": "copy", "mib": 8, "median_s": 1e-5}\n{not json}\n')
    result = cli_subprocess("validate", str(path))
    assert result.returncode == 2 and f"{path}:2: invalid JSON" in result.stderr


def test_gemm_attaches_the_functional_result_of_its_format(cli):
    args = ("gemm", "-c", "b200", "--m", "256", "--n", "256", "--k", "512", "--functional", "full", "--json")
    nvfp4 = cli(*args, "--dtype", "nvfp4").json()["functional"]
    mxfp8 = cli(*args, "--dtype", "mxfp8").json()["functional"]
    assert nvfp4["mode"] == "full" and not nvfp4["operands"]
    assert 10 < nvfp4["sqnr_db"] < mxfp8["sqnr_db"]   # 4-bit elements lose more than 8-bit ones
    again = cli(*args, "--dtype", "nvfp4").json()["functional"]
    assert again["sqnr_db"] == nvfp4["sqnr_db"]       # seeded operands: same result


def test_gemm_functional_on_operand_files(cli, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.standard_normal((64, 128)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.standard_normal((128, 32)).astype(np.float32))
    base = ("gemm", "-c", "b200", "--dtype", "bf16", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "b.npy"))
    ok = cli(*base, "--m", "64", "--n", "32", "--k", "128", "--json").json()["functional"]
    assert ok["operands"] and ok["sqnr_db"] > 40              # bf16 rounding only
    bad = cli(*base, "--m", "64", "--n", "32", "--k", "127")
    assert bad.returncode == 2 and "has shape (64, 128), the op needs (64, 127)" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name,preset", [("b200_published.jsonl", "b200"), ("gb200_published.jsonl", "gb200")])
def test_published_blackwell_files_are_predicted_row_by_row_with_their_sources(cli, name, preset):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / name
    data = cli("validate", str(path), "--config", preset, "--json").json()
    assert len(data["rows"]) == sum(1 for line in path.read_text().splitlines() if '"gemm"' in line)
    for row in data["rows"]:
        assert row["quantity"] == "gpu_s" and row["source"].startswith("https://")
        assert row["predicted_s"] > 0
    assert [s["kind"] for s in data["skipped"]] == ["env"]
