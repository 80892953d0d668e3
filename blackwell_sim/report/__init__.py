"""Reports of a replayed trace: the per-op results frame, the summary, the timeline and the plots.

Data flows one way: the replayer builds a results frame (one row per op instance), this package
turns it into files a performance engineer reads. API (all validate the frame first and raise
:class:`~blackwell_sim.errors.BlackwellSimError` with one line naming column, row and value):

- :data:`COLUMNS` / :func:`column_units`: the frame's columns with kind, unit and meaning
  (docs/report.md is the reference).
- :func:`results_frame(rows) <results_frame>`: build a frame from row dicts, filling defaults and
  derived columns (end_s, tflops, pct_of_peak); :func:`empty_frame`; :func:`validate_frame`;
  :func:`check_streams` (ops on one rank and stream must not overlap).
- :func:`kernel_energy_j(config, result, dtype) <kernel_energy_j>`: an op's energy from the power
  model, for the ``energy_j`` column.
- :func:`summarize(frame, config, sim_wall_s=None) <summarize>` -> JSON-safe dict;
  :func:`format_summary(summary) <format_summary>` -> compact text table.
- :func:`write_chrome_trace(frame, path, extra_events=None) <write_chrome_trace>` (and
  :func:`chrome_trace` for the dict): Chrome trace event JSON for ui.perfetto.dev;
  :func:`kernel_tile_events` turns a detailed GEMM's per-SM tile timeline into extra events.
- :func:`write_plots(frame, config, out_dir, fmt="png") <write_plots>` -> list of paths
  (roofline, timeline, achieved_vs_peak, bound_breakdown, then measured_vs_simulated when the frame
  has measured times and speed_vs_accuracy when it has functional results: :func:`plots_for`);
  each ``plot_*`` function in :mod:`blackwell_sim.report.plots` returns a matplotlib Figure.
- :func:`write_results_csv`, :func:`read_results_csv`, :func:`write_summary_json`,
  :func:`write_report`: atomic file writers (temp file + ``os.replace``).
"""

from __future__ import annotations

from pathlib import Path

from blackwell_sim.report.energy import kernel_energy_j
from blackwell_sim.report.frame import (
    COLUMN_NAMES,
    COLUMNS,
    check_streams,
    column_units,
    empty_frame,
    results_frame,
    validate_frame,
)
from blackwell_sim.report.output import (
    read_results_csv,
    write_results_csv,
    write_summary_json,
)
from blackwell_sim.report.plots import plots_for, write_plots
from blackwell_sim.report.summary import format_summary, summarize
from blackwell_sim.report.timeline import (
    chrome_trace,
    kernel_tile_events,
    write_chrome_trace,
)


def write_report(frame, config, out_dir, *, sim_wall_s: float | None = None, plots: bool = True,
                 extra_events=None) -> dict:
    """Write results.csv, summary.json, timeline.json and (optionally) the plots into ``out_dir``.

    Returns the summary dict with an added ``files`` list (paths as strings, in write order).
    """
    out_dir = Path(out_dir)
    summary = summarize(frame, config, sim_wall_s=sim_wall_s)
    files = [write_results_csv(frame, out_dir / "results.csv"),
             write_summary_json(summary, out_dir / "summary.json"),
             write_chrome_trace(frame, out_dir / "timeline.json", extra_events,
                                title=str(summary["config"]))]
    if plots:
        files += write_plots(frame, config, out_dir)
    return {**summary, "files": [str(p) for p in files]}


__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "check_streams",
    "chrome_trace",
    "column_units",
    "empty_frame",
    "format_summary",
    "kernel_energy_j",
    "kernel_tile_events",
    "plots_for",
    "read_results_csv",
    "results_frame",
    "summarize",
    "validate_frame",
    "write_chrome_trace",
    "write_plots",
    "write_report",
    "write_results_csv",
    "write_summary_json",
]
