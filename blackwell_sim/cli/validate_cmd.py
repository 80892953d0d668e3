"""``blackwell-sim validate DATA.jsonl --config C``: predicted vs measured, per row and summary."""

from __future__ import annotations

import argparse

from blackwell_sim.cli.common import add_common, config_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="compare predictions with measurements (JSON lines)",
                       description="Predict every row of a measurement file (the format of "
                                   "shared/data/hopper/) and print per-row errors and, per kind "
                                   "and dtype, count, MAPE, max error and Spearman correlation.")
    p.add_argument("data", metavar="DATA.jsonl")
    add_common(p, default_config="h100-sxm")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> dict:
    from blackwell_sim.validate import format_report, validate

    report = validate(args.data, config_of(args))
    return {"json": report, "text": format_report(report)}
