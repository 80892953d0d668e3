"""Structured sparsity: 2:4 (fp16/bf16/fp8/fp6/fp4 sparse MMA) and 1:2 (tf32 sparse MMA).

N:M sparsity along K: in every group of M consecutive elements along the reduction axis at most N
are nonzero. The sparse tensor-core MMA (PTX ``mma.sp`` / ``tcgen05.mma.sp``) takes the operand
compressed: the N kept values of each group (``[M_rows, K * N / M]``) plus, per kept value, its
index inside the group. Compression happens offline in software (cuSPARSELt); the tensor core
expands it (DESIGN.md, "Seed claims that are wrong").

Rules implemented here:

* Pruning (``prune_2_4`` / ``prune_1_2``): keep the N largest ``|x|`` of each group; ties go to the
  lower index (a stable sort of ``-|x|``). Groups with fewer than N nonzeros keep zeros at the
  lowest free positions, so every group always has exactly N stored entries.
* Indices are stored in increasing order inside a group. For 2:4 the 4-bit group metadata
  ``idx0 | idx1 << 2`` is then one of 0x4, 0x8, 0x9, 0xC, 0xD, 0xE -- the values the PTX ISA
  allows for sparse MMA metadata. For 1:2 each index is one bit.
* ``pack_metadata`` writes the indices as a little-endian bit stream (index t at bits
  ``[b*t, b*(t+1))`` with ``b = log2(M)``), one row per leading index, in uint8.
"""

from __future__ import annotations

import numpy as np

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.numerics.formats import as_float32

BITS_PER_BYTE = 8


