"""Vectorised integer kernels behind :func:`blackwell_sim.numerics.mma_matrix.mma_matrix`.

Everything here is exact int64 arithmetic on numpy arrays (no float rounding ever reaches a
result).  Exactness bounds, with the window rules of tcgen05-model MODEL.md (sf-tensor/tcgen05):

* ``window25`` terms: a nonzero product has ``|p| < 2**(raw_a + raw_b + 2)`` and is expressed in
  units of ``2**q`` with ``q >= raw_a + raw_b - 25``, so ``|units| < 2**27``; C (F32) gives
  ``< 2**26``; a sum of at most 64 terms stays below ``2**34``.
* fp4 paths: a product of two E2M1 values and two scales is ``< 2**(raw + 4)`` and
  ``q >= max_raw - 39``, so a group of 16 contributes ``< 2**47`` units; C contributes
  ``< 2**40``.  The exact group sums are integers ``|S| <= 16 * 12 * 12 = 2304`` (E2M1 values
  in half units), computed exactly by float64 matmul, and scaled by at most ``15 * 15``.

Shift amounts are clipped to [0, 63]; where clipping changes a value, that value belongs to an
element whose result is overwritten by a special word or by the other branch of a select.
"""

from __future__ import annotations

from blackwell_sim.errors import BlackwellSimError

import numpy as np

from .mma_words import (
    F16_FRAC_BITS,
    F16_MAX_EXP,
    F16_MIN_NORMAL_EXP,
    F16_SUBNORMAL_QUANTUM_EXP,
    F32_FRAC_BITS,
    F32_MAX_EXP,
    F32_MIN_NORMAL_EXP,
    F32_POS_INF,
    F32_SIGN,
    F32_SUBNORMAL_QUANTUM_EXP,
    F16_POS_INF,
    F16_SIGN,
    UE4M3,
    UE4M3_FIELD_MASK,
    UE8M0_BIAS,
    UE8M0_NAN,
    ElementFormat,
)

NO_EXP = -(1 << 20)
"""Sentinel raw exponent for 'no nonzero term' (far below any real exponent)."""
MAX_SHIFT = 63
_I64 = np.int64


class Decoded:
    """Struct of arrays: exact ``mant * 2**vexp`` with encoded exponent ``raw``; ``nan`` flags;
    ``inf`` = +1 / -1 for infinities, 0 otherwise (``mant`` is 0 there)."""

    __slots__ = ("mant", "vexp", "raw", "nan", "inf")

    def __init__(self, mant, vexp, raw, nan, inf):
        self.mant, self.vexp, self.raw, self.nan, self.inf = mant, vexp, raw, nan, inf

    def sign(self) -> np.ndarray:
        """-1/0/+1 per element; infinities carry their sign, zeros 0."""
        return np.where(self.inf != 0, self.inf, np.sign(self.mant))


def decode(words: np.ndarray, fmt: ElementFormat) -> Decoded:
    """Vectorised twin of :func:`blackwell_sim.numerics.mma_words.decode_fields`."""
    w = np.asarray(words, dtype=_I64)
    bits = (w >> fmt.shift) & ((1 << fmt.width) - 1)
    frac = bits & ((1 << fmt.frac_bits) - 1)
    exp = (bits >> fmt.frac_bits) & ((1 << fmt.exp_bits) - 1)
    neg = ((bits >> (fmt.exp_bits + fmt.frac_bits)) & 1).astype(bool) if fmt.signed else \
        np.zeros(bits.shape, bool)
    ones = (1 << fmt.exp_bits) - 1
    if fmt.specials == "ieee":
        special = exp == ones
        nan = special & (frac != 0)
        inf = np.where(special & (frac == 0), np.where(neg, -1, 1), 0).astype(np.int8)
    elif fmt.specials == "fn":
        nan = (exp == ones) & (frac == (1 << fmt.frac_bits) - 1)
        special = nan
        inf = np.zeros(bits.shape, np.int8)
    else:
        special = nan = np.zeros(bits.shape, bool)
        inf = np.zeros(bits.shape, np.int8)
    sub = exp == 0
    mant = np.where(sub, frac, frac | (1 << fmt.frac_bits))
    mant = np.where(special, 0, np.where(neg, -mant, mant))
    raw = np.where(sub, 1 - fmt.bias, exp - fmt.bias)
    return Decoded(mant, raw - fmt.frac_bits, raw, nan, inf)


