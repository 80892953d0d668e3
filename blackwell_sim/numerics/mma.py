"""Bit-exact model of one output element of a Blackwell ``tcgen05.mma`` (scalar reference).

:func:`mma_dot` takes raw container words and returns the raw D word.  It is written for
readability with exact Python integers and is the reference that the vectorised matrix mode
(:func:`blackwell_sim.numerics.mma_matrix.mma_matrix`) is tested against element by element.

Sources of the rules (all public):

* tcgen05-model ``MODEL.md`` and ``model.py`` (github.com/sf-tensor/tcgen05, MIT): the raw-
  exponent windows, truncation, special values, block-scaled families and the B200 result
  words in ``../shared/data/b200_mma/vectors.jsonl`` that this module reproduces.
* MMA-Sim (Xie, Wang, Yang, Yang, "MMA-Sim: Bit-Accurate Reference Model of Tensor Cores and
  Matrix Cores", arXiv 2511.10909): exact products, alignment to the largest exponent with
  truncation, normalisation with round-toward-zero on NVIDIA tensor cores.
* PTX ISA, ``tcgen05.mma``: kinds, K per instruction, block-scale vector sizes, D formats.

The arithmetic of one instruction (section numbers refer to MODEL.md):

1. Decode every word exactly (s.2).  NaN anywhere (A, B, C, a used scale), Inf x 0, or Infs
   of both signs give the canonical NaN word; otherwise an Inf contribution gives that Inf
   (s.4).
2. ``window25`` (unscaled kinds, ``mxf8f6f4``): ``q = max(raw exps of nonzero products and
   nonzero C) - 25``; every product (scale folded in) and C is truncated toward zero to units
   of ``2**q``; the integer sum is normalised to F32 with truncation, or to F16 with RNE (s.3).
3. ``mxf4`` / ``nvfp4`` (E2M1 with UE8M0 / UE4M3 scales): products are summed exactly in
   groups (16 / 4 wide), windows are 39 bits below the largest product and 35 bits below the
   largest scale pair, or 35 bits below C when C outranks every product (s.5).
4. Instructions chain along K: the D word of one instruction is the C word of the next.
"""

from __future__ import annotations

from blackwell_sim.errors import BlackwellSimError

from collections.abc import Sequence

from .mma_words import (
    F16_CANONICAL_NAN,
    F16_NEG_INF,
    F16_POS_INF,
    F32_CANONICAL_NAN,
    F32_NEG_INF,
    F32_POS_INF,
    FP4_C_MERGE_BITS,
    FP4_PRODUCT_WINDOW_BITS,
    FP4_SCALE_FLOOR_BITS,
    MXF4_SUBNORMAL_GROUP_FLOOR_EXP,
    NAN,
    NEG_INF,
    NVFP4_PRODUCT_GROUP,
    POS_INF,
    SCALE_WORD_SLOTS,
    UNSCALED_WINDOW_BITS,
    MmaInstruction,
    decode_accumulator,
    decode_scale,
    decode_word,
    encode_f16_rne,
    encode_f32_rz,
    resolve_instruction,
    shift_toward_zero,
)

__all__ = ["mma_dot", "instruction_scales"]

_WORD_MASK = 0xFFFF_FFFF
_F32_SUBNORMAL_LIMIT = 1 << 23  # |F32 word| below this (and nonzero) is subnormal


def _special_word(value: str, d_format: str) -> int:
    if d_format == "f16":
        return {NAN: F16_CANONICAL_NAN, POS_INF: F16_POS_INF}.get(value, F16_NEG_INF)
    return {NAN: F32_CANONICAL_NAN, POS_INF: F32_POS_INF}.get(value, F32_NEG_INF)


def _check_words(name: str, words: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(w) for w in words)
    for w in out:
        if not 0 <= w <= _WORD_MASK:
            raise BlackwellSimError(f"{name}: word {w!r} is not a uint32 container word")
    return out


def instruction_scales(name: str, scales: Sequence[int], instr: MmaInstruction,
                       n_instructions: int) -> list[tuple[int, ...]]:
    """Split a scale list into per-instruction tuples of ``instr.scales_per_instruction``.

    Accepted lengths: exactly one scale per K block (``K / scale_block``), or - per
    instruction - one full 4-slot TMEM scale word (:data:`SCALE_WORD_SLOTS`) whose unused
    slots are ignored (the B200 vectors are given that way).  Anything else: ValueError.
    """
    per = instr.scales_per_instruction
    values = [int(s) for s in scales]
    if any(not 0 <= s <= 0xFF for s in values):
        raise BlackwellSimError(f"{name}: scale bytes must be 0..255")
    if len(values) == per * n_instructions:
        stride = per
    elif per < SCALE_WORD_SLOTS and len(values) == SCALE_WORD_SLOTS * n_instructions:
        stride = SCALE_WORD_SLOTS
    else:
        raise BlackwellSimError(f"{name}: K={instr.k * n_instructions} with {instr.scaling} "
                                f"scale blocks of {instr.scale_block} needs "
                                f"{per * n_instructions} scales, got {len(values)}")
    return [tuple(values[i * stride:i * stride + per]) for i in range(n_instructions)]


