"""Functional GEMM on quantized operands: ``qgemm(a, b)`` = ``A @ B^T`` in two fidelities.

Layout ("TN", the K-major layout the tensor core and cuBLAS/TransformerEngine use):
``a`` is [M, K], ``b`` is [N, K] (B transposed: one row per output column), result [M, N].
A :class:`~blackwell_sim.numerics.quantize.QuantizedTensor` operand may instead be stored with
its K axis first ([K, M] / [K, N]): the K axis of a block-scaled operand is always its
quantization ``axis``.  Per-tensor operands and plain float arrays follow the TN layout.

Operands: QuantizedTensors of ``nvfp4``, ``mxfp4``, ``mxfp8_e4m3``, ``mxfp8_e5m2``,
``mxfp6_e2m3``, ``mxfp6_e3m2``, ``fp8_e4m3``, ``fp8_e5m2``, ``fp4`` (A and B of one family;
MX/per-tensor f8/f6/f4 element formats may be mixed as ``kind::f8f6f4`` allows), or plain float
arrays used as ``bf16`` / ``f16`` / ``tf32`` inputs (``float_format``; float16 and ml_dtypes
bfloat16 arrays imply theirs).

Modes:

* ``fast``: dequantize (exactly: element x block scale is exact in fp32) and matmul in
  ``accum_dtype`` (fp32 or fp64), processed in K-chunks (``chunk_k``) and M-chunks (``chunk_m``)
  so the dequantized temporaries stay bounded; the per-tensor fp32 factors are applied with the
  association :meth:`QuantizedTensor.dequantize` uses.  This is "dequantize then matmul", not
  the tensor core.
* ``exact``: codes and scale bytes become raw tcgen05 words and run through
  :func:`~blackwell_sim.numerics.mma_matrix.mma_matrix` (bit-exact B200 arithmetic per
  instruction, chained along K: tcgen05-model MODEL.md, MMA-Sim arXiv 2511.10909, PTX ISA
  ``tcgen05.mma``).  Per-tensor fp32 factors are applied afterwards in the epilogue, as cuBLAS
  does with ``alpha``: ``D = fp32(alpha * acc)`` with ``alpha = fp32(g_a * g_b)`` (one fp32
  multiply of the two global decode scales; TransformerEngine computes its NVFP4 alpha from the
  amaxes, ``amax_a * amax_b / (6*6*448*448)``, which agrees with this to a few fp32 ulps).
  MXFP4 runs on ``kind::mxf4`` by default (``kind="mxf4nvf4"`` or ``"mxf8f6f4"`` selects the
  other datapaths).  K is zero-padded (unit scales) to a multiple of the instruction K.

2:4 sparse A (1:2 for tf32): pass ``a`` as the compressed values ([M, K/2], a float array or a
QuantizedTensor of the compressed values, quantized along the compressed K) and ``a_indices``
from :func:`~blackwell_sim.numerics.sparsity.compress_2_4`.  The result equals the dense product
of the decompressed A in fast mode; exact mode runs the sparse instruction (double K, disabled
positions removed from A *and* B; NVFP4 sparse takes one scale per 32 logical K for both
operands, MODEL.md s.5), so a block scale of the compressed A covers twice its length of
logical K.
"""

from __future__ import annotations

import numpy as np

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.numerics.formats import code_table
from blackwell_sim.numerics.formats import decode as decode_codes
from blackwell_sim.numerics.quantize import QuantizedTensor
from blackwell_sim.numerics.sparsity import decompress_1_2, decompress_2_4

from .mma_matrix import mma_matrix
from .mma_words import MmaInstruction, resolve_instruction

__all__ = ["qgemm"]

DEFAULT_CHUNK_K = 2048
"""Fast mode: K columns dequantized at once."""
CHUNK_K_ALIGN = 64
"""Fast-mode K chunks are rounded up to a multiple of every scale block (16, 32)."""
DEFAULT_CHUNK_ELEMENTS = 1 << 22
"""Fast mode: target size of one dequantized A chunk (rows x chunk_k)."""
UNIT_SCALE = {"ue8m0": 0x7F, "ue4m3": 0x38}
"""Scale byte of 1.0 (used for K padding in exact mode)."""
_SCALING = {"e8m0": "ue8m0", "ue4m3": "ue4m3"}
_FLOAT_FORMATS = {"bf16": "bf16", "f16": "f16", "fp16": "f16", "tf32": "tf32"}
_BF16_ROUND_BIAS = 0x7FFF
_F32_QUIET_NAN_BF16 = 0x7FC0_0000


