"""Predicted vs measured: per-row error, and per kind and dtype count, MAPE, max error, Spearman.

Reads the JSON-lines measurement format of shared/data/hopper/ (see its README): kinds ``gemm``
(optional ``batch``), ``gemm_sparse24``, ``copy``, ``elementwise``; kinds the model cannot predict
yet (``attention`` until its kernel model exists, ``env`` rows) are listed as skipped with the
reason, never dropped silently. ``gemm_sparse24`` rows are shown beside the model's *potential*
(the hardware's 2:4 rate), kept out of the dense GEMM accuracy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dataclasses import replace

from blackwell_sim.config import GPUConfig, SystemConfig, get_dtype
from blackwell_sim.harness import FIRST_USE_IDLE_S, ClockHold, TimedCall, load_duration_s, median_call_s
from blackwell_sim.errors import BlackwellSimError

MIB = 2**20
Predictor = Callable[[GPUConfig, dict], list[tuple[str, float, float]]]


def read_measurements(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines file; bad lines raise a one-line error naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BlackwellSimError(f"{path}: cannot read measurement file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BlackwellSimError(f"{path}: measurement file is not UTF-8 text") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BlackwellSimError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("kind"), str):
            raise BlackwellSimError(f"{path}:{lineno}: each line must be an object with a 'kind' string")
        row["_line"] = lineno
        rows.append(row)
    return rows


def _need(row: dict, field: str, kind=(int, float)):
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, kind) or (
            isinstance(value, (int, float)) and (not math.isfinite(value) or value <= 0)):
        raise BlackwellSimError(f"line {row['_line']}: field '{field}' must be a positive number, got {value!r}")
    return value


def _harnessed(gpu: GPUConfig, row: dict, call: TimedCall, simulate, hold: ClockHold | None = None) -> list:
    """``median_s`` (and ``median_s_queued`` when present) as the harness timed them.

    ``simulate(power_state[, clock_cap_mhz])`` returns the kernel's KernelResult in that power
    state (under that clock cap). The queued variant ran right after the plain one (so it starts
    loaded) and excludes host dispatch. A row with ``gpu_s`` and no ``median_s`` (a published
    kernel time) is the sustained kernel time. ``hold`` carries the clock the power controller
    still holds from the file's earlier rows, and is advanced past this one.
    """
    if "median_s" not in row and "gpu_s" in row:
        # a published kernel time (profiler or CUDA graph over many runs): no host, sustained clock
        sustained = simulate("sustained")
        return [("gpu_s", _need(row, "gpu_s"), sustained.time_s, sustained)]
    burst, sustained = simulate("burst"), simulate("sustained")
    response_s = gpu.power.response_ms * 1e-3
    results, held, window_s = [burst, sustained], None, 0.0
    if hold is not None and hold.clock_mhz is not None and hold.clock_mhz < burst.clock_mhz:
        capped = [simulate(r.details["power_state"], hold.clock_mhz) if r.clock_mhz > hold.clock_mhz else r
                  for r in (burst, sustained)]
        results += capped
        held, window_s = (capped[0].time_s, capped[1].time_s), hold.window_s

    def pick(gpu_s: float):
        return min(results, key=lambda r: abs(gpu_s - r.time_s))

    plain = median_call_s(call, burst.time_s, sustained.time_s, response_s, held, window_s)
    load_s = load_duration_s(call, plain - call.host_dispatch_s)
    out = [("median_s", _need(row, "median_s"), plain, pick(plain - call.host_dispatch_s))]
    if "median_s_queued" in row:
        queued_call = replace(call, preceding_load_s=load_s)
        queued = median_call_s(queued_call, burst.time_s, sustained.time_s, response_s, held,
                               max(0.0, window_s - load_s)) - call.host_dispatch_s
        out.append(("median_s_queued", _need(row, "median_s_queued"), queued, pick(queued)))
        load_s += load_duration_s(queued_call, queued)
    if hold is not None:
        from blackwell_sim.engine.kernels.gemm import POWER_CLOCK_TOLERANCE_MHZ

        # power-limited: the sustained clock is below the burst one by more than the solver resolves
        hold.after(gpu.power, sustained.clock_mhz < burst.clock_mhz - POWER_CLOCK_TOLERANCE_MHZ, load_s)
    return out


def _gemm_call(row: dict, m: int, n: int, k: int, batch: int = 1) -> TimedCall:
    dtype = row.get("dtype", "bf16")
    api = "bmm" if batch > 1 else {"tf32": "matmul_tf32", "fp8_e4m3": "scaled_mm"}.get(dtype, "matmul")
    reps = 30 if api == "scaled_mm" else (20 if m * n * k * batch > 2**39 else 40)
    return TimedCall(api, timed_calls=int(row.get("reps", reps)))


def _gemm(gpu: GPUConfig, row: dict, hold: ClockHold | None = None):
    from blackwell_sim.engine.kernels.gemm import simulate_gemm

    m, n, k = (int(_need(row, f)) for f in "mnk")
    batch = int(row.get("batch", 1))
    call = _gemm_call(row, m, n, k, batch)
    return _harnessed(gpu, row, call, lambda state, cap=None: simulate_gemm(
        gpu, m, n, k, row.get("dtype", "bf16"), batch=batch, power_state=state, clock_cap_mhz=cap), hold)


def _gemm_sparse(gpu: GPUConfig, row: dict, hold: ClockHold | None = None):
    """The 2:4 kernel's *potential* (the hardware's sparse rate) beside the measured sparse call, and
    the dense reference as timed: ``torch.mm(W * mask, X)``, i.e. the mask multiply (an elementwise
    kernel over W) plus the dense GEMM, run right after the sparse benchmark."""
    from blackwell_sim.engine.kernels.gemm import simulate_gemm
    from blackwell_sim.engine.kernels.memcpy import simulate_memory_kernel

    m, n, k = (int(_need(row, f)) for f in "mnk")
    dtype = row.get("dtype", "bf16")
    call = TimedCall("matmul", timed_calls=30)
    out = _harnessed(gpu, row, call, lambda state, cap=None: simulate_gemm(
        gpu, m, n, k, dtype, sparse=True, power_state=state, clock_cap_mhz=cap), hold)
    if "dense_median_s" in row:
        elem = get_dtype(dtype).bits // 8 * m * k
        mask = simulate_memory_kernel(gpu, 2 * elem, elem, name="W * mask")
        dense_call = replace(call, preceding_load_s=load_duration_s(call, _need(row, "median_s")))

        def dense(state, cap=None):
            r = simulate_gemm(gpu, m, n, k, dtype, power_state=state, clock_cap_mhz=cap)
            return replace(r, time_s=r.time_s + mask.time_s)
        _, _, predicted, result = _harnessed(gpu, {"median_s": row["dense_median_s"], "_line": row["_line"]},
                                             dense_call, dense, hold)[0]
        out.append(("dense_median_s", _need(row, "dense_median_s"), predicted, result))
    return out


def _copy(gpu: GPUConfig, row: dict):
    from blackwell_sim.engine.kernels.memcpy import simulate_memcpy

    r = simulate_memcpy(gpu, _need(row, "mib") * MIB)
    call = TimedCall("copy", timed_calls=40 if row["mib"] <= 1024 else 20)
    return _harnessed(gpu, row, call, lambda state: r)


def _elementwise(gpu: GPUConfig, row: dict):
    from blackwell_sim.engine.kernels.memcpy import simulate_memory_kernel

    r = simulate_memory_kernel(gpu, _need(row, "bytes_read"), float(row.get("bytes_written", 0)),
                               name=f"elementwise {row.get('op', '')}")
    return _harnessed(gpu, row, TimedCall("elementwise", timed_calls=30), lambda state: r)


PREDICTORS: dict[str, Predictor] = {"gemm": _gemm, "gemm_sparse24": _gemm_sparse, "copy": _copy,
                                    "elementwise": _elementwise}
#: predictors that take the file's ClockHold (rows of these kinds run one after another in the
#: measuring scripts, and their clocks follow the power controller's state)
HOLD_AWARE = {"gemm", "gemm_sparse24"}
#: a row listing the kernels it ran was profiled after it was timed (benchmarks/measure_h100*.py:
#: a torch.profiler pass, host-bound, GPU mostly idle), which ends a held clock: in those files the
#: misaligned GEMMs after heavy rows ran at full clock (h100_sxm_extra*.jsonl, 2500x4500x3500)
PROFILED_FIELDS = ("kernels", "kernel_detail")
SKIP_REASONS = {"env": "device description, nothing to predict",
                "env_after": "device description, nothing to predict",
                "attention": "the attention kernel model does not exist yet (issue: attention kernels)"}


#: Kernel-model modules that may add predictors: each defines ``VALIDATORS = {kind: fn}`` where
#: ``fn(config, row)`` gets the loaded config (a GPUConfig, or a SystemConfig for a system preset)
#: and returns ``[(quantity, measured_s, predicted_s, result), ...]``; ``result`` has ``bound`` and
#: optionally ``tile``. A module that does not exist yet is simply not registered.
PLUGIN_MODULES = ("blackwell_sim.engine.kernels.attention", "blackwell_sim.engine.kernels.collectives_validate")
_SYSTEM_AWARE: set[str] = set()


def _register_optional() -> None:
    import importlib

    for name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        for kind, fn in getattr(module, "VALIDATORS", {}).items():
            PREDICTORS[kind] = fn
            _SYSTEM_AWARE.add(kind)
            SKIP_REASONS.pop(kind, None)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return float("nan")
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _predict_in_order(gpu: GPUConfig, row: dict, hold: ClockHold, used: set) -> list:
    """A HOLD_AWARE row in file order. Idle before it lets a held clock recover: a pause the row
    names (``idle_before_s``), or the library loading the kernels of a kind and dtype not used
    before in the file; a profiler pass after it (the row lists its kernels) ends the hold."""
    if "idle_before_s" in row:
        hold.idle(_need(row, "idle_before_s"))
    first_use = (row["kind"], row.get("dtype"))
    if first_use not in used:
        used.add(first_use)
        hold.idle(FIRST_USE_IDLE_S)
    predictions = PREDICTORS[row["kind"]](gpu, row, hold)
    if any(f in row for f in PROFILED_FIELDS):
        hold.end()
    return predictions


def validate(path: str | Path, config) -> dict:
    """Predict every row; returns ``{"rows": [...], "skipped": [...], "summary": [...]}``."""
    _register_optional()
    gpu = config.gpu if isinstance(config, SystemConfig) else config
    rows, skipped = [], []
    hold, used = ClockHold(), set()
    for row in read_measurements(path):
        kind = row["kind"]
        fields = {k: v for k, v in row.items() if k != "_line"}
        if kind not in PREDICTORS:
            skipped.append({**fields, "line": row["_line"],
                            "reason": SKIP_REASONS.get(kind, f"unknown kind '{kind}'")})
            continue
        try:
            if kind in HOLD_AWARE:
                predictions = _predict_in_order(gpu, row, hold, used)
            else:
                predictions = PREDICTORS[kind](config if kind in _SYSTEM_AWARE else gpu, row)
        except BlackwellSimError as exc:
            skipped.append({**fields, "line": row["_line"], "reason": str(exc)})
            continue
        for quantity, measured, predicted, result in predictions:
            rows.append({**fields, "quantity": quantity, "measured_s": measured, "predicted_s": predicted,
                         "error": predicted / measured - 1, "bound": result.bound,
                         "tile": getattr(result, "tile", None)})
    return {"rows": rows, "skipped": skipped, "summary": summarize(rows)}


def summarize(rows: list[dict]) -> list[dict]:
    """Per (kind, dtype, quantity): count, MAPE, max |error|, Spearman rank correlation; plus totals."""
    if not rows:
        return []
    df = pd.DataFrame(rows)
    df["dtype"] = df.get("dtype", pd.Series(index=df.index, dtype=object)).fillna("-")
    out = []
    for (kind, dtype, quantity), g in df.groupby(["kind", "dtype", "quantity"], sort=True):
        out.append(_stats(g, kind=kind, dtype=dtype, quantity=quantity))
    for kind, g in df.groupby("kind", sort=True):
        for quantity, gq in g.groupby("quantity", sort=True):
            out.append(_stats(gq, kind=kind, dtype="all", quantity=quantity))
    return out


def _stats(g: pd.DataFrame, **keys) -> dict:
    err = g["error"].abs().to_numpy()
    return {**keys, "count": int(len(g)), "mape": float(err.mean()), "max_error": float(err.max()),
            "spearman": _spearman(g["measured_s"].to_numpy(), g["predicted_s"].to_numpy())}


def format_report(report: dict) -> str:
    lines = [f"{'line':>4} {'kind':<14} {'dtype':<9} {'shape':<24} {'quantity':<15} "
             f"{'measured us':>11} {'predicted us':>12} {'error':>7}  bound"]
    for r in report["rows"]:
        if r["kind"].startswith("gemm"):
            shape = f"{r['m']}x{r['n']}x{r['k']}" + (f" b{r['batch']}" if r.get("batch", 1) != 1 else "")
        elif r["kind"] == "copy":
            shape = f"{r['mib']} MiB"
        else:
            shape = ",".join(f"{k}={r[k]}" for k in ("b", "h", "s", "d", "op") if k in r)
        lines.append(f"{'':>4} {r['kind']:<14} {str(r.get('dtype', '-')):<9} {shape:<24} {r['quantity']:<15} "
                     f"{r['measured_s'] * 1e6:>11.1f} {r['predicted_s'] * 1e6:>12.1f} {r['error']:>+7.1%}  {r['bound']}")
    for s in report["skipped"]:
        lines.append(f"{s['line']:>4} {s['kind']:<14} skipped: {s['reason']}")
    lines.append("")
    lines.append(f"{'kind':<14} {'dtype':<9} {'quantity':<15} {'n':>3} {'MAPE':>7} {'max':>7} {'spearman':>8}")
    for s in report["summary"]:
        lines.append(f"{s['kind']:<14} {s['dtype']:<9} {s['quantity']:<15} {s['count']:>3} {s['mape']:>7.1%} "
                     f"{s['max_error']:>7.1%} {s['spearman']:>8.3f}")
    return "\n".join(lines)
