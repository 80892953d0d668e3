"""The per-op results frame: its columns (with units), a builder and a validator.

One row per op instance, in trace order; a collective has one row per participating rank. The
columns are fixed by the trace/replay/report contract (docs/report.md is the reference):

=============  =======  =========================================================================
column         unit     meaning
=============  =======  =========================================================================
name           -        the op's unique name in the trace
op             -        op kind: gemm, attention, memcpy, elementwise, all_reduce, ...
rank           -        GPU index in the system (a collective: one row per participating rank)
stream         -        stream name on that GPU ("compute", "comm", ...)
layer          -        free-text tag from the trace ("" when absent)
phase          -        free-text tag from the trace, e.g. fwd / bwd / optim ("" when absent)
start_s        s        simulated start time (replay clock, from 0)
end_s          s        simulated end time; end_s = start_s + time_s
time_s         s        simulated duration
flops          FLOP     useful floating-point operations (0 for data movement)
tflops         TFLOPS   flops / time_s / 1e12
peak_tflops    TFLOPS   the GPU's tensor peak for this dtype and sparsity (NaN: no tensor path)
pct_of_peak    %        100 * tflops / peak_tflops
dtype          -        operand format name (blackwell_sim.config.dtypes), "" when none
sparse         -        2:4 structured sparsity used
bound          -        limiting mechanism named by the kernel model (compute, hbm, power, ...)
tile           -        kernel configuration the model picked ("" when none)
bytes_hbm      B        bytes moved to/from HBM
bytes_l2       B        bytes moved between L2 and the SMs
bytes_fabric   B        bytes this rank sent over NVLink (collectives)
energy_j       J        energy of the op from the power model (NaN when not modelled)
measured_s     s        measured duration from a real run (e.g. the PyTorch importer), else NaN
cached         -        True when the result was reused from the per-op memo
sqnr_db        dB       functional execution: signal-to-quantization-noise ratio vs fp32
rel_error      -        functional execution: ||C - C_ref|| / ||C_ref|| (Frobenius)
functional_s   s        wall time the functional execution of this op took on the host
=============  =======  =========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from blackwell_sim.errors import BlackwellSimError

#: Rounding of times to whole nanoseconds when checking stream order (timeline ts resolution).
NS_PER_S = 1e9


@dataclass(frozen=True)
class Column:
    """One results-frame column: kind is ``str``, ``int``, ``float`` or ``bool``."""

    name: str
    kind: str
    unit: str
    help: str


COLUMNS: tuple[Column, ...] = (
    Column("name", "str", "", "the op's unique name in the trace"),
    Column("op", "str", "", "op kind: gemm, attention, memcpy, elementwise, all_reduce, ..."),
    Column("rank", "int", "", "GPU index in the system; a collective has one row per rank"),
    Column("stream", "str", "", "stream name on that GPU"),
    Column("layer", "str", "", "free-text layer tag from the trace ('' when absent)"),
    Column("phase", "str", "", "free-text phase tag, e.g. fwd / bwd / optim ('' when absent)"),
    Column("start_s", "float", "s", "simulated start time"),
    Column("end_s", "float", "s", "simulated end time (start_s + time_s)"),
    Column("time_s", "float", "s", "simulated duration"),
    Column("flops", "float", "FLOP", "useful floating-point operations"),
    Column("tflops", "float", "TFLOPS", "achieved rate, flops / time_s / 1e12"),
    Column("peak_tflops", "float", "TFLOPS", "tensor peak of one GPU for this dtype and sparsity"),
    Column("pct_of_peak", "float", "%", "100 * tflops / peak_tflops"),
    Column("dtype", "str", "", "operand format ('' when none)"),
    Column("sparse", "bool", "", "2:4 structured sparsity"),
    Column("bound", "str", "", "limiting mechanism named by the kernel model"),
    Column("tile", "str", "", "kernel configuration picked by the model ('' when none)"),
    Column("bytes_hbm", "float", "B", "bytes to/from HBM"),
    Column("bytes_l2", "float", "B", "bytes between L2 and the SMs"),
    Column("bytes_fabric", "float", "B", "bytes this rank sent over NVLink"),
    Column("energy_j", "float", "J", "energy from the power model (NaN when not modelled)"),
    Column("measured_s", "float", "s", "measured duration from a real run (NaN when none)"),
    Column("cached", "bool", "", "result reused from the per-op memo"),
    Column("sqnr_db", "float", "dB", "functional execution: SQNR vs an fp32 reference"),
    Column("rel_error", "float", "", "functional execution: relative Frobenius error"),
    Column("functional_s", "float", "s", "host wall time of the functional execution"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_BY_NAME = {c.name: c for c in COLUMNS}
_STR_DEFAULTS = {"layer": "", "phase": "", "dtype": "", "tile": "", "bound": "", "stream": "compute"}
_NONNEGATIVE = ("time_s", "flops", "bytes_hbm", "bytes_l2", "bytes_fabric", "energy_j", "measured_s",
                "functional_s", "tflops", "peak_tflops", "pct_of_peak")


def column_units() -> dict[str, str]:
    """``{column: unit}`` ('' for unitless columns)."""
    return {c.name: c.unit for c in COLUMNS}


def results_frame(rows: Iterable[Mapping]) -> pd.DataFrame:
    """Build a results frame from row mappings, in the given order.

    Only ``name``, ``op``, ``start_s`` and ``time_s`` are required per row. ``end_s`` defaults to
    ``start_s + time_s``; ``tflops`` and ``pct_of_peak`` are derived from ``flops``, ``time_s``
    and ``peak_tflops`` when not given; other floats default to NaN (``flops`` and bytes to 0),
    strings to ``""`` (``stream`` to "compute"), bools to False, ``rank`` to 0. Unknown keys raise.
    The result passes :func:`validate_frame`.
    """
    rows = list(rows)
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - set(COLUMN_NAMES))
        if unknown:
            raise BlackwellSimError(f"results row {i}: unknown column {unknown[0]!r}; "
                                    f"columns: {', '.join(COLUMN_NAMES)}")
        for key in ("name", "op", "start_s", "time_s"):
            if key not in row:
                raise BlackwellSimError(f"results row {i}: missing column {key!r}")
    data: dict[str, list] = {}
    for col in COLUMNS:
        values = [row.get(col.name) for row in rows]
        data[col.name] = [_default(col, v) for v in values]
    frame = pd.DataFrame(data, columns=list(COLUMN_NAMES))
    frame = coerce_frame(frame)
    end_given = np.array([row.get("end_s") is not None for row in rows], dtype=bool)
    if len(frame):
        frame.loc[~end_given, "end_s"] = frame["start_s"][~end_given] + frame["time_s"][~end_given]
        with np.errstate(divide="ignore", invalid="ignore"):
            tflops = np.where(frame["time_s"] > 0, frame["flops"] / frame["time_s"] / 1e12, np.nan)
            pct = np.where(frame["peak_tflops"] > 0, 100 * tflops / frame["peak_tflops"], np.nan)
        tfl_given = np.array([row.get("tflops") is not None for row in rows], dtype=bool)
        pct_given = np.array([row.get("pct_of_peak") is not None for row in rows], dtype=bool)
        frame.loc[~tfl_given, "tflops"] = tflops[~tfl_given]
        frame.loc[~pct_given, "pct_of_peak"] = pct[~pct_given]
    validate_frame(frame)
    return frame


def _default(col: Column, value):
    if value is not None:
        return value
    if col.kind == "str":
        return _STR_DEFAULTS.get(col.name, "")
    if col.kind == "bool":
        return False
    if col.kind == "int":
        return 0
    if col.name in ("flops", "bytes_hbm", "bytes_l2", "bytes_fabric"):
        return 0.0
    return math.nan


def coerce_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast the documented columns in place to their kinds (float64, int64, bool, object)."""
    for col in COLUMNS:
        try:
            if col.kind == "float":
                frame[col.name] = pd.to_numeric(frame[col.name], errors="raise").astype("float64")
            elif col.kind == "int":
                frame[col.name] = frame[col.name].astype("int64")
            elif col.kind == "bool":
                frame[col.name] = frame[col.name].astype(bool)
            else:
                frame[col.name] = frame[col.name].astype(object)
        except (ValueError, TypeError) as exc:
            raise BlackwellSimError(f"results frame: column {col.name!r} cannot be read as "
                                    f"{col.kind}: {exc}") from None
    return frame


