"""Raw container words of the Blackwell tensor core (``tcgen05.mma``): decoding and descriptors.

This module is the shared vocabulary of :mod:`blackwell_sim.numerics.mma` (scalar reference)
and :mod:`blackwell_sim.numerics.mma_matrix` (vectorised exact matrix mode):

* :data:`ELEMENT_FORMATS` - bit layouts of the A/B element formats as the tensor core reads
  them from their containers (PTX ISA, ``tcgen05.mma`` "kind" and data-type tables; decoding
  rules of tcgen05-model ``MODEL.md`` section 2, sf-tensor/tcgen05, MIT).
* :func:`decode_word` - one word -> exact ``(mantissa, value_exponent, raw_exponent)`` triple
  or a special value.  ``raw_exponent`` is the *encoded* unbiased exponent (the minimum normal
  exponent for subnormals): the accumulation window is chosen from encoded operand exponents,
  not from normalised values (MODEL.md section 2; MMA-Sim, arXiv 2511.10909, makes the same
  observation for the alignment step of NVIDIA tensor cores).
* :func:`encode_f32_rz` / :func:`encode_f16_rne` - normalisation of the exact fixed-point sum
  to the destination word (MODEL.md section 3).
* :func:`resolve_instruction` - validates a descriptor (formats, scaling, kind, scale_vec,
  d_format) and returns the :class:`MmaInstruction` that fixes every constant of the
  arithmetic (window widths, merge groups, K per instruction).
"""

from __future__ import annotations

from blackwell_sim.errors import BlackwellSimError

from dataclasses import dataclass
from typing import Literal

# ---------------------------------------------------------------------------------------------
# Element formats
# ---------------------------------------------------------------------------------------------

SpecialRule = Literal["ieee", "fn", "finite"]


@dataclass(frozen=True)
class ElementFormat:
    """Bit layout of one tensor-core input format.

    ``shift`` is applied to the container word before the field extraction: TF32 drops F32
    fraction bits 0..12 and BF16 bits 0..15 *before* classification, so a NaN whose payload
    lives only in those bits arrives as infinity (MODEL.md section 2; B200 vectors
    ``*-low-payload-pretruncate``).  ``specials``: ``ieee`` = all-ones exponent is Inf/NaN,
    ``fn`` = only all-ones exponent and fraction is NaN (E4M3, UE4M3), ``finite`` = no
    special encodings (FP6, FP4).
    """

    name: str
    exp_bits: int
    frac_bits: int
    bias: int
    specials: SpecialRule
    shift: int = 0
    signed: bool = True

    @property
    def width(self) -> int:
        return self.exp_bits + self.frac_bits + (1 if self.signed else 0)


ELEMENT_FORMATS: dict[str, ElementFormat] = {
    "tf32": ElementFormat("tf32", 8, 10, 127, "ieee", shift=13),
    "bf16": ElementFormat("bf16", 8, 7, 127, "ieee", shift=16),
    "f16": ElementFormat("f16", 5, 10, 15, "ieee"),
    "e4m3": ElementFormat("e4m3", 4, 3, 7, "fn"),
    "e5m2": ElementFormat("e5m2", 5, 2, 15, "ieee"),
    "e2m3": ElementFormat("e2m3", 2, 3, 1, "finite"),
    "e3m2": ElementFormat("e3m2", 3, 2, 3, "finite"),
    "e2m1": ElementFormat("e2m1", 2, 1, 1, "finite"),
}
"""A/B element formats accepted by :func:`blackwell_sim.numerics.mma_dot`."""

F32 = ElementFormat("f32", 8, 23, 127, "ieee")
F16 = ElementFormat("f16", 5, 10, 15, "ieee")
UE4M3 = ElementFormat("ue4m3", 4, 3, 7, "fn", signed=False)

FORMAT_ALIASES = {"fp16": "f16", "float16": "f16", "bfloat16": "bf16", "fp8_e4m3": "e4m3",
                  "fp8_e5m2": "e5m2", "fp6_e2m3": "e2m3", "fp6_e3m2": "e3m2", "fp4_e2m1": "e2m1",
                  "fp4": "e2m1"}

F8F6F4_FORMATS = frozenset({"e4m3", "e5m2", "e2m3", "e3m2", "e2m1"})
"""Formats of ``kind::f8f6f4`` / ``kind::mxf8f6f4``; A and B may differ (PTX ISA)."""

