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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def median_call_s(call: TimedCall, burst_gpu_s: float, sustained_gpu_s: float, response_s: float) -> float:
    """The median a harness reports, given the GPU time of one call in each power state."""
    n = call.warmup_calls + call.timed_calls
    period_burst = call.host_dispatch_s + burst_gpu_s
    # calls start every period_burst while in the burst window; the first call starting at or
    # after response_s (counting the preceding load) runs at the sustained clock, as do all later
    remaining = response_s - call.preceding_load_s
    burst_calls = 0 if remaining <= 0 else min(n, int(np.ceil(remaining / period_burst)))
    gpu = np.where(np.arange(n) < burst_calls, burst_gpu_s, sustained_gpu_s)[call.warmup_calls:]
    return float(np.median(gpu)) + call.host_dispatch_s


def load_duration_s(call: TimedCall, gpu_s: float) -> float:
    """How long a harness keeps the GPU loaded for ``call`` (for the next measurement's history)."""
    return (call.warmup_calls + call.timed_calls) * (call.host_dispatch_s + gpu_s)