def decode_scales(scales: np.ndarray, scaling: str) -> Decoded:
    """Vectorised :func:`~blackwell_sim.numerics.mma_words.decode_scale` (UE8M0 / UE4M3)."""
    s = np.asarray(scales, dtype=_I64) & 0xFF
    if scaling == "ue8m0":
        raw = s - UE8M0_BIAS
        return Decoded(np.ones_like(s), raw, raw, s == UE8M0_NAN, np.zeros(s.shape, np.int8))
    return decode(s & UE4M3_FIELD_MASK, UE4M3)


def shift_toward_zero(mant: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``trunc(mant * 2**shift)`` toward zero, elementwise (shift may be negative)."""
    left = mant << np.clip(shift, 0, MAX_SHIFT)
    mag = np.abs(mant) >> np.clip(-shift, 0, MAX_SHIFT)
    return np.where(shift >= 0, left, np.where(mant < 0, -mag, mag))


def bit_length(x: np.ndarray) -> np.ndarray:
    """Exact ``int.bit_length`` of non-negative int64 values."""
    _, e = np.frexp(x.astype(np.float64))
    e = e.astype(_I64)
    rounded_up = (e > 0) & ((x >> np.clip(e - 1, 0, MAX_SHIFT)) == 0)
    return e - rounded_up


def _shift_right_rne(mag: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``mag * 2**-s`` rounded to nearest even (s may be <= 0: exact left shift)."""
    sc = np.clip(s, 1, MAX_SHIFT - 1)
    q = mag >> sc
    rem = mag & ((np.int64(1) << sc) - 1)
    half = np.int64(1) << (sc - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    right = np.where(s >= MAX_SHIFT - 1, 0, q + up)  # magnitudes stay < 2**50: rounds to 0
    return np.where(s <= 0, mag << np.clip(-s, 0, MAX_SHIFT), right)


def encode_f32_rz(units: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Vectorised :func:`~blackwell_sim.numerics.mma_words.encode_f32_rz` -> uint32 words."""
    mag = np.abs(units)
    bl = bit_length(mag)
    e = bl - 1 + q
    sh = (F32_FRAC_BITS + 1) - bl
    mant = np.where(sh >= 0, mag << np.clip(sh, 0, MAX_SHIFT), mag >> np.clip(-sh, 0, MAX_SHIFT))
    normal = ((e + 127) << F32_FRAC_BITS) | (mant & ((1 << F32_FRAC_BITS) - 1))
    sub = shift_toward_zero(mag, q - F32_SUBNORMAL_QUANTUM_EXP)
    word = np.where(e > F32_MAX_EXP, F32_POS_INF, np.where(e >= F32_MIN_NORMAL_EXP, normal, sub))
    word = np.where(units == 0, 0, word)
    word = np.where((word != 0) & (units < 0), word | F32_SIGN, word)
    return word.astype(np.uint32)


def encode_f16_rne(units: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Vectorised :func:`~blackwell_sim.numerics.mma_words.encode_f16_rne` -> uint16 words."""
    mag = np.abs(units)
    bl = bit_length(mag)
    e = bl - 1 + q
    mant = _shift_right_rne(mag, bl - (F16_FRAC_BITS + 1))
    carry = (mant >> (F16_FRAC_BITS + 1)) != 0
    e_n = e + carry
    mant = np.where(carry, mant >> 1, mant)
    normal = np.where(e_n > F16_MAX_EXP, F16_POS_INF,
                      ((e_n + 15) << F16_FRAC_BITS) | (mant & ((1 << F16_FRAC_BITS) - 1)))
    sub = _shift_right_rne(mag, F16_SUBNORMAL_QUANTUM_EXP - q)
    word = np.where(e > F16_MAX_EXP, F16_POS_INF, np.where(e >= F16_MIN_NORMAL_EXP, normal, sub))
    word = np.where(units == 0, 0, word)
    word = np.where((word != 0) & (units < 0), word | F16_SIGN, word)
    return word.astype(np.uint16)


def masked_max(values: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """Max of ``values`` where ``mask`` along ``axis``; :data:`NO_EXP` where none."""
    return np.where(mask, values, NO_EXP).max(axis=axis)


def fold_scales_window25(dec: Decoded, scale: Decoded | None, block: int | None) -> Decoded:
    """Fold UE8M0 scales (exact powers of two) into element exponents for the window25 path:
    ``value * 2**s`` has exponent ``vexp + s`` and encoded exponent ``raw + s``."""
    if scale is None:
        return dec
    rep = np.repeat(scale.raw, block, axis=-1)
    return Decoded(dec.mant, dec.vexp + rep, dec.raw + rep, dec.nan, dec.inf)


def window25_units(a: Decoded, b: Decoded, c: Decoded, window: int,
                   active: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Per-product truncation into one window (MODEL.md s.3) for all (m, n) of a chunk.

    ``a`` is [m, k], ``b`` [n, k], ``c`` [m, n].  Returns ``(units, q, any_live, nan,
    inf_sign)``; ``inf_sign`` is +1/-1 for an infinite result and 0 otherwise.
    """
    pm = a.mant[:, None, :] * b.mant[None, :, :]
    live = pm != 0
    max_prod = masked_max(a.raw[:, None, :] + b.raw[None, :, :], live, axis=-1)
    c_live = c.mant != 0
    q = np.maximum(max_prod, np.where(c_live, c.raw, NO_EXP)) - window
    shift = a.vexp[:, None, :] + b.vexp[None, :, :] - q[..., None]
    units = shift_toward_zero(pm, shift).sum(axis=-1)
    units += shift_toward_zero(c.mant, c.vexp - q)
    nan, inf = _specials(a, b, c, active)
    return units, q, max_prod > NO_EXP, nan, inf


def _specials(a: Decoded, b: Decoded, c: Decoded, active: np.ndarray | None):
    """NaN / Inf outcome per (m, n) (MODEL.md s.4): NaN input, Inf x 0, Infs of both signs."""
    b_nan = b.nan.astype(np.float64)
    if active is None:
        nan = a.nan.any(axis=1)[:, None] | b.nan.any(axis=1)[None, :]
    else:  # disabled sparse positions are absent from the dot product
        nan = a.nan.any(axis=1)[:, None] | ((active.astype(np.float64) @ b_nan.T) > 0)
    nan = nan | c.nan
    inf = c.inf.astype(np.int8)
    if (a.inf != 0).any() or (b.inf != 0).any():
        sa, sb = a.sign(), b.sign()
        p_inf = (a.inf != 0)[:, None, :] | (b.inf != 0)[None, :, :]
        if active is not None:
            p_inf &= active[:, None, :]
        p_sign = sa[:, None, :] * sb[None, :, :]
        nan = nan | (p_inf & (p_sign == 0)).any(axis=-1)
        has_pos = (p_inf & (p_sign > 0)).any(axis=-1) | (c.inf > 0)
        has_neg = (p_inf & (p_sign < 0)).any(axis=-1) | (c.inf < 0)
        nan = nan | (has_pos & has_neg)
        inf = np.where(has_pos, 1, np.where(has_neg, -1, 0)).astype(np.int8)
    return nan, inf


def e2m1_half_units(dec: Decoded) -> np.ndarray:
    """E2M1 values in units of 1/2 (exact small integers, |h| <= 12)."""
    return dec.mant << (dec.vexp + 1)


def group_sums(ha: np.ndarray, hb: np.ndarray, group: int) -> np.ndarray:
    """Exact ``S[g, m, n] = sum_{k in group g} ha[m, k] * hb[n, k]`` via float64 matmul
    (integers below 2**12: exact)."""
    return _float_group_sums(ha.astype(np.float64), hb.astype(np.float64), group).astype(_I64)


RAW_CODE_BASE = 64
"""Radix that encodes one raw exponent sum per digit; a group has < 64 products per digit."""


def group_max_raw(ra: np.ndarray, live_a: np.ndarray, rb: np.ndarray, live_b: np.ndarray,
                  group: int, raw_min: int, raw_max: int) -> np.ndarray:
    """``max_{k in g, both nonzero} (ra + rb)`` for every (g, m, n), NO_EXP if none.

    With ``d = raw - raw_min`` in ``[0, span]``, ``sum_k 64**da * 64**db`` counts products per
    exponent sum in base-64 digits (at most ``group < 64`` per digit), so the position of the
    leading digit is the max.  One float64 matmul; exact while ``64**(2*span) * group < 2**53``.
    """
    span = raw_max - raw_min
    if group >= RAW_CODE_BASE or RAW_CODE_BASE ** (2 * span) * group >= 2 ** 53:
        raise BlackwellSimError("group_max_raw: exponent span too wide for the radix encoding")
    ea = np.where(live_a, float(RAW_CODE_BASE) ** (ra - raw_min), 0.0)
    eb = np.where(live_b, float(RAW_CODE_BASE) ** (rb - raw_min), 0.0)
    t = _float_group_sums(ea, eb, group)
    digits = sum((t >= float(RAW_CODE_BASE) ** d).astype(_I64) for d in range(1, 2 * span + 1))
    return np.where(t > 0, digits + 2 * raw_min, NO_EXP)


def _float_group_sums(ea: np.ndarray, eb: np.ndarray, group: int) -> np.ndarray:
    m, k = ea.shape
    n = eb.shape[0]
    g = k // group
    return np.matmul(ea.reshape(m, g, group).transpose(1, 0, 2),
                     eb.reshape(n, g, group).transpose(1, 2, 0))
