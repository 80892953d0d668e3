"""``blackwell-sim run``: the README's first command, the report folder, --json, bad traces."""

from __future__ import annotations

import json
import sys
import types

import pytest
import yaml

SMALL = {"config": "b200", "ops": [
    {"op": "gemm", "name": "g", "m": 1024, "n": 1024, "k": 1024, "dtype": "nvfp4"},
    {"op": "elementwise", "name": "e", "bytes_read": 1 << 20, "deps": ["g"]},
    {"op": "gemm", "name": "g2", "m": 1024, "n": 1024, "k": 1024, "dtype": "nvfp4"},
]}
REPORT_FILES = {"results.csv", "summary.json", "timeline.json"}


@pytest.fixture
def small_trace(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


def test_readme_first_command_is_blackwell_sim_run(repo_root):
    text = (repo_root / "README.md").read_text()
    block = text.split("## Quickstart", 1)[1].split("```", 2)[1].strip().splitlines()
    assert block[0].endswith("&& blackwell-sim run")


def test_bare_run_writes_the_default_report_as_a_user_sees_it(cli_subprocess, tmp_path):
    result = cli_subprocess("run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "blackwell-sim-out"
    names = {p.name for p in out.iterdir()}
    assert REPORT_FILES <= names and any(n.endswith(".png") for n in names)
    assert "nvfp4" in result.stdout and "timeline.json" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    # the bundled default: a Llama-3-8B block, TP2 x DP2 on an HGX B200, NVFP4 linear layers
    assert summary["config"] == "HGX B200 8-GPU" and summary["ranks"] == 4 and summary["total_time_s"] > 0
    assert set(summary["formats"]) == {"nvfp4", "bf16"} and summary["bytes"]["fabric"] > 0
    timeline = json.loads((out / "timeline.json").read_text())
    assert any(ev.get("ph") == "X" for ev in timeline["traceEvents"])
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_json_is_one_object_with_the_summary_and_files(cli, small_trace, tmp_path):
    out = tmp_path / "out"
    result = cli("run", str(small_trace), "--out", str(out), "--no-plots", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ops"] == 3 and data["cached_rows"] == 1 and data["out"] == str(out)
    assert {p.split("/")[-1] for p in data["files"]} == REPORT_FILES
    assert {p.name for p in out.iterdir()} == REPORT_FILES
    assert data == {**json.loads((out / "summary.json").read_text()), "trace_file": str(small_trace),
                    "out": str(out), "files": data["files"]}


def test_out_folder_is_replaced_whole(cli, small_trace, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    assert cli("run", str(small_trace), "-o", str(out), "--no-plots").returncode == 0
    assert {p.name for p in out.iterdir()} == REPORT_FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "small.yaml"]
    (tmp_path / "file").write_text("x")
    bad = cli("run", str(small_trace), "-o", str(tmp_path / "file"), "--no-plots")
    assert bad.returncode == 2 and "is not a folder" in bad.stderr


def test_config_and_set_apply(cli, small_trace, tmp_path):
    base = cli("run", str(small_trace), "-o", str(tmp_path / "a"), "--no-plots", "--json",
               "--host-dispatch", "none").json()
    h100 = cli("run", str(small_trace), "-o", str(tmp_path / "b"), "--no-plots", "--json",
               "--config", "h100-sxm", "--set", "hbm.bandwidth_gbps=3000")
    assert h100.returncode == 2 and "nvfp4" in h100.stderr  # Hopper has no FP4 path: one line
    slow = cli("run", str(small_trace), "-o", str(tmp_path / "c"), "--no-plots", "--json",
               "--set", "launch.overhead_us=50", "--host-dispatch", "none").json()
    # three kernels, each 47 us more launch gap (no host limit)
    assert slow["total_time_s"] - base["total_time_s"] == pytest.approx(3 * 47e-6, rel=1e-6)


BAD = [
    ({"ops": [{"op": "gemn", "m": 1, "n": 1, "k": 1}]}, "op 0: op: unknown op 'gemn' (did you mean 'gemm'?)"),
    ({"ops": [{"op": "gemm", "m": 1, "n": 1}]}, "op 0: missing field 'k' (required for gemm)"),
    ({"ops": [{"op": "memcpy", "bytes": -5}]}, "op 0: bytes: must be >= 1 (got -5)"),
    ({"ops": [{"op": "memcpy", "bytes": 1, "name": "a", "deps": ["b"]},
              {"op": "memcpy", "bytes": 1, "name": "b", "deps": ["a"]}]}, "op 0 ('a'): deps: dependency cycle 'a' -> 'b' -> 'a'"),
    ({"config": "b200", "ops": [{"op": "memcpy", "bytes": 1, "rank": 3}]},
     "op 0 ('memcpy_0'): rank: rank 3 is outside the system"),
]


@pytest.mark.parametrize("doc, message", BAD)
def test_bad_traces_fail_with_one_line_and_status_2(cli, tmp_path, doc, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    result = cli("run", str(path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"bad.json: {message}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_config_in_the_trace_names_the_trace(cli, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("config: b2000\nops:\n- {op: memcpy, bytes: 8}\n")
    result = cli("run", str(path), "-o", str(tmp_path / "o"))
    assert result.returncode == 2
    assert f"{path}: config: preset 'b2000': unknown preset (did you mean 'b200'?)" in result.stderr


def test_missing_trace_file_and_bad_choice(cli, tmp_path):
    result = cli("run", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "nope.yaml: no such trace file" in result.stderr
    assert cli("run", "--fidelity", "slow").returncode == 2


def test_progress_bar_is_tqdm_on_stderr_counting_distinct_ops(cli, small_trace, tmp_path, monkeypatch):
    bars = []

    class FakeTqdm:
        def __init__(self, **kwargs):
            self.kwargs, self.n, self.closed = kwargs, 0, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    assert cli("run", str(small_trace), "-o", str(tmp_path / "o"), "--no-plots").returncode == 0
    (bar,) = bars
    assert bar.kwargs["total"] == 2 and bar.n == 2 and bar.closed  # g2 is a memo hit
    assert bar.kwargs["delay"] == 2.0 and bar.kwargs["disable"] is None  # only on a terminal


def test_progress_bar_goes_to_stderr(monkeypatch):
    from blackwell_sim.cli.run_cmd import _progress_bar

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=lambda **kw: kw))
    assert _progress_bar(5)["file"] is sys.stderr


def test_same_trace_gives_the_same_bytes(cli, small_trace, tmp_path):
    for out in ("a", "b"):
        assert cli("run", str(small_trace), "-o", str(tmp_path / out)).returncode == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        if name == "summary.json":  # holds sim_wall_s, the host's wall time
            a = json.loads((tmp_path / "a" / name).read_text())
            b = json.loads((tmp_path / "b" / name).read_text())
            assert {**a, "sim_wall_s": 0} == {**b, "sim_wall_s": 0}
        else:
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_bundled_default_is_the_generators_output(repo_root):
    from blackwell_sim.trace import load_trace, parse_document
    from blackwell_sim.trace.generators import generate

    bundled = load_trace(repo_root / "traces" / "llama3-8b-train-layer-b200-nvfp4.yaml")
    fresh = parse_document(generate("llama3-8b", mode="train", batch=4, seq=4096, tp=2, dp=2, layers=[15],
                                    recipe="nvfp4"))
    assert bundled.ops == fresh.ops and bundled.system == fresh.system == "hgx-b200-8"


def test_run_replays_the_imported_pytorch_profile_beside_its_measurements(cli, repo_root, tmp_path):
    import pandas as pd

    fixture = repo_root / "tests" / "fixtures" / "torch_profile" / "torch_profile_small_transformer.json.gz"
    imported = tmp_path / "imported.yaml"
    assert cli("import-torch-profile", str(fixture), "-o", str(imported)).returncode == 0
    out = tmp_path / "out"
    result = cli("run", str(imported), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "measured vs simulated (33 rows)" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"].startswith("NVIDIA H100") and summary["measured"]["rows"] == 33
    frame = pd.read_csv(out / "results.csv")
    assert frame.measured_s.notna().all() and (frame.time_s > 0).all()
    assert set(frame.op) == {"gemm", "attention"}
    assert (out / "measured_vs_simulated.png").is_file()
