"""Clock and power: the SM clock a kernel runs at, in a burst and sustained.

Board power at SM clock f (CMOS dynamic power a*C*V^2*f, with V roughly proportional to f across
the DVFS range, so energy per operation scales as (f/f_max)^voltage_exponent):

    P(f) = idle_w
         + sm_active_w * sm_busy * (f/f_max)^(1+e)
         + tensor_flops_per_s(f) * tensor_pj_per_flop * data_activity * (f/f_max)^e
         + hbm_bytes_per_s * hbm_pj_per_byte + l2_bytes_per_s * l2_pj_per_byte

with the tensor FLOP rate proportional to f for a given tensor-pipe busy fraction.

Two power states (``POWER_STATES``):

- ``sustained``: the power manager runs at the highest clock <= max boost with P(f) <= limit_w
  (never below min_clock_mhz). Random data toggles more bits than zeros (H200: 788 vs 894 TFLOPS),
  hence ``data_activity``.
- ``burst``: for the first ``response_ms`` after heavy work starts from rest the controller has not
  pulled the clock down yet (H100 cold start: 1980 MHz samples up to 97 ms, throttled by 147 ms;
  benchmarks/data/README.md), so the kernel runs at the clock that fits the short-term limit
  ``burst_limit_w`` (instantaneous power peaked at 804-882 W in those windows).

Both are bounded by the tensor-activity clock cap of the math class (``activity_clock_cap_mhz``:
H100 holds 1635 MHz under bf16 GEMMs on all-zero data at 446 W, far below its 700 W limit). The
cap was measured on wgmma kernels; cuBLAS's sm80 fallback kernels (``mma.sync``) run at 1980 MHz
(benchmarks/data/h100_recovery.jsonl), so their activity is not capped.
"""

from __future__ import annotations

from dataclasses import dataclass

from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.errors import BlackwellSimError

BISECTION_STEPS = 40
POWER_STATES = ("sustained", "burst")


@dataclass(frozen=True)
class Activity:
    """What a kernel did, measured by a simulation at ``clock_mhz``."""

    clock_mhz: float
    elapsed_s: float
    tensor_flops: float
    math_class: str
    sm_busy: float          #: fraction of SM-time with a CTA resident
    hbm_bytes: float
    l2_bytes: float
    capped: bool = True     #: bounded by the math class's tensor-activity clock cap (wgmma / tcgen05)


def power_w(gpu: GPUConfig, act: Activity, clock_mhz: float) -> float:
    """Board power if the kernel ran at ``clock_mhz`` (compute scales with the clock, memory does not)."""
    p = gpu.power
    fmax = gpu.sm.max_boost_clock_mhz
    scale = clock_mhz / fmax
    if act.elapsed_s <= 0:
        return p.idle_w
    flops_rate = act.tensor_flops / act.elapsed_s * (clock_mhz / act.clock_mhz)
    pj = p.tensor_pj_per_flop.get(act.math_class, max(p.tensor_pj_per_flop.values()))
    tensor_w = flops_rate * pj * 1e-12 * p.data_activity * scale ** p.voltage_exponent
    sm_w = p.sm_active_w * act.sm_busy * scale ** (1 + p.voltage_exponent)
    mem_w = (act.hbm_bytes * p.hbm_pj_per_byte + act.l2_bytes * p.l2_pj_per_byte) * 1e-12 / act.elapsed_s
    return p.idle_w + sm_w + tensor_w + mem_w


def boost_clock_mhz(gpu: GPUConfig, math_class: str | None) -> float:
    """Max boost clock, lowered to the tensor-activity cap of ``math_class`` (None: no tensor work)."""
    fmax = gpu.sm.max_boost_clock_mhz
    cap = gpu.power.activity_clock_cap_mhz.get(math_class, fmax) if math_class else fmax
    return min(fmax, cap)


def sustained_clock_mhz(gpu: GPUConfig, act: Activity, limit_w: float | None = None) -> float:
    """Highest clock in [min_clock_mhz, boost] whose power fits ``limit_w`` (default: the limit)."""
    limit_w = gpu.power.limit_w if limit_w is None else limit_w
    hi = boost_clock_mhz(gpu, act.math_class if act.tensor_flops > 0 and act.capped else None)
    lo = min(gpu.power.min_clock_mhz, hi)
    if power_w(gpu, act, hi) <= limit_w:
        return hi
    if power_w(gpu, act, lo) > limit_w:
        return lo
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if power_w(gpu, act, mid) <= limit_w:
            lo = mid
        else:
            hi = mid
    return lo


def clock_mhz(gpu: GPUConfig, act: Activity, power_state: str = "sustained") -> float:
    """The SM clock for ``act`` in ``power_state`` ("sustained" or "burst")."""
    if power_state == "sustained":
        return sustained_clock_mhz(gpu, act)
    if power_state == "burst":
        burst_w = gpu.power.burst_limit_w
        return sustained_clock_mhz(gpu, act, max(gpu.power.limit_w, burst_w or 0.0))
    raise BlackwellSimError(f"power_state must be one of {', '.join(POWER_STATES)}, got {power_state!r}")