def _products(instr: MmaInstruction, a: Sequence[int], b: Sequence[int],
              sa: tuple[int, ...], sb: tuple[int, ...]
              ) -> tuple[list[tuple[int, int, int, int]], bool, set[int]]:
    """Exact products of one instruction and their special outcomes.

    Returns ``(products, nan, inf_signs)``: products as ``(mantissa, value_exp, raw_exp,
    scale_raw_exp)`` of the finite pairs; ``nan`` for a NaN input or used scale or Inf x 0;
    ``inf_signs`` the set of signs (+1/-1) of infinite products (MODEL.md section 4)."""
    out = []
    infs: set[int] = set()
    nan = False
    for k, (wa, wb) in enumerate(zip(a, b)):
        da, db = decode_word(wa, instr.a_format), decode_word(wb, instr.b_format)
        if instr.scaling is not None:
            blk = k // instr.scale_block
            ds_a, ds_b = decode_scale(sa[blk], instr.scaling), decode_scale(sb[blk], instr.scaling)
            if NAN in (ds_a, ds_b):
                nan = True
                continue
        else:
            ds_a = ds_b = (1, 0, 0)
        if NAN in (da, db):
            nan = True
            continue
        if isinstance(da, str) or isinstance(db, str):  # an infinite operand
            signs = [(-1 if d == NEG_INF else 1) if isinstance(d, str) else
                     (0 if d[0] == 0 else (-1 if d[0] < 0 else 1)) for d in (da, db)]
            if 0 in signs:
                nan = True  # Inf x 0
            else:
                infs.add(signs[0] * signs[1])
            continue
        mant = da[0] * db[0] * ds_a[0] * ds_b[0]
        out.append((mant, da[1] + db[1] + ds_a[1] + ds_b[1], da[2] + db[2] + ds_a[2] + ds_b[2],
                    ds_a[2] + ds_b[2]))
    return out, nan, infs


def _exact_sum(terms: Sequence[tuple[int, int, int, int]]) -> tuple[int, int]:
    """Exact sum of ``(mant, exp, ...)`` terms as ``(mant, exp)``."""
    nonzero = [(m, e) for m, e, *_ in terms if m]
    if not nonzero:
        return 0, 0
    base = min(e for _, e in nonzero)
    return sum(m << (e - base) for m, e in nonzero), base


def _one_instruction(instr: MmaInstruction, a: Sequence[int], b: Sequence[int], c: int,
                     sa: tuple[int, ...], sb: tuple[int, ...]) -> int:
    dc = decode_accumulator(c, instr.d_format)
    products, nan, infs = _products(instr, a, b, sa, sb)
    if dc in (POS_INF, NEG_INF):
        infs.add(1 if dc == POS_INF else -1)
    if nan or dc == NAN or len(infs) == 2:  # NaN, Inf x 0, or Infs of both signs
        return _special_word(NAN, instr.d_format)
    if infs:
        return _special_word(POS_INF if infs == {1} else NEG_INF, instr.d_format)
    assert not isinstance(dc, str)
    c_mant, c_exp, c_raw = dc
    live = [p for p in products if p[0]]
    if instr.scaling is not None and not live:
        return c  # block-scaled paths pass C through untouched (MODEL.md s.5, model.py)
    raws = [p[2] for p in live] + ([c_raw] if c_mant else [])
    if not raws:
        return 0  # unscaled exact zero: canonical +0 (B200 vectors *-negative-zero)

    if instr.path == "window25":
        q = max(raws) - UNSCALED_WINDOW_BITS
        units = shift_toward_zero(c_mant, c_exp, q)
        units += sum(shift_toward_zero(m, e, q) for m, e, _, _ in products)
        if instr.d_format == "f16":
            return encode_f16_rne(units, q)
        return encode_f32_rz(units, q)

    max_prod = max(p[2] for p in live)
    max_scale = max(p[3] for p in live)
    group = instr.merge_group
    groups = [products[i:i + group] for i in range(0, len(products), group)]
    if c_mant and c_raw >= max_prod:
        # C-dominant: every exact K-group sum truncated into C's 35-bit window.
        q = c_raw - FP4_C_MERGE_BITS
        units = shift_toward_zero(c_mant, c_exp, q)
        units += sum(shift_toward_zero(*_exact_sum(g), q) for g in groups)
        return encode_f32_rz(units, q)
    q = max(max_prod - FP4_PRODUCT_WINDOW_BITS, max_scale - FP4_SCALE_FLOOR_BITS)
    c_units = shift_toward_zero(c_mant, c_exp, q)
    if instr.path == "nvfp4":
        quads = [products[i:i + NVFP4_PRODUCT_GROUP]
                 for i in range(0, len(products), NVFP4_PRODUCT_GROUP)]
        return encode_f32_rz(c_units + sum(shift_toward_zero(*_exact_sum(g), q) for g in quads), q)

    # mxf4 family: per K=16 group; a group that C outranks goes through C's 35-bit window.
    group_units = []  # (units at q, group scale raw or None)
    for g in groups:
        g_live = [p for p in g if p[0]]
        gq = q
        if c_mant and g_live and c_raw >= max(p[2] for p in g_live):
            gq = max(q, c_raw - FP4_C_MERGE_BITS)
        gu = shift_toward_zero(*_exact_sum(g), gq) << (gq - q)
        group_units.append((gu, max(p[3] for p in g_live) if g_live else None))
    word = encode_f32_rz(c_units + sum(u for u, _ in group_units), q)
    if 0 < (word & 0x7FFF_FFFF) < _F32_SUBNORMAL_LIMIT:
        # Subnormal result: lower-scale groups below the 2**-174 floor are dropped.
        floor_units = 1 << max(MXF4_SUBNORMAL_GROUP_FLOOR_EXP - q, 0)
        kept = [u for u, s in group_units
                if not (s is not None and s < max_scale and abs(u) < floor_units)]
        word = encode_f32_rz(c_units + sum(kept), q)
    return word


