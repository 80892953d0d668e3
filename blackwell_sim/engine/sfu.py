"""Special-function unit (MUFU) and the CUDA-core work of a softmax, in cycles per SM.

An attention kernel's non-matmul work per score element runs on two pipes of the SM:

- the MUFU (special-function unit): one ``ex2`` per element, ``sm.sfu_ops_per_clock`` results
  per clock per SM (16 on Hopper and Blackwell: CUDA C++ Programming Guide, arithmetic
  instruction throughput table; FlashAttention-4 blog, Together AI 2025: "the exponential unit
  (MUFU) stayed at 16 ops/clock/SM" while BF16 tensor throughput went from 1 to 2.25 PFLOPS);
- the FP32 pipe: the softmax instruction mix (row max, scale-and-subtract FMA, row-sum add,
  bf16 pack/convert, causal masking on diagonal tiles), ``sm.fp32_flops_per_clock / 2`` lanes.

FlashAttention-4 moves a fraction of the exponentials onto the FMA pipe (Cody-Waite range
reduction plus a degree-3 polynomial, FA4 blog): that fraction costs :data:`EMULATED_EXP_OPS`
FP32-pipe instructions each instead of one MUFU slot. The two pipes run concurrently, so the
softmax time of a block is the slower of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from blackwell_sim.config.units import SMConfig

#: FP32-pipe instructions of one emulated exp2: split x into integer and fraction (FLOOR/F2I and
#: FADD), a degree-3 Horner polynomial on the fraction (3 FFMA), exponent insertion (SHL + IADD):
#: FlashAttention-4 blog (Together AI, 2025) "degree-3 polynomial on the FMA units".
EMULATED_EXP_OPS = 7


@dataclass(frozen=True)
class SoftmaxMix:
    """Per score element: FP32-pipe instructions besides the exponential, and exps per element."""

    fp32_ops_per_element: float
    exps_per_element: float = 1.0


class SFU:
    """Per-SM exponential and FP32-pipe throughput (cycles for a block of score elements)."""

    def __init__(self, sm: SMConfig) -> None:
        self.sfu_ops_per_clock = sm.sfu_ops_per_clock
        self.fp32_lanes = sm.fp32_flops_per_clock / 2  # an FMA counts 2 FLOP per lane

    def exp_cycles(self, elements: float, emulated_fraction: float = 0.0) -> float:
        """MUFU cycles for the hardware share of ``elements`` exponentials."""
        return elements * (1.0 - emulated_fraction) / self.sfu_ops_per_clock

    def fp32_cycles(self, elements: float, mix: SoftmaxMix, emulated_fraction: float = 0.0) -> float:
        """FP32-pipe cycles: the instruction mix plus the emulated share of the exponentials."""
        ops = mix.fp32_ops_per_element + mix.exps_per_element * emulated_fraction * EMULATED_EXP_OPS
        return elements * ops / self.fp32_lanes

    def softmax_cycles(self, elements: float, mix: SoftmaxMix,
                       emulated_fraction: float = 0.0) -> tuple[float, str]:
        """Cycles of the softmax work on ``elements`` scores and which pipe limits it."""
        exp = self.exp_cycles(elements * mix.exps_per_element, emulated_fraction)
        alu = self.fp32_cycles(elements, mix, emulated_fraction)
        return (exp, "sfu") if exp >= alu else (alu, "fp32")