class _Operand:
    """One GEMM operand in TN orientation: [rows, K] element codes (the tcgen05 container
    words: uint8 codes of quantized operands, F32/F16 bits of float operands), per-row block
    scale bytes, fp32 global decode factor."""

    def __init__(self, rows: int, k: int, codes: np.ndarray | None, elem: str | None,
                 scaling: str | None = None, block: int | None = None,
                 scales: np.ndarray | None = None, global_scale=None, policy: str | None = None,
                 values: np.ndarray | None = None):
        self.rows, self.k, self.codes, self.elem = rows, k, codes, elem
        self.scaling, self.block, self.scales = scaling, block, scales
        self.global_scale, self.policy, self._values = global_scale, policy, values
        self.active: np.ndarray | None = None

    def values(self, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        """Exact fp32 values of rows r0:r1, K k0:k1 (k0, k1 multiples of the block or K), with
        the association of :meth:`QuantizedTensor.dequantize` (TE: ``(e * s) * g``;
        torchao / ModelOpt: ``e * (s * g)``).  Element x block scale is exact in fp32."""
        if self._values is not None:
            return self._values[r0:r1, k0:k1]
        codes = self.codes[r0:r1, k0:k1]
        if self.elem == "tf32":
            x = decode_codes(codes, "tf32")
        else:
            x = code_table(_PART_A_NAMES.get(self.elem, self.elem)).take(codes)
        g = self.global_scale
        if self.scales is not None:
            b0, b1 = k0 // self.block, -(-k1 // self.block)
            s = code_table(_SCALE_TABLE[self.scaling]).take(self.scales[r0:r1, b0:b1])
            if g is not None and self.policy in _POLICIES_SCALE_TIMES_GLOBAL:
                s = s * g
            x = (x.reshape(x.shape[0], b1 - b0, self.block) * s[:, :, None]).reshape(x.shape)
            if g is not None and self.policy not in _POLICIES_SCALE_TIMES_GLOBAL:
                x *= g
        elif g is not None:
            x = x * g
        return x

    def scales_for(self, block: int, name: str, instr: MmaInstruction) -> np.ndarray:
        """Per-row scale bytes, one per ``block`` of logical K."""
        if self.block != block:
            raise BlackwellSimError(
                f"{name}: kind::{instr.kind} ({instr.scaling}{', sparse' if instr.sparse else ''})"
                f" takes one scale per {block} K, but {name} has scale blocks of {self.block}")
        return self.scales


class _SparseOperand(_Operand):
    """2:4 (tf32: 1:2) sparse A given compressed: stored operand + per-value group indices."""

    def __init__(self, stored: _Operand, indices, name: str):
        self.stored = stored
        self.keep, self.group = (1, 2) if stored.elem == "tf32" else (2, 4)
        self._decompress = decompress_1_2 if self.group == 2 else decompress_2_4
        idx = np.asarray(indices)
        if idx.shape != (stored.rows, stored.k):
            raise BlackwellSimError(f"{name}_indices: expected shape {(stored.rows, stored.k)} "
                                    f"like the compressed values of {name}, got {idx.shape}")
        self.indices = idx
        active = self._decompress(np.ones(idx.shape, np.float32), idx) != 0
        codes = None
        if stored.codes is not None:  # kept values fill the active positions in order
            codes = np.zeros(active.shape, stored.codes.dtype)
            codes[active] = stored.codes.ravel()
        super().__init__(stored.rows, stored.k * self.group // self.keep, codes, stored.elem,
                         stored.scaling, None, None, stored.global_scale, stored.policy)
        self.active = active

    def values(self, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        dense = self._decompress(self.stored.values(r0, r1, 0, self.stored.k),
                                 self.indices[r0:r1])
        return dense[:, k0:k1]

    def scales_for(self, block: int, name: str, instr: MmaInstruction) -> np.ndarray:
        """Logical block j covers stored values [j*block/2, (j+1)*block/2): one stored scale."""
        stored_block, half = self.stored.block, block * self.keep // self.group
        if stored_block is None or stored_block % half:
            raise BlackwellSimError(
                f"{name}: compressed scale blocks of {stored_block} stored values do not nest "
                f"in the sparse instruction's {block}-wide logical K scale blocks")
        starts = np.arange(0, self.k, block) * self.keep // self.group
        return self.stored.scales[:, starts // stored_block]


_PART_A_NAMES = {"f16": "fp16"}
_SCALE_TABLE = {"ue8m0": "e8m0", "ue4m3": "ue4m3"}
_POLICIES_SCALE_TIMES_GLOBAL = ("torchao", "modelopt")


def _float_words(x: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(container words, exact fp32 values) of a float array used as a ``fmt`` operand.

    bf16 / f16: RNE conversion (what a framework cast does) unless the array already has that
    dtype; tf32: the fp32 container itself; the tensor core drops its fraction bits 0..12
    (MODEL.md s.2), so the values are the truncated ones."""
    if fmt == "f16":
        h = np.ascontiguousarray(x if x.dtype == np.float16 else x.astype(np.float16))
        return h.view(np.uint16).astype(np.int64), h.astype(np.float32)
    f = np.ascontiguousarray(x.astype(np.float32))
    bits = f.view(np.uint32).astype(np.int64)
    if fmt == "tf32":
        return bits, (bits & ~((1 << TF32_DROPPED_BITS) - 1)).astype(np.uint32).view(np.float32)
    if x.dtype.name != "bfloat16":
        rounded = ((bits + _BF16_ROUND_BIAS + ((bits >> 16) & 1)) >> 16) << 16
        bits = np.where(np.isnan(f), _F32_QUIET_NAN_BF16, rounded & 0xFFFF_FFFF)
    return bits, bits.astype(np.uint32).view(np.float32)


TF32_DROPPED_BITS = 13


def _operand(x, name: str, float_format: str | None) -> _Operand:
    if isinstance(x, QuantizedTensor):
        if len(x.shape) != 2:
            raise BlackwellSimError(f"{name}: expected a 2-D quantized matrix, got shape {x.shape}")
        codes, scales, block = x.codes, x.scales, None
        rows = x.shape[0]
        if x.block_shape is not None:
            if x.axis == 0:  # K-first storage: move K last
                codes, scales = codes.T, scales.T
            rows = x.shape[1 - x.axis]
            block = x.block_shape[-1]
            if len(x.block_shape) == 2:  # 16x16 tiles: the same byte for each of 16 rows
                scales = np.repeat(scales, x.block_shape[0], axis=0)
            scales = scales[:rows].astype(np.int64)
        return _Operand(rows, codes.shape[1], codes[:rows], x.elem_fmt,
                        _SCALING.get(x.scale_fmt), block, scales, x.global_scale, x.policy)
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise BlackwellSimError(f"{name}: expected a 2-D array or QuantizedTensor, got shape "
                                f"{arr.shape}")
    if arr.dtype.kind != "f" and arr.dtype.name != "bfloat16":
        raise BlackwellSimError(f"{name}: expected a QuantizedTensor or a float array, "
                                f"got dtype {arr.dtype}")
    if float_format is None:
        float_format = {"float16": "f16", "bfloat16": "bf16"}.get(arr.dtype.name)
    if float_format is None:  # fast mode only: the values as given
        return _Operand(arr.shape[0], arr.shape[1], None, None,
                        values=arr.astype(np.float32, copy=False))
    fmt = _FLOAT_FORMATS.get(str(float_format).lower())
    if fmt is None:
        raise BlackwellSimError(f"float_format: expected bf16, f16 or tf32, got {float_format!r}")
    words, values = _float_words(arr, fmt)
    return _Operand(arr.shape[0], arr.shape[1], words, fmt, values=values)


def _instruction(a: _Operand, b: _Operand, kind: str | None, sparse: bool
                 ) -> tuple[MmaInstruction, int | None]:
    if a.elem is None or b.elem is None:
        raise BlackwellSimError("float_format: exact mode needs the input format of float "
                                "operands (bf16, f16 or tf32)")
    if a.scaling != b.scaling:
        raise BlackwellSimError(f"b: operand families differ (a: {a.scaling or 'no'} block "
                                f"scales, b: {b.scaling or 'no'} block scales)")
    scale_vec = None
    if a.scaling == "ue4m3":
        scale_vec = 4
    elif a.scaling == "ue8m0" and kind == "mxf4nvf4":
        scale_vec = 4 if b.block == 16 else 2
    return resolve_instruction(a.elem, b.elem, scaling=a.scaling, kind=kind, scale_vec=scale_vec,
                               sparse=sparse), scale_vec


def _exact(a: _Operand, b: _Operand, kind: str | None, chunk_m: int | None) -> np.ndarray:
    instr, scale_vec = _instruction(a, b, kind, a.active is not None)
    pad = (-a.k) % instr.k
    widths = ((0, 0), (0, pad))
    active = None if a.active is None else np.pad(a.active, widths)
    sa = sb = None
    if instr.scaling is not None:
        n_blocks = (a.k + pad) // instr.scale_block
        sa, sb = (np.pad(s, ((0, 0), (0, n_blocks - s.shape[1])),
                         constant_values=UNIT_SCALE[instr.scaling])
                  for s in (a.scales_for(instr.scale_block, "a", instr),
                            b.scales_for(instr.scale_block, "b", instr)))
    d = mma_matrix(np.pad(a.codes, widths), np.pad(b.codes, widths), None,
                   a_format=instr.a_format, b_format=instr.b_format, scaling=instr.scaling,
                   kind=instr.kind if instr.scaling else None,
                   scale_vec=scale_vec,
                   scale_a=sa, scale_b=sb, sparse_active=active, chunk_m=chunk_m)
    out = d.view(np.float32)
    if a.global_scale is not None or b.global_scale is not None:
        one = np.float32(1.0)
        alpha = np.float32(a.global_scale if a.global_scale is not None else one) * \
            np.float32(b.global_scale if b.global_scale is not None else one)
        with np.errstate(over="ignore", invalid="ignore"):
            out = out * alpha
    return out


def _fast(a: _Operand, b: _Operand, accum_dtype, chunk_k: int | None, chunk_m: int | None
          ) -> np.ndarray:
    """Dequantize K-chunks of B and (K, M)-chunks of A, accumulate ``A_c @ B_c^T``."""
    k = a.k
    ck = -(-(chunk_k or DEFAULT_CHUNK_K) // CHUNK_K_ALIGN) * CHUNK_K_ALIGN
    if isinstance(a, _SparseOperand):
        ck = k  # the compressed A is decompressed per row chunk over the whole K
    ck = min(k, ck)
    cm = max(1, min(a.rows, chunk_m or max(1, DEFAULT_CHUNK_ELEMENTS // ck)))
    out = np.zeros((a.rows, b.rows), accum_dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        for k0 in range(0, k, ck):
            k1 = min(k, k0 + ck)
            b_chunk = b.values(0, b.rows, k0, k1).astype(accum_dtype, copy=False)
            for r0 in range(0, a.rows, cm):
                r1 = min(a.rows, r0 + cm)
                part = a.values(r0, r1, k0, k1).astype(accum_dtype, copy=False) @ b_chunk.T
                if k0 == 0:
                    out[r0:r1] = part
                else:
                    out[r0:r1] += part
    return out


def qgemm(a, b, *, mode: str = "fast", out_dtype=np.float32, accum_dtype=np.float32,
          chunk_k: int | None = None, chunk_m: int | None = None, kind: str | None = None,
          float_format: str | None = None, a_indices=None) -> np.ndarray:
    """``A @ B^T`` of quantized (or float) operands; see the module docstring.

    Args:
      a: [M, K] QuantizedTensor or float array (with ``a_indices``: the compressed [M, K/2]
        values of a 2:4-sparse A; [M, K/2] of a 1:2 tf32 A).
      b: [N, K] QuantizedTensor or float array (B transposed, K-major).
      mode: ``"fast"`` (dequantize + matmul in ``accum_dtype``) or ``"exact"`` (bit-exact
        tcgen05 arithmetic).
      out_dtype: dtype of the returned [M, N] array.
      accum_dtype: fast mode matmul dtype, ``np.float32`` or ``np.float64``.
      chunk_k, chunk_m: fast mode K / M chunk sizes (memory bound); ``chunk_m`` also bounds the
        rows of one exact-mode pass.
      kind: exact mode MXFP4 datapath: ``"mxf4"`` (default), ``"mxf4nvf4"``, ``"mxf8f6f4"``.
      float_format: ``"bf16"``, ``"f16"`` or ``"tf32"`` for float operands (float16 / bfloat16
        arrays imply theirs); required for float operands in exact mode.
      a_indices: group indices of the compressed sparse A (:func:`compress_2_4` output).
    """
    if mode not in ("fast", "exact"):
        raise BlackwellSimError(f"mode: expected 'fast' or 'exact', got {mode!r}")
    if np.dtype(accum_dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise BlackwellSimError(f"accum_dtype: expected float32 or float64, got {accum_dtype!r}")
    for arg, value in (("chunk_k", chunk_k), ("chunk_m", chunk_m)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise BlackwellSimError(f"{arg}: expected a positive integer, got {value!r}")
    op_a = _operand(a, "a", float_format)
    op_b = _operand(b, "b", float_format)
    if a_indices is not None:
        op_a = _SparseOperand(op_a, a_indices, "a")
    if op_a.k != op_b.k:
        raise BlackwellSimError(f"b: K mismatch: a has K={op_a.k}, b has K={op_b.k} "
                                "(b is [N, K], i.e. B transposed)")
    if mode == "exact":
        out = _exact(op_a, op_b, kind, chunk_m)
    else:
        if kind is not None:
            raise BlackwellSimError("kind: only meaningful in exact mode")
        out = _fast(op_a, op_b, np.dtype(accum_dtype), chunk_k, chunk_m)
    return out.astype(out_dtype, copy=False)
