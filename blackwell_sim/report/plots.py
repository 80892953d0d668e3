"""Report plots (matplotlib, Agg, no pyplot global state): each a function returning a Figure.

- :func:`plot_roofline`: one log-log panel per format; x = arithmetic intensity (FLOP per HBM
  byte), y = achieved TFLOPS of one GPU; the format's dense (and, if used, 2:4-sparse) compute roof
  from ``config.peak_tflops`` and the HBM roof ``intensity x hbm.bandwidth_gbps``; ops as points.
  Ops with FLOP but no tensor peak (elementwise) get a last panel with the HBM roof only.
- :func:`plot_timeline`: Gantt chart, one lane per (rank, stream), the first ``MAX_GANTT_RANKS``.
- :func:`plot_achieved_vs_peak`: percent of peak of the ``MAX_BARS`` distinct tensor-core kernels
  with the most total time (identical ops on many layers and ranks are one bar, "xN").
- :func:`plot_bound_breakdown`: share of op time per bound, stacked by op kind.
- :func:`plot_measured_vs_simulated`: per-op measured vs simulated time (only with measured_s).
- :func:`plot_speed_vs_accuracy`: per-op SQNR (dB) vs achieved TFLOPS by format (only with
  functional results: the cost in time and the accuracy side by side).

:func:`write_plots` saves them (PNG or SVG) atomically and byte-for-byte reproducibly: no
"Software"/date metadata, a fixed SVG hash salt.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from blackwell_sim.config import gpu_of
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.report.frame import validate_frame
from blackwell_sim.report.output import write_atomic

MAX_GANTT_RANKS = 8   #: ranks drawn in the timeline (a 64-GPU run would be unreadable)
EDGE_MAX_OPS_PER_LANE = 200  #: above this many ops a lane's bars lose their white separators,
                             #: which would otherwise wash the thin bars of a whole-model run out
MAX_BARS = 30         #: ops shown in the achieved-vs-peak chart (the longest ones)
MAX_PANELS = 6        #: formats shown in the roofline figure (the ones with most FLOP)
NO_TENSOR = "none"    #: roofline panel of ops with FLOP but no tensor peak (elementwise, ...)
DPI = 100
SVG_HASH_SALT = "blackwell-sim"
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
_KIND_COLORS = {"gemm": "tab:blue", "attention": "tab:orange", "memcpy": "tab:gray",
                "elementwise": "tab:brown", "all_reduce": "tab:green", "all_gather": "tab:olive",
                "reduce_scatter": "tab:cyan", "all_to_all": "tab:purple", "broadcast": "tab:pink",
                "send": "tab:red", "recv": "tab:red"}


def _color(kind: str) -> str:
    return _KIND_COLORS.get(kind, "black")




def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _empty(fig: Figure, ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)


def _time_unit(seconds: float) -> tuple[str, float]:
    if seconds >= 1:
        return "s", 1.0
    if seconds >= 1e-3:
        return "ms", 1e3
    return "us", 1e6


# -- roofline ------------------------------------------------------------------------------------

def plot_roofline(frame: pd.DataFrame, config) -> Figure:
    """Log-log roofline per format with the ops of that format on it."""
    gpu = gpu_of(config)
    rows = frame[(frame["flops"] > 0) & (frame["bytes_hbm"] > 0) & (frame["time_s"] > 0)]
    peak = rows["peak_tflops"].to_numpy(dtype=float)
    tensor = np.isfinite(peak) & (peak > 0) & (rows["dtype"] != "").to_numpy(dtype=bool)
    rows = rows.assign(_panel=np.where(tensor, rows["dtype"].to_numpy(dtype=str), NO_TENSOR))
    by_flops = rows[tensor].groupby("_panel")["flops"].sum().sort_values(ascending=False, kind="stable")
    formats = list(by_flops.index) + ([NO_TENSOR] if (~tensor).any() else [])
    formats = formats[:MAX_PANELS]
    n = max(1, len(formats))
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig = _figure(4.6 * cols, 3.8 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    if not formats:
        ax = axes[0]
        ax.set_xlabel("arithmetic intensity (FLOP / HBM byte)")
        ax.set_ylabel("achieved TFLOPS per GPU")
        _empty(fig, ax, "no ops with FLOP and HBM bytes")
        return fig
    bw_tflops_per_intensity = gpu.hbm.bandwidth_gbps * 1e9 / 1e12
    for ax, dtype in zip(axes, formats):
        group = rows[rows["_panel"] == dtype].drop_duplicates(["op", "flops", "bytes_hbm", "time_s"])
        ai = group["flops"].to_numpy(dtype=float) / group["bytes_hbm"].to_numpy(dtype=float)
        tflops = group["flops"].to_numpy(dtype=float) / group["time_s"].to_numpy(dtype=float) / 1e12
        roofs = []
        if dtype != NO_TENSOR:
            try:
                roofs.append(("dense", gpu.peak_tflops(dtype), "-"))
                if group["sparse"].any():
                    roofs.append(("2:4 sparse", gpu.peak_tflops(dtype, sparse=True), "--"))
            except BlackwellSimError:
                pass
        top = max([r[1] for r in roofs] + [float(tflops.max())])
        ridge = top / bw_tflops_per_intensity
        x_lo = min(float(ai.min()), ridge) / 4
        x_hi = max(float(ai.max()), ridge) * 4
        x = np.geomspace(x_lo, x_hi, 256)
        hbm = x * bw_tflops_per_intensity
        hbm_label = f"HBM {gpu.hbm.bandwidth_gbps / 1000:.2f} TB/s"
        if not roofs:
            ax.plot(x, hbm, color="tab:red", lw=1.5, label=f"{hbm_label} (compute roof not modelled)")
        for label, peak, style in roofs:
            ax.plot(x, np.minimum(peak, hbm), color="tab:red", ls=style, lw=1.5,
                    label=f"{label} {peak:.0f} TFLOPS, {hbm_label}")
        kinds = group["op"].to_numpy(dtype=str)
        for kind in sorted(set(kinds)):
            sel = kinds == kind
            ax.scatter(ai[sel], tflops[sel], s=18, color=_color(kind), label=f"{kind} ({int(sel.sum())})",
                       zorder=3, edgecolors="none")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(min(float(tflops.min()), x_lo * bw_tflops_per_intensity) / 2, top * 2)
        _log_axes(ax)
        ax.set_title(f"{dtype} on {gpu.name}" if dtype != NO_TENSOR else
                     f"ops without a tensor-core format on {gpu.name}", fontsize=10)
        ax.set_xlabel("arithmetic intensity (FLOP / HBM byte)")
        ax.set_ylabel("achieved TFLOPS per GPU")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _log_axes(ax, x: bool = True) -> None:
    """Ticks at 1, 2, 5 x 10^k labelled as plain numbers (1000, not 10^3), no minor-tick labels,
    on both axes (or only y), so even a range of less than a decade is labelled."""
    for axis in ((ax.xaxis, ax.yaxis) if x else (ax.yaxis,)):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


# -- timeline ------------------------------------------------------------------------------------

def plot_timeline(frame: pd.DataFrame, config=None) -> Figure:
    """Gantt chart: one lane per (rank, stream) of the first ``MAX_GANTT_RANKS`` ranks."""
    ranks = sorted(int(r) for r in frame["rank"].unique())
    shown = ranks[:MAX_GANTT_RANKS]
    rows = frame[frame["rank"].isin(shown)]
    lanes = sorted({(int(r), str(s)) for r, s in zip(rows["rank"], rows["stream"])},
                   key=lambda rs: (rs[0], rs[1] != "compute", rs[1] != "comm", rs[1]))
    fig = _figure(10, 1.2 + 0.35 * max(1, len(lanes)))
    ax = fig.subplots()
    makespan = float(frame["end_s"].max()) if len(frame) else 0.0
    unit, scale = _time_unit(makespan)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("GPU / stream")
    title = "timeline"
    if len(ranks) > len(shown):
        title += f" (ranks {shown[0]}-{shown[-1]} of {len(ranks)})"
    ax.set_title(title, fontsize=10)
    if not lanes:
        _empty(fig, ax, "no ops")
        return fig
    lane_of = {lane: i for i, lane in enumerate(lanes)}
    lane_idx = np.array([lane_of[(int(r), str(s))] for r, s in zip(rows["rank"], rows["stream"])])
    start = rows["start_s"].to_numpy(dtype=float) * scale
    width = rows["time_s"].to_numpy(dtype=float) * scale
    kinds = rows["op"].to_numpy(dtype=str)
    lane_ops = np.bincount(lane_idx, minlength=len(lanes))
    for kind in sorted(set(kinds)):
        first = True
        for lane in range(len(lanes)):
            sel = (kinds == kind) & (lane_idx == lane)
            if not sel.any():
                continue
            ax.broken_barh(np.column_stack([start[sel], width[sel]]), (lane - 0.4, 0.8),
                           facecolors=_color(kind), edgecolor="white",
                           linewidth=0.3 if lane_ops[lane] <= EDGE_MAX_OPS_PER_LANE else 0.0,
                           label=kind if first else None)
            first = False
    ax.set_yticks(range(len(lanes)), [f"GPU {r} / {s}" for r, s in lanes], fontsize=8)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(0, makespan * scale * 1.01 if makespan > 0 else 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


# -- achieved vs peak ----------------------------------------------------------------------------

KERNEL_KEY = ("op", "dtype", "sparse", "flops", "bytes_hbm", "time_s", "tile")  #: identical kernels


def distinct_kernels(frame: pd.DataFrame) -> pd.DataFrame:
    """Tensor-core rows grouped into identical kernels (same :data:`KERNEL_KEY`): one row each with
    the first ``name`` and ``rank``, ``count`` and ``total_time_s``, longest total first.

    A whole-model trace repeats each GEMM per layer and per rank; grouping shows where the time
    goes instead of 30 copies of one kernel.
    """
    rows = frame[(frame["peak_tflops"] > 0) & np.isfinite(frame["pct_of_peak"])]
    grouped = rows.groupby(list(KERNEL_KEY), sort=False, dropna=False)
    out = grouped.agg(name=("name", "first"), rank=("rank", "first"), pct_of_peak=("pct_of_peak", "first"),
                      bound=("bound", "first"), count=("name", "size"), total_time_s=("time_s", "sum"))
    out = out.reset_index()
    return out.sort_values("total_time_s", ascending=False, kind="stable").reset_index(drop=True)


def plot_achieved_vs_peak(frame: pd.DataFrame, config=None) -> Figure:
    """Horizontal bars: percent of the format's peak of the ``MAX_BARS`` distinct tensor-core
    kernels with the most total time (:func:`distinct_kernels`), annotated with time and bound."""
    rows = distinct_kernels(frame).head(MAX_BARS)
    fig = _figure(9, 1.2 + 0.25 * max(4, len(rows)))
    ax = fig.subplots()
    ax.set_xlabel("achieved / peak of the op's format (%)")
    ax.set_ylabel(f"kernel (top {MAX_BARS} by total simulated time)" if len(rows) == MAX_BARS
                  else "kernel")
    if rows.empty:
        _empty(fig, ax, "no tensor-core ops")
        return fig
    y = np.arange(len(rows))
    pct = rows["pct_of_peak"].to_numpy(dtype=float)
    kinds = rows["op"].to_numpy(dtype=str)
    for kind in sorted(set(kinds)):
        sel = kinds == kind
        ax.barh(y[sel], pct[sel], color=_color(kind), height=0.7, label=kind)
    labels = [f"{n} [{d}{' 2:4' if s else ''}]" + (f" x{c}" if c > 1 else f" r{r}") for n, d, s, r, c in
              zip(rows["name"], rows["dtype"], rows["sparse"], rows["rank"], rows["count"])]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.axvline(100, color="tab:red", lw=1)
    unit, scale = _time_unit(float(rows["time_s"].max()))
    for yi, p, t, c, b in zip(y, pct, rows["time_s"], rows["count"], rows["bound"]):
        total_unit, total_scale = _time_unit(t * c)
        total = f" ({t * c * total_scale:.3g} {total_unit} total)" if c > 1 else ""
        ax.text(p + 1, yi, f"{t * scale:.3g} {unit}{total}, {b}", va="center", fontsize=6)
    ax.set_xlim(0, max(110.0, float(pct.max()) * 1.25))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# -- bound breakdown -----------------------------------------------------------------------------

def plot_bound_breakdown(frame: pd.DataFrame, config=None) -> Figure:
    """Share of summed op time per bound (horizontal bars), stacked by op kind."""
    fig = _figure(7, 3.5)
    ax = fig.subplots()
    ax.set_xlabel("share of summed op time (%)")
    ax.set_ylabel("bound (limiting mechanism)")
    total = float(frame["time_s"].sum())
    if total <= 0:
        _empty(fig, ax, "no op time")
        return fig
    bounds = frame["bound"].where(frame["bound"] != "", "unknown")
    table = (frame["time_s"].groupby([bounds, frame["op"]]).sum().unstack(fill_value=0.0)
             / total * 100)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    y = np.arange(len(table))
    left = np.zeros(len(table))
    for kind in sorted(table.columns):
        width = table[kind].to_numpy(dtype=float)
        ax.barh(y, width, left=left, color=_color(kind), label=kind, height=0.7)
        left += width
    for yi, v in zip(y, left):
        ax.text(v + 0.5, yi, f"{v:.1f}%", va="center", fontsize=7)
    ax.set_yticks(y, list(table.index), fontsize=8)
    ax.set_ylim(len(table) - 0.5, -0.5)
    ax.set_xlim(0, 110)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# -- measured vs simulated -----------------------------------------------------------------------

def has_measurements(frame: pd.DataFrame) -> bool:
    m = frame["measured_s"].to_numpy(dtype=float)
    return bool((np.isfinite(m) & (m > 0)).any())


def plot_measured_vs_simulated(frame: pd.DataFrame, config=None) -> Figure:
    """Log-log scatter of simulated vs measured time per op, with the line simulated = measured."""
    m = frame["measured_s"].to_numpy(dtype=float)
    rows = frame[np.isfinite(m) & (m > 0) & (frame["time_s"] > 0)]
    fig = _figure(5.5, 4.5)
    ax = fig.subplots()
    ax.set_xlabel("measured time per op (us)")
    ax.set_ylabel("simulated time per op (us)")
    if rows.empty:
        _empty(fig, ax, "no measured ops")
        return fig
    meas = rows["measured_s"].to_numpy(dtype=float) * 1e6
    sim = rows["time_s"].to_numpy(dtype=float) * 1e6
    lo, hi = min(meas.min(), sim.min()) / 2, max(meas.max(), sim.max()) * 2
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="simulated = measured")
    kinds = rows["op"].to_numpy(dtype=str)
    for kind in sorted(set(kinds)):
        sel = kinds == kind
        ax.scatter(meas[sel], sim[sel], s=18, color=_color(kind), label=f"{kind} ({int(sel.sum())})",
                   zorder=3, edgecolors="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    _log_axes(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# -- speed vs accuracy --------------------------------------------------------------------------

def has_functional(frame: pd.DataFrame) -> bool:
    return bool((~np.isnan(frame["sqnr_db"].to_numpy(dtype=float))).any())


def plot_speed_vs_accuracy(frame: pd.DataFrame, config=None) -> Figure:
    """Per functionally executed op: SQNR vs fp32 (x, dB) against achieved TFLOPS (y), by format."""
    sqnr = frame["sqnr_db"].to_numpy(dtype=float)
    rows = frame[np.isfinite(sqnr) & (frame["tflops"] > 0)]
    fig = _figure(6, 4.5)
    ax = fig.subplots()
    ax.set_xlabel("accuracy: SQNR vs fp32 reference (dB)")
    ax.set_ylabel("speed: achieved TFLOPS per GPU")
    if rows.empty:
        _empty(fig, ax, "no functionally executed ops")
        return fig
    dtypes = rows["dtype"].to_numpy(dtype=str)
    for i, dtype in enumerate(sorted(set(dtypes))):
        sel = dtypes == dtype
        ax.scatter(rows["sqnr_db"].to_numpy(dtype=float)[sel], rows["tflops"].to_numpy(dtype=float)[sel],
                   s=22, color=f"C{i % 10}", label=f"{dtype or 'none'} ({int(sel.sum())})", zorder=3,
                   edgecolors="none")
    ax.set_yscale("log")
    _log_axes(ax, x=False)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("speed vs accuracy per op", fontsize=10)
    fig.tight_layout()
    return fig


# -- writing -------------------------------------------------------------------------------------

PLOTS = {"roofline": plot_roofline, "timeline": plot_timeline,
         "achieved_vs_peak": plot_achieved_vs_peak, "bound_breakdown": plot_bound_breakdown}


def save_figure(fig: Figure, path, fmt: str = "png") -> Path:
    """Save ``fig`` to ``path`` atomically with reproducible bytes (no dates, fixed SVG salt)."""
    if fmt not in _METADATA:
        raise BlackwellSimError(f"plot format must be one of {', '.join(_METADATA)}, got {fmt!r}")
    def write(fh):
        with rc_context({"svg.hashsalt": SVG_HASH_SALT}):
            fig.savefig(fh, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return write_atomic(path, write, binary=True)


def plots_for(frame: pd.DataFrame) -> dict:
    """``{file stem: plot function}`` that :func:`write_plots` writes for ``frame``, in order:
    the four standard plots, then measured_vs_simulated when the frame has measured times and
    speed_vs_accuracy when it has functional results."""
    plots = dict(PLOTS)
    if has_measurements(frame):
        plots["measured_vs_simulated"] = plot_measured_vs_simulated
    if has_functional(frame):
        plots["speed_vs_accuracy"] = plot_speed_vs_accuracy
    return plots


def write_plots(frame: pd.DataFrame, config, out_dir, *, fmt: str = "png") -> list[Path]:
    """Write the plots of :func:`plots_for` as ``out_dir/<name>.<fmt>`` (png or svg); returns the
    paths in that order."""
    if fmt not in _METADATA:
        raise BlackwellSimError(f"plot format must be one of {', '.join(_METADATA)}, got {fmt!r}")
    validate_frame(frame)
    out_dir = Path(out_dir)
    return [save_figure(fn(frame, config), out_dir / f"{name}.{fmt}", fmt)
            for name, fn in plots_for(frame).items()]
