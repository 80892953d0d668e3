"""How a measurement harness timed a call, so that a prediction compares like with like.

The calibration files were timed by ``bench()`` of ../shared/tools/measure_hopper.py (and our
benchmarks/measure_h100.py): ``warmup_calls`` untimed calls, then ``timed_calls`` calls, each
between two CUDA events with a synchronize after it; the median is reported. Two effects follow
that a kernel model alone does not have, both modelled here by name:

- **host dispatch**: the start event is recorded on an idle GPU, so every timed call includes the
  host's time to dispatch the PyTorch call (``HOST_DISPATCH_US``, measured per API as
  ``median_s - median_s_queued`` in benchmarks/data/h100_sxm_extra*.jsonl; reproduce with
  ``python benchmarks/host_dispatch.py``).
- **burst clock**: the calls follow each other closely, so the GPU is loaded from the first call
  on; calls that start within ``power.response_ms`` of the start of the load run at the burst
  clock, later ones at the sustained clock (engine/power.py). The median picks whichever state
  the middle timed call ran in.
- **clock hold**: a file's rows ran back to back, so a row can start while the controller still
  holds the lower clock that earlier power-limited rows left (``ClockHold``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blackwell_sim.config.units import PowerConfig
from blackwell_sim.errors import BlackwellSimError

#: Host dispatch latency per PyTorch API on the H100 machine, in microseconds (see module doc).
HOST_DISPATCH_US = {
    "matmul": 11.9,        # torch.matmul(out=) bf16/fp16: cuBLAS (n=40 rows)
    "matmul_tf32": 18.8,   # torch.matmul on fp32 with allow_tf32 (n=4)
    "bmm": 14.1,           # torch.bmm (n=6)
    "scaled_mm": 20.2,     # torch._scaled_mm fp8 (n=10)
    "copy": 8.2,           # Tensor.copy_ (n=10)
    "elementwise": 8.6,    # y = 2*x, a + b (n=6)
    # F.scaled_dot_product_attention per SDPA backend, forward / forward + backward through autograd:
    # the calibration file's medians minus the profiled GPU time of the same calls' kernels
    # (benchmarks/data/h100_sxm_attention.jsonl), rows under 0.5 / 1.5 ms (engine/kernels/attention_validate.py)
    "sdpa_flash_fwd": 16.8,
    "sdpa_cudnn_fwd": 20.5,
    "sdpa_flash_fwdbwd": 51.7,
    "sdpa_cudnn_fwdbwd": 56.5,
}


@dataclass(frozen=True)
class TimedCall:
    """One benchmarked call: its API and how many calls the harness ran."""

    api: str
    warmup_calls: int = 5
    timed_calls: int = 30
    preceding_load_s: float = 0.0   #: GPU already busy this long when the warm-up started

    def __post_init__(self) -> None:
        if self.api not in HOST_DISPATCH_US:
            raise BlackwellSimError(f"harness: unknown API {self.api!r}; known: {', '.join(HOST_DISPATCH_US)}")
        if self.timed_calls < 1 or self.warmup_calls < 0:
            raise BlackwellSimError(f"harness: need timed_calls >= 1 and warmup_calls >= 0, got "
                                    f"{self.timed_calls} and {self.warmup_calls}")

    @property
    def host_dispatch_s(self) -> float:
        return HOST_DISPATCH_US[self.api] * 1e-6


def call_gpu_s(call: TimedCall, burst_gpu_s: float, sustained_gpu_s: float, response_s: float,
               held_gpu_s: tuple[float, float] | None = None, held_window_s: float = 0.0) -> np.ndarray:
    """The GPU time of every call the harness made (warm-up first), given one call's GPU time in
    each power state, and (``held_gpu_s``: burst, sustained) at a clock the controller still holds
    from earlier work (ClockHold): calls that start within ``held_window_s`` run at that."""
    n = call.warmup_calls + call.timed_calls
    period_burst = call.host_dispatch_s + burst_gpu_s
    # calls start every period_burst while in the burst window; the first call starting at or
    # after response_s (counting the preceding load) runs at the sustained clock, as do all later
    remaining = response_s - call.preceding_load_s
    burst_calls = 0 if remaining <= 0 else min(n, int(np.ceil(remaining / period_burst)))
    burst = np.arange(n) < burst_calls
    gpu = np.where(burst, burst_gpu_s, sustained_gpu_s)
    if held_gpu_s is not None and held_window_s > 0:
        held = np.where(burst, held_gpu_s[0], held_gpu_s[1])
        starts = np.concatenate(([0.0], np.cumsum(held + call.host_dispatch_s)[:-1]))
        gpu = np.where(starts < held_window_s, held, gpu)
    return gpu


def median_call_s(call: TimedCall, burst_gpu_s: float, sustained_gpu_s: float, response_s: float,
                  held_gpu_s: tuple[float, float] | None = None, held_window_s: float = 0.0) -> float:
    """The median a harness reports (arguments as for :func:`call_gpu_s`)."""
    gpu = call_gpu_s(call, burst_gpu_s, sustained_gpu_s, response_s, held_gpu_s, held_window_s)
    return float(np.median(gpu[call.warmup_calls:])) + call.host_dispatch_s


def load_duration_s(call: TimedCall, gpu_s: float) -> float:
    """How long a harness keeps the GPU loaded for ``call`` (for the next measurement's history)."""
    return (call.warmup_calls + call.timed_calls) * (call.host_dispatch_s + gpu_s)


#: Host time before the first call of a new kind and dtype in a process, GPU idle meanwhile: the
#: library loads that dtype's kernels (CUDA lazy module loading). Warm-up time beyond five calls'
#: GPU time for the first bf16, fp16 and tf32 rows of the calibration script's loop replayed:
#: 103, 86 and 67 ms; 0-4 ms for other rows, 14-17 ms for two with another new kernel family
#: (benchmarks/data/h100_row_gaps.jsonl); the least of the three.
FIRST_USE_IDLE_S = 0.067


@dataclass
class ClockHold:
    """The clock the power controller still holds from the rows before, in one measurement file
    whose rows ran back to back.

    Power-limited work leaves the clock low for a while after it ends, even under light work
    (the controller reacts to power averaged over a trailing window): it holds
    ``power.hold_clock_mhz`` through ``power.hold_ms`` of lighter work, then lets the clock climb.
    Idle time uses the window up too, such as the library loading a new dtype's kernels before its
    first call (``FIRST_USE_IDLE_S``). Measured on H100 (benchmarks/measure_h100_hold.py,
    measure_h100_recovery.py): a light GEMM right after 0.05-0.4 s of 8192^3 bf16 runs at
    1544-1678 MHz, at 1980 MHz after 50 ms idle, and held for ~34 ms of back-to-back light calls;
    in the calibration script's order 2500x4500x3500 ran at 1530 MHz after 9216^3, at 1980 MHz
    alone (h100_order.jsonl). Power-limited rows restart the window; lighter ones use it up.
    """

    clock_mhz: float | None = None
    window_s: float = 0.0

    def after(self, power: PowerConfig, power_limited: bool, load_s: float) -> None:
        """Advance past one row that kept the GPU busy ``load_s``."""
        if power_limited and power.hold_clock_mhz is not None and power.hold_ms > 0:
            self.clock_mhz, self.window_s = power.hold_clock_mhz, power.hold_ms * 1e-3
        else:
            self.idle(load_s)

    def end(self) -> None:
        """A pause longer than any hold (a profiler pass between rows)."""
        self.clock_mhz, self.window_s = None, 0.0

    def idle(self, seconds: float) -> None:
        """``seconds`` without power-limited work (idle, or a harness's own pause)."""
        self.window_s = max(0.0, self.window_s - seconds)
        if self.window_s == 0.0:
            self.clock_mhz = None
