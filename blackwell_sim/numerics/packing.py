"""Bit packing of element codes into bytes (the memory image of a quantized operand).

Codes are packed as a little-endian bit stream: element ``i`` of width ``w`` bits occupies bits
``[w*i, w*(i+1))``. For FP4 this is "two codes per byte, element 2i in the low nibble"
(DESIGN.md; the layout of PTX ``.e2m1x2`` and of CUTLASS / TransformerEngine FP4 buffers); for FP6
four codes fill three bytes (the packed global-memory form that TMA expands; inside SMEM the
``kind::f8f6f4`` MMA reads FP4/FP6 padded to one byte each); 8-bit codes are one per byte and
16-bit codes two bytes, little-endian. A trailing partial group is zero-padded.
"""

from __future__ import annotations

import numpy as np

from blackwell_sim.errors import BlackwellSimError

BITS_PER_BYTE = 8
FP6_GROUP_CODES = 4   # 4 x 6 bits = 3 bytes
FP6_GROUP_BYTES = 3


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes needed to pack ``count`` codes of ``bits`` bits each (partial groups padded)."""
    if bits == 6:
        return -(-count // FP6_GROUP_CODES) * FP6_GROUP_BYTES
    return -(-count * bits // BITS_PER_BYTE)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack a flat sequence of codes (C order of ``codes``) into a 1-D uint8 array."""
    flat = np.ascontiguousarray(codes).reshape(-1)
    if bits == 4:
        if flat.size % 2:
            flat = np.concatenate([flat, np.zeros(1, flat.dtype)])
        low = flat[0::2].astype(np.uint8)
        high = flat[1::2].astype(np.uint8)
        return low | (high << np.uint8(4))
    if bits == 6:
        pad = (-flat.size) % FP6_GROUP_CODES
        if pad:
            flat = np.concatenate([flat, np.zeros(pad, flat.dtype)])
        groups = flat.reshape(-1, FP6_GROUP_CODES).astype(np.uint32)
        word = groups[:, 0] | (groups[:, 1] << 6) | (groups[:, 2] << 12) | (groups[:, 3] << 18)
        out = np.stack([(word >> (BITS_PER_BYTE * i)) & 0xFF for i in range(FP6_GROUP_BYTES)], axis=1)
        return out.astype(np.uint8).reshape(-1)
    if bits in (7, 8):
        return flat.astype(np.uint8)
    if bits == 16:
        return flat.astype("<u2").view(np.uint8)
    raise BlackwellSimError(f"bits: packing is defined for 4, 6, 8 and 16-bit codes, not {bits}")


def unpack_codes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``count`` codes as a 1-D array."""
    data = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if data.size < packed_nbytes(count, bits):
        raise BlackwellSimError(f"packed: {data.size} bytes hold fewer than {count} {bits}-bit codes")
    if bits == 4:
        out = np.empty(2 * data.size, dtype=np.uint8)
        out[0::2] = data & 0x0F
        out[1::2] = data >> 4
        return out[:count]
    if bits == 6:
        groups = data[: data.size - data.size % FP6_GROUP_BYTES].reshape(-1, FP6_GROUP_BYTES)
        word = groups.astype(np.uint32)
        word = word[:, 0] | (word[:, 1] << 8) | (word[:, 2] << 16)
        out = np.stack([(word >> (6 * i)) & 0x3F for i in range(FP6_GROUP_CODES)], axis=1)
        return out.astype(np.uint8).reshape(-1)[:count]
    if bits in (7, 8):
        return data[:count].copy()
    if bits == 16:
        return data[: 2 * count].view("<u2").astype(np.uint16)
    raise BlackwellSimError(f"bits: packing is defined for 4, 6, 8 and 16-bit codes, not {bits}")
