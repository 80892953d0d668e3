"""Element formats: bit-exact agreement with ml_dtypes, NaN/Inf rules, code layout, directed and
stochastic rounding, bad input.

Reference: ml_dtypes (float4_e2m1fn, float6_e2m3fn, float6_e3m2fn, float8_e4m3fn, float8_e5m2,
float8_e8m0fnu, bfloat16) and numpy float16. Documented differences handled here:

* Pre-clipping: the hardware saturates (``satfinite``) where ml_dtypes overflows to NaN
  (e4m3, e8m0) or Inf (e5m2, bf16, fp16); inputs are clipped to +-max normal before the reference
  cast. ``saturate=False`` is compared without clipping. ml_dtypes' FP4/FP6 saturate already.
* NaN: ml_dtypes maps NaN to a zero of flipped sign in FP4/FP6; we raise or follow ``nan=``.
* E8M0: ml_dtypes maps 0 and negatives to NaN (we: 0 -> code 0 under satfinite, negatives
  raise) and rounds fp32-subnormal inputs in (2^-127, 1.5 * 2^-127) up to 2^-126, which is not
  the nearest value; we return the nearest, 2^-127.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blackwell_sim.numerics import cast, code_table, decode, encode, get_format
from blackwell_sim.numerics.rounding import encode_magnitude_core

REFERENCE = {
    "e2m1": ml_dtypes.float4_e2m1fn, "e2m3": ml_dtypes.float6_e2m3fn, "e3m2": ml_dtypes.float6_e3m2fn,
    "e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "bf16": ml_dtypes.bfloat16,
    "fp16": np.float16,
}
MAX_NORMAL = {"e2m1": 6.0, "e2m3": 7.5, "e3m2": 28.0, "e4m3": 448.0, "e5m2": 57344.0,
              "bf16": float(ml_dtypes.finfo(ml_dtypes.bfloat16).max), "fp16": 65504.0}


def _reference_codes(x: np.ndarray, fmt: str) -> np.ndarray:
    ref = x.astype(REFERENCE[fmt])
    return ref.view(np.uint16 if ref.dtype.itemsize == 2 else np.uint8)


def _near_ties(fmt: str) -> np.ndarray:
    """Every representable value, every midpoint between neighbours, and +-1 fp32 ulp of each."""
    values = np.unique(np.abs(code_table(fmt)[np.isfinite(code_table(fmt))])).astype(np.float64)
    mids = (values[:-1] + values[1:]) / 2
    beyond = np.minimum(values[-1] * np.array([1.0625, 1.125]), np.finfo(np.float32).max)
    points = np.concatenate([values, mids, beyond]).astype(np.float32)
    with np.errstate(over="ignore"):
        up = np.nextafter(points, np.float32(np.inf))
    down = np.nextafter(points, np.float32(0))
    both = np.concatenate([points, up, down])
    return np.concatenate([both, -both])


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """Every bf16 and fp16 bit pattern (as fp32) and 10^6 random fp32 values of mixed magnitude."""
    rng = np.random.default_rng(20250501)
    every_bf16 = (np.arange(1 << 16, dtype=np.uint32) << 16).view(np.float32)
    every_fp16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    random_bits = rng.integers(0, 1 << 32, 400_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    normal = rng.standard_normal(300_000).astype(np.float32) * np.float32(4.0)
    spread = (rng.standard_normal(300_000) * 2.0 ** rng.integers(-140, 120, 300_000)).astype(np.float32)
    x = np.concatenate([every_bf16, every_fp16, random_bits, normal, spread])
    return x[~np.isnan(x)]


@pytest.mark.parametrize("fmt", list(REFERENCE))
def test_rne_satfinite_matches_ml_dtypes_bit_for_bit(inputs, fmt):
    x = np.concatenate([inputs, _near_ties(fmt)])
    clipped = np.clip(x, -MAX_NORMAL[fmt], MAX_NORMAL[fmt])  # hardware saturates
    expected = _reference_codes(clipped, fmt)
    np.testing.assert_array_equal(encode(x, fmt), expected)
    spec = get_format(fmt)
    generic = encode_magnitude_core(x, spec).astype(spec.code_dtype)  # the exact slow path
    np.testing.assert_array_equal(generic, expected)
    np.testing.assert_array_equal(cast(x, fmt).view(np.uint32), decode(expected, fmt).view(np.uint32))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "bf16", "fp16"])
def test_non_saturating_mode_matches_ml_dtypes_without_clipping(inputs, fmt):
    with np.errstate(over="ignore"):
        expected = _reference_codes(inputs, fmt)
    np.testing.assert_array_equal(encode(inputs, fmt, saturate=False), expected)


def test_e8m0_matches_ml_dtypes_on_positive_values(inputs):
    x = np.abs(inputs)
    x = x[np.isfinite(x) & (x > 0)]
    quirk = (x > np.float32(2.0 ** -127)) & (x < np.float32(1.5 * 2.0 ** -127))
    clipped = np.minimum(x, np.float32(2.0 ** 127))
    expected = clipped.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8)
    ours = encode(x, "e8m0")
    np.testing.assert_array_equal(ours[~quirk], expected[~quirk])
    # the documented ml_dtypes quirk: fp32-subnormal inputs just above 2^-127 go up to 2^-126
    assert quirk.sum() > 0
    assert np.all(expected[quirk] == 1) and np.all(ours[quirk] == 0)
    # ties (1.5 * 2^e) round up, as ml_dtypes; rz / ru are the hardware cvt.rz / cvt.rp modes
    ties = np.float32([0.75, 1.5, 3.0, 6.0])
    np.testing.assert_array_equal(encode(ties, "e8m0"), [127, 128, 129, 130])
    np.testing.assert_array_equal(encode(ties, "e8m0", rounding="rz"), [126, 127, 128, 129])
    np.testing.assert_array_equal(encode(np.float32([1.0, 1.0000001]), "e8m0", rounding="ru"), [127, 128])
    np.testing.assert_array_equal(encode(np.float32([0.0, 1e-45, 3e38, np.inf]), "e8m0"), [0, 0, 254, 254])
    assert encode(np.float32([0.0]), "e8m0", saturate=False)[0] == 0xFF


def test_tf32_against_integer_reference():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = x[np.isfinite(x)]
    bits = x.view(np.uint32).astype(np.uint64)
    magnitude = bits & 0x7FFF_FFFF
    rounded = (magnitude + 0xFFF + ((magnitude >> 13) & 1)) >> 13   # RNE on the 13 dropped bits
    expected = np.minimum(rounded, 0x3FBFF) | ((bits >> 31) << 18)    # satfinite, sign at bit 18
    np.testing.assert_array_equal(encode(x, "tf32"), expected)
    spec = get_format("tf32")
    np.testing.assert_array_equal(encode_magnitude_core(x, spec), expected)


def test_code_layout_and_tables():
    table = code_table("e2m1")
    assert table.tolist() == [0, .5, 1, 1.5, 2, 3, 4, 6, -0.0, -.5, -1, -1.5, -2, -3, -4, -6]
    for s in (0, 1):
        for e in range(4):
            for m in range(2):
                magnitude = (m / 2) if e == 0 else (1 + m / 2) * 2.0 ** (e - 1)
                assert table[s << 3 | e << 1 | m] == (-magnitude if s else magnitude)
    assert get_format("e2m3").max_normal == 7.5 and get_format("e3m2").max_normal == 28.0
    assert get_format("e4m3").max_normal == 448.0 and get_format("e5m2").max_normal == 57344.0
    assert np.isnan(code_table("e4m3")[0x7F]) and np.isnan(code_table("e4m3")[0xFF])
    assert np.isinf(code_table("e5m2")[0x7C]) and np.isnan(code_table("e5m2")[0x7E])
    e8m0 = code_table("e8m0")
    assert e8m0[0] == np.float32(2.0 ** -127) and e8m0[127] == 1.0 and np.isnan(e8m0[255])
    assert decode(np.array([0x7E]), "ue4m3")[0] == 448.0


@pytest.mark.parametrize("fmt", ["e2m1", "e2m3", "e3m2", "e4m3", "ue4m3", "e5m2", "e8m0", "bf16", "fp16"])
def test_every_finite_code_round_trips(fmt):
    spec = get_format(fmt)
    codes = np.arange(1 << spec.bits)
    values = decode(codes, fmt)
    finite = np.isfinite(values)
    np.testing.assert_array_equal(encode(values[finite], fmt), codes[finite])


def test_nan_and_inf_rules():
    nan, inf = np.float32(np.nan), np.float32(np.inf)
    signed = np.float32([nan, -nan])
    assert encode(signed, "e4m3").tolist() == [0x7F, 0xFF]
    assert encode(signed, "e5m2").tolist() == [0x7E, 0xFE]
    assert encode(signed, "bf16").tolist() == [0x7FC0, 0xFFC0]
    assert encode(signed, "fp16").tolist() == [0x7E00, 0xFE00]
    assert encode(np.float32([nan]), "ue4m3").tolist() == [0x7F]
    assert encode(np.float32([nan]), "e8m0").tolist() == [0xFF]
    for fmt in ("e2m1", "e2m3", "e3m2"):
        with pytest.raises(ValueError, match="NaN"):
            encode(signed, fmt)
    assert encode(signed, "e2m1", nan="zero").tolist() == [0, 0]
    assert encode(signed, "e2m1", nan="max").tolist() == [7, 7]
    infs = np.float32([inf, -inf])
    assert encode(infs, "e2m1").tolist() == [0x7, 0xF]
    assert encode(infs, "e4m3").tolist() == [0x7E, 0xFE]
    assert encode(infs, "e5m2").tolist() == [0x7B, 0xFB]
    assert encode(infs, "e5m2", saturate=False).tolist() == [0x7C, 0xFC]
    assert encode(infs, "e4m3", saturate=False).tolist() == [0x7F, 0xFF]
    assert encode(np.float32([-0.0]), "e4m3").tolist() == [0x80]  # the sign of zero is kept


@pytest.mark.parametrize("fmt", ["e2m1", "e4m3", "e5m2", "e3m2"])
def test_directed_rounding_against_brute_force(fmt):
    table = code_table(fmt)
    grid = np.unique(table[np.isfinite(table)]).astype(np.float64)
    x = np.random.default_rng(3).uniform(-1.2, 1.2, 5000).astype(np.float32) * np.float32(grid[-1])
    x = x[np.abs(x) <= grid[-1]]
    down = grid[np.searchsorted(grid, x, side="right") - 1]          # largest grid value <= x
    up = grid[np.searchsorted(grid, x, side="left")]                 # smallest grid value >= x
    np.testing.assert_array_equal(cast(x, fmt, rounding="ru"), up.astype(np.float32))
    toward_zero = np.where(x >= 0, down, up)
    np.testing.assert_array_equal(np.abs(cast(x, fmt, rounding="rz")), np.abs(toward_zero).astype(np.float32))


def test_stochastic_rounding_rule_is_exact_over_all_random_bytes():
    """With all 256 byte values, exactly floor(256 * frac) of them round up."""
    spec = get_format("e2m1")
    x = np.float32([0.1, 0.3, 1.26, 2.9, 4.99, 5.0, 3.0, 0.25 + 2.0 ** -10])
    for value in x:
        codes = encode_magnitude_core(np.full(256, value, np.float32), spec, "sr",
                                      rbits=np.arange(256, dtype=np.uint8))
        got = decode(codes, spec)
        grid = np.unique(code_table("e2m1")).astype(np.float64)
        lo = grid[np.searchsorted(grid, value, side="right") - 1]
        hi = grid[min(np.searchsorted(grid, value, side="right"), len(grid) - 1)]
        frac = 0.0 if hi == lo else (float(value) - lo) / (hi - lo)
        assert set(np.unique(got)) <= {lo, hi}
        assert np.count_nonzero(got == hi) == (np.floor(256 * frac) if hi != lo else 256)


def test_stochastic_rounding_unbiased_within_bound_and_beats_rne():
    """SR acts on magnitudes (sign-magnitude, as cvt.rs adds random bits to the mantissa)."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-5.9, 5.9, 400).astype(np.float32)
    draws = 4000
    samples = cast(np.tile(x, (draws, 1)), "e2m1", rounding="sr", rng=np.random.default_rng(5))
    mean = samples.astype(np.float64).mean(axis=0)
    grid = np.unique(np.abs(code_table("e2m1"))).astype(np.float64)
    ax = np.abs(x).astype(np.float64)
    lo = grid[np.searchsorted(grid, ax, side="right") - 1]
    hi = grid[np.minimum(np.searchsorted(grid, ax, side="right"), len(grid) - 1)]
    gap = hi - lo
    p = np.floor(256 * (ax - lo) / gap) / 256
    expected = np.sign(x) * (lo + gap * p)
    assert np.all(np.abs(expected - x) <= gap / 256 + 1e-12)          # the rule's bias bound
    sigma = gap * np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(mean - expected) <= 5 * sigma + 1e-12)       # statistical, fixed seed
    rmse_sr = np.sqrt(np.mean((mean - x) ** 2))
    rmse_rne = np.sqrt(np.mean((cast(x, "e2m1").astype(np.float64) - x) ** 2))
    assert rmse_sr < rmse_rne / 10