# Special-value classes returned by decode_word (finite values are tuples).
NAN = "nan"
POS_INF = "+inf"
NEG_INF = "-inf"

Decoded = tuple[int, int, int] | str
"""``(signed_mantissa, value_exponent, raw_exponent)`` with value = mantissa * 2**value_exponent,
or one of :data:`NAN`, :data:`POS_INF`, :data:`NEG_INF`."""

UE8M0_BIAS = 127
UE8M0_NAN = 0xFF
UE4M3_FIELD_MASK = 0x7F  # UE4M3 has no sign bit; bit 7 of the byte is ignored (MODEL.md s.5)

# F32 / F16 destination encodings (IEEE 754 binary32 / binary16).
F32_SIGN = 0x8000_0000
F32_POS_INF = 0x7F80_0000
F32_NEG_INF = 0xFF80_0000
F32_CANONICAL_NAN = 0x7FFF_FFFF  # generated NaN word of tcgen05 (MODEL.md section 4)
F32_FRAC_BITS = 23
F32_MIN_NORMAL_EXP = -126
F32_MAX_EXP = 127
F32_SUBNORMAL_QUANTUM_EXP = -149
F16_SIGN = 0x8000
F16_POS_INF = 0x7C00
F16_NEG_INF = 0xFC00
F16_CANONICAL_NAN = 0x7FFF  # F16-D generated NaN (MODEL.md section 4; B200 vectors mixed-*-f16-*)
F16_FRAC_BITS = 10
F16_MIN_NORMAL_EXP = -14
F16_MAX_EXP = 15
F16_SUBNORMAL_QUANTUM_EXP = -24


def canonical_format(name: str, argument: str = "a_format") -> str:
    """Return the canonical element-format name or raise ``ValueError`` naming ``argument``."""
    if not isinstance(name, str):
        raise BlackwellSimError(f"{argument} must be a format name string, got {name!r}")
    key = FORMAT_ALIASES.get(name.lower(), name.lower())
    if key not in ELEMENT_FORMATS:
        raise BlackwellSimError(f"{argument}: unknown element format {name!r}; "
                                f"expected one of {sorted(ELEMENT_FORMATS)}")
    return key


def decode_fields(word: int, fmt: ElementFormat) -> Decoded:
    """Decode ``word`` (container bits) of layout ``fmt`` exactly (MODEL.md section 2)."""
    bits = (word >> fmt.shift) & ((1 << fmt.width) - 1)
    frac = bits & ((1 << fmt.frac_bits) - 1)
    exp = (bits >> fmt.frac_bits) & ((1 << fmt.exp_bits) - 1)
    negative = fmt.signed and bool(bits >> (fmt.exp_bits + fmt.frac_bits))
    exp_all_ones = (1 << fmt.exp_bits) - 1
    if fmt.specials == "ieee" and exp == exp_all_ones:
        if frac:
            return NAN
        return NEG_INF if negative else POS_INF
    if fmt.specials == "fn" and exp == exp_all_ones and frac == (1 << fmt.frac_bits) - 1:
        return NAN
    if exp == 0:  # zero or subnormal: raw exponent is the minimum normal exponent
        mant, raw = frac, 1 - fmt.bias
    else:
        mant, raw = (1 << fmt.frac_bits) | frac, exp - fmt.bias
    return (-mant if negative else mant), raw - fmt.frac_bits, raw


def decode_word(word: int, fmt_name: str) -> Decoded:
    """Decode an A/B operand word of element format ``fmt_name`` (see :data:`ELEMENT_FORMATS`)."""
    return decode_fields(word, ELEMENT_FORMATS[fmt_name])


def decode_scale(byte: int, scaling: str) -> Decoded:
    """Decode a block-scale byte: UE8M0 = 2**(b-127), 0xFF NaN, no zero (OCP MX v1.0);
    UE4M3 = unsigned E4M3 (bias 7, subnormals, 0x7F NaN) as NVFP4 uses it (PTX ISA
    ``tcgen05.mma`` block scaling; MODEL.md section 5)."""
    if scaling == "ue8m0":
        byte &= 0xFF
        if byte == UE8M0_NAN:
            return NAN
        return 1, byte - UE8M0_BIAS, byte - UE8M0_BIAS
    return decode_fields(byte & UE4M3_FIELD_MASK, UE4M3)


