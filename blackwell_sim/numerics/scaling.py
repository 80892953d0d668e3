"""Scale-factor rules: MX (E8M0, floor / rceil), NVFP4 (UE4M3 + fp32, three library policies) and
per-tensor current scaling. Every function works on float32 arrays of block amaxes and reproduces
the fp32 operation order of the cited source, because the order decides the last bit.

Sources:

* MX ``floor``: OCP Microscaling Formats (MX) Specification v1.0, section 6.3: shared exponent
  ``floor(log2(amax)) - emax_elem``; zero blocks get scale byte 0x00 and NaN blocks 0xFF
  (DESIGN.md). The exponent is clamped to the E8M0 range [-127, 127] (codes 0x00..0xFE).
* MX ``rceil``: TransformerEngine ``common/util/ptx.cuh`` (``float_to_e8m0``) applied to
  ``amax * (1 / max_norm)`` as in TE's MXFP8 cast kernels: round the quotient *up* to a power of
  two with ``cvt.rp.satfinite.ue8m0x2.f32``. Elements are then multiplied by the exact power of
  two ``2^(127 - code)``; TE's ``exp2f_rcp`` instead uses 1.0 for code 0 and 0.0 for code 254
  (``utils.cuh``), which only matters for blocks with amax below ``2^-127 * max_norm`` or Inf.
* NVFP4 ``te`` (default): TransformerEngine ``common/cast/nvfp4/core_nvfp4.cuh``:
  ``S_enc = min(2688 / global_amax, FLT_MAX)``, 1.0 when ``global_amax`` is 0 or ``S_enc`` is 0
  (Inf amax); ``S_dec = 1 / S_enc``; block scale ``= e4m3_rne_satfinite(block_amax * (S_enc *
  fp32(1/6)))``; element factor ``= min(1 / (float(block_scale) * S_dec), FLT_MAX)``; elements
  ``= e2m1_rne_satfinite(x * factor)``. Dequantize: ``(e2m1 * block_scale) * S_dec``.
* NVFP4 ``torchao``: torchao ``prototype/mx_formats/nvfp4_tensor.py`` (``_nvfp4_quantize`` with a
  dynamic per-tensor scale): ``pts = amax / 2688``; ``s = clamp((block_amax / 6) / pts, 2^-6,
  448)`` cast to E4M3; elements ``= e2m1(clamp(x / (pts * float(s)), -6, 6))``.
  Dequantize: ``e2m1 * (pts * s)``.
* NVFP4 ``modelopt``: TensorRT Model Optimizer ``torch/quantization/qtensor/nvfp4_tensor.py``
  (dynamic path): ``wsf2 = amax / 2688``; ``s = block_amax / (6 * wsf2)``, 1.0 where 0, clamped to
  ``[2^-9, 448]`` and cast to E4M3; elements ``= e2m1(x / (float(s) * wsf2))``.
  Dequantize: ``e2m1 * (s * wsf2)``.
  For torchao and ModelOpt a global amax of 0 (or Inf / all-NaN) would divide by zero; here the
  global scale is 1.0 in that case, as in TE.
* Per-tensor current scaling: TransformerEngine ``common/recipe/recipe_common.cuh``
  (``compute_scale_from_amax``): ``scale = max_norm / amax`` (1.0 when amax is 0, Inf or NaN;
  FLT_MAX when the quotient overflows); dequantize with ``scale_inv = 1 / scale``.
"""

from __future__ import annotations

import numpy as np

from blackwell_sim.numerics.formats import (
    FP32_EXPONENT_BIAS,
    FP32_MAX,
    ElementFormat,
    decode,
    get_format,
)
from blackwell_sim.numerics.rounding import encode_magnitude_core, encode_rne_fast

F32 = np.float32
E4M3_MAX = 448.0
E2M1_MAX = 6.0
NVFP4_GLOBAL_NUMERATOR = F32(E4M3_MAX * E2M1_MAX)  # 2688: amax maps to the top of e4m3 x e2m1
E2M1_MAX_RCP_F32 = F32(1.0) / F32(E2M1_MAX)          # the kernel's constexpr fp32(1/6)
TORCHAO_MIN_BLOCK_SCALE = 2.0 ** -6                  # torch.finfo(torch.float8_e4m3fn).tiny
MODELOPT_MIN_BLOCK_SCALE = 2.0 ** -9                 # smallest e4m3 subnormal
MX_SCALE_RULES = ("floor", "rceil")
NVFP4_POLICIES = ("te", "torchao", "modelopt")
E8M0_NAN_CODE = 0xFF
E8M0_MAX_CODE = 0xFE


def global_amax(block_amax: np.ndarray) -> float:
    """Largest block amax, ignoring NaN blocks (fmaxf semantics); 0.0 if there is none."""
    if block_amax.size == 0:
        return 0.0
    value = float(np.fmax.reduce(block_amax, axis=None))
    return 0.0 if np.isnan(value) else value