def _grouped(x: object, m: int, axis: int, argument: str = "x") -> tuple[np.ndarray, int]:
    """float32 view with ``axis`` last, reshaped to (..., K/m, m)."""
    x32 = as_float32(x, argument)
    if x32.ndim == 0 or not -x32.ndim <= axis < x32.ndim:
        raise BlackwellSimError(f"axis: {axis!r} is out of range for {argument} of shape {x32.shape}")
    ax = axis % x32.ndim
    size = x32.shape[ax]
    if size % m:
        raise BlackwellSimError(f"{argument}: axis {axis} has size {size}, not a multiple of the group size {m}")
    moved = np.moveaxis(x32, ax, -1)
    return moved.reshape(moved.shape[:-1] + (size // m, m)), ax


def _kept_indices(groups: np.ndarray, n: int) -> np.ndarray:
    """Indices (ascending) of the n largest |x| per group, ties to the lower index."""
    if np.isnan(groups).any():
        raise BlackwellSimError("x: NaN has no magnitude order; cannot prune")
    order = np.argsort(-np.abs(groups), axis=-1, kind="stable")[..., :n]
    return np.sort(order, axis=-1).astype(np.uint8)


def _prune(x: object, n: int, m: int, axis: int) -> np.ndarray:
    groups, ax = _grouped(x, m, axis)
    keep = _kept_indices(groups, n)
    mask = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(mask, keep.astype(np.intp), True, axis=-1)
    pruned = np.where(mask, groups, np.float32(0)).reshape(groups.shape[:-2] + (-1,))
    return np.ascontiguousarray(np.moveaxis(pruned, -1, ax))


def _is_sparse(x: object, n: int, m: int, axis: int) -> bool:
    groups, _ = _grouped(x, m, axis)
    return bool(np.all(np.count_nonzero(groups, axis=-1) <= n))


def _compress(x: object, n: int, m: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    groups, ax = _grouped(x, m, axis)
    counts = np.count_nonzero(groups, axis=-1)
    if np.any(counts > n):
        bad = int(np.count_nonzero(counts > n))
        raise BlackwellSimError(f"x: {bad} group(s) of {m} hold more than {n} nonzeros; prune first")
    keep = _kept_indices(groups, n)
    values = np.take_along_axis(groups, keep.astype(np.intp), axis=-1)
    out_shape = groups.shape[:-2] + (-1,)
    values = np.moveaxis(values.reshape(out_shape), -1, ax)
    indices = np.moveaxis(keep.reshape(out_shape), -1, ax)
    return np.ascontiguousarray(values), np.ascontiguousarray(indices)


def _decompress(values: object, indices: object, n: int, m: int, axis: int) -> np.ndarray:
    vals = as_float32(values, "values")
    idx = np.asarray(indices)
    if idx.dtype.kind not in "ui":
        raise BlackwellSimError(f"indices: expected an integer array, got dtype {idx.dtype}")
    if idx.shape != vals.shape:
        raise BlackwellSimError(f"indices: shape {idx.shape} does not match values {vals.shape}")
    v_groups, ax = _grouped(vals, n, axis, "values")
    i_groups = np.moveaxis(idx, ax, -1).reshape(v_groups.shape).astype(np.int64)
    if i_groups.size and (i_groups.min() < 0 or i_groups.max() >= m):
        raise BlackwellSimError(f"indices: must lie in 0..{m - 1}")
    if n > 1 and np.any(np.diff(i_groups, axis=-1) <= 0):
        raise BlackwellSimError("indices: must be strictly increasing inside each group")
    dense = np.zeros(v_groups.shape[:-1] + (m,), dtype=np.float32)
    np.put_along_axis(dense, i_groups, v_groups, axis=-1)
    dense = dense.reshape(dense.shape[:-2] + (-1,))
    return np.ascontiguousarray(np.moveaxis(dense, -1, ax))


def prune_2_4(x: object, axis: int = -1) -> np.ndarray:
    """Magnitude-prune to 2:4 along ``axis`` (float32, same shape; see module rules)."""
    return _prune(x, 2, 4, axis)


def is_2_4_sparse(x: object, axis: int = -1) -> bool:
    """Whether every group of 4 along ``axis`` has at most 2 nonzeros (NaN counts as nonzero)."""
    return _is_sparse(x, 2, 4, axis)


def compress_2_4(x: object, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(values, indices)``: float32 values and uint8 indices (0..3), both with ``axis`` halved.

    ``x`` must already be 2:4 sparse (ValueError otherwise)."""
    return _compress(x, 2, 4, axis)


def decompress_2_4(values: object, indices: object, axis: int = -1) -> np.ndarray:
    """Dense float32 array from :func:`compress_2_4` output; validates the indices."""
    return _decompress(values, indices, 2, 4, axis)


def prune_1_2(x: object, axis: int = -1) -> np.ndarray:
    """Magnitude-prune to 1:2 along ``axis`` (the tf32 sparse-MMA pattern)."""
    return _prune(x, 1, 2, axis)


def is_1_2_sparse(x: object, axis: int = -1) -> bool:
    """Whether every pair along ``axis`` has at most one nonzero."""
    return _is_sparse(x, 1, 2, axis)


def compress_1_2(x: object, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(values, indices)`` for 1:2 sparsity: indices in {0, 1}, ``axis`` halved."""
    return _compress(x, 1, 2, axis)


def decompress_1_2(values: object, indices: object, axis: int = -1) -> np.ndarray:
    """Dense float32 array from :func:`compress_1_2` output."""
    return _decompress(values, indices, 1, 2, axis)


def _index_bits(group: int) -> int:
    if group not in (2, 4):
        raise BlackwellSimError(f"group: metadata is defined for 1:2 (group 2) and 2:4 (group 4), not {group}")
    return group.bit_length() - 1


def pack_metadata(indices: object, group: int = 4, axis: int = -1) -> np.ndarray:
    """Pack per-value indices into bytes along ``axis`` (little-endian bit stream, 2 bits per
    index for 2:4, 1 bit for 1:2; a partial last byte is zero-padded)."""
    bits = _index_bits(group)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "ui" or idx.ndim == 0:
        raise BlackwellSimError(f"indices: expected an integer array, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= group):
        raise BlackwellSimError(f"indices: must lie in 0..{group - 1}")
    moved = np.moveaxis(idx.astype(np.uint8), axis, -1)
    per_byte = BITS_PER_BYTE // bits
    pad = (-moved.shape[-1]) % per_byte
    if pad:
        moved = np.concatenate([moved, np.zeros(moved.shape[:-1] + (pad,), np.uint8)], axis=-1)
    chunks = moved.reshape(moved.shape[:-1] + (-1, per_byte))
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits).astype(np.uint8)
    packed = np.bitwise_or.reduce(chunks << shifts, axis=-1).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(packed, -1, axis))


def unpack_metadata(packed: object, count: int, group: int = 4, axis: int = -1) -> np.ndarray:
    """Inverse of :func:`pack_metadata`: ``count`` indices along ``axis`` (uint8)."""
    bits = _index_bits(group)
    data = np.asarray(packed)
    if data.dtype != np.uint8 or data.ndim == 0:
        raise BlackwellSimError(f"packed: expected a uint8 array, got dtype {data.dtype}")
    moved = np.moveaxis(data, axis, -1)
    per_byte = BITS_PER_BYTE // bits
    if count > moved.shape[-1] * per_byte:
        raise BlackwellSimError(f"count: {count} indices do not fit {moved.shape[-1]} bytes")
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits).astype(np.uint8)
    mask = np.uint8((1 << bits) - 1)
    out = ((moved[..., None] >> shifts) & mask).reshape(moved.shape[:-1] + (-1,))[..., :count]
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))
