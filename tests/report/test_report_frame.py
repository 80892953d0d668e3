"""Results frame: defaults and derived columns, the validator's one-line errors, CSV round trip."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.report import (
    COLUMN_NAMES,
    column_units,
    empty_frame,
    read_results_csv,
    results_frame,
    validate_frame,
    write_results_csv,
)
from blackwell_sim.report.output import write_atomic


def two_ops() -> pd.DataFrame:
    return results_frame([
        {"name": "a", "op": "gemm", "start_s": 0.0, "time_s": 2e-3, "flops": 4e12, "peak_tflops": 4000.0,
         "dtype": "nvfp4", "bound": "compute", "layer": "L0", "phase": "fwd"},
        {"name": "b", "op": "memcpy", "start_s": 2e-3, "time_s": 1e-3, "bytes_hbm": 2e9, "bound": "hbm"},
    ])


def test_columns_are_the_contract_in_order_with_units():
    assert COLUMN_NAMES == (
        "name", "op", "rank", "stream", "layer", "phase", "start_s", "end_s", "time_s", "flops", "tflops",
        "peak_tflops", "pct_of_peak", "dtype", "sparse", "bound", "tile", "bytes_hbm", "bytes_l2",
        "bytes_fabric", "energy_j", "measured_s", "cached", "sqnr_db", "rel_error", "functional_s")
    units = column_units()
    assert units["time_s"] == "s" and units["bytes_hbm"] == "B" and units["tflops"] == "TFLOPS"
    assert units["sqnr_db"] == "dB" and units["pct_of_peak"] == "%" and units["name"] == ""


def test_builder_fills_defaults_and_derives_end_tflops_and_pct():
    f = two_ops()
    assert list(f.columns) == list(COLUMN_NAMES)
    a, b = f.iloc[0], f.iloc[1]
    assert a["end_s"] == 2e-3 and b["end_s"] == 3e-3
    assert a["tflops"] == pytest.approx(2000.0) and a["pct_of_peak"] == pytest.approx(50.0)
    assert b["rank"] == 0 and b["stream"] == "compute" and b["layer"] == "" and b["dtype"] == ""
    assert b["flops"] == 0.0 and math.isnan(b["peak_tflops"]) and math.isnan(b["pct_of_peak"])
    assert math.isnan(b["energy_j"]) and math.isnan(b["measured_s"]) and not b["cached"]
    assert f["rank"].dtype == np.int64 and f["sparse"].dtype == bool and f["time_s"].dtype == np.float64


def test_builder_names_a_value_of_the_wrong_kind():
    with pytest.raises(BlackwellSimError, match=r"column 'time_s' cannot be read as float: .*'fast'"):
        results_frame([{"name": "a", "op": "gemm", "start_s": 0.0, "time_s": "fast"}])
    with pytest.raises(BlackwellSimError, match=r"column 'rank' cannot be read as int"):
        results_frame([{"name": "a", "op": "gemm", "start_s": 0.0, "time_s": 1.0, "rank": "GPU0"}])


def test_empty_frame_is_valid():
    validate_frame(empty_frame())
    assert list(empty_frame().columns) == list(COLUMN_NAMES)


def test_builder_rejects_unknown_and_missing_columns():
    with pytest.raises(BlackwellSimError, match=r"row 0: unknown column 'time_us'"):
        results_frame([{"name": "a", "op": "gemm", "start_s": 0.0, "time_us": 1.0}])
    with pytest.raises(BlackwellSimError, match=r"row 0: missing column 'time_s'"):
        results_frame([{"name": "a", "op": "gemm", "start_s": 0.0}])


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns=["bound"]), r"missing column 'bound'"),
    (lambda f: f.assign(rank=f["rank"].astype(float)), r"column 'rank' must be integer"),
    (lambda f: f.assign(sparse=f["sparse"].astype(int)), r"column 'sparse' must be bool"),
    (lambda f: f.assign(time_s=["x", "y"]), r"column 'time_s' must be numeric"),
    (lambda f: f.assign(dtype=["nvfp4", np.nan]), r"column 'dtype' row 1: expected a string"),
    (lambda f: f.assign(rank=[0, -1]), r"column 'rank' row 1 \(op 'b'\): rank must be >= 0"),
    (lambda f: f.assign(start_s=[0.0, math.nan]), r"column 'start_s' row 1 .*finite"),
    (lambda f: f.assign(bytes_hbm=[0.0, -5.0]), r"column 'bytes_hbm' row 1 \(op 'b'\): must be >= 0 \(or NaN\), got -5.0$"),
    (lambda f: f.assign(energy_j=[math.inf, 1.0]), r"column 'energy_j' row 0"),
    (lambda f: f.assign(end_s=[2e-3, 3.5e-3]), r"column 'end_s' row 1 .*start_s \+ time_s"),
    (lambda f: f.assign(name=["a", "a"]), r"row 1: op 'a' appears twice on rank 0"),
    (lambda f: f.assign(start_s=[0.0, 1e-3], end_s=[2e-3, 2e-3]),
     r"ops 'a' .* and 'b' \(from 0.001 s\) overlap on rank 0 stream 'compute'"),
])
def test_validator_names_column_row_and_value(mutate, message):
    bad = mutate(two_ops())
    with pytest.raises(BlackwellSimError, match=message) as info:
        validate_frame(bad)
    assert "\n" not in str(info.value)


def test_validator_accepts_touching_ops_extra_columns_and_overlap_across_streams():
    f = two_ops()
    f["note"] = ["x", "y"]                     # extra columns are allowed
    validate_frame(f)
    side = f.assign(stream=["compute", "copy"], start_s=[0.0, 0.5e-3], end_s=[2e-3, 1.5e-3])
    validate_frame(side)                       # different streams may overlap
    other_rank = f.assign(rank=[0, 1], start_s=[0.0, 0.5e-3], end_s=[2e-3, 1.5e-3])
    validate_frame(other_rank)                 # different ranks may overlap


def test_validator_rejects_non_frames():
    with pytest.raises(BlackwellSimError, match="expected a pandas DataFrame, got list"):
        validate_frame([])


def test_csv_round_trip_is_exact(tmp_path):
    f = results_frame([
        {"name": "1", "op": "gemm", "start_s": 1 / 3, "time_s": 1e-7 / 3, "flops": 3.0, "peak_tflops": 7.0,
         "dtype": "bf16", "sparse": True, "measured_s": 2e-7, "cached": True, "sqnr_db": 20.25},
        {"name": "c,2", "op": "all_reduce", "rank": 3, "stream": "comm", "start_s": 0.0, "time_s": 0.5,
         "bytes_fabric": 1e9, "layer": "L 1", "tile": "ring"},
    ])
    path = write_results_csv(f, tmp_path / "results.csv")
    header = path.read_text().splitlines()[0]
    assert header == ",".join(COLUMN_NAMES)
    back = read_results_csv(path)
    pd.testing.assert_frame_equal(back, f, check_exact=True)


def test_atomic_writer_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def boom(fh):
        fh.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, boom)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_empty_frame_report_folder(tmp_path):
    import json

    import blackwell_sim as bs
    from blackwell_sim.report import write_report

    out = write_report(empty_frame(), bs.load_config("b200"), tmp_path)
    assert out["ops"] == 0 and out["achieved_tflops"] is None and out["formats"] == {}
    pd.testing.assert_frame_equal(read_results_csv(tmp_path / "results.csv"), empty_frame(), check_exact=True)
    doc = json.loads((tmp_path / "timeline.json").read_text())
    assert doc["traceEvents"] == []
    assert (tmp_path / "roofline.png").stat().st_size > 0