def mx_scale_codes(block_amax: np.ndarray, elem: ElementFormat, rule: str) -> np.ndarray:
    """E8M0 scale byte per block (uint8) from float32 block amaxes (NaN -> 0xFF)."""
    amax = block_amax.astype(np.float32, copy=False)
    is_nan = np.isnan(amax)
    if rule == "floor":
        positive = np.where(np.isfinite(amax) & (amax > 0), amax, F32(1)).astype(np.float64)
        _, exp2 = np.frexp(positive)                        # amax = mant * 2^exp2, mant in [0.5, 1)
        exponent = exp2.astype(np.int64) - 1 - elem.emax    # floor(log2 amax) - emax_elem
        codes = np.clip(exponent + FP32_EXPONENT_BIAS, 0, E8M0_MAX_CODE)
        codes = np.where(amax > 0, codes, 0)
        codes = np.where(np.isinf(amax), E8M0_MAX_CODE, codes)  # log2(Inf) clamps to the top
    else:  # "rceil"
        quotient = amax * (F32(1.0) / F32(elem.max_normal))
        codes = encode_magnitude_core(quotient, get_format("e8m0"), "ru", saturate=True)
    return np.where(is_nan, E8M0_NAN_CODE, codes).astype(np.uint8)


def mx_element_factor(scale_codes: np.ndarray) -> np.ndarray:
    """Exact float32 multiplier ``2^(127 - code)`` per block (0 for NaN blocks)."""
    exponent = FP32_EXPONENT_BIAS - scale_codes.astype(np.int32)
    factor = np.ldexp(np.ones(scale_codes.shape, dtype=np.float32), exponent)
    return np.where(scale_codes == E8M0_NAN_CODE, F32(0), factor)


def _nvfp4_degenerate(amax: float) -> bool:
    return not (np.isfinite(amax) and amax > 0)


def nvfp4_scales(block_amax: np.ndarray, amax: float, policy: str
                 ) -> tuple[np.ndarray, np.float32, np.ndarray, str]:
    """NVFP4 scales for one tensor.

    Returns ``(scale_codes, global_scale, element_op_value, element_op)``: UE4M3 scale codes
    (uint8), the fp32 global *decode* scale, and how elements are mapped before the E2M1
    conversion: ``element_op == "mul"`` means ``x * value`` (TE), ``"div"`` means ``x / value``
    (torchao, ModelOpt), with ``value`` per block (float32).
    """
    ue4m3 = get_format("ue4m3")
    block_amax = block_amax.astype(np.float32, copy=False)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if policy == "te":
            s_enc = F32(1.0)
            if amax != 0:
                s_enc = np.minimum(NVFP4_GLOBAL_NUMERATOR / F32(amax), F32(FP32_MAX))
                if s_enc == 0:  # Inf amax
                    s_enc = F32(1.0)
            s_dec = F32(1.0) / s_enc
            scale_codes = encode_rne_fast(block_amax * (s_enc * E2M1_MAX_RCP_F32), ue4m3, True)
            block_scale = decode(scale_codes, ue4m3)
            factor = np.minimum(F32(1.0) / (block_scale * s_dec), F32(FP32_MAX))
            return scale_codes, F32(s_dec), factor, "mul"
        global_scale = F32(1.0) if _nvfp4_degenerate(amax) else F32(amax) / NVFP4_GLOBAL_NUMERATOR
        if policy == "torchao":
            wanted = (block_amax / F32(E2M1_MAX)) / global_scale
            wanted = np.clip(wanted, F32(TORCHAO_MIN_BLOCK_SCALE), F32(E4M3_MAX))
        else:  # "modelopt"
            wanted = block_amax / (F32(E2M1_MAX) * global_scale)
            wanted = np.where(wanted == 0, F32(1.0), wanted)
            wanted = np.clip(wanted, F32(MODELOPT_MIN_BLOCK_SCALE), F32(E4M3_MAX))
        scale_codes = encode_rne_fast(wanted, ue4m3, True)
        divisor = global_scale * decode(scale_codes, ue4m3)  # fp32 product commutes exactly
        return scale_codes, global_scale, divisor, "div"


def current_scale(amax: float, max_norm: float, margin: int = 0) -> np.float32:
    """Per-tensor scale ``(max_norm / amax) / 2^margin`` in fp32 (TE ``compute_scale_from_amax``).

    1.0 when ``amax`` is 0, Inf or NaN; FLT_MAX when the quotient overflows fp32.
    """
    amax32 = F32(amax)
    if not np.isfinite(amax32) or amax32 == 0:
        return F32(1.0)
    with np.errstate(over="ignore"):
        scale = F32(max_norm) / amax32
    scale = F32(scale / F32(2.0 ** margin)) if margin else scale
    return F32(FP32_MAX) if np.isinf(scale) else scale
