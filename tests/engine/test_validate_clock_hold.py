"""validate carries the power controller's held clock from row to row of a file (harness.ClockHold)."""

import json

import pytest

from blackwell_sim.validate import validate

HEAVY = {"kind": "gemm", "dtype": "bf16", "m": 8192, "n": 8192, "k": 8192, "median_s": 1.5e-3}
# misaligned (sm80 fallback kernel): far below the power limit, runs at max boost alone
LIGHT = {"kind": "gemm", "dtype": "bf16", "m": 2500, "n": 4500, "k": 3500, "median_s": 4.2e-4}


def _predicted(tmp_path, config, rows, name="f.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [r["predicted_s"] for r in validate(path, config)["rows"]]


def test_a_light_row_right_after_power_limited_work_runs_at_the_held_clock(tmp_path, h100):
    alone = _predicted(tmp_path, h100, [LIGHT])[0]
    after_heavy = _predicted(tmp_path, h100, [HEAVY, LIGHT])[1]
    boost, held = h100.sm.max_boost_clock_mhz, h100.power.hold_clock_mhz
    # the fallback kernel's time is nearly all clock-bound: slower by close to boost/held
    assert after_heavy > alone * 1.1
    assert after_heavy <= alone * boost / held * 1.01


def test_idle_before_a_row_or_a_profiler_pass_after_the_last_lets_the_clock_recover(tmp_path, h100):
    alone = _predicted(tmp_path, h100, [LIGHT])[0]
    rested = _predicted(tmp_path, h100, [HEAVY, {**LIGHT, "idle_before_s": 0.05}])[1]
    profiled = _predicted(tmp_path, h100, [{**HEAVY, "kernels": ["nvjet_sm90_tst_256x128"]}, LIGHT])[1]
    assert rested == pytest.approx(alone) and profiled == pytest.approx(alone)
    # a pause shorter than the hold leaves part of it
    short = _predicted(tmp_path, h100, [HEAVY, {**LIGHT, "idle_before_s": 0.001}])[1]
    assert short > alone * 1.1


def test_without_a_measured_hold_row_order_does_not_matter(tmp_path, b200):
    heavy = {**HEAVY, "median_s": 1e-3}
    light = {**LIGHT, "median_s": 3e-4}
    assert _predicted(tmp_path, b200, [heavy, light])[1] == pytest.approx(_predicted(tmp_path, b200, [light])[0])


def test_a_bad_idle_field_skips_the_row_with_a_reason(tmp_path, h100):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**LIGHT, "idle_before_s": -1}) + "\n")
    report = validate(path, h100)
    assert report["rows"] == []
    assert "idle_before_s" in report["skipped"][0]["reason"] and "-1" in report["skipped"][0]["reason"]


def test_the_first_row_of_a_new_dtype_starts_after_the_library_has_loaded_its_kernels(tmp_path, h100):
    # loading the fp16 kernels keeps the GPU idle longer than the hold lasts (harness.FIRST_USE_IDLE_S)
    from blackwell_sim.harness import FIRST_USE_IDLE_S

    assert FIRST_USE_IDLE_S > h100.power.hold_ms * 1e-3
    light_fp16 = {**LIGHT, "dtype": "fp16"}
    alone = _predicted(tmp_path, h100, [light_fp16])[0]
    assert _predicted(tmp_path, h100, [HEAVY, light_fp16])[1] == pytest.approx(alone)
