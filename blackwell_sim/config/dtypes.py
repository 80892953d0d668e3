"""GEMM data-type names and the tensor-core math class each one runs on.

The names are the CLI's and the trace format's (``--dtype``); the math class keys the per-SM
throughput table of :class:`~blackwell_sim.config.units.TensorCoreConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    """One operand data type of a GEMM."""

    name: str
    math_class: str          #: key into tensor_core.dense_flops_per_clock
    bits: float              #: storage bits per element (without scales)
    block_size: int = 0      #: elements per scale factor (0 = no block scaling)
    scale_bits: int = 0      #: bits per block scale factor
    element_format: str = ""  #: numerics element format name


DTYPES: dict[str, DType] = {d.name: d for d in (
    DType("tf32", "tf32", 32, element_format="tf32"),
    DType("fp32", "tf32", 32, element_format="tf32"),
    DType("bf16", "bf16", 16, element_format="bf16"),
    DType("fp16", "fp16", 16, element_format="fp16"),
    DType("fp8_e4m3", "fp8", 8, element_format="e4m3"),
    DType("fp8_e5m2", "fp8", 8, element_format="e5m2"),
    DType("int8", "int8", 8),
    DType("mxfp8", "fp8", 8, 32, 8, "e4m3"),
    DType("mxfp8_e5m2", "fp8", 8, 32, 8, "e5m2"),
    DType("mxfp6_e2m3", "fp6", 6, 32, 8, "e2m3"),
    DType("mxfp6_e3m2", "fp6", 6, 32, 8, "e3m2"),
    # FP4 without block scaling runs through kind::f8f6f4 at the FP8 rate (PTX ISA, tcgen05.mma kinds).
    DType("fp4", "fp8", 4, element_format="e2m1"),
    DType("mxfp4", "fp4", 4, 32, 8, "e2m1"),
    DType("nvfp4", "fp4", 4, 16, 8, "e2m1"),
)}

ALIASES = {"fp8": "fp8_e4m3", "mxfp8_e4m3": "mxfp8", "float32": "fp32", "float16": "fp16",
           "bfloat16": "bf16", "mxfp6": "mxfp6_e2m3"}


def dtype_names() -> list[str]:
    return sorted(set(DTYPES) | set(ALIASES))


def get_dtype(name: str) -> DType:
    """The :class:`DType` for a name or alias; ``KeyError`` listing the known names otherwise."""
    key = ALIASES.get(name, name)
    if key not in DTYPES:
        raise KeyError(f"unknown dtype {name!r}; known: {', '.join(dtype_names())}")
    return DTYPES[key]