def empty_frame() -> pd.DataFrame:
    """A results frame with the documented columns and no rows."""
    return coerce_frame(pd.DataFrame({c: [] for c in COLUMN_NAMES}, columns=list(COLUMN_NAMES)))


def validate_frame(frame: pd.DataFrame) -> None:
    """Raise :class:`BlackwellSimError` (one line: column, row, value) if ``frame`` is malformed.

    Checked: every documented column is present (extra columns are allowed) with the right kind;
    strings are strings; ``rank`` is an integer >= 0; times and sizes are finite and >= 0 (NaN
    allowed where the column says "NaN when ..."); ``end_s`` = ``start_s`` + ``time_s`` to 1 ns;
    (``name``, ``rank``) is unique; ops on one (rank, stream) do not overlap (see
    :func:`check_streams`).
    """
    if not isinstance(frame, pd.DataFrame):
        raise BlackwellSimError(f"results frame: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in COLUMN_NAMES if c not in frame.columns]
    if missing:
        raise BlackwellSimError(f"results frame: missing column {missing[0]!r}")
    for col in COLUMNS:
        series = frame[col.name]
        if col.kind == "float":
            if not pd.api.types.is_float_dtype(series) and not pd.api.types.is_integer_dtype(series):
                raise BlackwellSimError(f"results frame: column {col.name!r} must be numeric, "
                                        f"has dtype {series.dtype}")
        elif col.kind == "int":
            if not pd.api.types.is_integer_dtype(series):
                raise BlackwellSimError(f"results frame: column {col.name!r} must be integer, "
                                        f"has dtype {series.dtype}")
        elif col.kind == "bool":
            if not pd.api.types.is_bool_dtype(series):
                raise BlackwellSimError(f"results frame: column {col.name!r} must be bool, "
                                        f"has dtype {series.dtype}")
        else:
            bad = ~series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise BlackwellSimError(f"results frame: column {col.name!r} row {i}: expected a "
                                        f"string, got {series.iloc[i]!r}")
    _check_values(frame)
    dup = frame.duplicated(subset=["name", "rank"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise BlackwellSimError(f"results frame: row {i}: op {frame['name'].iloc[i]!r} appears twice "
                                f"on rank {frame['rank'].iloc[i]}")
    check_streams(frame)


def _first_bad(frame: pd.DataFrame, column: str, mask: np.ndarray, what: str) -> None:
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        value = frame[column].iloc[i]
        value = value.item() if hasattr(value, "item") else value
        raise BlackwellSimError(f"results frame: column {column!r} row {i} (op "
                                f"{frame['name'].iloc[i]!r}): {what}, got {value!r}")


def _check_values(frame: pd.DataFrame) -> None:
    _first_bad(frame, "rank", frame["rank"].to_numpy() < 0, "rank must be >= 0")
    for column in ("start_s", "end_s", "time_s"):
        values = frame[column].to_numpy(dtype=float)
        _first_bad(frame, column, ~np.isfinite(values), "must be a finite number of seconds")
    _first_bad(frame, "start_s", frame["start_s"].to_numpy(dtype=float) < 0, "must be >= 0")
    for column in _NONNEGATIVE:
        values = frame[column].to_numpy(dtype=float)
        _first_bad(frame, column, np.isinf(values) | (values < 0), "must be >= 0 (or NaN)")
    start_ns, end_ns = _ns(frame["start_s"]), _ns(frame["end_s"])
    dur_ns = _ns(frame["time_s"])
    _first_bad(frame, "end_s", np.abs(end_ns - start_ns - dur_ns) > 1,
               "must equal start_s + time_s (to 1 ns)")


def _ns(series: pd.Series) -> np.ndarray:
    return np.rint(series.to_numpy(dtype=float) * NS_PER_S).astype(np.int64)


def check_streams(frame: pd.DataFrame) -> None:
    """Raise if two ops on the same (rank, stream) overlap in time (times compared in whole ns).

    A stream runs its ops one after another, so an overlap means the replay scheduler is wrong;
    the message names both ops.
    """
    if len(frame) < 2:
        return
    start_ns, end_ns = _ns(frame["start_s"]), _ns(frame["end_s"])
    order = np.lexsort((end_ns, start_ns, frame["stream"].to_numpy(dtype=str),
                        frame["rank"].to_numpy()))
    rank = frame["rank"].to_numpy()[order]
    stream = frame["stream"].to_numpy(dtype=str)[order]
    s, e = start_ns[order], end_ns[order]
    same = (rank[1:] == rank[:-1]) & (stream[1:] == stream[:-1])
    bad = same & (s[1:] < e[:-1])
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        a, b = order[j], order[j + 1]
        names = frame["name"].to_numpy()
        raise BlackwellSimError(
            f"results frame: ops {names[a]!r} ({frame['start_s'].iloc[a]:.9g}-"
            f"{frame['end_s'].iloc[a]:.9g} s) and {names[b]!r} (from {frame['start_s'].iloc[b]:.9g} s) "
            f"overlap on rank {int(rank[j])} stream {str(stream[j])!r}")
