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


def test_calls_inside_the_held_window_run_at_the_held_time():
    from blackwell_sim.harness import call_gpu_s

    call = TimedCall("matmul", warmup_calls=0, timed_calls=10)
    # window covers the calls starting at 0, 1, 2 periods (3.5 periods long)
    gpu = call_gpu_s(call, 1e-3, 1e-3, response_s=1.0, held_gpu_s=(1.5e-3, 1.5e-3),
                     held_window_s=2.5 * (1.5e-3 + call.host_dispatch_s))
    assert list(gpu[:3]) == [1.5e-3] * 3 and list(gpu[3:]) == [1e-3] * 7
    # no window: the held time is never used
    assert list(call_gpu_s(call, 1e-3, 1e-3, 1.0, (1.5e-3, 1.5e-3), 0.0)) == [1e-3] * 10


def test_clock_hold_starts_after_power_limited_work_and_is_used_up_by_lighter_work(h100):
    from blackwell_sim.harness import ClockHold

    hold = ClockHold()
    hold.after(h100.power, power_limited=False, load_s=0.01)
    assert hold.clock_mhz is None                        # nothing heavy yet: no hold
    hold.after(h100.power, power_limited=True, load_s=0.05)
    assert hold.clock_mhz == h100.power.hold_clock_mhz
    assert hold.window_s == pytest.approx(h100.power.hold_ms * 1e-3)
    hold.after(h100.power, power_limited=False, load_s=0.01)
    assert hold.clock_mhz == h100.power.hold_clock_mhz   # 10 of its 34 ms used
    hold.idle(0.05)
    assert hold.clock_mhz is None and hold.window_s == 0.0


def test_a_gpu_without_a_measured_hold_never_holds(b200):
    from blackwell_sim.harness import ClockHold

    assert b200.power.hold_clock_mhz is None
    hold = ClockHold()
    hold.after(b200.power, power_limited=True, load_s=1.0)
    assert hold.clock_mhz is None
