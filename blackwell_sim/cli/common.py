"""Conventions shared by every subcommand: one-line argument errors, --json, --set, output."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from blackwell_sim.config import load_config, parse_set_option
from blackwell_sim.errors import BlackwellSimError

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D102 (argparse hook)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common(parser: argparse.ArgumentParser, *, config: bool = True,
               default_config: str = "b200") -> None:
    """Add ``--json``, ``--set`` and (optionally) ``--config`` to a subcommand."""
    if config:
        parser.add_argument("--config", "-c", default=default_config, metavar="C",
                            help=f"preset name or YAML file (default: {default_config})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set sm.count=160 (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    return dict(parse_set_option(text) for text in args.overrides)


def config_of(args: argparse.Namespace, name: str | None = None):
    return load_config(name or args.config, overrides=overrides_of(args))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer value: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def json_safe(value: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return json_safe(value.item())
    return value


def emit(args: argparse.Namespace, result: Any) -> None:
    """Print a handler's result: JSON with --json, else its ``text`` rendering."""
    if result is None:
        return
    if getattr(args, "json", False):
        payload = result.get("json", result) if isinstance(result, dict) else result
        sys.stdout.write(json.dumps(json_safe(payload), sort_keys=False) + "\n")
    else:
        text = result.get("text") if isinstance(result, dict) else str(result)
        if text:
            sys.stdout.write(text.rstrip("\n") + "\n")


def fail(message: str) -> None:
    """Raise the bad-input error for a CLI argument problem found after parsing."""
    raise BlackwellSimError(message)
