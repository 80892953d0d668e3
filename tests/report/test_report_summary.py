"""Summary dict: exact arithmetic on a hand-built frame, JSON safety, and the text table."""

from __future__ import annotations

import json

import pytest

import blackwell_sim as bs
from blackwell_sim.report import format_summary, results_frame, summarize


def frame():
    # rank 0 compute: dense nvfp4 (1 ms at 50% of 9000), sparse nvfp4 (1 ms at 25% of 18000), bf16;
    # rank 0/1 comm: one all_reduce (a row per rank); rank 1 compute: a memcpy.
    return results_frame([
        {"name": "d", "op": "gemm", "start_s": 0.0, "time_s": 1e-3, "flops": 4.5e12, "peak_tflops": 9000.0,
         "dtype": "nvfp4", "bound": "compute", "bytes_hbm": 1e8, "bytes_l2": 1e9, "energy_j": 0.5,
         "measured_s": 1.25e-3, "sqnr_db": 20.0, "rel_error": 0.1, "functional_s": 0.5},
        {"name": "s", "op": "gemm", "start_s": 1e-3, "time_s": 1e-3, "flops": 4.5e12, "peak_tflops": 18000.0,
         "dtype": "nvfp4", "sparse": True, "bound": "power", "bytes_hbm": 1e8, "energy_j": 0.25,
         "measured_s": 0.5e-3, "sqnr_db": 18.0, "rel_error": 0.2, "functional_s": 0.25, "cached": True},
        {"name": "h", "op": "gemm", "start_s": 2e-3, "time_s": 2e-3, "flops": 2.25e12, "peak_tflops": 2250.0,
         "dtype": "bf16", "bound": "compute"},
        {"name": "ar", "op": "all_reduce", "rank": 0, "stream": "comm", "start_s": 0.5e-3, "time_s": 1e-3,
         "dtype": "bf16", "bound": "nvlink", "bytes_fabric": 3e8},
        {"name": "ar", "op": "all_reduce", "rank": 1, "stream": "comm", "start_s": 0.5e-3, "time_s": 1e-3,
         "dtype": "bf16", "bound": "nvlink", "bytes_fabric": 3e8},
        {"name": "cp", "op": "memcpy", "rank": 1, "start_s": 1e-3, "time_s": 4e-3, "bound": "hbm",
         "bytes_hbm": 2e9},
    ])


def test_totals_counts_and_achieved(b200):
    s = summarize(frame(), b200, sim_wall_s=0.125)
    assert s["total_time_s"] == pytest.approx(5e-3)           # memcpy on rank 1 ends last
    assert (s["ops"], s["rows"], s["ranks"]) == (5, 6, 2)      # the all_reduce is one op on two rows
    assert s["achieved_tflops"] == pytest.approx(11.25e12 / 5e-3 / 1e12)
    assert s["sim_wall_s"] == 0.125 and s["config"] == "NVIDIA B200"
    assert s["cached_rows"] == 1


def test_formats_hold_dense_and_sparse_rows_to_their_own_peak(b200):
    nv = summarize(frame(), b200)["formats"]["nvfp4"]
    assert nv["flops"] == 9e12 and nv["time_s"] == pytest.approx(2e-3)
    assert nv["achieved_tflops"] == pytest.approx(4500.0)
    assert nv["peak_tflops"] == pytest.approx(13500.0)          # time-weighted (9000 + 18000) / 2
    assert nv["pct_of_peak"] == pytest.approx(100 * 9e12 / (1e-3 * 9e15 + 1e-3 * 18e15))
    bf = summarize(frame(), b200)["formats"]["bf16"]
    assert bf["pct_of_peak"] == pytest.approx(50.0)
    # collectives carry a dtype but no FLOP, so bf16 holds only the GEMM
    assert bf["time_s"] == pytest.approx(2e-3)
    assert nv["sqnr_db"] == 19.0 and bf["sqnr_db"] is None     # median of the executed rows


def test_text_table_has_no_accuracy_column_without_functional_rows(b200):
    text = format_summary(summarize(frame().assign(sqnr_db=float("nan")), b200))
    assert text.splitlines()[1].split() == ["format", "TFLOP", "time", "TFLOPS", "peak", "%", "peak"]


def test_format_without_row_peaks_falls_back_to_the_config_dense_peak(b200):
    f = results_frame([{"name": "g", "op": "gemm", "start_s": 0.0, "time_s": 1e-3, "flops": 1e12,
                        "dtype": "mxfp8"}])
    fmt = summarize(f, b200)["formats"]["mxfp8"]
    assert fmt["peak_tflops"] == pytest.approx(b200.peak_tflops("mxfp8"))
    assert fmt["pct_of_peak"] == pytest.approx(100 * 1000 / b200.peak_tflops("mxfp8"))
    unknown = results_frame([{"name": "e", "op": "elementwise", "start_s": 0.0, "time_s": 1e-3,
                              "flops": 1e9, "dtype": "int4"}])
    assert summarize(unknown, b200)["formats"]["int4"]["pct_of_peak"] is None


