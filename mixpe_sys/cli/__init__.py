"""Command line: ``mixpe-sim designs | gemm | models | trace | run | replay | capacity | sweep | cache``.

Every user error (bad argument, config, trace row) prints one line on stderr
and exits with code 2; nothing is printed as a traceback. One module per
group of subcommands; :mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

from ..errors import MixpeError
from . import cache, capacity, gemm, replay, run, sweep
from .common import EXIT_USAGE, Parser, cpu_count

_DEFAULT_SHOWWARNING = warnings.showwarning

__all__ = ["build_parser", "main", "cpu_count", "EXIT_USAGE"]


def build_parser() -> argparse.ArgumentParser:
    """The ``mixpe-sim`` argument parser with every subcommand."""
    parser = Parser(prog="mixpe-sim", description="Simulate mixed-precision LLM inference accelerators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (gemm, run, replay, capacity, sweep, cache):
        module.register(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from ..sim.cost_store import CostStoreWarning

    if issubclass(category, CostStoreWarning):
        print(f"mixpe-sim: warning: {message}", file=sys.stderr)
    else:
        _DEFAULT_SHOWWARNING(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mixpe-sim``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return args.func(args)
    except MixpeError as exc:
        print(f"mixpe-sim {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mixpe-sim: interrupted", file=sys.stderr)
        return 130

