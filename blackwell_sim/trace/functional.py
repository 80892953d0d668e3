"""Functional execution during replay (``run --functional sample|full``): run each GEMM (and
forward attention in bf16 / fp8) in the op's format through :mod:`blackwell_sim.numerics` and
measure its error against an fp32 reference (SQNR in dB, relative Frobenius error).

Operands: the ``.npy`` files the op names (A [m, k], B [k, n], a leading batch axis when
batch > 1), else seeded N(0, 1) values. Random operands are drawn per block of
:data:`TILE` rows from a generator keyed by (seed, the op's shape fields, operand, batch, block),
so a block's values do not depend on which other blocks are drawn.

Modes:

- ``full``: the whole product (memory and time grow with m*n*k: a host-side cost).
- ``sample``: :data:`SAMPLE_TILES` output tiles of TILE x TILE chosen at random (seeded) and
  computed in full, operands quantized per tile. Formats whose scales are local to a row block
  (MX, NVFP4 block scales, 16x16 weight tiles, bf16) give exactly the tiles ``full`` gives, except
  that per-tensor scales (NVFP4's global scale, FP8 per-tensor) come from the tile's rows rather
  than the whole tensor.

The quantization: the op's ``recipe`` (:data:`blackwell_sim.numerics.RECIPES`) when it names one,
with the GEMM's role read from its name ("dgrad", "wgrad", else fprop), else the op's dtype
with the library defaults. The reference is the fp32 product of the unrounded operands; the product is ``qgemm(mode="fast")``: exact dequantization, fp32
accumulation (the tensor core's truncating fixed-point accumulation is ``mode="exact"``, not used
here for speed). Attention: Q, K, V and the softmax probabilities P are rounded to the format
(fp8: per-tensor scaled E4M3) before each product, the products and softmax in fp32 (FlashAttention's
datapath). Backward attention and other formats report NaN.
"""

from __future__ import annotations

import math
import time
import zlib
from pathlib import Path

import numpy as np

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.ops import AttentionOp, GemmOp, Op, op_error

TILE = 128
SAMPLE_TILES = 4
BLOCK_FORMATS = {"nvfp4": "nvfp4", "mxfp4": "mxfp4", "mxfp8": "mxfp8_e4m3", "mxfp8_e5m2": "mxfp8_e5m2",
                 "mxfp6_e2m3": "mxfp6_e2m3", "mxfp6_e3m2": "mxfp6_e3m2"}
TENSOR_FORMATS = {"fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2", "fp4": "fp4"}
FLOAT_FORMATS = {"bf16": "bf16", "fp16": "fp16", "tf32": "tf32", "fp32": "tf32"}
K_ALIGN = 32     #: K is zero-padded to a multiple of every scale block (16, 32)
ROW_ALIGN = 16   #: rows are zero-padded to whole 16x16 weight tiles
NAN3 = (math.nan, math.nan, math.nan)


def functional_key(op: Op, mode: str, seed: int, base_dir: Path | None) -> tuple:
    """Ops with equal keys get the same operands and so the same numerical result."""
    operands = getattr(op, "operands", None)
    return (mode, seed, op.timing_key(), getattr(op, "recipe", None), operands,
            str(base_dir) if operands else None, _role(op) if isinstance(op, GemmOp) else None)


def _role(op: Op) -> tuple[str, tuple[str, str]]:
    name = op.name.lower()
    if "wgrad" in name:
        return "wgrad", ("grad_output", "input")
    if "dgrad" in name:
        return "dgrad", ("grad_output", "weight")
    return "fprop", ("input", "weight")


def _rng(seed: int, op: Op, *parts: int) -> np.random.Generator:
    tag = zlib.crc32(repr(op.timing_key()).encode())
    return np.random.default_rng([seed, tag, *parts])


def _rows(seed: int, op: Op, which: int, batch: int, block: int, rows: int, k: int) -> np.ndarray:
    return _rng(seed, op, which, batch, block).standard_normal((rows, k), dtype=np.float32)


def _pad(x: np.ndarray, row_align: int, col_align: int) -> np.ndarray:
    r = -x.shape[0] % row_align
    c = -x.shape[1] % col_align
    return np.pad(x, ((0, r), (0, c))) if r or c else x


