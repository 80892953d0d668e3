"""Clock and power: the sustained SM clock under the board power limit.

Board power at SM clock f (CMOS dynamic power a*C*V^2*f, with V roughly proportional to f across
the DVFS range, so energy per operation scales as (f/f_max)^voltage_exponent):

    P(f) = idle_w
         + sm_active_w * sm_busy * (f/f_max)^(1+e)
         + tensor_flops_per_s(f) * tensor_pj_per_flop * data_activity * (f/f_max)^e
         + hbm_bytes_per_s * hbm_pj_per_byte + l2_bytes_per_s * l2_pj_per_byte

with the tensor FLOP rate proportional to f for a given tensor-pipe busy fraction. The power
manager runs at the highest clock <= max boost with P(f) <= limit_w (never below min_clock_mhz).
Random data toggles more bits than zeros (H200: 788 vs 894 TFLOPS), hence ``data_activity``.
"""

from __future__ import annotations

from dataclasses import dataclass

from blackwell_sim.config.gpu import GPUConfig

BISECTION_STEPS = 40


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


def sustained_clock_mhz(gpu: GPUConfig, act: Activity) -> float:
    """Highest clock in [min_clock_mhz, max_boost_clock_mhz] whose power fits the limit."""
    lo, hi = gpu.power.min_clock_mhz, gpu.sm.max_boost_clock_mhz
    if power_w(gpu, act, hi) <= gpu.power.limit_w:
        return hi
    if power_w(gpu, act, lo) > gpu.power.limit_w:
        return lo
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if power_w(gpu, act, mid) <= gpu.power.limit_w:
            lo = mid
        else:
            hi = mid
    return lo
