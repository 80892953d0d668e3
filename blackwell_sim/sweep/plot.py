"""Plots of a sweep: one varied key -> a line of a metric over its values; two -> a heatmap.

The metric is a dotted path into a row's ``metrics`` (``achieved_tflops``, ``total_time_s``,
``formats.nvfp4.pct_of_peak``, ``derived.tokens_per_s``, ...). Failed points and points without the
metric are gaps (a missing marker, a blank cell). Numeric key values are placed on a numeric axis,
anything else (preset names, recipes) as categories in the spec's order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from blackwell_sim.errors import BlackwellSimError

#: top-level keys of a row's metrics: the summary's (blackwell_sim.report.summary) plus ``derived``
METRIC_ROOTS = ("total_time_s", "ops", "rows", "ranks", "gpus", "achieved_tflops", "formats",
                "bound_time_share", "time_by_op", "bytes", "energy_j", "energy_rows", "measured",
                "functional", "cached_rows", "derived")


def check_metric_name(path: str) -> None:
    """Reject a metric whose first part is no metrics key (before any point runs)."""
    import difflib

    root = path.split(".")[0]
    if root not in METRIC_ROOTS:
        close = difflib.get_close_matches(root, METRIC_ROOTS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(METRIC_ROOTS)}"
        raise BlackwellSimError(f"--plot: unknown metric '{path}'; {hint}")


def metric_value(metrics: dict | None, path: str) -> float | None:
    """The number at dotted ``path`` of ``metrics`` (None when absent, not a number, or not finite)."""
    node = metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        return None
    return float(node)


def check_metric(rows: list[dict], path: str) -> None:
    """A metric no ok row has is a typo: one line naming it and the top-level metrics there are."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if ok and all(metric_value(r["metrics"], path) is None for r in ok):
        import difflib

        names = sorted(_paths(ok[0]["metrics"]))
        close = difflib.get_close_matches(path, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise BlackwellSimError(f"--plot: no numeric metric '{path}' in the results{hint} "
                                f"(e.g. {', '.join(n for n in names if '.' not in n)})")


def _paths(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _paths(value, name + ".")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(name)
    return out


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_sweep(rows: list[dict], vary: tuple, metric: str, title: str = "") -> Figure:
    """The figure for ``rows`` (in point order) of a sweep over ``vary`` ((key, values) pairs)."""
    if len(vary) not in (1, 2):
        raise BlackwellSimError(f"--plot: needs one varied key (line) or two (heatmap); this sweep "
                                f"varies {len(vary)}: {', '.join(k for k, _ in vary)}")
    check_metric(rows, metric)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    if len(vary) == 1:
        key, values = vary[0]
        by = {_k(r["params"][key]): metric_value(r.get("metrics"), metric) for r in rows}
        y = np.array([np.nan if by.get(_k(v)) is None else by[_k(v)] for v in values], dtype=float)
        x = np.array(values, dtype=float) if _numeric(values) else np.arange(len(values))
        ax.plot(x, y, marker="o")
        if not _numeric(values):
            ax.set_xticks(x, [str(v) for v in values], rotation=20, ha="right")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    else:
        (ykey, yvalues), (xkey, xvalues) = vary
        grid = np.full((len(yvalues), len(xvalues)), np.nan)
        yi = {_k(v): i for i, v in enumerate(yvalues)}
        xi = {_k(v): i for i, v in enumerate(xvalues)}
        for r in rows:
            value = metric_value(r.get("metrics"), metric)
            if value is not None:
                grid[yi[_k(r["params"][ykey])], xi[_k(r["params"][xkey])]] = value
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        fig.colorbar(image, ax=ax, label=metric)
        ax.set_xticks(range(len(xvalues)), [str(v) for v in xvalues], rotation=20, ha="right")
        ax.set_yticks(range(len(yvalues)), [str(v) for v in yvalues])
        ax.set_xlabel(xkey)
        ax.set_ylabel(ykey)
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.4g}", ha="center", va="center", fontsize=8,
                        color="white" if value < middle else "black")
    ax.set_title(title or metric)
    fig.tight_layout()
    return fig


def _k(value) -> str:
    return repr(tuple(value) if isinstance(value, list) else value)


def write_sweep_plot(rows: list[dict], vary: tuple, metric: str, out_dir, title: str = "") -> Path:
    """Write ``out_dir/plot-<metric>.png`` atomically, with reproducible bytes."""
    from blackwell_sim.report.plots import save_figure

    fig = plot_sweep(rows, vary, metric, title)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in metric)
    return save_figure(fig, Path(out_dir) / f"plot-{safe}.png", "png")
