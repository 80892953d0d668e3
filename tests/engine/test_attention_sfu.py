"""The special-function unit model: exp throughput, FP32-pipe mix, software exp emulation."""

from __future__ import annotations

import pytest

from blackwell_sim import load_config
from blackwell_sim.engine.kernels.attention_model import best_emulated_fraction
from blackwell_sim.engine.sfu import EMULATED_EXP_OPS, SFU, SoftmaxMix


@pytest.fixture(scope="module")
def sfu():
    return SFU(load_config("b200").sm)  # 16 ex2 / clk / SM, 128 FP32 lanes


def test_exp_and_fp32_cycles(sfu):
    assert sfu.exp_cycles(16384) == 1024
    assert sfu.exp_cycles(16384, emulated_fraction=0.25) == 768
    mix = SoftmaxMix(4.0)
    assert sfu.fp32_cycles(16384, mix) == 512
    assert sfu.fp32_cycles(16384, mix, 0.5) == pytest.approx(16384 * (4 + 0.5 * EMULATED_EXP_OPS) / 128)


def test_softmax_is_the_slower_pipe(sfu):
    assert sfu.softmax_cycles(16384, SoftmaxMix(4.0)) == (1024, "sfu")
    assert sfu.softmax_cycles(16384, SoftmaxMix(12.0)) == (1536, "fp32")


def test_emulation_balances_the_pipes_up_to_its_cap(sfu):
    mix = SoftmaxMix(3.6)
    f = best_emulated_fraction(sfu, mix, 1.0)
    assert sfu.exp_cycles(1000, f) == pytest.approx(sfu.fp32_cycles(1000, mix, f))
    assert best_emulated_fraction(sfu, mix, 0.1) == 0.1
    assert best_emulated_fraction(sfu, mix, 0.0) == 0.0
    # an FP32 pipe already busier than the MUFU gets no emulated exps
    assert best_emulated_fraction(sfu, SoftmaxMix(10.0), 1.0) == 0.0
