"""Vectorised bit-exact tensor-core matrix mode: ``D = A @ B + C`` on raw words.

:func:`mma_matrix` computes every output element with exactly the arithmetic of the scalar
reference :func:`blackwell_sim.numerics.mma.mma_dot` (tcgen05-model MODEL.md, sf-tensor/tcgen05;
MMA-Sim, arXiv 2511.10909; PTX ISA ``tcgen05.mma``), with numpy int64 arithmetic over all
(row, col) pairs at once.  The test suite checks it against ``mma_dot`` element by element on
random words of every format and kind, special values included.

Two strategies, chosen by the instruction's arithmetic path:

* ``window25`` (unscaled kinds, ``mxf8f6f4``): every product is truncated individually, so the
  [rows, N, K_instr] products of one instruction are formed explicitly (row-chunked).
* ``mxf4`` / ``nvfp4`` (E2M1 with UE8M0 / UE4M3 scales): products are summed *exactly* in
  groups of 16 (or 4) that share one scale pair before any truncation, so the group sums are
  exact small-integer matmuls, and the per-group maximum exponent is one more matmul on a
  radix encoding (see :func:`~blackwell_sim.numerics.mma_vec.group_max_raw`).  Only
  [groups, rows, N] arrays are ever formed: this path is fast enough for real GEMM shapes.
"""

from __future__ import annotations

from blackwell_sim.errors import BlackwellSimError

import numpy as np

from . import mma_vec as V
from .mma_words import (
    ELEMENT_FORMATS,
    F16,
    F16_CANONICAL_NAN,
    F16_NEG_INF,
    F16_POS_INF,
    F32,
    F32_CANONICAL_NAN,
    F32_NEG_INF,
    F32_POS_INF,
    FP4_C_MERGE_BITS,
    FP4_PRODUCT_WINDOW_BITS,
    FP4_SCALE_FLOOR_BITS,
    MXF4_SUBNORMAL_GROUP_FLOOR_EXP,
    NVFP4_PRODUCT_GROUP,
    SCALE_WORD_SLOTS,
    UNSCALED_WINDOW_BITS,
    MmaInstruction,
    resolve_instruction,
)

__all__ = ["mma_matrix"]

ELEMENT_BUDGET = 1 << 20
"""Target element count of the largest temporary array of one row chunk (~8 MiB of int64)."""
E2M1_HALF_UNIT_EXP = -1
"""E2M1 values are integers times 2**-1, so a product of two is an integer times 2**-2."""
E2M1_RAW_RANGE = (0, 2)
"""Encoded exponents of nonzero E2M1 values."""
_F32_SUBNORMAL_LIMIT = 1 << 23
_MAX_WORD = 0xFFFF_FFFF


