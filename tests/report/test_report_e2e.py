"""Through blackwell_sim.simulate(): the replayer's frame passes the report's contract end to end."""

from __future__ import annotations

import json
from itertools import pairwise

import pandas as pd
import pytest

from blackwell_sim.report import (
    COLUMN_NAMES,
    chrome_trace,
    read_results_csv,
    validate_frame,
    write_report,
)
from blackwell_sim.simulate import simulate

DOC = {"ops": [
    {"op": "gemm", "m": 4096, "n": 4096, "k": 4096, "dtype": "nvfp4", "layer": "L0", "phase": "fwd"},
    {"op": "gemm", "name": "again", "m": 4096, "n": 4096, "k": 4096, "dtype": "nvfp4", "deps": ["gemm_0"]},
    {"op": "gemm", "m": 2048, "n": 2048, "k": 2048, "dtype": "bf16", "rank": 1},
    {"op": "memcpy", "bytes": 1 << 24, "stream": "copy"},
    {"op": "elementwise", "bytes_read": 1 << 24, "bytes_written": 1 << 24, "flops": 1e6, "rank": 1},
]}


@pytest.fixture(scope="module")
def result():
    return simulate(DOC, "hgx-b200-8")


def test_replayed_frame_is_a_valid_results_frame(result):
    f = result.ops
    validate_frame(f)
    assert list(f.columns) == list(COLUMN_NAMES)
    assert f["name"].tolist() == ["gemm_0", "again", "gemm_2", "memcpy_3", "elementwise_4"]
    assert f["cached"].tolist() == [False, True, False, False, False]
    assert (f["energy_j"] > 0).all()


def test_summary_matches_the_frame(result):
    s, f = result.summary, result.ops
    assert s["total_time_s"] == pytest.approx(f["end_s"].max())
    assert (s["ops"], s["ranks"], s["gpus"]) == (5, 2, 8)
    nv = f[f["dtype"] == "nvfp4"]
    assert s["formats"]["nvfp4"]["achieved_tflops"] == pytest.approx(
        nv["flops"].sum() / nv["time_s"].sum() / 1e12)
    assert s["energy_j"] == pytest.approx(f["energy_j"].sum())


def test_report_folder_round_trips(result, tmp_path):
    out = write_report(result.ops, result.config, tmp_path, sim_wall_s=1.5)
    names = [p.rsplit("/", 1)[-1] for p in out["files"]]
    assert names[:3] == ["results.csv", "summary.json", "timeline.json"] and "roofline.png" in names
    pd.testing.assert_frame_equal(read_results_csv(tmp_path / "results.csv"), result.ops, check_exact=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sim_wall_s"] == 1.5 and summary["ops"] == 5
    doc = json.loads((tmp_path / "timeline.json").read_text())
    assert doc == json.loads(json.dumps(chrome_trace(result.ops, title=summary["config"])))
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in slices} == {0, 1} and len(slices) == len(result.ops)
    threads = {}
    for e in slices:
        threads.setdefault((e["pid"], e["tid"]), []).append((round(e["ts"] * 1000), round(e["dur"] * 1000)))
    assert len(threads) == 3                                     # rank 0 compute + copy, rank 1 compute
    for spans in threads.values():
        assert all(t0 + d0 <= t1 for (t0, d0), (t1, _) in pairwise(spans))


def test_collectives_have_a_row_per_rank_on_the_comm_thread_of_each_gpu():
    doc = {"ops": [
        {"op": "gemm", "name": "g0", "m": 2048, "n": 2048, "k": 2048, "rank": 0},
        {"op": "gemm", "name": "g1", "m": 2048, "n": 2048, "k": 2048, "rank": 1},
        {"op": "all_reduce", "name": "ar", "bytes": 1 << 26, "group": [0, 1, 2], "deps": ["g0", "g1"]},
    ]}
    result = simulate(doc, "hgx-b200-8")
    f = result.ops
    ar = f[f["name"] == "ar"]
    assert ar["rank"].tolist() == [0, 1, 2] and set(ar["stream"]) == {"comm"}
    assert (ar["start_s"] >= f.loc[f["name"].isin(["g0", "g1"]), "end_s"].max()).all()
    s = result.summary
    assert (s["ops"], s["rows"], s["ranks"]) == (3, 5, 3)
    assert s["bytes"]["fabric"] == ar["bytes_fabric"].sum() > 0
    assert s["energy_rows"] == 2                       # the fabric model gives no energy
    doc = chrome_trace(f)
    threads = {(e["pid"], e["args"]["name"]) for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert threads == {(0, "compute"), (0, "comm"), (1, "compute"), (1, "comm"), (2, "comm")}
    assert sorted(e["pid"] for e in doc["traceEvents"] if e.get("name") == "ar") == [0, 1, 2]


def test_real_torch_profile_report_puts_measured_beside_simulated_on_h100(repo_root, tmp_path):
    from blackwell_sim.trace.torch_profile import import_torch_profile

    fixture = repo_root / "tests" / "fixtures" / "torch_profile" / "torch_profile_small_transformer.json.gz"
    doc = import_torch_profile(fixture)
    result = simulate(doc, "h100-sxm")
    out = write_report(result.ops, result.config, tmp_path)
    assert out["files"][-1].endswith("measured_vs_simulated.png")
    table = read_results_csv(tmp_path / "results.csv")
    expected = [op["measured_s"] for op in doc["ops"]]
    assert table["measured_s"].tolist() == expected and (table["time_s"] > 0).all()
    by_op = json.loads((tmp_path / "summary.json").read_text())["measured"]["by_op"]
    assert {kind: v["rows"] for kind, v in by_op.items()} == {"attention": 4, "gemm": 29}
    assert by_op["gemm"]["measured_time_s"] == pytest.approx(
        sum(op["measured_s"] for op in doc["ops"] if op["op"] == "gemm"))
