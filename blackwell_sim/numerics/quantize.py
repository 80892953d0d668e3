"""Block-scaled quantization (MX, NVFP4) and per-tensor FP8 / FP4, with :class:`QuantizedTensor`.

``quantize(x, fmt, ...)`` formats (scale rules and their sources: :mod:`.scaling`):

==============  =======  ==========  ==============================  ==========================
fmt             element  block       scale                           default rule / policy
==============  =======  ==========  ==============================  ==========================
``mxfp8_e4m3``  e4m3     32          E8M0 byte per block             ``scale_rule="floor"``
``mxfp8_e5m2``  e5m2     32          E8M0                            (OCP MX v1.0, 6.3);
``mxfp6_e2m3``  e2m3     32          E8M0                            ``"rceil"`` as cuBLAS /
``mxfp6_e3m2``  e3m2     32          E8M0                            TransformerEngine
``mxfp4``       e2m1     32          E8M0
``nvfp4``       e2m1     16 or 16x16 UE4M3 byte per block + fp32     ``policy="te"`` (also
                                     global decode scale             ``"torchao"``, ``"modelopt"``)
``fp8_e4m3``    e4m3     tensor      fp32 ``global_scale`` only      TE current scaling
``fp8_e5m2``    e5m2     tensor      fp32                            ``scale = max / amax``
``fp4``         e2m1     tensor      fp32
==============  =======  ==========  ==============================  ==========================

Blocks run along ``axis`` (any axis; the K axis of a GEMM operand). ``block_shape=(16, 16)``
(NVFP4 only, TransformerEngine's 2D weight scaling) uses one scale per 16x16 tile spanning
``axis`` and the last of the remaining axes (for a matrix: both axes). If the blocked axes are
not multiples of the block, ``pad=True`` zero-pads them (codes and scales then cover the padded
shape; ``dequantize()`` returns the original shape), otherwise a ValueError names the axis.

Special values (same rule for every block format, mirrored by the test reference): a block
holding a NaN gets the NaN scale byte (E8M0 0xFF, UE4M3 0x7F), all its element codes are 0 and it
dequantizes to NaN; NaN blocks are ignored for the NVFP4 global amax. +-Inf saturates: the scale
computation clamps (E8M0 0xFE, UE4M3 448) and the element becomes +-max normal. Per-tensor FP8
maps NaN to the NaN code; per-tensor FP4 rejects NaN (E2M1 has none).

Reference quality (DESIGN.md; ``tests/numerics/test_quantize.py``) on
``np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)`` -- float64 draws
cast to fp32: fp4 17.02 dB, mxfp4 18.79, nvfp4 20.44, mxfp8_e4m3 30.65 (floor) / 31.52 (rceil).
Drawing float32 directly (``dtype=np.float32``) gives another sample whose larger amax moves the
per-tensor fp4 figure to 17.12 dB (the block formats stay within 0.1 dB).

Rounding: block scales are always RNE (hardware and libraries do so); ``rounding`` applies to the
elements: ``"rne"`` (default) or ``"sr"`` (stochastic, 8 random bits from ``rng``, the NVFP4
training recipe's gradient rounding), or the directed ``"rz"`` / ``"ru"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.numerics import scaling
from blackwell_sim.numerics.formats import as_float32, decode, get_format
from blackwell_sim.numerics.packing import pack_codes, packed_nbytes
from blackwell_sim.numerics.rounding import ROUNDING_MODES, encode_f32

F32 = np.float32
FP32_BYTES = 4
NVFP4_2D_TILE = (16, 16)


@dataclass(frozen=True)
class BlockFormat:
    """A quantized tensor format: element format, block length and scale format."""

    name: str
    elem: str
    block_size: int | None  # None: one fp32 scale for the whole tensor
    scale_fmt: str | None
    source: str


_OCP = "OCP MX spec v1.0, table 1"
BLOCK_FORMATS: dict[str, BlockFormat] = {
    f.name: f
    for f in (
        BlockFormat("mxfp8_e4m3", "e4m3", 32, "e8m0", _OCP),
        BlockFormat("mxfp8_e5m2", "e5m2", 32, "e8m0", _OCP),
        BlockFormat("mxfp6_e2m3", "e2m3", 32, "e8m0", _OCP),
        BlockFormat("mxfp6_e3m2", "e3m2", 32, "e8m0", _OCP),
        BlockFormat("mxfp4", "e2m1", 32, "e8m0", _OCP),
        BlockFormat("nvfp4", "e2m1", 16, "ue4m3", "TransformerEngine NVFP4 (core_nvfp4.cuh)"),
        BlockFormat("fp8_e4m3", "e4m3", None, None, "TransformerEngine Float8CurrentScaling"),
        BlockFormat("fp8_e5m2", "e5m2", None, None, "TransformerEngine Float8CurrentScaling"),
        BlockFormat("fp4", "e2m1", None, None, "per-tensor FP4 (max / amax scaling)"),
    )
}


def get_block_format(name: object) -> BlockFormat:
    """Look up a quantized format, or raise a ValueError listing the known names."""
    if not isinstance(name, str) or name.lower() not in BLOCK_FORMATS:
        raise BlackwellSimError(f"fmt: unknown quantized format {name!r}; known: {', '.join(BLOCK_FORMATS)}")
    return BLOCK_FORMATS[name.lower()]


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """A quantized tensor: element codes, raw scale bytes and the fp32 global scale.

    Attributes:
        fmt: quantized format name (``"nvfp4"``, ``"mxfp4"``, ``"fp8_e4m3"``, ...).
        elem_fmt: element format (``"e2m1"``, ``"e4m3"``, ...).
        codes: uint8 element codes shaped like the (padded) input, in the input's axis order.
        scales: uint8 raw scale bytes (E8M0 or UE4M3), one per block, shaped like ``codes`` with
            the blocked axis divided by the block length (2D tiles: both tiled axes divided);
            ``None`` for per-tensor formats.
        global_scale: fp32 decode multiplier (NVFP4 ``S_dec`` / per-tensor ``1/scale``), or
            ``None`` for MX formats.
        axis: the (non-negative) axis the blocks run along.
        block_shape: ``(32,)``, ``(16,)``, ``(16, 16)``, or ``None`` for per-tensor.
        shape: the original, unpadded shape.
        scale_fmt / scale_rule / policy / rounding: how it was produced.
    """

    fmt: str
    elem_fmt: str
    codes: np.ndarray
    scales: np.ndarray | None
    global_scale: np.float32 | None
    axis: int
    block_shape: tuple[int, ...] | None
    shape: tuple[int, ...]
    scale_fmt: str | None = None
    scale_rule: str | None = None
    policy: str | None = None
    rounding: str = "rne"

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Shape of ``codes`` (the input shape after any padding)."""
        return tuple(self.codes.shape)

    @property
    def element_bits(self) -> int:
        return get_format(self.elem_fmt).bits

    @cached_property
    def packed(self) -> np.ndarray:
        """Element codes packed as bytes (see :mod:`.packing`): C order of ``codes`` with
        ``axis`` moved last (K-major), FP4 two per byte (element 2i in the low nibble), FP6
        four per three bytes, FP8 one per byte. Computed on first access."""
        return pack_codes(np.moveaxis(self.codes, self.axis, -1), self.element_bits)

    @property
    def nbytes(self) -> int:
        """Storage bytes: packed codes + one byte per scale + 4 for an fp32 global scale."""
        total = packed_nbytes(self.codes.size, self.element_bits)
        total += 0 if self.scales is None else self.scales.size
        return total + (0 if self.global_scale is None else FP32_BYTES)

    @property
    def bits_per_element(self) -> float:
        """Storage bits per original (unpadded) element."""
        return 8.0 * self.nbytes / max(1, math.prod(self.shape))

    def dequantize(self) -> np.ndarray:
        """float32 values, shaped like the original input (see module docstring for order)."""
        elements = np.moveaxis(decode(self.codes, self.elem_fmt), self.axis, -1)
        if self.block_shape is None:
            out = elements * self.global_scale
        else:
            scale_values = np.moveaxis(decode(self.scales, self.scale_fmt), self.axis, -1)
            if self.global_scale is not None and self.policy in ("torchao", "modelopt"):
                scale_values = scale_values * self.global_scale  # e2m1 * (s * global)
            out = _apply_block_values(elements, scale_values, self.block_shape, "mul")
            if self.global_scale is not None and self.policy not in ("torchao", "modelopt"):
                out = out * self.global_scale                     # (e2m1 * s) * S_dec
        out = np.moveaxis(out, -1, self.axis)
        return np.ascontiguousarray(out[tuple(slice(0, n) for n in self.shape)], dtype=np.float32)


