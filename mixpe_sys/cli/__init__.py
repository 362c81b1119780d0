"""Command line: ``mixpe-sim designs | gemm | models | trace | run | replay | capacity | sweep``.

Every user error (bad argument, config, trace row) prints one line on stderr
and exits with code 2; nothing is printed as a traceback. One module per
group of subcommands; :mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import MixpeError
from . import capacity, gemm, replay, run, sweep
from .common import EXIT_USAGE, Parser, cpu_count

__all__ = ["build_parser", "main", "cpu_count", "EXIT_USAGE"]


def build_parser() -> argparse.ArgumentParser:
    """The ``mixpe-sim`` argument parser with every subcommand."""
    parser = Parser(prog="mixpe-sim", description="Simulate mixed-precision LLM inference accelerators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (gemm, run, replay, capacity, sweep):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mixpe-sim``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MixpeError as exc:
        print(f"mixpe-sim {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mixpe-sim: interrupted", file=sys.stderr)
        return 130

