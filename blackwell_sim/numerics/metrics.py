"""Quantization quality metrics and a format comparison table.

All metrics compare a reference ``x`` with an approximation ``y`` of the same shape, accumulate in
float64 and return Python floats:

* ``sqnr_db``: signal-to-quantization-noise ratio ``10 log10(sum x^2 / sum (x - y)^2)`` (dB);
  ``inf`` for an exact match.
* ``mse``: mean of ``(x - y)^2``.
* ``relative_error``: ``||x - y||_2 / ||x||_2`` (Frobenius norm over all elements).
* ``flushed_to_zero``: fraction of the nonzero elements of ``x`` that became exactly 0 in ``y``
  (0.0 if ``x`` has no nonzeros).

``compare(x, formats)`` quantizes one tensor in several formats and returns a pandas DataFrame
(pandas is imported only here) with columns ``format, sqnr_db, mse, rel_err, flushed_to_zero,
bits_per_element``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.numerics.formats import FORMATS, as_float32, get_format
from blackwell_sim.numerics.quantize import BLOCK_FORMATS, quantize
from blackwell_sim.numerics.rounding import cast

DEFAULT_FORMATS = ("bf16", "fp8_e4m3", "mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "nvfp4", "fp4")
COLUMNS = ("format", "sqnr_db", "mse", "rel_err", "flushed_to_zero", "bits_per_element")


def _pair(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    a = as_float32(x, "x").astype(np.float64)
    b = as_float32(y, "y").astype(np.float64)
    if a.shape != b.shape:
        raise BlackwellSimError(f"y: shape {b.shape} does not match x {a.shape}")
    return a, b


def sqnr_db(x: object, y: object) -> float:
    """SQNR of ``y`` against reference ``x`` in dB."""
    a, b = _pair(x, y)
    noise = float(np.sum((a - b) ** 2))
    signal = float(np.sum(a ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))


def mse(x: object, y: object) -> float:
    """Mean squared error."""
    a, b = _pair(x, y)
    return float(np.mean((a - b) ** 2)) if a.size else 0.0


def relative_error(x: object, y: object) -> float:
    """``||x - y|| / ||x||`` (inf if ``x`` is all zero and ``y`` is not)."""
    a, b = _pair(x, y)
    num = float(np.linalg.norm((a - b).ravel()))
    den = float(np.linalg.norm(a.ravel()))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def flushed_to_zero(x: object, y: object) -> float:
    """Fraction of nonzero reference elements that are exactly zero in ``y``."""
    a, b = _pair(x, y)
    nonzero = a != 0
    count = int(np.count_nonzero(nonzero))
    return 0.0 if count == 0 else float(np.count_nonzero(nonzero & (b == 0))) / count


def _run_one(x32: np.ndarray, spec: str | Mapping) -> tuple[str, np.ndarray, float]:
    """(label, dequantized values, storage bits per element) for one format spec."""
    if isinstance(spec, Mapping):
        options = dict(spec)
        fmt = options.pop("fmt", None)
        label = options.pop("label", None)
    else:
        fmt, options, label = spec, {}, None
    if not isinstance(fmt, str):
        raise BlackwellSimError(f"formats: each entry needs a format name, got {spec!r}")
    if fmt.lower() in BLOCK_FORMATS:
        qt = quantize(x32, fmt, **options)
        default_label = fmt + "".join(f" {k}={v}" for k, v in options.items())
        return label or default_label, qt.dequantize(), qt.bits_per_element
    if fmt.lower() in FORMATS:
        values = cast(x32, fmt, nan="zero", **options)
        return label or fmt, values, float(get_format(fmt).bits)
    known = ", ".join(list(BLOCK_FORMATS) + list(FORMATS))
    raise BlackwellSimError(f"formats: unknown format {fmt!r}; known: {known}")


def compare(x: object, formats: Iterable[str | Mapping] = DEFAULT_FORMATS):
    """Quantize ``x`` in each format and tabulate the metrics (a pandas DataFrame).

    Each entry of ``formats`` is a quantized format name (``"nvfp4"``), an element format name
    (``"bf16"``: a plain cast), or a mapping ``{"fmt": ..., "label": ..., **quantize_kwargs}``
    such as ``{"fmt": "mxfp4", "scale_rule": "rceil"}``.
    """
    import pandas as pd

    x32 = as_float32(x, "x")
    rows = []
    for spec in formats:
        label, y, bits = _run_one(x32, spec)
        rows.append({"format": label, "sqnr_db": sqnr_db(x32, y), "mse": mse(x32, y),
                     "rel_err": relative_error(x32, y), "flushed_to_zero": flushed_to_zero(x32, y),
                     "bits_per_element": bits})
    if not rows:
        raise BlackwellSimError("formats: need at least one format")
    return pd.DataFrame(rows, columns=list(COLUMNS))