def decode_accumulator(word: int, d_format: str) -> Decoded:
    """Decode the C word: F32 bits, or F16 bits (low 16) when ``d_format`` is f16."""
    return decode_fields(word & 0xFFFF_FFFF, F16 if d_format == "f16" else F32)


# ---------------------------------------------------------------------------------------------
# Normalisation of the exact fixed-point sum
# ---------------------------------------------------------------------------------------------

def shift_toward_zero(mant: int, value_exp: int, quantum_exp: int) -> int:
    """Signed units of ``2**quantum_exp`` of ``mant * 2**value_exp``, truncated toward zero
    (right shifts discard low magnitude bits for both signs: MODEL.md section 3)."""
    shift = value_exp - quantum_exp
    if shift >= 0:
        return mant << shift
    magnitude = abs(mant) >> -shift
    return -magnitude if mant < 0 else magnitude


def encode_f32_rz(units: int, quantum_exp: int) -> int:
    """F32 word of ``units * 2**quantum_exp`` rounded toward zero.

    Overflow gives the signed infinity (B200 vectors ``tf32-0``/``bf16-0`` overflow to Inf,
    not to the largest finite value); an exact zero, and a subnormal that truncates to zero,
    give ``+0`` (MODEL.md section 3: "An exact zero result is canonical +0")."""
    if units == 0:
        return 0
    sign = F32_SIGN if units < 0 else 0
    mag = abs(units)
    exp = mag.bit_length() - 1 + quantum_exp
    if exp > F32_MAX_EXP:
        return sign | F32_POS_INF
    if exp >= F32_MIN_NORMAL_EXP:
        mant = shift_toward_zero(mag, quantum_exp, exp - F32_FRAC_BITS)
        return sign | ((exp + F32.bias) << F32_FRAC_BITS) | (mant & ((1 << F32_FRAC_BITS) - 1))
    mant = shift_toward_zero(mag, quantum_exp, F32_SUBNORMAL_QUANTUM_EXP)
    return (sign | mant) if mant else 0


def _shift_rne(mag: int, value_exp: int, quantum_exp: int) -> int:
    shift = quantum_exp - value_exp
    if shift <= 0:
        return mag << -shift
    q, rem = mag >> shift, mag & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    return q + 1 if rem > half or (rem == half and q & 1) else q


def encode_f16_rne(units: int, quantum_exp: int) -> int:
    """F16 word of ``units * 2**quantum_exp`` rounded to nearest even (F16-D path of the mixed
    f8/f6/f4 instruction, MODEL.md section 3).  Overflow gives Inf; a subnormal that rounds to
    zero gives ``+0`` as in the published model (not hardware-verified)."""
    if units == 0:
        return 0
    sign = F16_SIGN if units < 0 else 0
    mag = abs(units)
    exp = mag.bit_length() - 1 + quantum_exp
    if exp > F16_MAX_EXP:
        return sign | F16_POS_INF
    if exp >= F16_MIN_NORMAL_EXP:
        mant = _shift_rne(mag, quantum_exp, exp - F16_FRAC_BITS)
        if mant >> (F16_FRAC_BITS + 1):  # rounding carried into the next binade
            exp += 1
            mant >>= 1
            if exp > F16_MAX_EXP:
                return sign | F16_POS_INF
        return sign | ((exp + F16.bias) << F16_FRAC_BITS) | (mant & ((1 << F16_FRAC_BITS) - 1))
    mant = _shift_rne(mag, quantum_exp, F16_SUBNORMAL_QUANTUM_EXP)
    return (sign | mant) if mant else 0  # mant == 2**10 encodes the smallest normal exactly


# ---------------------------------------------------------------------------------------------
# Instruction descriptors
# ---------------------------------------------------------------------------------------------

