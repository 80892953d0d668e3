"""The ``blackwell-sim`` command.

Each subcommand lives in its own module and registers itself in :data:`SUBCOMMANDS`. Shared
conventions (DESIGN.md): every subcommand takes ``--json`` (one JSON object on stdout, nothing
else) and ``--set key.path=value``; bad input gives one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from blackwell_sim.cli.common import EXIT_BAD_INPUT, OneLineParser, emit
from blackwell_sim.errors import BlackwellSimError

EXIT_INTERNAL = 1


def _subcommands():
    """Every ``*_cmd`` module of this package, in name order (each one has ``register(sub)``)."""
    import importlib
    import pkgutil

    import blackwell_sim.cli as package

    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.endswith("_cmd"))
    return [importlib.import_module(f"blackwell_sim.cli.{name}") for name in names]


def build_parser() -> OneLineParser:
    from blackwell_sim import __version__

    parser = OneLineParser(
        prog="blackwell-sim",
        description="Cycle-approximate simulator of NVIDIA Blackwell and Hopper GPUs.")
    parser.add_argument("--version", action="version", version=f"blackwell-sim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for module in _subcommands():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 2 bad input, 1 internal error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        result = args.handler(args)
        emit(args, result)
        return 0
    except BlackwellSimError as exc:
        print(f"blackwell-sim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("blackwell-sim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("BLACKWELL_SIM_DEBUG"):
            raise
        print(f"blackwell-sim: internal error: {type(exc).__name__}: {exc} "
              f"(set BLACKWELL_SIM_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
