"""The 4-GPU NVSwitch measurement (4x H200 of an HGX board, NCCL 2.28.9, NVLS off; ours): the
mechanisms it added (all-to-all rounds, point-to-point protocols, validate's ranks / concurrent /
forced-algorithm fields) and the accuracy on it. Data: benchmarks/data/h200x4_nccl*_2026-11-26."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blackwell_sim import BlackwellSimError, load_config
from blackwell_sim.engine.kernels.collectives import simulate_collective
from blackwell_sim.engine.kernels.collectives_validate import VALIDATORS
from blackwell_sim.validate import validate

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
MAIN = DATA / "h200x4_nccl_2026-11-26.jsonl"
ALGO = DATA / "h200x4_nccl_algo_2026-11-26.jsonl"
X4 = load_config("hgx-h200-4")
MIB, GIB = 2**20, 2**30


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_preset_is_the_measured_machine_without_nvls():
    assert X4.gpu_count == 4 and "H200" in X4.gpu.name
    assert sum(X4.fabric.gpu_links_per_switch) == 18 and X4.fabric.topology == "nvswitch"
    assert not X4.fabric.collective.nvls_enabled
    r = simulate_collective(X4, "all_reduce", GIB)
    assert r.algo == "ring" and not any(k.startswith("nvls") for k in r.candidates)


def test_the_data_records_nvls_off_and_the_nccl_version():
    env = _rows(MAIN)[0]
    assert env["kind"] == "env" and env["env"]["NCCL_NVLS_ENABLE"] == "0" and env["nccl"] == "2.28.9"
    assert all(row["nvls"] is False for row in _rows(MAIN) + _rows(ALGO))


@pytest.mark.parametrize("w", [2, 3, 4])
def test_all_to_all_pays_one_protocol_step_per_peer_round(w):
    coll = X4.fabric.collective
    r = simulate_collective(X4, "all_to_all", 1024, ranks=range(w), protocol="ll")
    assert r.latency_s == pytest.approx((coll.launch_overhead_us + coll.ll.ring_base_latency_us
                                         + (w - 1) * coll.ll.ring_step_latency_us) * 1e-6)


def test_point_to_point_has_no_ll128():
    r = simulate_collective(X4, "all_to_all", 64 * MIB)
    assert set(r.candidates) == {"direct/ll", "direct/simple"}
    with pytest.raises(BlackwellSimError, match="no all_to_all algorithm with protocol 'll128'"):
        simulate_collective(X4, "all_to_all", MIB, protocol="ll128")
    assert set(simulate_collective(X4, "send_recv", MIB, ranks=(0, 3)).candidates) == {"direct/ll", "direct/simple"}


def _row(**fields):
    row = {"kind": "all_reduce", "bytes": 64 * MIB, "world": 2, "median_s": 1e-3, "graph_s": 1e-3, "_line": 7}
    row.update(fields)
    return row


def test_validate_row_uses_its_ranks_and_forced_algorithm():
    predict = VALIDATORS["all_reduce"]
    (_, _, t, _), (_, _, k, r) = predict(X4, _row(ranks=[1, 3], nccl_algo="Tree", nccl_proto="LL128"))
    alone = simulate_collective(X4, "all_reduce", 64 * MIB, ranks=(1, 3), algo="tree", protocol="ll128")
    assert r.ranks == [1, 3] and (r.algo, r.protocol) == ("tree", "ll128")
    assert (t, k) == (pytest.approx(alone.time_s), pytest.approx(alone.kernel_s))


def test_concurrent_pairs_on_distinct_gpus_do_not_slow_each_other():
    """Each GPU's port groups are its own and the crossbar is non-blocking: two pairs at once take
    as long as one pair (measured: 64 MiB-4 GiB within 1%)."""
    predict = VALIDATORS["all_reduce"]
    both = predict(X4, _row(ranks=[0, 1], concurrent=[[0, 1], [2, 3]]))
    one = predict(X4, _row(ranks=[0, 1]))
    assert both[0][2] == pytest.approx(one[0][2], rel=1e-9) and both[1][2] == pytest.approx(one[1][2], rel=1e-9)
    rows = {(r["layout"], r["bytes"]): r["graph_s"] for r in _rows(MAIN) if r.get("layout")}
    for n in (64 * MIB, 256 * MIB, GIB, 4 * GIB):
        assert rows[("pairs01_23", n)] == pytest.approx(rows[("pair01", n)], rel=0.01)


@pytest.mark.parametrize("fields,message", [
    ({"concurrent": [[0, 1], [1, 2]]}, "share GPUs"),
    ({"concurrent": [[0, 1, 2]]}, "list of 2 \\(world\\)"),
    ({"ranks": [0, 7]}, "0..3"),
    ({"nccl_proto": "fast"}, "'nccl_proto' must be one of"),
    ({"nccl_algo": "nvls"}, "nvls needs NVLink SHARP"),
])
def test_bad_row_fields_give_one_line_naming_the_line(fields, message):
    with pytest.raises(BlackwellSimError, match=message) as err:
        VALIDATORS["all_reduce"](X4, _row(**fields))
    assert str(err.value).startswith("line 7: ") and "\n" not in str(err.value)


def _mape(report, keep):
    errors = {}
    for row in report["rows"]:
        if keep(row):
            errors.setdefault((row["kind"], row["quantity"], row["bytes"] >= MIB), []).append(abs(row["error"]))
    return {k: float(np.mean(v)) for k, v in errors.items()}


def test_gpu_time_of_the_four_collectives_on_four_gpus():
    """CUDA-graph times, all four GPUs: MAPE per collective and size class (docs/validation.md)."""
    mape = _mape(validate(MAIN, X4), lambda r: r["world"] == 4 and r["quantity"] == "graph_s")
    assert len(mape) == 8
    for (kind, _, large), err in mape.items():
        assert err <= (0.08 if large else 0.10), (kind, large, err)


def test_sub_groups_and_per_call_times_of_large_messages():
    report = validate(MAIN, X4)
    sub = _mape(report, lambda r: r["world"] < 4 and r["quantity"] == "graph_s")
    assert all(err <= 0.10 for err in sub.values()), sub
    per_call = _mape(report, lambda r: r["quantity"] == "median_s" and r["bytes"] >= MIB)
    assert all(err <= 0.08 for err in per_call.values()), per_call


def test_forced_ring_protocols_and_where_the_tree_is_still_off():
    report = validate(ALGO, X4)
    by_proto = {}
    for row in report["rows"]:
        if row["quantity"] == "graph_s" and row.get("nccl_algo") == "Ring":
            by_proto.setdefault(row.get("nccl_proto", "tuner"), []).append(abs(row["error"]))
    assert set(by_proto) == {"tuner", "LL", "LL128", "Simple"}
    assert np.mean(by_proto["LL"]) <= 0.08     # LL channel efficiency fitted to this file's plateau
    assert all(np.mean(e) <= 0.15 for e in by_proto.values()), {k: np.mean(e) for k, e in by_proto.items()}
    # the chain model of NCCL's intra-node tree is still too fast in the middle (weak spot, docs)
    tree = [row["error"] for row in report["rows"] if row["quantity"] == "graph_s"
            and row.get("nccl_algo") == "Tree" and MIB <= row["bytes"] <= 64 * MIB]
    assert np.mean(tree) < -0.1


def test_cli_validates_the_measured_files_and_rejects_a_bad_row(cli, tmp_path):
    ok = cli("validate", str(MAIN), "--config", "hgx-h200-4", "--json")
    assert ok.returncode == 0
    out = ok.json()
    assert len(out["rows"]) == 2 * 140 and [s["kind"] for s in out["skipped"]] == ["env"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"kind": "all_reduce", "bytes": 1024, "world": 2, "median_s": 1e-5,
                               "ranks": [0, 1], "concurrent": [[0, 1], [1, 3]]}) + "\n")
    res = cli("validate", str(bad), "--config", "hgx-h200-4", "--json")
    assert res.returncode == 0 and not res.json()["rows"]       # validate lists a bad row as skipped
    (skip,) = res.json()["skipped"]
    assert skip["line"] == 1 and "share GPUs" in skip["reason"] and "\n" not in skip["reason"]


def test_four_h100_preset_matches_the_device_notes_and_our_h200_plateau():
    """KINDS.md (2026-11-13): 1 GiB all-reduce on 4 lent H100s, NVLS off, 355 GB/s busbw; ours on
    4 H200s of the same fabric: 355.5 (graph) / 345 (per call)."""
    h100 = simulate_collective(load_config("hgx-h100-4"), "all_reduce", GIB)
    assert h100.algo == "ring" and h100.busbw_gbps == pytest.approx(355, rel=0.03)
    row = next(r for r in _rows(MAIN) if r["kind"] == "all_reduce" and r["bytes"] == GIB and "layout" not in r)
    assert simulate_collective(X4, "all_reduce", GIB).kernel_s == pytest.approx(row["graph_s"], rel=0.03)