UNSCALED_WINDOW_BITS = 25
"""Fraction bits of the shared window of the unscaled and ``mxf8f6f4`` paths (MODEL.md s.3)."""
FP4_PRODUCT_WINDOW_BITS = 39
"""Product-dominant window of ``mxf4`` / ``mxf4nvf4`` (MODEL.md section 5)."""
FP4_SCALE_FLOOR_BITS = 35
"""Scale-anchored floor: q >= max(scale_a_raw + scale_b_raw) - 35 (MODEL.md section 5)."""
FP4_C_MERGE_BITS = 35
"""C-dominant window: q = raw_exp(C) - 35 when C outranks the products (MODEL.md section 5)."""
MXF4_MERGE_GROUP = 16
"""``mxf4`` / ``mxf4nvf4`` (UE8M0) products are summed exactly in K=16 groups."""
NVFP4_PRODUCT_GROUP = 4
"""NVFP4 (UE4M3) reduces aligned K=4 product groups exactly before windowing."""
MXF4_SUBNORMAL_GROUP_FLOOR_EXP = -174
"""Observed ``2**-174`` floor for lower-scale groups when the result is subnormal (MODEL.md s.5)."""
SCALE_WORD_SLOTS = 4
"""Scale bytes per 32-bit TMEM scale-factor word; a per-instruction scale list may be padded
to this many entries (the B200 vectors are), the unused slots are ignored."""

INSTRUCTION_K = {"tf32": 8, "f16": 16, "bf16": 16, "f8f6f4": 32, "mxf8f6f4": 32,
                 "mxf4": 64, "mxf4nvf4": 64}
"""Dense K per ``tcgen05.mma`` by kind (PTX ISA; DESIGN.md).  2:4-sparse instructions double it."""

Path = Literal["window25", "mxf4", "nvfp4"]


@dataclass(frozen=True)
class MmaInstruction:
    """Everything that fixes the arithmetic of one ``tcgen05.mma`` output element.

    ``path``: ``window25`` (unscaled kinds and ``mxf8f6f4``: per-product truncation into a
    25-bit window), ``mxf4`` (UE8M0 ``mxf4``/``mxf4nvf4``: K=16 exact groups, 39/35-bit
    windows, subnormal group floor) or ``nvfp4`` (UE4M3: K=4 exact groups, 39/35-bit windows).
    ``k`` is the logical K of one instruction; ``scale_block`` the K covered by one scale.
    """

    kind: str
    path: Path
    a_format: str
    b_format: str
    d_format: str
    k: int
    scaling: str | None = None
    scale_block: int | None = None
    sparse: bool = False

    @property
    def scales_per_instruction(self) -> int:
        return 0 if self.scale_block is None else self.k // self.scale_block

    @property
    def merge_group(self) -> int:
        """K of one exactly-summed C-dominant merge group (scaled fp4 paths)."""
        return self.scale_block if self.path == "nvfp4" else MXF4_MERGE_GROUP