def test_stochastic_rounding_reproducible_by_seed():
    x = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    a = encode(x, "e4m3", rounding="sr", rng=42)
    b = encode(x, "e4m3", rounding="sr", rng=np.random.default_rng(42))
    c = encode(x, "e4m3", rounding="sr", rng=43)
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=64),
       st.sampled_from(["e2m1", "e2m3", "e3m2", "e4m3", "e5m2", "bf16", "fp16", "tf32"]))
def test_decode_encode_equals_cast(values, fmt):
    x = np.asarray(values, dtype=np.float32)
    np.testing.assert_array_equal(decode(encode(x, fmt), fmt).view(np.uint32), cast(x, fmt).view(np.uint32))
    # cast is idempotent: rounded values are representable
    np.testing.assert_array_equal(cast(cast(x, fmt), fmt).view(np.uint32), cast(x, fmt).view(np.uint32))


@pytest.mark.parametrize("bad, pattern", [
    (np.array([1 + 2j]), "x: expected real floating-point"),
    (np.array([1, 2, 3]), "x: expected real floating-point"),
    (np.array(["a"]), "x: expected real floating-point"),
    (np.array([object()]), "x: expected real floating-point"),
    (np.array([True]), "x: expected real floating-point"),
])
def test_bad_input_dtype(bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        encode(bad, "e4m3")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown element format 'e9m9'; known: e2m1, e2m3"):
        cast(np.float32([1]), "e9m9")
    with pytest.raises(ValueError, match="rounding: unknown mode"):
        cast(np.float32([1]), "e4m3", rounding="up")
    with pytest.raises(ValueError, match="saturate"):
        cast(np.float32([1]), "e2m1", saturate=False)
    with pytest.raises(ValueError, match="unsigned"):
        encode(np.float32([-1]), "e8m0")
    with pytest.raises(ValueError, match="codes out of range"):
        decode(np.array([16]), "e2m1")
    with pytest.raises(ValueError, match="codes must be an integer"):
        decode(np.array([1.0]), "e2m1")
    with pytest.raises(ValueError, match="rng"):
        cast(np.float32([1]), "e4m3", rounding="sr", rng="seed")


def test_ml_dtypes_inputs_are_accepted_exactly():
    x = np.float32([1.5, -0.25, 3.0]).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(cast(x, "e4m3"), np.float32([1.5, -0.25, 3.0]))
