"""``blackwell-sim run [TRACE]``: replay a trace and write the report folder.

With no TRACE it runs the bundled default (:data:`DEFAULT_TRACE`: a training step of one
Llama-3-8B block on an HGX B200, TP2 x DP2, NVFP4 linear layers; made by the generator). Writes ``--out`` (default ``blackwell-sim-out``) atomically: results.csv,
summary.json, timeline.json (open it in ui.perfetto.dev) and the plots; prints the summary
table (or, with ``--json``, one JSON object: the summary plus ``trace_file``, ``out`` and
``files``). A progress
bar (tqdm) appears on stderr when the simulation takes more than :data:`PROGRESS_DELAY_S`.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
from pathlib import Path

from blackwell_sim.cli.common import add_common, overrides_of

DEFAULT_TRACE = "llama3-8b-train-layer-b200-nvfp4.yaml"
DEFAULT_OUT = "blackwell-sim-out"
PROGRESS_DELAY_S = 2.0


def bundled_traces_dir() -> Path:
    """``traces/`` of a source checkout, else the installed ``blackwell_sim.traces`` package."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "traces" / DEFAULT_TRACE).is_file():
        return root / "traces"
    return Path(str(importlib.resources.files("blackwell_sim.traces")))


def default_trace() -> Path:
    return bundled_traces_dir() / DEFAULT_TRACE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="replay a trace and write a report folder",
                       description="Replay a trace (YAML, JSON or JSON-lines; default: the bundled "
                                   f"{DEFAULT_TRACE}) and write results.csv, summary.json, "
                                   "timeline.json (ui.perfetto.dev) and plots into --out.")
    p.add_argument("trace", nargs="?", metavar="TRACE", help="trace file (default: the bundled example)")
    p.add_argument("--config", "-c", default=None, metavar="C",
                   help="GPU or system preset name or YAML file (default: the trace's, else b200)")
    add_common(p, config=False)
    p.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output folder, replaced atomically (default: {DEFAULT_OUT})")
    p.add_argument("--fidelity", choices=("fast", "detailed"), default="fast",
                   help="kernel model fidelity (default: fast)")
    p.add_argument("--functional", choices=("sample", "full"), default=None,
                   help="also execute GEMMs / attention numerically and report SQNR vs fp32 "
                        "(sample: a random subset of output tiles)")
    p.add_argument("--host-dispatch", choices=("eager", "none"), default="eager",
                   help="eager: each GPU's host thread dispatches ops at PyTorch's measured cost per "
                        "API, so short kernels can be host-bound; none: no host limit, as with CUDA "
                        "graphs (default: eager)")
    p.add_argument("--seed", type=int, default=0, help="seed of the functional operands (default 0)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    p.set_defaults(handler=run_trace)


def _progress_bar(total: int):
    """A tqdm bar on stderr that shows itself only after PROGRESS_DELAY_S (and only on a terminal)."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a declared dependency; a bare checkout without it runs silently
        return None
    return tqdm(total=total, desc="simulating", unit="op", file=sys.stderr, delay=PROGRESS_DELAY_S,
                leave=False, disable=None)


def run_trace(args: argparse.Namespace) -> dict:
    from blackwell_sim.report import format_summary
    from blackwell_sim.simulate import simulate

    trace = args.trace if args.trace is not None else default_trace()
    result = simulate(trace, args.config, args.fidelity, functional=args.functional, seed=args.seed,
                      overrides=overrides_of(args), host_dispatch=args.host_dispatch, progress=_progress)
    files = result.write(args.out, plots=not args.no_plots)
    out = Path(args.out)
    text = (format_summary(result.summary).rstrip("\n")
            + f"\nwrote {out}/: " + ", ".join(p.name for p in files)
            + f"\nopen {out / 'timeline.json'} in https://ui.perfetto.dev")
    return {"json": {**result.summary, "trace_file": str(trace), "out": str(out),
                     "files": [str(p) for p in files]}, "text": text}


def _progress(total: int):
    bar = _progress_bar(total)
    return bar if bar is not None else _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
