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


def add_launch_arg(p: argparse.ArgumentParser) -> None:
    """--launch graph|eager, shared by the subcommands that simulate kernels."""
    p.add_argument("--launch", choices=["graph", "eager"], default="graph",
                   help="how kernels are issued on a design with launch costs (GPU presets): graph = "
                        "replayed from a CUDA graph, as serving runtimes do (default); eager = each kernel "
                        "dispatched from the host and waited for, as host-timed measurements see it")


def parse_quant(text: str | None, group_size: int | None = None):
    """A QuantScheme from ``--quant`` (None: None) with ``--group-size`` applied."""
    from ..errors import ConfigError
    from ..workload.quant import QuantScheme

    if text is None:
        if group_size is not None:
            raise ConfigError("--group-size: give it with --quant")
        return None
    return QuantScheme.parse(text) if group_size is None else QuantScheme.parse(text, group_size=group_size)
