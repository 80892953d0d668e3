"""Element formats: definitions, code tables, decoding and input validation.

Every format is a sign / exponent / mantissa layout with an IEEE-style bias, described by
:class:`ElementFormat`. The definitions and their sources:

==========  =====  ======  =====================  ==========================================
name        bits   max     special codes          source
==========  =====  ======  =====================  ==========================================
``e2m1``    4      6       none (no Inf, no NaN)  OCP MX spec v1.0, section 5.3.3 (FP4)
``e2m3``    6      7.5     none                   OCP MX spec v1.0, section 5.3.2 (FP6)
``e3m2``    6      28      none                   OCP MX spec v1.0, section 5.3.2 (FP6)
``e4m3``    8      448     NaN = S.1111.111       OCP MX spec v1.0, section 5.3.1 (FP8)
``ue4m3``   8      448     NaN = 0x7F; no sign    NVFP4 block scale (PTX ISA, ``ue4m3``)
``e5m2``    8      57344   Inf = S.11111.00,      OCP MX spec v1.0, section 5.3.1 (FP8)
                           NaN = S.11111.xx
``e8m0``    8      2^127   NaN = 0xFF; no zero,   OCP MX spec v1.0, section 5.4.1 (scale)
                           no sign
``bf16``    16     ~3.4e38 IEEE-style Inf / NaN   bfloat16 (fp32 with 7 mantissa bits)
``fp16``    16     65504   IEEE-style Inf / NaN   IEEE 754 binary16
``tf32``    19     ~3.4e38 IEEE-style Inf / NaN   PTX ISA ``.tf32`` (fp32 with 10 mantissa bits)
==========  =====  ======  =====================  ==========================================

Codes are unsigned integers with the sign in the top bit (bit ``exponent_bits + mantissa_bits``),
then the biased exponent, then the mantissa: for E2M1, ``code = s<<3 | e<<1 | m`` (DESIGN.md,
"Numerics semantics"). Code dtypes: ``uint8`` for formats of 8 bits or fewer, ``uint16`` for
``bf16`` / ``fp16`` (the IEEE bit pattern) and ``uint32`` for ``tf32`` (the 19-bit code, i.e. the
fp32 bit pattern shifted right by 13).

This module decodes; :mod:`blackwell_sim.numerics.rounding` encodes (RNE, satfinite, stochastic).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from blackwell_sim.errors import BlackwellSimError

FP32_MANTISSA_BITS = 23
FP32_EXPONENT_BIAS = 127
FP32_SIGN_SHIFT = 31
FP32_ABS_MASK = 0x7FFF_FFFF
FP32_INF_BITS = 0x7F80_0000
FP32_MAX = float(np.finfo(np.float32).max)

# Floating-point dtypes that ml_dtypes registers with numpy (kind 'V'); they convert to float32
# exactly, so they are accepted as inputs without importing ml_dtypes at run time.
_EXACT_FLOAT_DTYPE_NAMES = frozenset({
    "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz", "float8_e4m3",
    "float8_e5m2", "float8_e5m2fnuz", "float8_e3m4", "float8_e8m0fnu", "float6_e2m3fn",
    "float6_e3m2fn", "float4_e2m1fn",
})


@dataclass(frozen=True)
class ElementFormat:
    """One element (or scale) format.

    Attributes:
        name: short name used throughout the package (``"e2m1"``, ``"bf16"``, ...).
        exponent_bits / mantissa_bits: field widths.
        bias: exponent bias; normal values are ``2^(e - bias) * (1 + m / 2^mantissa_bits)``,
            exponent field 0 holds subnormals ``2^(1 - bias) * m / 2^mantissa_bits``
            (except ``e8m0``, which has no mantissa and no subnormals: value ``2^(e - 127)``).
        signed: whether a sign bit exists (``ue4m3`` and ``e8m0`` are unsigned).
        max_code: the code of the largest finite magnitude (the satfinite target).
        inf_code: code of +Inf, or ``None`` if the format has no infinity.
        nan_code: canonical code of +NaN, or ``None`` if the format has no NaN.
        code_dtype: numpy dtype of code arrays.
        source: where the definition comes from.
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    signed: bool
    max_code: int
    inf_code: int | None
    nan_code: int | None
    code_dtype: type
    source: str

    @property
    def magnitude_bits(self) -> int:
        """Bits of the code below the sign bit."""
        return self.exponent_bits + self.mantissa_bits

    @property
    def bits(self) -> int:
        """Total code width in bits."""
        return self.magnitude_bits + (1 if self.signed else 0)

    @property
    def sign_bit(self) -> int:
        """Mask of the sign bit within a code (0 for unsigned formats)."""
        return (1 << self.magnitude_bits) if self.signed else 0

    @property
    def min_normal_exponent(self) -> int:
        """Unbiased exponent of the smallest normal value, ``1 - bias``."""
        return 1 - self.bias

    @property
    def max_normal(self) -> float:
        """Largest finite value."""
        return float(_decode_magnitude_codes(self, np.array([self.max_code]))[0])

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value."""
        return 2.0 ** (self.min_normal_exponent if self.mantissa_bits else -self.bias)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (the smallest normal for formats without subnormals)."""
        if self.mantissa_bits == 0:
            return self.min_normal
        return 2.0 ** (self.min_normal_exponent - self.mantissa_bits)

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest finite value (OCP MX spec ``emax_elem``)."""
        return int(np.floor(np.log2(self.max_normal)))


_OCP = "OCP Microscaling Formats (MX) Specification v1.0"
FORMATS: dict[str, ElementFormat] = {
    f.name: f
    for f in (
        ElementFormat("e2m1", 2, 1, 1, True, 0x7, None, None, np.uint8, f"{_OCP}, 5.3.3"),
        ElementFormat("e2m3", 2, 3, 1, True, 0x1F, None, None, np.uint8, f"{_OCP}, 5.3.2"),
        ElementFormat("e3m2", 3, 2, 3, True, 0x1F, None, None, np.uint8, f"{_OCP}, 5.3.2"),
        ElementFormat("e4m3", 4, 3, 7, True, 0x7E, None, 0x7F, np.uint8, f"{_OCP}, 5.3.1"),
        ElementFormat("ue4m3", 4, 3, 7, False, 0x7E, None, 0x7F, np.uint8,
                      "PTX ISA 'ue4m3' (NVFP4 block scale; E4M3 without the sign bit)"),
        ElementFormat("e5m2", 5, 2, 15, True, 0x7B, 0x7C, 0x7E, np.uint8, f"{_OCP}, 5.3.1"),
        ElementFormat("e8m0", 8, 0, 127, False, 0xFE, None, 0xFF, np.uint8, f"{_OCP}, 5.4.1"),
        ElementFormat("bf16", 8, 7, 127, True, 0x7F7F, 0x7F80, 0x7FC0, np.uint16,
                      "bfloat16: the top 16 bits of IEEE 754 binary32"),
        ElementFormat("fp16", 5, 10, 15, True, 0x7BFF, 0x7C00, 0x7E00, np.uint16,
                      "IEEE 754 binary16"),
        ElementFormat("tf32", 8, 10, 127, True, 0x3FBFF, 0x3FC00, 0x3FE00, np.uint32,
                      "PTX ISA .tf32: the top 19 bits of IEEE 754 binary32"),
    )
}


def get_format(name: object, argument: str = "fmt") -> ElementFormat:
    """Look up an element format by name, or raise a ValueError listing the known names."""
    if isinstance(name, ElementFormat):
        return name
    if not isinstance(name, str) or name.lower() not in FORMATS:
        known = ", ".join(FORMATS)
        raise BlackwellSimError(f"{argument}: unknown element format {name!r}; known: {known}")
    return FORMATS[name.lower()]


def as_float32(x: object, argument: str = "x") -> np.ndarray:
    """Convert an array-like of real floating-point values to a float32 ndarray.

    Accepted: numpy float16/32/64 arrays and scalars, Python floats and lists of them, and the
    ml_dtypes float types (bfloat16, float8_*, ...), which convert exactly. float64 values are
    rounded to float32 (RNE) first: every conversion in this package takes fp32 inputs, as the
    hardware ``cvt`` instructions do. Rejected with a ValueError naming ``argument``: integer,
    boolean, complex, object and string dtypes.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise BlackwellSimError(f"{argument}: cannot be read as an array ({exc})") from None
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.name in _EXACT_FLOAT_DTYPE_NAMES:
        return arr.astype(np.float32)
    raise BlackwellSimError(
        f"{argument}: expected real floating-point values, got dtype {arr.dtype} "
        "(integer, bool, complex and object arrays are rejected; cast explicitly)")


