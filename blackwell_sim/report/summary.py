"""The run summary: a JSON-safe dict from a results frame, and a compact text table for the terminal.

Keys of :func:`summarize` (the contract; docs/report.md):

- ``total_time_s``: makespan, the last op's ``end_s`` (the replay clock starts at 0).
- ``ops``: distinct trace ops (names); ``rows``: frame rows (a collective has one per rank);
  ``ranks``: distinct ranks that ran ops; ``gpus``: GPUs in the config (1 for a GPU config).
- ``achieved_tflops``: all FLOP of all ranks / makespan / 1e12.
- ``formats``: ``{dtype: {flops, time_s, achieved_tflops, peak_tflops, pct_of_peak}}`` over the
  rows with FLOP and a dtype. ``time_s`` sums the rows' durations (GPU-seconds), ``achieved_tflops``
  = flops / time_s, ``peak_tflops`` is one GPU's peak averaged over those rows weighted by time
  (so dense and 2:4-sparse rows of one format are each held to their own peak), ``pct_of_peak`` =
  100 x achieved / peak. Rows without a peak (no tensor path) fall back to the config's dense peak
  for the dtype, else ``None``. ``sqnr_db``: median SQNR of the format's rows that were executed
  functionally (``None`` otherwise), so speed and accuracy of a format sit side by side.
- ``bound_time_share``: ``{bound: fraction}`` of the summed op time; fractions add up to 1.
- ``time_by_op``: ``{op kind: summed time_s}``.
- ``bytes``: ``{hbm, l2, fabric}`` summed over rows, in bytes.
- ``energy_j``: summed ``energy_j`` of the rows that have it (the ops' own energy; idle gaps
  between ops are not counted), ``None`` when no row has it; ``energy_rows`` counts those rows.
- ``measured``: for rows with ``measured_s``: ``{rows, measured_time_s, simulated_time_s,
  mape_pct, by_op}`` (mean absolute percentage error of simulated vs measured; ``by_op`` has the
  same four keys per op kind), else ``None``.
- ``functional``: for rows with ``sqnr_db``: ``{rows, min_sqnr_db, median_sqnr_db,
  max_rel_error, functional_s}``, else ``None``.
- ``cached_rows``: rows whose result came from the per-op memo.
- ``sim_wall_s``: host seconds the simulation took (given by the caller), ``config``: its name.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.report.frame import validate_frame


def _f(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _dense_peak(config, dtype: str) -> float | None:
    gpu = config.gpu if hasattr(config, "gpu_count") else config
    try:
        return float(gpu.peak_tflops(dtype))
    except BlackwellSimError:
        return None


def summarize(frame: pd.DataFrame, config, *, sim_wall_s: float | None = None) -> dict:
    """The summary dict of a results frame (validated first) on ``config`` (GPU or system)."""
    validate_frame(frame)
    if sim_wall_s is None:
        sim_wall_s = frame.attrs.get("sim_wall_s")
    time_s = frame["time_s"].to_numpy(dtype=float)
    busy_s = float(time_s.sum())
    total_s = float(frame["end_s"].max()) if len(frame) else 0.0
    flops = frame["flops"].to_numpy(dtype=float)
    out: dict = {
        "total_time_s": total_s,
        "ops": int(frame["name"].nunique()),
        "rows": len(frame),
        "ranks": int(frame["rank"].nunique()),
        "gpus": int(getattr(config, "gpu_count", 1)),
        "achieved_tflops": _f(flops.sum() / total_s / 1e12) if total_s > 0 else None,
        "formats": _formats(frame, config),
        "bound_time_share": _bound_share(frame, busy_s),
        "time_by_op": {str(k): float(v) for k, v in
                       frame.groupby("op", sort=True)["time_s"].sum().items()},
        "bytes": {level: float(np.nansum(frame[f"bytes_{level}"].to_numpy(dtype=float)))
                  for level in ("hbm", "l2", "fabric")},
    }
    energy = frame["energy_j"].to_numpy(dtype=float)
    has_energy = np.isfinite(energy)
    out["energy_j"] = float(energy[has_energy].sum()) if has_energy.any() else None
    out["energy_rows"] = int(has_energy.sum())
    out["measured"] = _measured(frame)
    out["functional"] = _functional(frame)
    out["cached_rows"] = int(frame["cached"].sum())
    out["sim_wall_s"] = _f(sim_wall_s) if sim_wall_s is not None else None
    out["config"] = str(getattr(config, "name", config))
    return out


def _formats(frame: pd.DataFrame, config) -> dict:
    rows = frame[(frame["flops"] > 0) & (frame["dtype"] != "")]
    out = {}
    for dtype, group in rows.groupby("dtype", sort=True):
        flops = float(group["flops"].sum())
        t = group["time_s"].to_numpy(dtype=float)
        peak_rows = group["peak_tflops"].to_numpy(dtype=float)
        has_peak = np.isfinite(peak_rows) & (peak_rows > 0)
        time_s = float(t.sum())
        achieved = flops / time_s / 1e12 if time_s > 0 else None
        if has_peak.all() and time_s > 0:
            peak_flop_capacity = float((t * peak_rows).sum()) * 1e12
            peak = peak_flop_capacity / 1e12 / time_s
            pct = 100 * flops / peak_flop_capacity if peak_flop_capacity > 0 else None
        else:
            peak = _dense_peak(config, str(dtype))
            pct = 100 * achieved / peak if (peak and achieved is not None) else None
        sqnr = group["sqnr_db"].to_numpy(dtype=float)
        sqnr = sqnr[~np.isnan(sqnr)]
        out[str(dtype)] = {"flops": flops, "time_s": time_s, "achieved_tflops": achieved,
                           "peak_tflops": peak, "pct_of_peak": pct,
                           "sqnr_db": _f(np.median(sqnr)) if sqnr.size else None}
    return out


def _bound_share(frame: pd.DataFrame, busy_s: float) -> dict:
    if busy_s <= 0:
        return {}
    bounds = frame["bound"].where(frame["bound"] != "", "unknown")
    shares = frame["time_s"].groupby(bounds, sort=True).sum() / busy_s
    return {str(k): float(v) for k, v in shares.items()}


def _measured(frame: pd.DataFrame) -> dict | None:
    rows = frame[np.isfinite(frame["measured_s"].to_numpy(dtype=float))
                 & (frame["measured_s"] > 0)]
    if rows.empty:
        return None
    out = _error_stats(rows)
    out["by_op"] = {str(kind): _error_stats(group) for kind, group in rows.groupby("op", sort=True)}
    return out


def _error_stats(rows: pd.DataFrame) -> dict:
    measured = rows["measured_s"].to_numpy(dtype=float)
    simulated = rows["time_s"].to_numpy(dtype=float)
    return {"rows": len(rows), "measured_time_s": float(measured.sum()),
            "simulated_time_s": float(simulated.sum()),
            "mape_pct": float(100 * np.mean(np.abs(simulated - measured) / measured))}


def _functional(frame: pd.DataFrame) -> dict | None:
    sqnr = frame["sqnr_db"].to_numpy(dtype=float)
    has = ~np.isnan(sqnr)
    if not has.any():
        return None
    rel = frame["rel_error"].to_numpy(dtype=float)[has]
    return {"rows": int(has.sum()), "min_sqnr_db": _f(sqnr[has].min()),
            "median_sqnr_db": _f(np.median(sqnr[has])),
            "max_rel_error": _f(np.nanmax(rel)) if np.isfinite(rel).any() else None,
            "functional_s": float(np.nansum(frame["functional_s"].to_numpy(dtype=float)))}


# -- text ----------------------------------------------------------------------------------------

def _time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds * 1e9:.1f} ns"


def _bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def format_summary(summary: dict) -> str:
    """A compact, fixed-layout text table of a :func:`summarize` dict (for the terminal)."""
    s = summary
    lines = [(f"config {s['config']}: {s['ops']} ops ({s['rows']} rows) on {s['ranks']} "
             f"rank{'s' if s['ranks'] != 1 else ''}, makespan {_time(s['total_time_s'])}, "
             f"{_num(s['achieved_tflops'], '.1f')} TFLOPS achieved (all ranks)")]
    if s["formats"]:
        accuracy = any(f.get("sqnr_db") is not None for f in s["formats"].values())
        lines.append(f"{'format':<12}{'TFLOP':>12}{'time':>13}{'TFLOPS':>10}{'peak':>10}{'% peak':>8}"
                     + (f"{'SQNR dB':>9}" if accuracy else ""))
        for dtype, f in s["formats"].items():
            lines.append(f"{dtype:<12}{f['flops'] / 1e12:>12.2f}{_time(f['time_s']):>13}"
                         f"{_num(f['achieved_tflops'], '.1f'):>10}{_num(f['peak_tflops'], '.0f'):>10}"
                         f"{_num(f['pct_of_peak'], '.1f'):>8}"
                         + (f"{_num(f.get('sqnr_db'), '.1f'):>9}" if accuracy else ""))
    if s["bound_time_share"]:
        ranked = sorted(s["bound_time_share"].items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("bound (share of op time): "
                     + ", ".join(f"{b} {100 * v:.1f}%" for b, v in ranked))
    b = s["bytes"]
    lines.append(f"bytes: HBM {_bytes(b['hbm'])}, L2 {_bytes(b['l2'])}, fabric {_bytes(b['fabric'])}")
    if s["energy_j"] is not None:
        lines.append(f"energy: {s['energy_j']:.3f} J over {s['energy_rows']} rows (ops only)")
    m = s.get("measured")
    if m:
        lines.append(f"measured vs simulated ({m['rows']} rows): measured {_time(m['measured_time_s'])}, "
                     f"simulated {_time(m['simulated_time_s'])}, MAPE {m['mape_pct']:.1f}%")
        if len(m["by_op"]) > 1:
            lines.append("  by op: " + ", ".join(f"{kind} {v['rows']} rows MAPE {v['mape_pct']:.1f}%"
                                                 for kind, v in m["by_op"].items()))
    fn = s.get("functional")
    if fn:
        lines.append(f"functional ({fn['rows']} rows): SQNR min {_num(fn['min_sqnr_db'], '.1f')} dB, "
                     f"median {_num(fn['median_sqnr_db'], '.1f')} dB, "
                     f"max rel. error {_num(fn['max_rel_error'], '.2e')}, {_time(fn['functional_s'])} host")
    tail = f"cached rows {s['cached_rows']}"
    if s.get("sim_wall_s") is not None:
        tail += f"; simulated in {s['sim_wall_s']:.2f} s wall"
    lines.append(tail)
    return "\n".join(lines)
