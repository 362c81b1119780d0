"""Command line: ``mixpe-sim designs | gemm | models | trace | run | replay | capacity | sweep | cache``.

Every user error (bad argument, config, trace row) prints one line on stderr
and exits with code 2; nothing is printed as a traceback. One module per
group of subcommands; :mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from ..errors import MixpeError
from . import cache, capacity, gemm, replay, run, sweep
from .common import EXIT_USAGE, Parser, cpu_count, locate_error

__all__ = ["build_parser", "main", "cpu_count", "EXIT_USAGE", "EXIT_BROKEN_PIPE"]

EXIT_BROKEN_PIPE = 141
"""Exit code when stdout's reader closed the pipe: 128 + SIGPIPE, as the shell reports a tool killed by it."""

_DEFAULT_SHOWWARNING = warnings.showwarning


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
            code = args.func(args)
        sys.stdout.flush()
        return code
    except MixpeError as exc:
        print(f"mixpe-sim {args.command}: error: {locate_error(exc, args)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # the reader went away (``mixpe-sim gemm | head -1``): stop quietly, as a SIGPIPE'd tool does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("mixpe-sim: interrupted", file=sys.stderr)
        return 130