def test_bound_shares_bytes_energy_measured_functional(b200):
    s = summarize(frame(), b200)
    busy = 1 + 1 + 2 + 1 + 1 + 4                                # ms of op time over all rows
    assert s["bound_time_share"] == pytest.approx({"compute": 3 / busy, "power": 1 / busy,
                                                   "nvlink": 2 / busy, "hbm": 4 / busy})
    assert sum(s["bound_time_share"].values()) == pytest.approx(1.0)
    assert s["time_by_op"] == pytest.approx({"all_reduce": 2e-3, "gemm": 4e-3, "memcpy": 4e-3})
    assert s["bytes"] == {"hbm": 2.2e9, "l2": 1e9, "fabric": 6e8}
    assert s["energy_j"] == pytest.approx(0.75) and s["energy_rows"] == 2
    m = s["measured"]
    assert m["rows"] == 2 and m["measured_time_s"] == pytest.approx(1.75e-3)
    assert m["mape_pct"] == pytest.approx(100 * (0.25 / 1.25 + 0.5 / 0.5) / 2)
    assert list(m["by_op"]) == ["gemm"] and m["by_op"]["gemm"]["mape_pct"] == pytest.approx(m["mape_pct"])
    fn = s["functional"]
    assert fn == pytest.approx({"rows": 2, "min_sqnr_db": 18.0, "median_sqnr_db": 19.0,
                                "max_rel_error": 0.2, "functional_s": 0.75})


def test_measured_error_per_op_kind(b200):
    f = results_frame([
        {"name": "g", "op": "gemm", "start_s": 0.0, "time_s": 1e-3, "measured_s": 2e-3},
        {"name": "a", "op": "attention", "start_s": 1e-3, "time_s": 3e-3, "measured_s": 2e-3},
        {"name": "n", "op": "memcpy", "start_s": 4e-3, "time_s": 1e-3}])
    m = summarize(f, b200)["measured"]
    assert m["rows"] == 2 and m["mape_pct"] == pytest.approx(50.0)
    assert m["by_op"] == {"attention": {"rows": 1, "measured_time_s": 2e-3, "simulated_time_s": 3e-3,
                                        "mape_pct": pytest.approx(50.0)},
                          "gemm": {"rows": 1, "measured_time_s": 2e-3, "simulated_time_s": 1e-3,
                                   "mape_pct": pytest.approx(50.0)}}
    assert "  by op: attention 1 rows MAPE 50.0%, gemm 1 rows MAPE 50.0%" in format_summary(summarize(f, b200))


def test_absent_quantities_are_null_not_zero(b200):
    f = results_frame([{"name": "cp", "op": "memcpy", "start_s": 0.0, "time_s": 1e-3, "bound": ""}])
    s = summarize(f, b200)
    assert s["energy_j"] is None and s["measured"] is None and s["functional"] is None
    assert s["formats"] == {} and s["bound_time_share"] == {"unknown": 1.0}
    assert s["sim_wall_s"] is None and s["achieved_tflops"] == 0.0


def test_summary_is_strict_json_and_sim_wall_comes_from_frame_attrs(b200):
    f = frame()
    f.attrs["sim_wall_s"] = 2.5
    s = summarize(f, b200)
    assert s["sim_wall_s"] == 2.5
    assert json.loads(json.dumps(s, allow_nan=False)) == s


def test_system_config_name_and_per_gpu_peaks():
    system = bs.load_config("hgx-b200-8")
    f = results_frame([{"name": "g", "op": "gemm", "start_s": 0.0, "time_s": 1e-3, "flops": 1e12,
                        "dtype": "bf16"}])
    s = summarize(f, system)
    assert s["config"] == system.name
    assert s["formats"]["bf16"]["peak_tflops"] == pytest.approx(system.gpu.peak_tflops("bf16"))


def test_text_table(b200):
    text = format_summary(summarize(frame(), b200, sim_wall_s=0.25))
    lines = text.splitlines()
    assert lines[0] == ("config NVIDIA B200: 5 ops (6 rows) on 2 ranks, makespan 5.000 ms, "
                        "2250.0 TFLOPS achieved (all ranks)")
    assert lines[1].split() == ["format", "TFLOP", "time", "TFLOPS", "peak", "%", "peak", "SQNR", "dB"]
    assert lines[2].split() == ["bf16", "2.25", "2.000", "ms", "1125.0", "2250", "50.0", "n/a"]
    assert lines[3].split() == ["nvfp4", "9.00", "2.000", "ms", "4500.0", "13500", "33.3", "19.0"]
    assert lines[4] == "bound (share of op time): hbm 40.0%, compute 30.0%, nvlink 20.0%, power 10.0%"
    assert lines[5] == "bytes: HBM 2.20 GB, L2 1.00 GB, fabric 600.00 MB"
    assert "energy: 0.750 J over 2 rows" in text
    assert "measured vs simulated (2 rows): measured 1.750 ms, simulated 2.000 ms, MAPE 60.0%" in text
    assert "functional (2 rows): SQNR min 18.0 dB, median 19.0 dB" in text
    assert lines[-1] == "cached rows 1; simulated in 0.25 s wall"