def resolve_instruction(a_format: str, b_format: str | None = None, *, scaling: str | None = None,
                        kind: str | None = None, scale_vec: int | None = None,
                        d_format: str = "f32", sparse: bool = False) -> MmaInstruction:
    """Validate a descriptor and return its :class:`MmaInstruction`.

    Rules (PTX ISA ``tcgen05.mma``; tcgen05-model ``make_model``):

    * unscaled: ``tf32``, ``f16``, ``bf16`` need A == B; the f8f6f4 formats may be mixed.
      F16 D is allowed for ``f16`` and the f8f6f4 formats (``kind::f16`` with BF16 inputs and
      ``kind::tf32`` only produce F32).
    * ``scaling="ue8m0"``: ``kind`` ``mxf8f6f4`` (default unless both operands are E2M1; one
      scale per K=32), ``mxf4`` (E2M1 only, default for E2M1/E2M1; one scale per K=32: PTX
      gives ``kind::mxf4`` only ``scale_vec::2X``, and the B200 vector ``mxf4-4x`` is
      reproduced with 32-blocks) or ``mxf4nvf4`` (E2M1 only; ``scale_vec`` 2 -> K=32 blocks,
      4 -> K=16 blocks; default 2).
    * ``scaling="ue4m3"``: NVFP4, ``kind`` ``mxf4nvf4`` (default), E2M1 only, ``scale_vec`` 4,
      one scale per K=16 (per K=32 logical when ``sparse``: MODEL.md section 5).
    * block-scaled kinds produce F32 only.
    """
    a = canonical_format(a_format, "a_format")
    b = canonical_format(b_format if b_format is not None else a, "b_format")
    if d_format not in ("f32", "f16"):
        raise BlackwellSimError(f"d_format: expected 'f32' or 'f16', got {d_format!r}")
    if scaling is not None and not isinstance(scaling, str):
        raise BlackwellSimError(f"scaling: expected None, 'ue8m0' or 'ue4m3', got {scaling!r}")
    scaling = None if scaling is None else scaling.lower()
    kind = None if kind is None else str(kind).lower()
    sparse_factor = 2 if sparse else 1
    mixed_ok = a in F8F6F4_FORMATS and b in F8F6F4_FORMATS
    if scaling is None:
        if kind not in (None, "tf32", "f16", "f8f6f4"):
            raise BlackwellSimError(f"kind: {kind!r} needs a block scaling "
                                    "(scaling='ue8m0'/'ue4m3')")
        if scale_vec is not None:
            raise BlackwellSimError("scale_vec: only valid with block scaling")
        if a != b and not mixed_ok:
            raise BlackwellSimError(f"b_format: {a} operands need b_format == a_format, got {b!r}")
        unscaled_kind = "f8f6f4" if mixed_ok else ("tf32" if a == "tf32" else "f16")
        if kind is not None and kind != unscaled_kind:
            raise BlackwellSimError(f"kind: {a}/{b} runs on kind::{unscaled_kind}, not {kind!r}")
        if d_format == "f16" and a in ("tf32", "bf16"):
            raise BlackwellSimError(f"d_format: kind::{unscaled_kind} with {a} inputs "
                                    "produces f32 only")
        return MmaInstruction(unscaled_kind, "window25", a, b, d_format,
                              INSTRUCTION_K[a if a in INSTRUCTION_K else "f8f6f4"] * sparse_factor,
                              sparse=sparse)
    if d_format != "f32":
        raise BlackwellSimError("d_format: block-scaled MMA produces f32 only")
    if scaling == "ue4m3":
        if kind not in (None, "mxf4nvf4", "nvfp4"):
            raise BlackwellSimError(f"kind: UE4M3 scaling is kind::mxf4nvf4 (NVFP4), got {kind!r}")
        if (a, b) != ("e2m1", "e2m1"):
            raise BlackwellSimError(f"a_format/b_format: NVFP4 needs e2m1 operands, got {a}/{b}")
        if scale_vec not in (None, 4):
            raise BlackwellSimError(f"scale_vec: NVFP4 (ue4m3) uses scale_vec 4, got {scale_vec!r}")
        block = 16 * sparse_factor
        return MmaInstruction("mxf4nvf4", "nvfp4", a, b, "f32", INSTRUCTION_K["mxf4nvf4"] *
                              sparse_factor, "ue4m3", block, sparse)
    if scaling != "ue8m0":
        raise BlackwellSimError(f"scaling: expected None, 'ue8m0' or 'ue4m3', got {scaling!r}")
    if kind is None:
        kind = "mxf4" if (a, b) == ("e2m1", "e2m1") else "mxf8f6f4"
    if kind == "mxf8f6f4":
        if not mixed_ok:
            raise BlackwellSimError(f"a_format/b_format: kind::mxf8f6f4 takes "
                                    f"{sorted(F8F6F4_FORMATS)}, got {a}/{b}")
        if scale_vec not in (None, 1):
            raise BlackwellSimError(f"scale_vec: kind::mxf8f6f4 uses scale_vec 1, "
                                    f"got {scale_vec!r}")
        return MmaInstruction(kind, "window25", a, b, "f32", INSTRUCTION_K[kind] * sparse_factor,
                              "ue8m0", 32, sparse)
    if kind not in ("mxf4", "mxf4nvf4"):
        raise BlackwellSimError(f"kind: expected 'mxf8f6f4', 'mxf4' or 'mxf4nvf4', got {kind!r}")
    if (a, b) != ("e2m1", "e2m1"):
        raise BlackwellSimError(f"a_format/b_format: kind::{kind} needs e2m1 operands, got {a}/{b}")
    if scale_vec not in (None, 2, 4):
        raise BlackwellSimError(f"scale_vec: expected 2 or 4 for kind::{kind}, got {scale_vec!r}")
    block = 16 if (kind == "mxf4nvf4" and scale_vec == 4) else 32
    return MmaInstruction(kind, "mxf4", a, b, "f32", INSTRUCTION_K[kind] * sparse_factor,
                          "ue8m0", block, sparse)
