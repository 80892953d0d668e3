"""Blackwell numerics: element formats, MX / NVFP4 block scaling, rounding, training-recipe pieces,
2:4 sparsity, quality metrics, and (in :mod:`.mma` / :mod:`.gemm`) the tensor-core MMA and GEMM.

Element formats (:mod:`.formats`, :mod:`.rounding`)::

    cast(x, fmt, *, rounding="rne", saturate=True, nan="raise", rng=None) -> float32
    encode(x, fmt, *, rounding="rne", saturate=True, nan="raise", rng=None) -> codes
    decode(codes, fmt) -> float32
    code_table(fmt) -> float32 value of every code

with ``fmt`` in ``e2m1 e2m3 e3m2 e4m3 ue4m3 e5m2 e8m0 bf16 fp16 tf32``.

Quantization (:mod:`.quantize`, :mod:`.scaling`, :mod:`.packing`)::

    quantize(x, fmt, *, axis=-1, block_shape=None, scale_rule=None, policy=None,
             rounding="rne", rng=None, pad=False) -> QuantizedTensor

with ``fmt`` in ``mxfp8_e4m3 mxfp8_e5m2 mxfp6_e2m3 mxfp6_e3m2 mxfp4 nvfp4 fp8_e4m3 fp8_e5m2 fp4``.

Recipes (:mod:`.recipes`): ``random_hadamard_transform``, ``DelayedScaling``, ``current_scale``,
``NVFP4Recipe`` / ``get_recipe(name)``. Sparsity (:mod:`.sparsity`): ``prune_2_4``,
``compress_2_4``, ``decompress_2_4``, ``is_2_4_sparse`` and the 1:2 (tf32) variants. Metrics
(:mod:`.metrics`): ``sqnr_db``, ``mse``, ``relative_error``, ``flushed_to_zero``, ``compare``.

Bad input raises :class:`blackwell_sim.errors.BlackwellSimError` (a ValueError) naming the argument.
"""

from __future__ import annotations

import importlib

from blackwell_sim.numerics.formats import FORMATS, ElementFormat, code_table, decode, get_format
from blackwell_sim.numerics.metrics import (
    compare,
    flushed_to_zero,
    mse,
    relative_error,
    sqnr_db,
)
from blackwell_sim.numerics.packing import pack_codes, unpack_codes
from blackwell_sim.numerics.quantize import (
    BLOCK_FORMATS,
    BlockFormat,
    QuantizedTensor,
    quantize,
    quantize_per_tensor,
)
from blackwell_sim.numerics.recipes import (
    RECIPES,
    DelayedScaling,
    NVFP4Recipe,
    OperandTreatment,
    get_recipe,
    random_hadamard_transform,
    rht_matrix,
)
from blackwell_sim.numerics.rounding import NAN_POLICIES, ROUNDING_MODES, cast, encode
from blackwell_sim.numerics.scaling import current_scale
from blackwell_sim.numerics.sparsity import (
    compress_1_2,
    compress_2_4,
    decompress_1_2,
    decompress_2_4,
    is_1_2_sparse,
    is_2_4_sparse,
    pack_metadata,
    prune_1_2,
    prune_2_4,
    unpack_metadata,
)

# Tensor-core MMA and functional GEMM live in modules owned separately; import them on first use
# so that this package stays importable while they evolve.
_LAZY = {"mma_dot": "blackwell_sim.numerics.mma", "qgemm": "blackwell_sim.numerics.gemm"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'blackwell_sim.numerics' has no attribute {name!r}")


__all__ = [
    "BLOCK_FORMATS", "FORMATS", "NAN_POLICIES", "RECIPES", "ROUNDING_MODES",
    "BlockFormat", "DelayedScaling", "ElementFormat", "NVFP4Recipe", "OperandTreatment",
    "QuantizedTensor",
    "cast", "code_table", "compare", "compress_1_2", "compress_2_4", "current_scale", "decode",
    "decompress_1_2", "decompress_2_4", "encode", "flushed_to_zero", "get_format", "get_recipe",
    "is_1_2_sparse", "is_2_4_sparse", "mma_dot", "mse", "pack_codes", "pack_metadata",
    "prune_1_2", "prune_2_4", "qgemm", "quantize", "quantize_per_tensor", "random_hadamard_transform",
    "relative_error", "rht_matrix", "sqnr_db", "unpack_codes", "unpack_metadata",
]

# Tensor-core MMA (bit-exact tcgen05 model: scalar and vectorised) and the functional GEMM.
from blackwell_sim.numerics.mma import mma_dot  # noqa: E402
from blackwell_sim.numerics.mma_matrix import mma_matrix  # noqa: E402
from blackwell_sim.numerics.gemm import qgemm  # noqa: E402

__all__ += ["mma_matrix"]