def check_finite(x: np.ndarray, argument: str = "x") -> None:
    """Raise a ValueError naming ``argument`` if ``x`` holds NaN or Inf."""
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise BlackwellSimError(f"{argument}: {bad} non-finite value(s) (NaN/Inf) not allowed here")


def _decode_magnitude_codes(fmt: ElementFormat, mag: np.ndarray) -> np.ndarray:
    """Decode sign-free codes to float64 magnitudes (no Inf/NaN handling)."""
    mag = mag.astype(np.int64)
    m_bits = fmt.mantissa_bits
    exp_field = mag >> m_bits
    mant = mag & ((1 << m_bits) - 1)
    if m_bits == 0:  # e8m0: pure power of two
        return np.ldexp(1.0, (exp_field - fmt.bias).astype(np.int32))
    # Subnormal (exp_field 0) and normal share the form 2^(max(e,1) - bias - M) * significand.
    significand = np.where(exp_field > 0, mant + (1 << m_bits), mant)
    exponent = np.maximum(exp_field, 1) - fmt.bias - m_bits
    return np.ldexp(significand.astype(np.float64), exponent.astype(np.int32))


def _check_codes(codes: object, fmt: ElementFormat, argument: str) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind not in "ui":
        raise BlackwellSimError(f"{argument}: codes must be an integer array, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= (1 << fmt.bits)):
        raise BlackwellSimError(
            f"{argument}: codes out of range for {fmt.name} ({fmt.bits}-bit codes: 0..{(1 << fmt.bits) - 1})")
    return arr


@lru_cache(maxsize=None)
def _table(name: str) -> np.ndarray:
    fmt = FORMATS[name]
    codes = np.arange(1 << fmt.bits, dtype=np.int64)
    mag = codes & ((1 << fmt.magnitude_bits) - 1)
    values = _decode_magnitude_codes(fmt, mag)
    if fmt.signed:
        values = np.where(codes & fmt.sign_bit, -values, values)
    if fmt.inf_code is not None:
        values[mag == fmt.inf_code] = np.inf
        values[(mag == fmt.inf_code) & (codes & fmt.sign_bit > 0)] = -np.inf
    if fmt.nan_code is not None:
        values[mag > (fmt.inf_code if fmt.inf_code is not None else fmt.max_code)] = np.nan
    table = values.astype(np.float32)
    table.flags.writeable = False
    return table


def code_table(fmt: str | ElementFormat) -> np.ndarray:
    """float32 value of every code of ``fmt``, indexed by code (read-only array).

    ``code_table("e2m1")`` is ``[0, .5, 1, 1.5, 2, 3, 4, 6, -0, -.5, ..., -6]``. NaN codes decode
    to NaN, Inf codes to +-Inf. Not offered for ``tf32`` (2^19 codes; use :func:`decode`).
    """
    spec = get_format(fmt)
    if spec.bits > 16:
        raise BlackwellSimError(f"fmt: no code table for {spec.name} ({spec.bits}-bit codes); use decode()")
    return _table(spec.name)


def decode(codes: object, fmt: str | ElementFormat) -> np.ndarray:
    """Decode integer codes of ``fmt`` to float32 values (exact: every code is an fp32 value).

    ``codes`` may be any integer array whose values fit the format's width; the result has the
    same shape. NaN codes give NaN, Inf codes +-Inf.
    """
    spec = get_format(fmt)
    arr = _check_codes(codes, spec, "codes")
    if spec.name == "bf16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if spec.name == "tf32":
        return (arr.astype(np.uint32) << (FP32_MANTISSA_BITS - spec.mantissa_bits)).view(np.float32)
    if spec.name == "fp16":
        return arr.astype(np.uint16).view(np.float16).astype(np.float32)
    return _table(spec.name).take(arr.astype(np.intp, copy=False))