def mma_dot(a: Sequence[int], b: Sequence[int], c: int = 0, *, a_format: str,
            b_format: str | None = None, scaling: str | None = None, kind: str | None = None,
            scale_vec: int | None = None, scale_a: Sequence[int] = (),
            scale_b: Sequence[int] = (), d_format: str = "f32",
            sparse_active: Sequence[bool] | None = None) -> int:
    """One D word of ``tcgen05.mma``: ``D = dot(a, b) + c`` on raw container words.

    Args follow ``../shared/data/b200_mma/README.md``:
      a, b: operand words in logical K order (tf32/bf16: F32 container bits; f16: low 16 bits;
        e4m3/e5m2: low 8; e2m3/e3m2: low 6; e2m1: low 4).  ``len(a)`` must be a positive
        multiple of the instruction K (tf32 8, f16/bf16 16, f8f6f4/mxf8f6f4 32, mxf4/mxf4nvf4
        64; doubled when sparse).  Longer K is executed as a chain of instructions along K, the
        D word of each being the C word of the next.
      c: accumulator word (F32 bits, or F16 bits when ``d_format == "f16"``).
      a_format, b_format: element formats (b_format defaults to a_format).
      scaling: None, ``"ue8m0"`` (MX) or ``"ue4m3"`` (NVFP4).  kind / scale_vec: see
        :func:`~blackwell_sim.numerics.mma_words.resolve_instruction`.
      scale_a, scale_b: scale bytes, one per K block (or per instruction one 4-slot scale word,
        unused slots ignored).
      d_format: ``"f32"`` or ``"f16"``.
      sparse_active: optional per-K booleans for a 2:4 (1:2 for tf32) sparse instruction: the
        disabled positions of A *and* B are removed before classification (a NaN of B at a
        disabled position has no effect), and the instruction K doubles (MODEL.md s.5, s.7).

    Returns the D word (F32 bits, or F16 bits for ``d_format == "f16"``).
    Raises ValueError naming the argument for unknown formats, bad combinations, a K that is
    not a multiple of the instruction K, or a scale count that does not match.
    """
    instr = resolve_instruction(a_format, b_format, scaling=scaling, kind=kind,
                                scale_vec=scale_vec, d_format=d_format,
                                sparse=sparse_active is not None)
    a_words, b_words = _check_words("a", a), _check_words("b", b)
    c_word = int(c)
    if not 0 <= c_word <= (0xFFFF if d_format == "f16" else _WORD_MASK):
        raise BlackwellSimError(f"c: {c!r} is not a {d_format} container word")
    if len(a_words) != len(b_words):
        raise BlackwellSimError(f"b: has {len(b_words)} words but a has {len(a_words)}")
    if not a_words or len(a_words) % instr.k:
        raise BlackwellSimError(f"a: K={len(a_words)} is not a positive multiple of the "
                                f"instruction K={instr.k} of kind::{instr.kind}")
    if sparse_active is not None:
        active = [bool(x) for x in sparse_active]
        if len(active) != len(a_words):
            raise BlackwellSimError(f"sparse_active: needs {len(a_words)} flags, got {len(active)}")
        a_words = tuple(w if on else 0 for w, on in zip(a_words, active))
        b_words = tuple(w if on else 0 for w, on in zip(b_words, active))
    n_instr = len(a_words) // instr.k
    if instr.scaling is None:
        if len(scale_a) or len(scale_b):
            raise BlackwellSimError("scale_a: scales given for an unscaled instruction")
        sa_list = sb_list = [()] * n_instr
    else:
        sa_list = instruction_scales("scale_a", scale_a, instr, n_instr)
        sb_list = instruction_scales("scale_b", scale_b, instr, n_instr)
    for i in range(n_instr):
        lo, hi = i * instr.k, (i + 1) * instr.k
        c_word = _one_instruction(instr, a_words[lo:hi], b_words[lo:hi], c_word,
                                  sa_list[i], sb_list[i])
    return c_word