def _apply_block_values(x: np.ndarray, values: np.ndarray, tile: tuple[int, ...], op: str) -> np.ndarray:
    """``x * values`` (or ``x / values``) with one value per block; ``x`` has the axis last."""
    if len(tile) == 1:
        blocks = x.reshape(values.shape + (tile[0],))
        v = values[..., None]
    else:
        rows, cols = x.shape[-2:]
        blocks = x.reshape(x.shape[:-2] + (rows // tile[0], tile[0], cols // tile[1], tile[1]))
        v = values[..., :, None, :, None]
    out = blocks * v if op == "mul" else blocks / v
    return out.reshape(x.shape)


def _block_amax(x: np.ndarray, tile: tuple[int, ...]) -> np.ndarray:
    """Max |x| per block (NaN if the block holds a NaN); ``x`` has the blocked axis last."""
    magnitude = np.abs(x)
    if len(tile) == 2:
        rows, cols = x.shape[-2:]
        tiles = magnitude.reshape(x.shape[:-2] + (rows // tile[0], tile[0], cols // tile[1], tile[1]))
        return tiles.max(axis=(-3, -1))
    width = tile[0]
    flat = magnitude.reshape(-1, width)
    while width > 1 and width % 2 == 0:  # pairwise tree: faster than max(axis=-1) on short rows
        width //= 2
        flat = np.maximum(flat[:, :width], flat[:, width:2 * width])
    if width > 1:
        flat = flat.max(axis=1, keepdims=True)
    return flat.reshape(x.shape[:-1] + (x.shape[-1] // tile[0],))


def _resolve_tile(spec: BlockFormat, block_shape: object, ndim: int) -> tuple[int, ...]:
    if block_shape is None:
        return (spec.block_size,)
    try:
        tile = tuple(int(b) for b in block_shape)  # type: ignore[union-attr]
    except TypeError:
        tile = (int(block_shape),)  # type: ignore[arg-type]
    if tile in ((spec.block_size,), (1, spec.block_size)):
        return (spec.block_size,)
    if spec.name == "nvfp4" and tile == NVFP4_2D_TILE:
        if ndim < 2:
            raise BlackwellSimError("block_shape: 2D (16, 16) tiles need an input with at least 2 dimensions")
        return NVFP4_2D_TILE
    allowed = f"({spec.block_size},)" + (" or (16, 16)" if spec.name == "nvfp4" else "")
    raise BlackwellSimError(f"block_shape: {spec.name} supports {allowed}, got {block_shape!r}")


def _pad_blocked(xm: np.ndarray, tile: tuple[int, ...], axis: int, pad: bool) -> np.ndarray:
    """Zero-pad (or reject) the blocked trailing axes of ``xm`` to multiples of the tile."""
    widths = [(0, 0)] * xm.ndim
    for offset, block in enumerate(reversed(tile)):
        dim = xm.ndim - 1 - offset
        size = xm.shape[dim]
        if size % block:
            if not pad:
                which = f"axis {axis}" if offset == 0 else f"the other tiled axis (size {size})"
                raise BlackwellSimError(
                    f"x: {which} has size {size}, not a multiple of the block length {block}; "
                    "pass pad=True to zero-pad")
            widths[dim] = (0, (-size) % block)
    if any(w != (0, 0) for w in widths):
        return np.pad(xm, widths)
    return np.ascontiguousarray(xm)


def _check_common(x: object, axis: int, rounding: str) -> tuple[np.ndarray, int]:
    x32 = as_float32(x, "x")
    if x32.ndim == 0 or x32.size == 0:
        raise BlackwellSimError(f"x: need a non-empty array with at least one dimension, got shape {x32.shape}")
    if not isinstance(axis, (int, np.integer)) or not -x32.ndim <= axis < x32.ndim:
        raise BlackwellSimError(f"axis: {axis!r} is out of range for an array of {x32.ndim} dimension(s)")
    if rounding not in ROUNDING_MODES:
        raise BlackwellSimError(f"rounding: unknown mode {rounding!r}; known: {', '.join(ROUNDING_MODES)}")
    return x32, int(axis) % x32.ndim


def quantize_per_tensor(x: object, fmt: str, scale: float | None = None, *, rounding: str = "rne",
                        rng: np.random.Generator | int | None = None) -> QuantizedTensor:
    """Per-tensor quantization ``codes = encode(x * scale)``; ``scale=None`` uses current
    scaling ``max_norm / amax`` (:func:`.scaling.current_scale`). ``global_scale = 1 / scale``."""
    spec = get_block_format(fmt)
    if spec.block_size is not None:
        raise BlackwellSimError(f"fmt: {spec.name} is block-scaled; use quantize()")
    x32, _ = _check_common(x, -1, rounding)
    elem = get_format(spec.elem)
    amax = float(np.max(np.abs(x32)))
    if math.isnan(amax):
        if elem.nan_code is None:
            raise BlackwellSimError(f"x: contains NaN but {spec.name} elements ({elem.name}) have no NaN encoding")
        amax = float(np.fmax.reduce(np.abs(x32), axis=None))
    if scale is None:
        scale = scaling.current_scale(amax, elem.max_normal)
    scale32 = F32(scale)
    if not (np.isfinite(scale32) and scale32 > 0):
        raise BlackwellSimError(f"scale: must be a positive finite fp32 value, got {scale!r}")
    with np.errstate(over="ignore"):
        codes = encode_f32(x32 * scale32, elem, rounding, True, "zero", rng)
    return QuantizedTensor(spec.name, elem.name, codes, None, F32(1.0) / scale32, x32.ndim - 1, None,
                           tuple(x32.shape), rounding=rounding)


def quantize(x: object, fmt: str, *, axis: int = -1, block_shape: object = None,
             scale_rule: str | None = None, policy: str | None = None, rounding: str = "rne",
             rng: np.random.Generator | int | None = None, pad: bool = False) -> QuantizedTensor:
    """Quantize ``x`` (real floats, converted to fp32) into ``fmt``; see the module docstring.

    ``scale_rule`` (MX only): ``"floor"`` (default) or ``"rceil"``. ``policy`` (NVFP4 only):
    ``"te"`` (default), ``"torchao"``, ``"modelopt"``. ``rng``: Generator or seed for ``"sr"``.
    """
    spec = get_block_format(fmt)
    is_mx = spec.scale_fmt == "e8m0"
    if scale_rule is not None and (not is_mx or scale_rule not in scaling.MX_SCALE_RULES):
        raise BlackwellSimError(f"scale_rule: {scale_rule!r} is not valid for {spec.name} "
                                f"(MX formats take {', '.join(scaling.MX_SCALE_RULES)})")
    if policy is not None and (spec.name != "nvfp4" or policy not in scaling.NVFP4_POLICIES):
        raise BlackwellSimError(f"policy: {policy!r} is not valid for {spec.name} "
                                f"(nvfp4 takes {', '.join(scaling.NVFP4_POLICIES)})")
    if spec.block_size is None:
        if block_shape is not None:  # (pad is accepted and has nothing to do)
            raise BlackwellSimError(f"block_shape: {spec.name} is per-tensor; it has no blocks")
        return quantize_per_tensor(x, spec.name, rounding=rounding, rng=rng)
    x32, ax = _check_common(x, axis, rounding)
    tile = _resolve_tile(spec, block_shape, x32.ndim)
    xm = _pad_blocked(np.moveaxis(x32, ax, -1), tile, ax, pad)
    elem = get_format(spec.elem)
    block_amax = _block_amax(xm, tile)
    nan_blocks = np.isnan(block_amax)
    global_scale = None
    if is_mx:
        scale_rule = scale_rule or "floor"
        scale_codes = scaling.mx_scale_codes(block_amax, elem, scale_rule)
        element_values, op = scaling.mx_element_factor(scale_codes), "mul"
    else:
        policy = policy or "te"
        scale_codes, global_scale, element_values, op = scaling.nvfp4_scales(
            block_amax, scaling.global_amax(block_amax), policy)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scaled = _apply_block_values(xm, element_values, tile, op)
    codes = encode_f32(scaled, elem, rounding, True, "zero", rng)
    if nan_blocks.any():
        zero = np.broadcast_to(nan_blocks[..., None], nan_blocks.shape + (tile[-1],))
        if len(tile) == 2:
            zero = np.repeat(np.repeat(nan_blocks, tile[0], axis=-2), tile[1], axis=-1)
        codes = np.where(zero.reshape(codes.shape), np.uint8(0), codes)
    return QuantizedTensor(
        spec.name, elem.name, np.ascontiguousarray(np.moveaxis(codes, -1, ax)),
        np.ascontiguousarray(np.moveaxis(scale_codes, -1, ax)), global_scale, ax, tile,
        tuple(x32.shape), spec.scale_fmt, scale_rule if is_mx else None,
        None if is_mx else policy, rounding)
