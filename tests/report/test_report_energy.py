"""kernel_energy_j: the power model's board power times the kernel's duration, term by term."""

from __future__ import annotations

import math

import pytest

import blackwell_sim as bs
from blackwell_sim.engine.kernels.gemm import simulate_gemm
from blackwell_sim.engine.kernels.memcpy import simulate_memcpy
from blackwell_sim.report import kernel_energy_j


@pytest.fixture(scope="module")
def b200():
    return bs.load_config("b200")


def test_copy_energy_is_idle_plus_sms_plus_memory_traffic(b200):
    r = simulate_memcpy(b200, 1 << 28)
    p = b200.power
    scale = r.clock_mhz / b200.sm.max_boost_clock_mhz
    expected_w = (p.idle_w + p.sm_active_w * 1.0 * scale ** (1 + p.voltage_exponent)
                  + (r.bytes["hbm"] * p.hbm_pj_per_byte + r.bytes["l2"] * p.l2_pj_per_byte) * 1e-12 / r.time_s)
    assert kernel_energy_j(b200, r) == pytest.approx(expected_w * r.time_s, rel=1e-12)


def test_gemm_tensor_term_uses_the_format_energy_per_flop(b200):
    r = simulate_gemm(b200, 2048, 2048, 2048, "nvfp4")
    p = b200.power
    scale = r.clock_mhz / b200.sm.max_boost_clock_mhz
    tensor_j = r.flops * p.tensor_pj_per_flop["fp4"] * 1e-12 * p.data_activity * scale ** p.voltage_exponent
    assert kernel_energy_j(b200, r, "nvfp4") - kernel_energy_j(b200, r) == pytest.approx(tensor_j, rel=1e-9)
    assert kernel_energy_j(b200, r, "no-such-dtype") == kernel_energy_j(b200, r)


def test_data_activity_scales_only_the_tensor_term():
    lo = bs.load_config("b200", overrides={"power.data_activity": 0.5})
    hi = bs.load_config("b200", overrides={"power.data_activity": 1.0})
    r = simulate_gemm(hi, 2048, 2048, 2048, "bf16")
    tensor_hi = kernel_energy_j(hi, r, "bf16") - kernel_energy_j(hi, r)
    tensor_lo = kernel_energy_j(lo, r, "bf16") - kernel_energy_j(lo, r)
    assert tensor_lo == pytest.approx(tensor_hi / 2) and tensor_hi > 0


def test_system_config_uses_its_gpu_and_zero_time_is_nan(b200):
    r = simulate_memcpy(b200, 1 << 20)
    assert kernel_energy_j(bs.load_config("hgx-b200-8"), r) == pytest.approx(kernel_energy_j(b200, r))
    r.time_s = 0.0
    assert math.isnan(kernel_energy_j(b200, r))