def _words(name: str, x, ndim: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise BlackwellSimError(f"{name}: expected a {ndim}-D array of container words, got shape "
                                f"{arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise BlackwellSimError(f"{name}: container words must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > _MAX_WORD):
        raise BlackwellSimError(f"{name}: words must lie in [0, 2**32)")
    return arr


def _scale_matrix(name: str, s, rows: int, instr: MmaInstruction, n_instr: int) -> np.ndarray:
    """[rows, n_blocks] scale bytes; a padded 4-slot word per instruction is compacted."""
    per = instr.scales_per_instruction
    arr = _words(name, s, 2)
    if arr.shape[0] != rows:
        raise BlackwellSimError(f"{name}: needs {rows} rows, got {arr.shape[0]}")
    if arr.size and arr.max() > 0xFF:
        raise BlackwellSimError(f"{name}: scale bytes must be 0..255")
    if arr.shape[1] == per * n_instr:
        return arr
    if per < SCALE_WORD_SLOTS and arr.shape[1] == SCALE_WORD_SLOTS * n_instr:
        return arr.reshape(rows, n_instr, SCALE_WORD_SLOTS)[:, :, :per].reshape(rows, -1)
    raise BlackwellSimError(f"{name}: K={instr.k * n_instr} with {instr.scaling} scale blocks of "
                            f"{instr.scale_block} needs {per * n_instr} scales per row, "
                            f"got {arr.shape[1]}")


def mma_matrix(a, b, c=None, *, a_format: str, b_format: str | None = None,
               scaling: str | None = None, kind: str | None = None, scale_vec: int | None = None,
               scale_a=None, scale_b=None, d_format: str = "f32", sparse_active=None,
               chunk_m: int | None = None) -> np.ndarray:
    """Bit-exact ``D[m, n] = mma_dot(a[m], b[n], c[m, n], scale_a=scale_a[m], scale_b=scale_b[n])``.

    Layout ("TN", as the tensor core and cuBLAS consume K-major operands):
      a: [M, K] A words; b: [N, K] words of B's columns (i.e. B transposed, K contiguous);
      c: [M, N] accumulator words or None (+0); scale_a: [M, K/scale_block] bytes;
      scale_b: [N, K/scale_block] bytes (or one padded 4-slot word per instruction, like
      :func:`~blackwell_sim.numerics.mma.mma_dot`); sparse_active: optional [M, K] booleans of
      a 2:4 (tf32 1:2) sparse A, applied to A and to B for that row.
    Other arguments as :func:`~blackwell_sim.numerics.mma.mma_dot`.  K is executed as a chain
    of instructions of the instruction K.  Returns uint32 F32 words ([M, N]), or uint16 F16
    words when ``d_format == "f16"``.  ``chunk_m`` bounds the rows processed at once.
    """
    instr = resolve_instruction(a_format, b_format, scaling=scaling, kind=kind,
                                scale_vec=scale_vec, d_format=d_format,
                                sparse=sparse_active is not None)
    a_w, b_w = _words("a", a, 2), _words("b", b, 2)
    (m, k), n = a_w.shape, b_w.shape[0]
    if b_w.shape[1] != k:
        raise BlackwellSimError(f"b: expected [N, K={k}] (B transposed, K-major), got {b_w.shape}")
    if k == 0 or k % instr.k:
        raise BlackwellSimError(f"a: K={k} is not a positive multiple of the instruction "
                                f"K={instr.k} of kind::{instr.kind}")
    c_w = np.zeros((m, n), np.int64) if c is None else _words("c", c, 2)
    if c_w.shape != (m, n):
        raise BlackwellSimError(f"c: expected shape {(m, n)}, got {c_w.shape}")
    if d_format == "f16" and c_w.size and c_w.max() > 0xFFFF:
        raise BlackwellSimError("c: F16 accumulator words must lie in [0, 2**16)")
    n_instr = k // instr.k
    if instr.scaling is None:
        if scale_a is not None or scale_b is not None:
            raise BlackwellSimError("scale_a: scales given for an unscaled instruction")
        sa = sb = None
    else:
        if scale_a is None or scale_b is None:
            raise BlackwellSimError(f"scale_a/scale_b: required for {instr.scaling} scaling")
        sa = _scale_matrix("scale_a", scale_a, m, instr, n_instr)
        sb = _scale_matrix("scale_b", scale_b, n, instr, n_instr)
    active = None
    if sparse_active is not None:
        active = np.asarray(sparse_active, dtype=bool)
        if active.shape != (m, k):
            raise BlackwellSimError(f"sparse_active: expected shape {(m, k)}, got {active.shape}")
        a_w = np.where(active, a_w, 0)

    inner = instr.k if instr.path == "window25" else 2 * instr.k // NVFP4_PRODUCT_GROUP
    rows = chunk_m or max(1, ELEMENT_BUDGET // max(1, n * inner))
    out = np.empty((m, n), np.uint16 if d_format == "f16" else np.uint32)
    b_dec = V.decode(b_w, ELEMENT_FORMATS[instr.b_format])
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        a_dec = V.decode(a_w[r0:r1], ELEMENT_FORMATS[instr.a_format])
        words = c_w[r0:r1]
        for i in range(n_instr):
            ks = slice(i * instr.k, (i + 1) * instr.k)
            per = instr.scales_per_instruction
            ss = slice(i * per, (i + 1) * per)
            args = (instr, _take(a_dec, ks), _take(b_dec, ks), words,
                    None if sa is None else V.decode_scales(sa[r0:r1, ss], instr.scaling),
                    None if sb is None else V.decode_scales(sb[:, ss], instr.scaling))
            if instr.path == "window25":
                words = _window25(*args, None if active is None else active[r0:r1, ks])
            else:
                words = _fp4(*args)
        out[r0:r1] = words
    return out


def _take(dec: V.Decoded, ks: slice) -> V.Decoded:
    return V.Decoded(dec.mant[:, ks], dec.vexp[:, ks], dec.raw[:, ks], dec.nan[:, ks],
                     dec.inf[:, ks])


def _finish(instr: MmaInstruction, word: np.ndarray, nan: np.ndarray, inf: np.ndarray
            ) -> np.ndarray:
    """Overlay the special-value outcome (MODEL.md s.4) in destination-width encodings."""
    if instr.d_format == "f16":
        specials = (F16_CANONICAL_NAN, F16_POS_INF, F16_NEG_INF)
    else:
        specials = (F32_CANONICAL_NAN, F32_POS_INF, F32_NEG_INF)
    word = np.where(inf > 0, specials[1], np.where(inf < 0, specials[2], word))
    return np.where(nan, specials[0], word).astype(np.int64)


def _window25(instr, a, b, c_words, sa, sb, active):
    """One instruction of the per-product-truncation path (MODEL.md s.3, s.5 UE8M0 f8f6f4)."""
    c = V.decode(c_words, F16 if instr.d_format == "f16" else F32)
    a = V.fold_scales_window25(a, sa, instr.scale_block)
    b = V.fold_scales_window25(b, sb, instr.scale_block)
    units, q, any_live, nan, inf = V.window25_units(a, b, c, UNSCALED_WINDOW_BITS, active)
    if instr.d_format == "f16":
        word = V.encode_f16_rne(units, q).astype(np.int64)
    else:
        word = V.encode_f32_rz(units, q).astype(np.int64)
    if sa is not None:
        word = np.where(any_live, word, c_words)  # block-scaled: C passes through
        nan = nan | sa.nan.any(axis=1)[:, None] | sb.nan.any(axis=1)[None, :]
    return _finish(instr, word, nan, inf)


def _fp4(instr, a, b, c_words, sa, sb):
    """One E2M1 block-scaled instruction: ``mxf4`` (UE8M0) or ``nvfp4`` (UE4M3) path."""
    merge = instr.merge_group
    ha, hb = V.e2m1_half_units(a), V.e2m1_half_units(b)
    # Per merge group g: max raw exponent sum of live element pairs, scale pair per group.
    r_el = V.group_max_raw(a.raw, a.mant != 0, b.raw, b.mant != 0, merge, *E2M1_RAW_RANGE)
    idx = (np.arange(instr.k // merge) * merge) // instr.scale_block  # scale block of group g
    sam, sav, sar = (x[:, idx].T[:, :, None] for x in (sa.mant, sa.vexp, sa.raw))
    sbm, sbv, sbr = (x[:, idx].T[:, None, :] for x in (sb.mant, sb.vexp, sb.raw))
    smm, g_exp, g_scale_raw = sam * sbm, sav + sbv + 2 * E2M1_HALF_UNIT_EXP, sar + sbr
    live = (r_el > V.NO_EXP) & (smm != 0)
    g_raw = r_el + g_scale_raw
    max_prod = V.masked_max(g_raw, live, axis=0)
    max_scale = V.masked_max(g_scale_raw, live, axis=0)

    c = V.decode(c_words, F32)
    c_live = c.mant != 0
    c_dom = c_live & (c.raw >= max_prod)
    q_main = np.maximum(max_prod - FP4_PRODUCT_WINDOW_BITS, max_scale - FP4_SCALE_FLOOR_BITS)
    q_c = c.raw - FP4_C_MERGE_BITS

    if instr.path == "nvfp4":
        s_small = V.group_sums(ha, hb, NVFP4_PRODUCT_GROUP)  # [4 * groups, m, n]
        s_merge = s_small.reshape(-1, merge // NVFP4_PRODUCT_GROUP, *s_small.shape[1:]).sum(1)
    else:
        s_merge = V.group_sums(ha, hb, merge)
    # C-dominant (MODEL.md s.5): exact merge-group sums truncated into C's 35-bit window.
    u_c = V.shift_toward_zero(c.mant, c.vexp - q_c)
    u_c = u_c + V.shift_toward_zero(s_merge * smm, g_exp - q_c).sum(axis=0)
    u_main = V.shift_toward_zero(c.mant, c.vexp - q_main)
    if instr.path == "nvfp4":
        rep = merge // NVFP4_PRODUCT_GROUP
        u_main = u_main + V.shift_toward_zero(
            s_small * np.repeat(smm, rep, axis=0),
            np.repeat(g_exp, rep, axis=0) - q_main).sum(axis=0)
        word = V.encode_f32_rz(np.where(c_dom, u_c, u_main), np.where(c_dom, q_c, q_main))
    else:
        # A group that C outranks is truncated through C's 35-bit window first.
        gq = np.where(c_live & live & (c.raw >= g_raw), np.maximum(q_main, q_c), q_main)
        g_units = V.shift_toward_zero(V.shift_toward_zero(s_merge * smm, g_exp - gq), gq - q_main)
        word = V.encode_f32_rz(np.where(c_dom, u_c, u_main + g_units.sum(axis=0)),
                               np.where(c_dom, q_c, q_main)).astype(np.int64)
        sub = ~c_dom & ((word & 0x7FFF_FFFF) > 0) & ((word & 0x7FFF_FFFF) < _F32_SUBNORMAL_LIMIT)
        if sub.any():  # lower-scale groups under the 2**-174 floor are dropped (MODEL.md s.5)
            floor_shift = MXF4_SUBNORMAL_GROUP_FLOOR_EXP - q_main
            below = (np.abs(g_units) < (np.int64(1) << np.clip(floor_shift, 0, 62))) | \
                (floor_shift > 62)
            drop = live & (g_scale_raw < max_scale) & below
            kept = u_main + np.where(drop, 0, g_units).sum(axis=0)
            word = np.where(sub, V.encode_f32_rz(kept, q_main), word)
    word = np.where(max_prod > V.NO_EXP, word.astype(np.int64), c_words)  # no live product: C
    nan = sa.nan.any(axis=1)[:, None] | sb.nan.any(axis=1)[None, :] | c.nan
    return _finish(instr, word, nan, c.inf)
