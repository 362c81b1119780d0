"""What every ``mixpe-sim`` subcommand shares: the one-line-error parser, argument types,
design resolution and table printing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence


EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int, words: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}")
        return value
    return parse


positive_int = _int_at_least(1, "a positive integer")
"""argparse type: an integer > 0."""
nonneg_int = _int_at_least(0, "an integer >= 0")
"""argparse type: an integer >= 0."""


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def resolve_design(name: str, config_file: str | None = None):
    """The design ``name`` (preset or file), with ``config_file`` merged over it when given."""
    from ..config_base import read_config_data
    from ..designs import design_from_data, load_design

    if config_file is None:
        return load_design(name)
    data, lines = read_config_data(config_file)
    if isinstance(data, dict) and "extends" not in data and "name" not in data:
        data = {"extends": name, "name": f"{name}+{Path(config_file).stem}", **data}
    elif isinstance(data, dict) and "extends" not in data:
        data = {"extends": name, **data}
    return design_from_data(data, source=config_file, lines=lines)


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def add_no_cache_arg(p) -> None:
    """``--no-cache``: neither read nor write the persistent op-cost cache."""
    p.add_argument("--no-cache", action="store_true",
                   help="bypass the persistent op-cost cache (see `mixpe-sim cache info`); same results")


def print_table(rows: Sequence[tuple[str, Any]], out=None) -> None:
    """Print label/value pairs as an aligned two-column table."""
    out = out or sys.stdout
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        if isinstance(value, float):
            value = f"{value:.6g}"
        print(f"  {key:<{width}}  {value}", file=out)


def add_design_args(p: argparse.ArgumentParser, default: str = "mixpe-w4a8") -> None:
    """--design and --config options shared by subcommands."""
    p.add_argument("--design", default=default, help=f"design preset name or YAML file (default {default})")
    p.add_argument("--config", metavar="FILE.yaml", help="design fields merged over --design")


def print_units(utilization, top: int = 5, out=None) -> None:
    """Print the busiest units (a frame of ``unit, busy_s, utilization`` rows, busiest first)."""
    if utilization is None or not len(utilization):
        return
    out = out or sys.stdout
    print("  busiest units (busy time / device time):", file=out)
    for row in utilization.head(top).itertuples(index=False):
        print(f"    {row.unit:<34} {row.utilization:7.1%}", file=out)