def _quantize(op: GemmOp, x: np.ndarray, operand: int, seed: int):
    """x is [rows, K] (K last); returns what qgemm takes."""
    from blackwell_sim.numerics import cast, get_recipe, quantize, quantize_per_tensor
    from blackwell_sim.numerics.recipes import DelayedScaling

    x = _pad(x, ROW_ALIGN, K_ALIGN)
    if op.recipe is not None:
        gemm, names = _role(op)
        treatment = get_recipe(op.recipe).treatment(gemm, names[operand])
        delayed = None
        if treatment.scaling == "delayed":  # first step after warm-up: history = this amax
            delayed = DelayedScaling(fmt=treatment.fmt.split("_")[-1])
            delayed.update(float(np.max(np.abs(x))))
        return treatment.apply(x, -1, rng=_rng(seed, op, 9, operand), delayed=delayed)
    if op.dtype in BLOCK_FORMATS:
        return quantize(x, BLOCK_FORMATS[op.dtype])
    if op.dtype in TENSOR_FORMATS:
        return quantize_per_tensor(x, TENSOR_FORMATS[op.dtype])
    return cast(x, FLOAT_FORMATS[op.dtype])


def _product(op: GemmOp, a: np.ndarray, b_t: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(quantized product, fp32 reference) of A [r, K] and B^T [c, K], cropped to [r, c]."""
    from blackwell_sim.numerics import qgemm

    qa, qb = _quantize(op, a, 0, seed), _quantize(op, b_t, 1, seed)
    float_format = "f16" if op.dtype == "fp16" else ("tf32" if op.dtype in ("tf32", "fp32") else "bf16")
    out = qgemm(qa, qb, mode="fast", float_format=float_format)
    ref = a @ b_t.T
    return out[: a.shape[0], : b_t.shape[0]], ref


def _load_operands(op: GemmOp, base_dir: Path | None, source: str):
    arrays = {}
    shapes = {"a": (op.m, op.k), "b": (op.k, op.n)}
    for name, file in op.operands:
        path = Path(file) if Path(file).is_absolute() or base_dir is None else base_dir / file
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise op_error(source, op.index, op.name, f"operands.{name}: cannot load {path}: {exc}") from None
        want = shapes[name] if op.batch == 1 else (op.batch, *shapes[name])
        if arr.shape != want and not (op.batch == 1 and arr.shape == (1, *shapes[name])):
            raise op_error(source, op.index, op.name, f"operands.{name}: {path} has shape {arr.shape}, "
                                                      f"the op needs {want}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise op_error(source, op.index, op.name, f"operands.{name}: {path} has dtype {arr.dtype}, "
                                                      f"expected floats")
        arrays[name] = arr.astype(np.float32).reshape((op.batch, *shapes[name]))
    return arrays


def _gemm(op: GemmOp, mode: str, seed: int, base_dir: Path | None, source: str):
    if op.recipe is None and op.dtype not in BLOCK_FORMATS | TENSOR_FORMATS | FLOAT_FORMATS:
        return math.nan, math.nan
    given = _load_operands(op, base_dir, source) if op.operands else {}

    def a_rows(batch: int, block: int) -> np.ndarray:
        r0, r1 = block * TILE, min((block + 1) * TILE, op.m)
        if "a" in given:
            return given["a"][batch, r0:r1]
        return _rows(seed, op, 0, batch, block, r1 - r0, op.k)

    def bt_rows(batch: int, block: int) -> np.ndarray:  # B^T rows = B's columns
        c0, c1 = block * TILE, min((block + 1) * TILE, op.n)
        if "b" in given:
            return np.ascontiguousarray(given["b"][batch, :, c0:c1].T)
        return _rows(seed, op, 1, batch, block, c1 - c0, op.k)

    tm, tn = math.ceil(op.m / TILE), math.ceil(op.n / TILE)
    outs, refs = [], []
    if mode == "full":
        for b in range(op.batch):
            a = np.concatenate([a_rows(b, i) for i in range(tm)])
            bt = np.concatenate([bt_rows(b, j) for j in range(tn)])
            out, ref = _product(op, a, bt, seed)
            outs.append(out.ravel())
            refs.append(ref.ravel())
    else:
        total = op.batch * tm * tn
        picks = _rng(seed, op, 2).choice(total, size=min(SAMPLE_TILES, total), replace=False)
        for pick in sorted(int(p) for p in picks):
            b, rest = divmod(pick, tm * tn)
            i, j = divmod(rest, tn)
            out, ref = _product(op, a_rows(b, i), bt_rows(b, j), seed)
            outs.append(out.ravel())
            refs.append(ref.ravel())
    return _metrics(np.concatenate(refs), np.concatenate(outs))


def _metrics(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    from blackwell_sim.numerics import relative_error, sqnr_db

    return sqnr_db(ref, out), relative_error(ref, out)


def _round(x: np.ndarray, dtype: str) -> np.ndarray:
    from blackwell_sim.numerics import cast, quantize_per_tensor

    if dtype == "bf16" or dtype == "fp16":
        return cast(x, dtype)
    return quantize_per_tensor(x, "fp8_e4m3").dequantize()


def _attention(op: AttentionOp, mode: str, seed: int):
    if op.backward or op.dtype not in ("bf16", "fp16", "fp8_e4m3"):
        return math.nan, math.nan
    kv_heads = op.kv_heads or op.heads
    seq_kv = op.seq_kv or op.seq_q
    pairs = [(b, h) for b in range(op.batch) for h in range(op.heads)]
    q_blocks = math.ceil(op.seq_q / TILE)
    if mode == "sample":
        picks = _rng(seed, op, 2).choice(len(pairs) * q_blocks, size=min(SAMPLE_TILES, len(pairs) * q_blocks),
                                         replace=False)
        work = [(pairs[p // q_blocks], [p % q_blocks]) for p in sorted(int(x) for x in picks)]
    else:
        work = [(pair, list(range(q_blocks))) for pair in pairs]
    scale = 1.0 / math.sqrt(op.head_dim)
    outs, refs = [], []
    for (b, h), blocks in work:
        kvh = h // (op.heads // kv_heads)
        k = _rng(seed, op, 1, b, kvh).standard_normal((seq_kv, op.head_dim), dtype=np.float32)
        v = _rng(seed, op, 2, b, kvh).standard_normal((seq_kv, op.head_dim_v or op.head_dim),
                                                      dtype=np.float32)
        kq, vq = _round(k, op.dtype), _round(v, op.dtype)
        for blk in blocks:
            rows = np.arange(blk * TILE, min((blk + 1) * TILE, op.seq_q))
            q = _rng(seed, op, 0, b, h, blk).standard_normal((len(rows), op.head_dim), dtype=np.float32)
            mask = None
            if op.causal:  # query i sees keys j <= i + (seq_kv - seq_q) (bottom-right aligned)
                mask = np.arange(seq_kv)[None, :] > rows[:, None] + (seq_kv - op.seq_q)
            ref = _softmax_pv(q, k, v, scale, mask, None)
            out = _softmax_pv(_round(q, op.dtype), kq, vq, scale, mask, op.dtype)
            outs.append(out.ravel())
            refs.append(ref.ravel())
    return _metrics(np.concatenate(refs), np.concatenate(outs))


def _softmax_pv(q, k, v, scale, mask, dtype):
    s = (q @ k.T) * np.float32(scale)
    if mask is not None:
        s = np.where(mask, -np.inf, s)
    s = s - s.max(axis=1, keepdims=True)
    p = np.exp(s)
    denom = p.sum(axis=1, keepdims=True)
    if dtype is not None:
        p = _round(p, dtype)
    return ((p @ v) / denom).astype(np.float32)


def run_functional(op: Op, mode: str, seed: int, base_dir: Path | None = None,
                   source: str = "<trace>") -> tuple[float, float, float]:
    """(sqnr_db, rel_error, functional_s) of one op; NaNs for ops and formats not executed."""
    if mode not in ("sample", "full"):
        raise BlackwellSimError(f"functional: expected sample or full, got {mode!r}")
    t0 = time.perf_counter()
    if isinstance(op, GemmOp):
        sqnr, rel = _gemm(op, mode, seed, base_dir, source)
    elif isinstance(op, AttentionOp):
        sqnr, rel = _attention(op, mode, seed)
    else:
        return NAN3
    if math.isnan(rel):
        return NAN3
    return sqnr, rel, time.perf_counter() - t0
