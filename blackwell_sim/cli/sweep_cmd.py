"""``blackwell-sim sweep [SPEC] --trace T --vary key=v1,v2 ... [--out DIR] [--resume]``: a what-if
study over config keys and workload parameters (see :mod:`blackwell_sim.sweep`, docs/sweep.md).

Prints a table of the points (params, status, the plotted metric or total time and TFLOPS); with
``--json`` one object: ``out``, ``results``, ``points``, ``ok``, ``failed``, ``resumed``, ``plot``
and ``rows`` (the result rows in point order). Ctrl-C keeps every finished point (exit 130).
"""

from __future__ import annotations

import argparse

from blackwell_sim.cli.common import add_common, fail, overrides_of

DEFAULT_OUT = "sweep-out"
MAX_TABLE_ROWS = 60


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: run in this process), got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="what-if study: run a trace over a grid of config / workload values",
                       description="Run a workload over every combination (--grid, default) or the "
                                   "zipped values (--zip) of the varied keys: dotted config keys as for "
                                   "--set, the platform (config, system) and workload parameters of a "
                                   "generated or single-op trace (batch, seq, recipe, tp, dp, ep, pp, m, n, "
                                   "k, dtype, ...). Rows go to OUT/results.jsonl as points finish.")
    p.add_argument("spec", nargs="?", metavar="SPEC", help="sweep spec YAML (configs/studies/*.yaml)")
    p.add_argument("--config", "-c", default=None, metavar="C",
                   help="GPU or system preset or YAML of every point (default: the trace's, else b200)")
    add_common(p, config=False)
    next(a for a in p._actions if a.dest == "overrides").help = (
        "override a config key in every point, e.g. --set hbm.bandwidth_gbps=8000 (repeatable)")
    p.add_argument("--trace", "-t", default=None, metavar="T",
                   help="trace file, gen:MODEL:MODE[:key=value,...] (a generated step, e.g. "
                        "gen:llama3-70b:decode:kv_len=4096,tp=8) or KIND:key=value,... (one op, e.g. "
                        "gemm:m=8192,n=8192,k=8192,dtype=nvfp4)")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=VALUES",
                   help="a key and its values: v1,v2,... or start:stop[:step] (inclusive); repeatable")
    combine = p.add_mutually_exclusive_group()
    combine.add_argument("--grid", dest="combine", action="store_const", const="grid",
                         help="every combination of the values (default)")
    combine.add_argument("--zip", dest="combine", action="store_const", const="zip",
                         help="the i-th value of every key together (equal lengths)")
    p.add_argument("--workers", "-j", type=_workers, default=None, metavar="N",
                   help="local worker processes (default: CPU count; 0: run in this process)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the points on a Dask distributed cluster, e.g. tcp://host:8786 "
                        "(needs the [cluster] extra)")
    p.add_argument("--scheduler-timeout", type=float, default=20.0, metavar="S",
                   help="seconds to wait for the Dask scheduler to answer (default 20)")
    p.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output folder: results.jsonl, spec.json, plots (default: {DEFAULT_OUT})")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: points already done (same params and hash) are kept")
    p.add_argument("--plot", default=None, metavar="METRIC",
                   help="plot this metric (dotted path into the metrics, e.g. achieved_tflops, "
                        "derived.tokens_per_s) over one varied key (line) or two (heatmap)")
    p.add_argument("--fidelity", choices=("fast", "detailed"), default=None,
                   help="kernel model fidelity (default: the spec's, else fast)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run_sweep_cmd, combine=None)


def run_sweep_cmd(args: argparse.Namespace) -> dict:
    from blackwell_sim.sweep import load_spec, run_sweep, write_sweep_plot
    from blackwell_sim.sweep.plot import check_metric_name, metric_value

    spec = load_spec(args.spec, trace=args.trace, config=args.config, overrides=overrides_of(args),
                     vary=args.vary, combine=args.combine, plot=args.plot, fidelity=args.fidelity)
    if spec.plot:
        if len(spec.vary) not in (1, 2):
            fail(f"--plot: needs one varied key (line) or two (heatmap); this sweep varies {len(spec.vary)}")
        check_metric_name(spec.plot)
    outcome = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                        progress=not args.no_progress, connect_timeout_s=args.scheduler_timeout)
    plot_path = None
    if spec.plot:
        plot_path = write_sweep_plot(outcome.rows, spec.vary, spec.plot, outcome.out,
                                     title=spec.name or "")
    data = {"out": str(outcome.out), "results": str(outcome.results), "points": outcome.points,
            "ok": outcome.ok, "failed": outcome.failed, "resumed": outcome.resumed,
            "plot": str(plot_path) if plot_path else None, "rows": outcome.rows}
    metrics = [spec.plot] if spec.plot else ["total_time_s", "achieved_tflops"]
    lines = [f"sweep {spec.name or ''}: {outcome.points} points, {outcome.ok} ok, {outcome.failed} failed"
             f" ({outcome.resumed} kept from before) -> {outcome.results}".replace("sweep :", "sweep:")]
    header = list(spec.keys) + metrics + ["status"]
    table = [header]
    for row in outcome.rows[:MAX_TABLE_ROWS]:
        cells = [str(row["params"][k]) for k in spec.keys]
        for m in metrics:
            value = metric_value(row.get("metrics"), m)
            cells.append("-" if value is None else f"{value:.4g}")
        cells.append(row["status"] if row["status"] == "ok" else f"error: {row.get('error', '')}"[:80])
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in table]
    if len(outcome.rows) > MAX_TABLE_ROWS:
        lines.append(f"... {len(outcome.rows) - MAX_TABLE_ROWS} more rows in {outcome.results}")
    if plot_path:
        lines.append(f"wrote {plot_path}")
    return {"json": data, "text": "\n".join(lines)}
