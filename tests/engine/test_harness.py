"""The measurement-harness model: host dispatch and the burst/sustained clock of a timed loop."""

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.harness import HOST_DISPATCH_US, TimedCall, load_duration_s, median_call_s


def test_short_loop_runs_at_the_burst_clock_plus_dispatch():
    call = TimedCall("matmul", warmup_calls=5, timed_calls=40)
    got = median_call_s(call, burst_gpu_s=100e-6, sustained_gpu_s=130e-6, response_s=0.1)
    assert got == pytest.approx(100e-6 + HOST_DISPATCH_US["matmul"] * 1e-6)


def test_long_calls_median_switches_to_sustained_after_the_response_window():
    call = TimedCall("matmul", warmup_calls=5, timed_calls=20)
    # 10 ms calls: only calls starting before 100 ms (10 of 25) are in burst: the median is sustained
    assert median_call_s(call, 10e-3, 12e-3, 0.1) == pytest.approx(12e-3 + call.host_dispatch_s)
    # no response window at all: everything sustained
    assert median_call_s(TimedCall("copy"), 1e-3, 2e-3, 0.0) == pytest.approx(2e-3 + 8.2e-6)


def test_preceding_load_uses_up_the_burst_window():
    fresh = TimedCall("matmul")
    loaded = TimedCall("matmul", preceding_load_s=load_duration_s(fresh, 5e-3))
    assert load_duration_s(fresh, 5e-3) == pytest.approx(35 * (5e-3 + fresh.host_dispatch_s))
    assert median_call_s(fresh, 1e-3, 2e-3, 0.1) < median_call_s(loaded, 1e-3, 2e-3, 0.1)


def test_bad_harness_arguments_are_rejected():
    with pytest.raises(BlackwellSimError, match="unknown API 'conv'"):
        TimedCall("conv")
    with pytest.raises(BlackwellSimError, match="timed_calls"):
        TimedCall("matmul", timed_calls=0)
