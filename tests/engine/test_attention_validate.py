"""validate's attention rows: both quantities, the harness model, bad rows, and the calibration bar."""

from __future__ import annotations

import json

import pytest

from blackwell_sim.engine.kernels.attention_validate import predict_row
from blackwell_sim.harness import HOST_DISPATCH_US, TimedCall, median_call_s
from blackwell_sim.errors import BlackwellSimError
from conftest import hopper_file
from blackwell_sim.validate import validate


ROW = {"kind": "attention", "backend": "cudnn", "b": 4, "h": 32, "s": 1024, "d": 128, "causal": False,
       "dtype": "bf16", "fwd_median_s": 1.4e-4, "fwdbwd_median_s": 6.9e-4, "_line": 1}


def test_a_row_predicts_forward_and_forward_backward(h100):
    out = predict_row(h100, ROW)
    assert [q for q, *_ in out] == ["fwd_median_s", "fwdbwd_median_s"]
    (_, fwd_meas, fwd_pred, fwd), (_, fb_meas, fb_pred, bwd) = out
    assert (fwd_meas, fb_meas) == (1.4e-4, 6.9e-4)
    # forward: GPU time of the call plus the host dispatch the harness's events include
    assert fwd_pred > fwd.time_s + HOST_DISPATCH_US["sdpa_cudnn_fwd"] * 1e-6 * 0.99
    # forward + backward: more than forward + backward kernels (gradient accumulation, dispatch)
    assert fb_pred > fwd_pred + bwd.time_s
    assert fwd.details["variant"] == "fa3"


def test_backends_map_to_variants(h100):
    flash = predict_row(h100, {**ROW, "backend": "flash"})
    assert flash[0][3].details["variant"] == "fa2" and flash[1][3].details["variant"] == "fa2"
    eff = predict_row(h100, {**ROW, "backend": "efficient"})
    assert eff[0][3].details["variant"] == "efficient"


def test_optional_gqa_and_decode_fields_are_read(h100):
    decode = predict_row(h100, {**ROW, "s": 1, "h_kv": 8, "s_kv": 8192, "fwdbwd_median_s": 1e-3})
    assert decode[0][3].details["packed_gqa"] and decode[0][3].bound == "hbm"


@pytest.mark.parametrize("change,needle", [
    ({"backend": "math"}, "backend must be one of"),
    ({"d": 0}, "field 'd' must be a positive integer"),
    ({"h_kv": 5}, "multiple of kv_heads"),
    ({"causal": "yes"}, "'causal' must be true or false"),
    ({"fwd_median_s": -1.0}, "'fwd_median_s' must be a positive number"),
])
def test_bad_rows_raise_one_clear_error(h100, change, needle):
    with pytest.raises(BlackwellSimError, match=needle):
        predict_row(h100, {**ROW, **change})


def test_median_call_picks_the_middle_timed_calls_power_state():
    # 35 calls of 1 ms + 20 us dispatch inside a 100 ms window: all burst
    call = TimedCall("sdpa_flash_fwd", warmup_calls=5, timed_calls=30)
    host = call.host_dispatch_s
    assert median_call_s(call, 1e-3, 2e-3, 0.1) == pytest.approx(1e-3 + host)
    # 35 calls of 7 ms: calls 0-14 start inside the window, so 10 of the 30 timed calls are burst
    assert median_call_s(call, 7e-3, 8e-3, 0.1) == pytest.approx(8e-3 + host)
    # 35 calls of 5 ms: calls 0-19 are burst, 15 of 30 timed: the median is between the two
    assert median_call_s(call, 5e-3, 6e-3, 0.1) == pytest.approx(5.5e-3 + host)


def test_validate_lists_attention_rows_and_skips_bad_ones(tmp_path, h100):
    rows = [ROW | {"_line": None}, {**ROW, "backend": "math"}]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "_line"}) for r in rows) + "\n")
    report = validate(path, h100)
    assert [r["quantity"] for r in report["rows"]] == ["fwd_median_s", "fwdbwd_median_s"]
    assert len(report["skipped"]) == 1 and "backend must be one of" in report["skipped"][0]["reason"]


def test_calibration_file_meets_the_bar(repo_root, h100):
    """Issue 5's bar on shared/data/hopper/h100_sxm_calibration.jsonl: forward MAPE <= 7% per backend,
    forward+backward <= 10%."""
    path = hopper_file("h100_sxm_calibration.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if '"attention"' in line]
    errors: dict = {}
    for i, row in enumerate(rows):
        for quantity, measured, predicted, _ in predict_row(h100, {**row, "_line": i}):
            errors.setdefault((row["backend"], quantity), []).append(abs(predicted / measured - 1))
    mape = {k: sum(v) / len(v) for k, v in errors.items()}
    assert set(mape) == {(b, q) for b in ("flash", "cudnn") for q in ("fwd_median_s", "fwdbwd_median_s")}
    for (backend, quantity), value in mape.items():
        assert value <= (0.07 if quantity == "fwd_median_s" else 0.10), (backend, quantity, value)
